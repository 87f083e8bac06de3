"""Jobs run in this process - by the demo, the scale benchmark and the tests - and what their results say.

`execute_daily_range` runs a daily job over a range of days as one ranged run (the way a backfill runs it),
`execute_tenant_job` one tenant partition (or an unpartitioned job). `check_evaluations` and `materialized`
read a result; `RunSummary` is the one-line account the demo and the benchmark print.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def execute_daily_range(
    defs: dg.Definitions,
    first_day: str,
    last_day: str,
    instance: dg.DagsterInstance | None = None,
    run_id: str | None = None,
    job_name: str = "daily_ingest_job",
) -> dg.ExecuteInProcessResult:
    """Run a daily job in process for the partitions first_day..last_day (inclusive) as one ranged run,
    with the tags a backfill gives each of its runs: one windowed read per asset for the whole range.

    The backfill policy caps a run at `MAX_DAYS_PER_RUN` days (`daily_backfill_policy`); run a long range
    over `partitions.backfill_ranges(first, last)`. Failures (including failed blocking checks) are
    in the result, not raised.
    """
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from stratum_pipeline.storage import handover

    try:
        return defs.resolve_job_def(job_name).execute_in_process(
            instance=instance,
            run_id=run_id,
            tags={ASSET_PARTITION_RANGE_START_TAG: first_day, ASSET_PARTITION_RANGE_END_TAG: last_day},
            run_config=QUIET,
            raise_on_error=False,
        )
    finally:
        handover.clear()  # the frames the run handed between its steps: not held past the run (memory)


def execute_tenant_job(
    defs: dg.Definitions,
    job_name: str,
    tenant: str | None = None,
    instance: dg.DagsterInstance | None = None,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """Run a tenant-partitioned job for one tenant (or an unpartitioned job with `tenant=None`) in process;
    failures are in the result, not raised."""
    return defs.resolve_job_def(job_name).execute_in_process(
        instance=instance,
        partition_key=tenant,
        raise_on_error=False,
        run_config={**QUIET, **(run_config or {})},
    )


def check_evaluations(result: dg.ExecuteInProcessResult) -> list[dg.AssetCheckEvaluation]:
    """Every asset check evaluated in the run, in order."""
    return [
        e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def checks_by_name(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """The run's check evaluations by `asset:check` name. A ranged run evaluates a partitioned check once per
    partition: the check's entry is then its first failing partition's evaluation, or the last one if all passed."""
    by_name: dict[str, dg.AssetCheckEvaluation] = {}
    for evaluation in check_evaluations(result):
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        if name not in by_name or by_name[name].passed:
            by_name[name] = evaluation
    return by_name


def materialized(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """The metadata values of each asset the run materialised, by asset key (the last one per key)."""
    return {
        e.asset_key.to_user_string(): {
            k: v.value for k, v in e.event_specific_data.materialization.metadata.items()
        }
        for e in result.get_asset_materialization_events()
    }


@dataclass(frozen=True)
class RunSummary:
    """What one or more runs did: success, checks passed and failed, steps that failed."""

    runs: int
    success: bool
    checks_passed: int
    checks_failed: int
    failed_steps: tuple[str, ...]

    @classmethod
    def of(cls, results: Iterable[dg.ExecuteInProcessResult]) -> RunSummary:
        results = list(results)
        evaluations = [e for r in results for e in checks_by_name(r).values()]  # a check once per run
        failed = tuple(
            e.step_key for r in results for e in r.all_events if e.event_type_value == "STEP_FAILURE"
        )
        passed = sum(1 for e in evaluations if e.passed)
        return cls(len(results), all(r.success for r in results), passed, len(evaluations) - passed, failed)

    def checks_line(self) -> str:
        return f"checks passed {self.checks_passed}, failed {self.checks_failed}"
