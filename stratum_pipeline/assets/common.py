"""Small helpers shared by the assets: partition windows and materialisation metadata."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd

from stratum_pipeline.partitions import partition_days
from stratum_pipeline.storage.sqlio import as_datetimes
from stratum_pipeline.tenancy import TENANT_SCOPE_TAG, validate_tenant_id

__all__ = ["partition_days"]  # re-exported: the assets take their partition window from here


def tenant_scope(context) -> str | None:
    """The tenant a run is restricted to by its `stratum/tenant_id` tag, or None for every tenant."""
    tenant = context.run.tags.get(TENANT_SCOPE_TAG)
    return validate_tenant_id(tenant) if tenant is not None else None


def alert(context, warehouse, kind: str, tenant: str, summary: str) -> None:
    """An alert row (warehouse `alerts`) naming the tenant, from a run; a failure to record it is only logged."""
    from stratum_pipeline.alerts import Alert, notifiers, send

    try:
        send(
            Alert(
                kind=kind,
                summary=summary,
                run_id=context.run_id,
                job_name=context.job_name,
                partition_key=str(tenant)[:128],
            ),
            notifiers(warehouse),
        )
    except Exception as exc:  # the alert is secondary: the tenant's rows and the metadata still say it
        context.log.warning(f"could not record the {kind} alert for tenant {tenant}: {type(exc).__name__}")


def each_tenant(
    context, warehouse, frame: pd.DataFrame, work, workers: int = 1
) -> tuple[list, dict[str, str]]:
    """`work(tenant, rows)` for each tenant's rows of `frame`: one tenant's failure stays that tenant's.

    A tenant whose work raises is logged in one line, recorded as a `tenant_failure` alert and returned in
    `failed` (tenant -> reason); the other tenants' results are returned in order. If every tenant failed
    the cause is not a tenant's, and the first error is raised. With `workers` > 1 the tenants' work runs in
    that many forked processes (`in_processes`): the same results, in the same order, for pure work."""
    groups = list(frame.groupby("tenant_id", sort=True))
    outcomes = in_processes(work, groups, workers)
    results, failed, first_error = [], {}, None
    for (tenant, rows), (result, error) in zip(groups, outcomes):
        try:
            if error is not None:
                raise error
        except Exception as exc:
            first_error = first_error or exc
            reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
            failed[tenant] = reason
            context.log.error(
                f"tenant {tenant}: {context.asset_key.to_user_string()} skipped its {len(rows)} rows: {reason}"
            )
            alert(
                context,
                warehouse,
                "tenant_failure",
                tenant,
                f"{context.asset_key.to_user_string()}: tenant {tenant}'s {len(rows)} rows were not written: {reason}",
            )
            continue
        if result is not None:
            results.append(result)
    if failed and not results and len(failed) == frame["tenant_id"].nunique():
        raise first_error
    return results, failed


_FORKED: list = []  # (work, groups) of the forked pool being run: inherited by its processes, never pickled


def _forked_call(index: int):
    work, groups = _FORKED[0]
    return work(*groups[index])


def in_processes(work, groups: list[tuple], workers: int) -> list[tuple[object, Exception | None]]:
    """(work(*group), None) or (None, the exception) for each group, in order. With `workers` > 1 and more than
    one group, the groups are spread over that many forked processes (the work and its input are inherited, only
    the results travel back), so independent CPU-bound work uses the machine's cores; else, and where fork is
    unavailable, one after another in this process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if workers > 1 and len(groups) > 1 and "fork" in multiprocessing.get_all_start_methods() and not _FORKED:
        _FORKED.append((work, groups))
        try:
            with ProcessPoolExecutor(
                max_workers=min(workers, len(groups)), mp_context=multiprocessing.get_context("fork")
            ) as pool:
                futures = [pool.submit(_forked_call, i) for i in range(len(groups))]
                return [_outcome(future.result) for future in futures]
        finally:
            _FORKED.clear()
    return [_outcome(lambda group=group: work(*group)) for group in groups]


def _outcome(call) -> tuple[object, Exception | None]:
    try:
        return call(), None
    except Exception as exc:
        return None, exc


def naive_utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def rows_by_partition(
    context, frame: pd.DataFrame, first: date, last: date, date_column: str = "date"
) -> None:
    """A ranged run's `dagster/row_count` per partition: each day's rows of the written `frame`, so the UI's
    partition page shows the day's rows rather than the run's total (which stays on the run-level event)."""
    if first == last:
        return  # one partition: the materialisation's own row count is that day's
    days = as_datetimes(frame[date_column]).dropna().to_numpy().astype("datetime64[D]")
    values, counts = np.unique(days, return_counts=True)
    per_day = dict(zip(values.astype(object), counts.tolist()))  # datetime64[D] -> date
    day = first
    while day <= last:
        context.add_asset_metadata(
            {"dagster/row_count": int(per_day.get(day, 0))}, partition_key=day.isoformat()
        )
        day += timedelta(days=1)


def readable(value, digits: int = 4):
    """Metadata for people: floats (also inside dicts and lists) to `digits` significant digits, so the UI shows
    0.2384 rather than 0.23838051651443673; every other value, and the keys, unchanged (Plots charts stable keys)."""
    if isinstance(value, bool) or not isinstance(value, (float, dict, list, tuple)):
        return value
    if isinstance(value, float):
        return value if not math.isfinite(value) or value == 0 else float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: readable(v, digits) for k, v in value.items()}
    return [readable(v, digits) for v in value]


def preview(frame: pd.DataFrame, rows: int = 5) -> dg.MarkdownMetadataValue:
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False) if len(frame) else "_no rows_")


def window_metadata(first: date, last: date) -> dict:
    return {"first_day": str(first), "last_day": str(last), "days": (last - first).days + 1}


def column_schema(table) -> dg.TableSchema:
    """The Dagster column schema of a warehouse table (generated from warehouse_schema, shown in the asset's page)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                column.name,
                str(column.type).lower(),
                description=column.comment,
                constraints=dg.TableColumnConstraints(nullable=bool(column.nullable)),
            )
            for column in table.columns
        ]
    )


def model_code_version(model_type: str) -> str:
    """The code version of a model asset and of its published file: the format of the fitted object, bumped when
    a pickled model of an older version can no longer be served (so the UI marks its models and files stale)."""
    from stratum_pipeline.ml.anomalies import AnomalyDetector
    from stratum_pipeline.ml.conversion import ConversionPredictor
    from stratum_pipeline.ml.roas import ROASPredictor

    formats = {
        "roas": ROASPredictor.FORMAT,
        "conversion": ConversionPredictor.FORMAT,
        "anomaly_detector": AnomalyDetector.FORMAT,
    }
    return f"format-{formats[model_type]}"


def table_metadata(table) -> dict:
    """Definition metadata of an asset stored as a warehouse table: its name and column schema."""
    return {"dagster/table_name": table.name, "dagster/column_schema": column_schema(table)}


def feature_summary(frame: pd.DataFrame, features: list[str]) -> dg.MarkdownMetadataValue:
    """The distribution of each feature in a partition (missing share, mean and quantiles or top category)."""
    from stratum_pipeline.ml.monitoring import summarize_features

    summary = summarize_features(frame, features)
    return dg.MetadataValue.md(summary.round(4).to_markdown(index=False) if len(summary) else "_no rows_")
