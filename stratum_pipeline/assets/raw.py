"""Raw extracts: one windowed, bound-parameter read of the source per materialisation, validated row by row.

Clean rows land in `raw_*`; every rejected row lands in `raw_*_quarantine` with its reasons and the
partition it belongs to. Both tables are replaced for the materialised days, so re-running is safe.
"""

import dagster as dg
import pandas as pd

from stratum_pipeline.assets.common import (
    naive_utc,
    partition_days,
    preview,
    rows_by_partition,
    table_metadata,
    window_metadata,
)
from stratum_pipeline.partitions import daily_backfill_policy, daily_partitions
from stratum_pipeline.resources import SourceDatabase, Warehouse
from stratum_pipeline.storage.database import is_transient
from stratum_pipeline.storage.extracts import EXTRACTS, Extract
from stratum_pipeline.storage.sqlio import as_datetimes
from stratum_pipeline.storage.validation import validate_rows

# A source outage (restart, failover, dropped connections) is usually over in a minute: retry the
# extract 3 times, 15 s, 30 s, 60 s apart (with jitter) before the run fails. The write is one
# transaction, so a failed attempt leaves the partition's previous rows in place. Only a transient error
# is retried - of the source, or of the warehouse: connection refused or reset, timeouts, failover, deadlock
# (`is_transient`, by the driver's SQLSTATE and message). Any other error - a database or host that does not
# exist, a refused login, a bug, a schema change, bad data - would fail the same way again, so it fails the
# step at once with its one line (`_not_retryable`).
SOURCE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def build_raw_extract(
    extract: Extract, retry_policy: dg.RetryPolicy = SOURCE_RETRY_POLICY
) -> dg.AssetsDefinition:
    @dg.asset(
        name=extract.name,
        description=extract.description,
        partitions_def=daily_partitions,
        backfill_policy=daily_backfill_policy,
        group_name="ingestion",
        kinds={"sql", "pandas"},
        owners=["team:data-engineering"],
        metadata=table_metadata(extract.table),
        retry_policy=retry_policy,
    )
    def _raw_extract(context: dg.AssetExecutionContext, source: SourceDatabase, warehouse: Warehouse):
        try:
            return _extract(context, source, warehouse)
        except Exception as exc:
            if is_transient(exc):
                raise
            raise _not_retryable(extract, exc) from exc

    def _extract(context: dg.AssetExecutionContext, source: SourceDatabase, warehouse: Warehouse):
        first, last = partition_days(context)
        frame = source.read(extract.query(naive_utc(first), naive_utc(last) + pd.Timedelta(days=1)))
        result = validate_rows(frame, extract.rules)
        clean = result.clean.assign(
            date=as_datetimes(result.clean[extract.rules.partition_column]).dt.normalize()
        )
        rows, quarantined = warehouse.replace_partitions_together(
            [
                (extract.table, clean, "date"),
                (extract.quarantine, result.quarantine.assign(run_id=context.run_id), "partition_date"),
            ],
            first,
            last,
        )
        warehouse.keep_written(
            context.run_id, extract.table, first, last, clean
        )  # for the run's checks, features
        rows_by_partition(context, clean, first, last)
        if quarantined:
            context.log.warning(f"{quarantined} of {len(frame)} rows quarantined: {result.reason_counts}")
        return dg.MaterializeResult(
            metadata={
                **window_metadata(first, last),
                "dagster/row_count": rows,
                "source_rows": len(frame),
                "quarantined_rows": quarantined,
                "quarantine_reasons": dg.MetadataValue.json(result.reason_counts),
                "preview": preview(clean),
            }
        )

    return _raw_extract


def _not_retryable(extract: Extract, exc: Exception) -> dg.Failure:
    """A failure the retry policy does not repeat, naming the extract and the error in one line."""
    cause = getattr(exc, "orig", None) or exc  # a driver's own message, not SQLAlchemy's wrapping
    first_line = (str(cause).strip().splitlines() or [""])[0].split(" (Background on this error at:")[0]
    return dg.Failure(
        description=f"{extract.name} failed (not a database outage, so not retried): "
        f"{type(cause).__name__}: {first_line}",
        allow_retries=False,
    )


raw_campaign_daily = build_raw_extract(EXTRACTS["raw_campaign_daily"])
raw_creative_daily = build_raw_extract(EXTRACTS["raw_creative_daily"])
raw_sessions = build_raw_extract(EXTRACTS["raw_sessions"])
raw_capi_events = build_raw_extract(EXTRACTS["raw_capi_events"])

raw_assets = [raw_campaign_daily, raw_creative_daily, raw_sessions, raw_capi_events]
