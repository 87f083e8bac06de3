"""The monitoring loop through real Dagster runs: what the retraining sensor asks for, and how its runs end.

benchmarks/monitoring.py replays the loop through the functions the assets call; this one runs the assets
themselves, on one world: a `response_change`, a `level_shift` and a `conversion_shift` tenant (all changed on
day 0; only conversion_shift has sessions enough for a conversion model of its own) and an untouched one, 20
campaigns each, low noise. Real SQLite warehouse, MLflow store and Dagster instance:

1. the tenants' ROAS champions (and conversion_shift's conversion champion) are trained by
   `train_tenant_models_job` on the days before day -14;
2. each day from day -8: that day's campaign features land in the warehouse, `daily_roas_forecasts` is
   materialised for it, `monitoring_job` runs for it, then `retraining_sensor` is evaluated (build_sensor_context
   on the same instance, cursor carried over) and every run it requests is executed in process as the daemon
   would launch it (its job, partition, asset selection, run config and run key tag).

Printed: each change of the sensor's action per tenant (its alert text), the training runs requested, how each
ended (run success, the promotion gate's check and text), and the issue's "training runs failing because of a
correct gate refusal" (failed runs whose failure is the gate: the target is 0).

    python benchmarks/monitoring_dagster.py [--days 40] [--wait 0]

Runtime: about 10 minutes on the shared 2-core machine (two Dagster runs per day).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import date, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import dagster as dg  # noqa: E402
import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from dagster._core.storage.tags import RUN_KEY_TAG  # noqa: E402

from stratum_pipeline.assets.products import daily_roas_forecasts  # noqa: E402
from stratum_pipeline.automation.local_runs import QUIET, check_evaluations, execute_daily_range  # noqa: E402
from stratum_pipeline.automation.sensors import retraining_sensor  # noqa: E402
from stratum_pipeline.definitions import build_definitions  # noqa: E402
from stratum_pipeline.demo.changes import Change  # noqa: E402
from stratum_pipeline.demo.features import feature_frames  # noqa: E402
from stratum_pipeline.demo.generator import DemoConfig, TenantSpec, generate  # noqa: E402
from stratum_pipeline.modelops import retraining  # noqa: E402
from stratum_pipeline.resources import ModelRegistry, SourceDatabase, Warehouse  # noqa: E402
from stratum_pipeline.storage import warehouse_schema as wh  # noqa: E402

END = date(2026, 6, 30)
TENANTS = ("response_change", "level_shift", "conversion_shift", "steady")
SESSIONS_PER_DAY = {
    "conversion_shift": 300
}  # the others: 10 a day, below the session minimum (no conversion model)
# Small tenants: the scenario test's scaled-down minimums; only conversion_shift has a conversion model of its own.
TRAINING = {"min_campaigns": 15, "min_campaign_days": 30, "min_sessions": 5000, "holdout_days": 14}


def _write(warehouse: Warehouse, frames, first: date, last: date) -> None:
    for table, frame in zip((wh.campaign_features, wh.session_features, wh.creative_features), frames):
        days = pd.to_datetime(frame["date"]).dt.date
        part = frame[(days >= first) & (days <= last)]
        if len(part):
            warehouse.replace_partitions(table, part, first, last)


def _gate(result: dg.ExecuteInProcessResult) -> str:
    checks = [c for c in check_evaluations(result) if c.check_name == "promotion_gate"]
    if not checks:
        return "no gate check"
    check = checks[0]
    severity = "" if check.passed else f" ({check.severity.value})"
    return f"gate {'passed' if check.passed else 'failed'}{severity}: {check.metadata['decision'].value}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=40, help="days replayed after the change")
    parser.add_argument(
        "--wait",
        type=int,
        help="override the policy's WAIT_DAYS for both models (e.g. 0: request at once, to exercise refusals)",
    )
    args = parser.parse_args(argv)
    if args.wait is not None:
        retraining.WAIT_DAYS.update(roas_model=args.wait, conversion_model=args.wait)
        print(f"WAIT_DAYS overridden: {retraining.WAIT_DAYS}")
    started, cpu = time.perf_counter(), time.process_time()
    day0 = END - timedelta(days=args.days - 1)
    config = DemoConfig(
        end_date=END,
        seed=2,
        tenants=tuple(TenantSpec(t, t, 20, 130 + args.days, SESSIONS_PER_DAY.get(t, 10)) for t in TENANTS),
        bad_row_rate=0.0,
        anomalies=False,
        changes=(
            Change("response_change", "response_change", start=day0, size=0.45),
            Change("level_shift", "level_shift", start=day0, size=0.6),
            Change("conversion_shift", "conversion_shift", start=day0, size=0.5),
        ),
    )
    frames = feature_frames(generate(config))
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = Warehouse(url=f"sqlite:///{Path(tmp) / 'warehouse.db'}")
        resources = {
            "source": SourceDatabase(url=f"sqlite:///{Path(tmp) / 'source.db'}"),
            "warehouse": warehouse,
            "registry": ModelRegistry(tracking_uri=f"sqlite:///{Path(tmp) / 'mlruns' / 'mlflow.db'}"),
        }
        defs = build_definitions(resources)
        with dg.instance_for_test(temp_dir=tmp) as instance:
            instance.add_dynamic_partitions("tenants", list(TENANTS))
            first = min(pd.to_datetime(f["date"]).dt.date.min() for f in frames)
            _write(warehouse, frames, first, day0 - timedelta(days=15))
            for tenant in TENANTS:
                for model in (
                    ("roas_model", "conversion_model") if tenant in SESSIONS_PER_DAY else ("roas_model",)
                ):
                    trained = defs.resolve_job_def("train_tenant_models_job").execute_in_process(
                        instance=instance,
                        partition_key=tenant,
                        asset_selection=[dg.AssetKey(model)],
                        run_config={**QUIET, "ops": {model: {"config": TRAINING}}},
                    )
                    print(f"champion {tenant} {model}: {_gate(trained)}")
            _write(warehouse, frames, day0 - timedelta(days=14), day0 - timedelta(days=9))
            cursor, runs = None, []
            for offset in range(-8, args.days):
                day = day0 + timedelta(days=offset)
                _write(warehouse, frames, day, day)
                forecast = dg.materialize(
                    [daily_roas_forecasts],
                    partition_key=day.isoformat(),
                    resources=resources,
                    instance=instance,
                    run_config=QUIET,
                    selection=[daily_roas_forecasts],
                )
                monitoring = execute_daily_range(
                    defs, day.isoformat(), day.isoformat(), instance=instance, job_name="monitoring_job"
                )
                if not (forecast.success and monitoring.success):
                    print(f"day {offset}: forecast or monitoring run failed")
                result = retraining_sensor(
                    dg.build_sensor_context(
                        instance=instance, cursor=cursor, resources={"warehouse": warehouse}
                    )
                )
                cursor = result.cursor
                print(f"# day {offset}: {len(result.run_requests)} requests", file=sys.stderr, flush=True)
                for request in result.run_requests:
                    job = defs.resolve_job_def(request.job_name)
                    run = job.execute_in_process(
                        instance=instance,
                        partition_key=request.partition_key,
                        asset_selection=request.asset_selection,
                        # the request's config, plus this world's scaled-down data minimums (its tenants are
                        # small): without them the retrain says "below the data minimum", not the gate's word
                        run_config={
                            **QUIET,
                            "ops": {
                                m.to_user_string(): {
                                    "config": {
                                        **TRAINING,
                                        **(
                                            (request.run_config or {})
                                            .get("ops", {})
                                            .get(m.to_user_string(), {})
                                        ).get("config", {}),
                                    }
                                }
                                for m in request.asset_selection
                            },
                        },
                        tags={**request.tags, RUN_KEY_TAG: request.run_key},
                        raise_on_error=False,
                    )
                    runs.append(
                        {
                            "day": offset,
                            "job": request.job_name,
                            "partition": request.partition_key,
                            "run": "success" if run.success else "FAILURE",
                            "gate": _gate(run)[:110],
                        }
                    )
            with warehouse.engine.connect() as conn:
                alerts = pd.read_sql(sa.select(wh.alerts).order_by(wh.alerts.c.created_at), conn)
    actions = alerts[alerts["kind"] == "retraining"]
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 200)
    print(f"\nRetraining alerts (each change of the sensor's action), change on {day0} = day 0:")
    for summary in actions["summary"]:
        print(f"  {summary}")
    table = pd.DataFrame(runs, columns=["day", "job", "partition", "run", "gate"])
    print("\nTraining runs requested by the sensor:")
    print(table.to_string(index=False) if len(table) else "  none")
    refused_failed = int(((table["run"] == "FAILURE") & table["gate"].str.contains("gate failed")).sum())
    print(
        f"\ntraining runs: {len(table)}; failed: {(table['run'] == 'FAILURE').sum()}; failing because of a "
        f"correct gate refusal: {refused_failed} (target 0); gate refusals on successful runs: "
        f"{((table['run'] == 'success') & table['gate'].str.contains('gate failed')).sum()}"
    )
    print(f"runtime {time.perf_counter() - started:.0f}s wall, {time.process_time() - cpu:.0f}s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
