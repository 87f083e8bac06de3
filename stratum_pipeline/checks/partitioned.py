"""A partitioned check's verdict per partition when a run materialises a range of days.

Dagster records an `AssetCheckResult` returned from a ranged run without a partition, so the UI's Partitions
tab showed every day of a backfill as never checked ("Skipped") while the overview said "Passed". A check that
knows which days broke its rules hands them to `per_partition`, which reports one evaluation per day of the
range: the failing days fail (with their own severity), the others pass, each with the range's metadata.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, timedelta

import dagster as dg

# the (run, event) an evaluation targets: not exported by dagster, but what its own AssetCheckResult fills in
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as TargetMaterialization,
)

from stratum_pipeline.partitions import partition_days

CHECK_OUTPUT = "result"  # the output every @asset_check op has, which a run expects to be produced


def per_partition(
    context: dg.AssetCheckExecutionContext,
    key: dg.AssetCheckKey,
    result: dg.AssetCheckResult,
    failing_days: Mapping[date, dg.AssetCheckSeverity],
    *,
    blocking: bool = False,
    day_metadata: Mapping[date, Mapping[str, object]] | None = None,
) -> dg.AssetCheckResult | Iterator:
    """`result` for a one-day run; for a range, a generator of one `AssetCheckEvaluation` per day.

    `failing_days` maps each day that breaks the check to its severity (an error that cannot be placed on a
    day - e.g. a schema mismatch - belongs on every day of the range). A failed `result` that names no day
    fails every day with its own severity: the range failed somewhere, so no day of it is reported as passed.
    `blocking` is the check's own setting, so a failed ERROR day still stops the assets downstream in the run."""
    first, last = partition_days(context)
    if first == last:
        return result
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    if not result.passed and not failing_days:
        failing_days = dict.fromkeys(days, result.severity or dg.AssetCheckSeverity.ERROR)
    targets = latest_materializations(context, key.asset_key, [d.isoformat() for d in days])
    return _evaluations(key, result, days, targets, failing_days, blocking, day_metadata or {})


def latest_materializations(context, asset_key: dg.AssetKey, partitions: list[str]) -> dict:
    """Each partition's latest materialisation (this run's), which its evaluation targets: Dagster shows a check's
    status on a partition only while the evaluation targets the partition's latest materialisation. One query
    for the range; none without an instance (the scale benchmark calls the bodies without a run)."""
    if context.instance is None:
        return {}
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=partitions), limit=2 * len(partitions)
    ).records
    targets = {}
    for record in records:  # newest first
        partition = record.event_log_entry.dagster_event.partition
        targets.setdefault(
            partition,
            TargetMaterialization(
                run_id=record.event_log_entry.run_id, storage_id=record.storage_id, timestamp=record.timestamp
            ),
        )
    return targets


def _evaluations(key, result, days, targets, failing_days, blocking, day_metadata) -> Iterator:
    first, last = days[0], days[-1]
    for day in days:
        severity = failing_days.get(day)
        yield dg.AssetCheckEvaluation(
            asset_key=key.asset_key,
            check_name=key.name,
            passed=severity is None,
            severity=severity or dg.AssetCheckSeverity.ERROR,
            blocking=blocking,
            partition=day.isoformat(),
            description=result.description,
            metadata={
                **result.metadata,
                "range_checked": f"{first}..{last}",
                **(day_metadata.get(day) or {}),
            },
            target_materialization_data=targets.get(day.isoformat()),
        )
    yield dg.Output(None, output_name=CHECK_OUTPUT)
