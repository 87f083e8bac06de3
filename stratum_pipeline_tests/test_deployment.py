"""The deployment end to end: Dagster instance, source and warehouse on PostgreSQL, `mlflow server`,
Redis, and `dagster-daemon run` launching queued runs within deploy/dagster.yaml's limits.

One test, because the servers take most of its time: the daemon runs the tenant sensor's first
trainings, a schedule tick, a daily ingest range, and a backfill of three runs for one tenant queued
ahead of another tenant's run, which must not wait behind them.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import redis
import sqlalchemy as sa
import yaml
from dagster._cli.job import _create_run  # what `dagster job launch` does, without a process per run
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    ScheduleInstigatorData,
    TickStatus,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from stratum_pipeline.demo.generator import generate
from stratum_pipeline.demo.writer import write_source
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.resources import ModelRegistry
from stratum_pipeline.serving.cache import cache_from_url
from stratum_pipeline.serving.inference import InferenceService
from stratum_pipeline.storage import source_schema
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.storage.database import engine_for
from stratum_pipeline.tenancy import TENANT_CONCURRENCY_TAG, TRAINING_BUCKET_TAG, training_batches

from .model_data import MODEL_CONFIG, RUN_CONFIG
from .services import VENV_BIN, Processes, start_mlflow_server

pytestmark = [pytest.mark.services, pytest.mark.slow]  # daemon, mlflow server, PostgreSQL, Redis

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("STRATUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
LOCATION = "stratum_pipeline"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
# The model dataset over 45 days (enough for BIG's models to pass the gate, 40% less to ingest than 75).
DATASET = dataclasses.replace(
    MODEL_CONFIG, tenants=tuple(dataclasses.replace(t, history_days=45) for t in MODEL_CONFIG.tenants)
)
BIG, SMALL = (
    t.tenant_id for t in DATASET.tenants
)  # 60 campaigns (own models) / 8 campaigns (default serves)
# The test's runs execute their steps in the run's process: a process per step costs more than these small steps.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
TRAINING_CONFIG = {
    **IN_PROCESS,
    "ops": {asset: {"config": RUN_CONFIG} for asset in ("roas_model", "conversion_model")},
}


@pytest.fixture
def deployment(tmp_path, pg_databases, monkeypatch):
    """Source with the model dataset, empty warehouse, an instance from deploy/dagster.yaml on a fresh
    database, `mlflow server` on PostgreSQL (starting: wait with deployment["mlflow_ready"]()); the daemon is
    started by the test. Processes stop at the end."""
    urls = {name: pg_databases.create(name) for name in ("dagster", "src", "wh", "mlflow")}
    processes = Processes(tmp_path)
    (tmp_path / "models").mkdir()
    env = {
        **os.environ,
        "STRATUM_DAGSTER_PG_URL": urls["dagster"],
        "STRATUM_SOURCE_URL": urls["src"],
        "STRATUM_WAREHOUSE_URL": urls["wh"],
        "STRATUM_REDIS_URL": REDIS_URL,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "ML_MODELS_PATH": str(tmp_path / "models"),
    }
    try:
        mlflow_url, mlflow_ready = start_mlflow_server(processes, urls["mlflow"], tmp_path / "artifacts", env)
        env["STRATUM_MLFLOW_TRACKING_URI"] = mlflow_url
        for key in (
            "STRATUM_DAGSTER_PG_URL",
            "STRATUM_SOURCE_URL",
            "STRATUM_WAREHOUSE_URL",
            "STRATUM_MLFLOW_TRACKING_URI",
            "ML_MODELS_PATH",
        ):
            monkeypatch.setenv(key, env[key])
        write_source(engine_for(urls["src"]), generate(DATASET))
        yield {
            "env": env,
            "urls": urls,
            "mlflow": mlflow_url,
            "mlflow_ready": mlflow_ready,
            "processes": processes,
            "tmp": tmp_path,
            "home": _dagster_home(tmp_path / "home"),
            "workspace": _workspace_file(tmp_path),
        }
    finally:
        processes.stop_all()


def _dagster_home(home: Path) -> Path:
    """deploy/dagster.yaml unchanged but for the queue's polling interval (5 s -> 1 s, to keep the test short)."""
    home.mkdir()
    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    config["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def _workspace_file(tmp_path: Path) -> Path:
    """The project's code location with this interpreter pinned, so the daemon and the test address
    the same code location (schedule state and runs are keyed by its origin)."""
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_module": {
                            "module_name": "stratum_pipeline.definitions",
                            "working_directory": str(PROJECT_ROOT),
                            "executable_path": sys.executable,
                            "location_name": LOCATION,
                        }
                    }
                ]
            }
        )
    )
    return workspace


def _create(
    instance, location, repo, job_name: str, tags: dict, run_config: dict | None = None
) -> dg.DagsterRun:
    """A run of the code location's job, as `dagster job launch` creates it (not yet queued)."""
    return _create_run(
        instance=instance,
        code_location=location,
        remote_repo=repo,
        remote_job=repo.get_full_job(job_name),
        run_config=run_config or {},
        tags=tags,
        op_selection=None,
        run_id=None,
    )


def _tenant_tags(location, repo, instance, tenant: str) -> dict:
    """The tags a launch of the tenant job's partition gets (what the UI and backfills use)."""
    snap = location.get_partition_tags_from_repo(repo.handle, "train_tenant_models_job", tenant, instance)
    return dict(snap.tags)


def _wait(
    instance, run_filter: dg.RunsFilter, count: int, timeout: float, processes: Processes
) -> list[dg.DagsterRun]:
    """The runs matching `run_filter` once `count` of them have finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=run_filter)
        if len(runs) >= count and all(r.status in FINISHED for r in runs):
            return runs
        time.sleep(1)
    states = [
        (r.job_name, r.tags.get(TENANT_CONCURRENCY_TAG), r.status.value)
        for r in instance.get_runs(filters=run_filter)
    ]
    raise TimeoutError(f"runs not finished after {timeout:.0f} s: {states}\n{processes.log('daemon')}")


def _interval(instance, run_id: str) -> tuple[float, float]:
    record = instance.get_run_record_by_id(run_id)
    return record.start_time, record.end_time


def test_the_daemon_runs_the_deployment_on_postgres_redis_and_mlflow_server(deployment):
    env, processes = deployment["env"], deployment["processes"]
    started = time.monotonic()
    with (
        dg.DagsterInstance.from_config(str(deployment["home"])) as instance,
        WorkspaceProcessContext(
            instance, WorkspaceFileTarget(paths=[str(deployment["workspace"])])
        ) as context,
    ):
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        request = context.create_request_context()
        location = request.get_code_location(LOCATION)
        repo = location.get_repository("__repository__")

        # The daemon was down at the live-predictions schedule's last tick: it catches up that tick when it starts.
        schedule = repo.get_schedule("live_predictions_schedule")
        instance.add_instigator_state(
            InstigatorState(
                schedule.get_remote_origin(),
                InstigatorType.SCHEDULE,
                InstigatorStatus.RUNNING,
                ScheduleInstigatorData(
                    schedule.cron_schedule, (datetime.now(timezone.utc) - timedelta(minutes=31)).timestamp()
                ),
            )
        )

        # The history, as one queued run of the daily ingest job over the dataset's days.
        first = (
            DATASET.end_date - timedelta(days=max(t.history_days for t in DATASET.tenants) - 1)
        ).isoformat()
        ingest_id = _create(
            instance,
            location,
            repo,
            "daily_ingest_job",
            {
                ASSET_PARTITION_RANGE_START_TAG: first,
                ASSET_PARTITION_RANGE_END_TAG: DATASET.end_date.isoformat(),
            },
            IN_PROCESS,
        ).run_id
        instance.submit_run(ingest_id, request)
        assert instance.get_run_by_id(ingest_id).status == dg.DagsterRunStatus.QUEUED

        processes.start(
            "daemon",
            [str(VENV_BIN / "dagster-daemon"), "run", "-w", str(deployment["workspace"])],
            {**env, "DAGSTER_HOME": str(deployment["home"])},
            cwd=deployment["tmp"],
        )

        # The daemon launches the ingest run, the tenant sensor's first trainings (batch runs, one per training
        # bucket here, tagged with it) and the caught-up schedule tick.
        ingest = _wait(instance, dg.RunsFilter(run_ids=[ingest_id]), 1, 150, processes)[0]
        assert ingest.status == dg.DagsterRunStatus.SUCCESS
        print(f"\ningest done after {time.monotonic() - started:.0f} s: {_interval(instance, ingest_id)}")
        batches = training_batches([BIG, SMALL])
        first_trainings = _wait(
            instance,
            dg.RunsFilter(tags={"dagster/sensor_name": "tenant_sync_sensor"}),
            len(batches),
            90,
            processes,
        )
        assert sorted(
            (
                r.tags[TRAINING_BUCKET_TAG],
                tuple(r.run_config["ops"]["train_tenant_batch"]["config"]["tenants"]),
            )
            for r in first_trainings
        ) == sorted(batches)
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in first_trainings)
        for asset in (
            "roas_model",
            "conversion_model",
        ):  # each tenant's partitions, materialised by the batches
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) >= {BIG, SMALL}
        live = _wait(
            instance,
            dg.RunsFilter(tags={"dagster/schedule_name": "live_predictions_schedule"}),
            1,
            60,
            processes,
        )
        assert all(
            r.status == dg.DagsterRunStatus.SUCCESS for r in live
        )  # two if the test spans a :00 or :30
        ticks = instance.get_ticks(schedule.get_remote_origin_id(), schedule.selector_id)
        assert any(
            t.status == TickStatus.SUCCESS and set(t.run_ids) & {r.run_id for r in live} for t in ticks
        )
        assert {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR"} <= set(instance.get_daemon_heartbeats())

        # A backfill of three trainings for SMALL queued first, then one for BIG: created, then queued together.
        runs = [
            _create(
                instance,
                location,
                repo,
                "train_tenant_models_job",
                _tenant_tags(location, repo, instance, tenant),
                TRAINING_CONFIG,
            )
            for tenant in (SMALL, SMALL, SMALL, BIG)
        ]
        deployment["mlflow_ready"]()  # BIG's training registers its models there
        print(f"backfill queued after {time.monotonic() - started:.0f} s")
        for run in runs:
            instance.submit_run(run.run_id, request)
        finished = _wait(instance, dg.RunsFilter(run_ids=[r.run_id for r in runs]), 4, 240, processes)
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in finished), [
            (r.tags, r.status) for r in finished
        ]
        small_runs = [_interval(instance, r.run_id) for r in runs[:3]]
        big_run = _interval(instance, runs[3].run_id)
        # SMALL's runs ran one at a time (tenant limit 1); BIG's run started before SMALL's second, not after all three.
        assert all(end <= next_start for (_, end), (next_start, _) in zip(small_runs, small_runs[1:]))
        assert big_run[0] < small_runs[1][0], (big_run, small_runs)
        everything = instance.get_runs()
        limit = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())["run_coordinator"][
            "config"
        ]["max_concurrent_runs"]
        intervals = [
            _interval(instance, r.run_id) for r in everything
        ]  # a tick at :00/:30 may still be running
        assert _peak_concurrency([(start, end or time.time()) for start, end in intervals if start]) <= limit
        print(
            f"\ndeployment: {len(everything)} runs, {time.monotonic() - started:.0f} s from the daemon's start"
        )

    # The data is in the PostgreSQL warehouse.
    warehouse = sa.create_engine(deployment["urls"]["wh"])
    with warehouse.connect() as conn:
        features = pd.read_sql(
            sa.select(
                wh.campaign_features.c.tenant_id,
                sa.func.count().label("rows"),
                sa.func.min(wh.campaign_features.c.date).label("first"),
            ).group_by(wh.campaign_features.c.tenant_id),
            conn,
        ).set_index("tenant_id")
        sessions = conn.execute(sa.select(sa.func.count()).select_from(wh.session_features)).scalar_one()
    warehouse.dispose()
    source = sa.create_engine(deployment["urls"]["src"])
    with source.connect() as conn:
        source_sessions = conn.execute(
            sa.select(sa.func.count()).select_from(source_schema.sessions)
        ).scalar_one()
    source.dispose()
    assert set(features.index) == {BIG, SMALL} and str(features.loc[BIG, "first"])[:10] == first
    assert sessions == source_sessions > 10_000  # no bad rows in this dataset: every session has its features

    # BIG's models are registered on the MLflow server, champions, artifacts stored through the server.
    registry = ModelRegistry(tracking_uri=deployment["mlflow"])
    for kind in ("roas", "conversion"):
        assert registry.champion_version(model_name(kind, BIG)) is not None
        assert (
            registry.champion_version(model_name(kind, SMALL)) is None
        )  # below the minimum: the default serves
    assert any((deployment["tmp"] / "artifacts").rglob("MLmodel"))

    # The backend's predictions come from that champion and are cached in Redis.
    client = redis.Redis.from_url(REDIS_URL)
    service = InferenceService(registry, cache_from_url(REDIS_URL))
    campaign = {"roas_7d": 3.1, "roas_30d": 2.9, "platform": "meta", "spend": 1200.0}
    answer = service.get_prediction("roas", campaign, BIG)
    assert (
        answer["served_by"] == BIG
        and answer["model"]
        == f"{model_name('roas', BIG)}:{registry.champion_version(model_name('roas', BIG))}"
    )
    keys = client.keys(f"stratum:pred:roas:{BIG}:*")
    assert keys and service.get_prediction("roas", campaign, BIG) == answer
    client.delete(*keys)


def _peak_concurrency(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak
