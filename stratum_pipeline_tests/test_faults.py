"""Faults against real services: nothing is lost or half-written.

- the source PostgreSQL goes away in the middle of an extract;
- the process writing a partition is killed (SIGKILL) after the delete and before the commit;
- the MLflow tracking server is unreachable during training;
- one tenant's data is entirely bad.
(Redis going away is in test_serving.py.)
"""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from stratum_pipeline.assets.models import roas_model
from stratum_pipeline.assets.raw import SOURCE_RETRY_POLICY, build_raw_extract, raw_assets
from stratum_pipeline.demo.writer import write_source
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.modelops.training import DataMinimum, train_roas
from stratum_pipeline.resources import ModelRegistry, SourceDatabase, Warehouse
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.storage.database import engine_for
from stratum_pipeline.storage.extracts import EXTRACTS

from .helpers import forecast_rows
from .model_data import RUN_CONFIG, model_features
from .services import free_port

EXTRACT = EXTRACTS["raw_campaign_daily"]
DAY = "2026-03-12"  # a day of the test dataset with a quarantined row


def partition_rows(url: str) -> dict[str, pd.DataFrame]:
    """The raw table and its quarantine for DAY, sorted: what must survive a fault unchanged."""
    out = {}
    with engine_for(url).connect() as conn:
        for table, column in ((EXTRACT.table, "date"), (EXTRACT.quarantine, "partition_date")):
            frame = pd.read_sql(sa.select(table).where(table.c[column] == pd.Timestamp(DAY).date()), conn)
            out[table.name] = frame.sort_values("source_id").reset_index(drop=True)
    return out


def step_error(result):
    """The error that failed the run's step (unwrapped from the retry policy's wrapper)."""
    error = result.get_step_failure_events()[0].step_failure_data.error
    while (
        error.cls_name in ("RetryRequestedFromPolicy", "DagsterExecutionStepExecutionError")
        and error.cause is not None
    ):
        error = error.cause
    return error


def assert_same(before: dict, after: dict) -> None:
    for name, frame in before.items():
        pd.testing.assert_frame_equal(frame, after[name], check_like=True)


@pytest.fixture
def ingested(pg_databases, dataset):
    """PostgreSQL source with the test dataset, PostgreSQL warehouse with DAY of raw_campaign_daily ingested."""
    source_url, warehouse_url = pg_databases.create("fsrc"), pg_databases.create("fwh")
    write_source(engine_for(source_url), dataset)
    resources = {"source": SourceDatabase(url=source_url), "warehouse": Warehouse(url=warehouse_url)}
    result = dg.materialize(
        [build_raw_extract(EXTRACT)],
        partition_key=DAY,
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    before = partition_rows(warehouse_url)
    assert len(before[EXTRACT.table.name]) > 0 and len(before[EXTRACT.quarantine.name]) > 0
    return source_url, warehouse_url, resources, before


def test_raw_extracts_retry_with_backoff():
    for asset in raw_assets:
        policy = asset.op.retry_policy
        assert (
            policy == SOURCE_RETRY_POLICY
            and policy.max_retries >= 2
            and policy.backoff == dg.Backoff.EXPONENTIAL
        )


def test_source_outage_mid_extract_fails_clearly_and_keeps_the_partition(ingested, pg_databases):
    source_url, warehouse_url, resources, before = ingested
    database = sa.engine.make_url(source_url).database
    admin = pg_databases.admin
    # Hold a lock on the source table so the next extract blocks inside its SELECT, then take the
    # database away under it: connections terminated, new ones refused.
    locker = sa.create_engine(source_url, poolclass=sa.pool.NullPool).connect()
    locker.begin()
    locker.execute(sa.text("LOCK TABLE campaign_daily_metrics IN ACCESS EXCLUSIVE MODE"))
    outage = {}

    def take_source_away():
        deadline = time.monotonic() + 60
        with admin.connect() as conn:
            while time.monotonic() < deadline:
                waiting = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND wait_event_type = 'Lock'"
                    ),
                    {"d": database},
                ).scalar()
                if waiting:
                    break
                time.sleep(0.1)
            outage["extract_was_blocked"] = bool(waiting)
            conn.execute(sa.text(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false'))
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                {"d": database},
            )

    saboteur = threading.Thread(target=take_source_away)
    saboteur.start()
    asset = build_raw_extract(
        EXTRACT, dg.RetryPolicy(max_retries=2, delay=0.2, backoff=dg.Backoff.EXPONENTIAL)
    )
    started = time.monotonic()
    try:
        result = dg.materialize(
            [asset],
            partition_key=DAY,
            resources=resources,
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    finally:
        saboteur.join()
        locker.invalidate()
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true'))
        engine_for(source_url).dispose()

    assert outage["extract_was_blocked"]
    assert not result.success and time.monotonic() - started < 20  # checked before training, not after
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 2  # the retry policy ran: two retries, then the failure
    failure = step_error(result)
    assert failure.cls_name == "SourceUnavailableError"
    assert (
        f"source database postgresql+psycopg2://postgres@127.0.0.1:5432/{database} is unavailable"
        in failure.message
    )
    assert "not currently accepting connections" in failure.message
    assert_same(before, partition_rows(warehouse_url))


class BrokenWarehouse(Warehouse):
    """A warehouse whose partition write fails with an error that is not a source outage."""

    def replace_partitions_together(self, writes, start, end, tenant_id=None):
        raise RuntimeError("value too long for type character varying(64)\nDETAIL: second line")


def test_errors_other_than_a_source_outage_are_not_retried(ingested):
    source_url, warehouse_url, resources, before = ingested
    asset = build_raw_extract(
        EXTRACT, dg.RetryPolicy(max_retries=2, delay=0.2, backoff=dg.Backoff.EXPONENTIAL)
    )
    result = dg.materialize(
        [asset],
        partition_key=DAY,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        resources={**resources, "warehouse": BrokenWarehouse(url=warehouse_url)},
    )
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]  # failed at once
    failure = result.get_step_failure_events()[0].step_failure_data
    assert failure.user_failure_data.description == (
        "raw_campaign_daily failed (not a database outage, so not retried): "
        "RuntimeError: value too long for type character varying(64)"
    )
    assert_same(before, partition_rows(warehouse_url))


KILL_SCRIPT = r"""
import sys, time
import pandas as pd
import sqlalchemy as sa
from stratum_pipeline.storage.extracts import EXTRACTS
from stratum_pipeline.resources import Warehouse
from stratum_pipeline.storage.database import engine_for

url, day, hang = sys.argv[1], pd.Timestamp(sys.argv[2]).date(), sys.argv[3] == "hang"
extract = EXTRACTS["raw_campaign_daily"]
warehouse = Warehouse(url=url)
clean = warehouse.read_range(extract.table, day, day).assign(spend=123456.0)
quarantine = warehouse.read_range(extract.quarantine, day, day, "partition_date").head(1)

def before_quarantine_delete(conn, cursor, statement, parameters, context, executemany):
    # the raw table's rows are deleted and inserted by now (the insert is a COPY on PostgreSQL, which passes no
    # SQLAlchemy event): hang inside the transaction, before the commit
    if hang and statement.lstrip().upper().startswith("DELETE") and "quarantine" in statement:
        print("deleted and inserted, not committed", flush=True)
        time.sleep(600)

sa.event.listen(engine_for(url), "after_cursor_execute", before_quarantine_delete)
print(warehouse.replace_partitions_together(
    [(extract.table, clean, "date"), (extract.quarantine, quarantine, "partition_date")], day, day), flush=True)
"""


def test_a_process_killed_mid_write_leaves_the_previous_rows(ingested, pg_databases):
    _, warehouse_url, _, before = ingested
    database = sa.engine.make_url(warehouse_url).database
    writer = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, warehouse_url, DAY, "hang"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "deleted and inserted, not committed"
        with pg_databases.admin.connect() as conn:  # the writer's transaction is open, holding the delete
            states = (
                conn.execute(
                    sa.text(
                        "SELECT state FROM pg_stat_activity WHERE datname = :d AND backend_xid IS NOT NULL"
                    ),
                    {"d": database},
                )
                .scalars()
                .all()
            )
        assert states, "the writer has an open transaction"
        assert_same(before, partition_rows(warehouse_url))  # readers still see the previous rows
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30
    with pg_databases.admin.connect() as conn:  # the server notices the dead client and rolls back
        while (
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND backend_xid IS NOT NULL"
                ),
                {"d": database},
            ).scalar()
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
    assert_same(before, partition_rows(warehouse_url))

    # Control: the same write, not killed, does replace both tables (so the check above can fail).
    done = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, warehouse_url, DAY, "finish"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    after = partition_rows(warehouse_url)
    assert (after[EXTRACT.table.name]["spend"] == 123456.0).all() and len(after[EXTRACT.quarantine.name]) == 1


class MlflowServer:
    """`mlflow server` on loopback with a SQLite store; stop() and start() again on the same port and store."""

    def __init__(self, folder):
        self.folder, self.port, self.process = folder, free_port(), None
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self):
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.folder / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.folder / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "server.log", "a"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                assert self.process.poll() is None, (self.folder / "server.log").read_text()[-2000:]
                time.sleep(0.3)
        raise TimeoutError("mlflow server did not start")

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # an outage, not a graceful shutdown
            self.process.wait(timeout=30)


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _train_big(registry, warehouse, instance):
    return dg.materialize(
        [roas_model],
        partition_key="big",
        instance=instance,
        raise_on_error=False,
        resources={"warehouse": warehouse, "registry": registry},
        run_config={"ops": {"roas_model": {"config": RUN_CONFIG}}},
    )


@pytest.mark.slow  # an MLflow server stopped and restarted (~45 s)
def test_mlflow_unreachable_fails_the_run_and_keeps_the_champion(mlflow_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    campaign = model_features()[0]
    warehouse.replace_partitions(
        wh.campaign_features, campaign, campaign["date"].min().date(), campaign["date"].max().date()
    )
    registry = ModelRegistry(tracking_uri=mlflow_server.uri)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenants", ["big"])
    name = model_name("roas", "big")

    # A first champion (small and quick to train; the gate promotes it: there is no champion yet).
    outcome = train_roas(
        "big",
        campaign[campaign.tenant_id == "big"],
        registry,
        {"test": "first"},
        DataMinimum(40, 30, 5_000),
        7,
        n_estimators=40,
    )
    champion = registry.champion_version(name)
    assert outcome.decision.promote and champion == "1"

    mlflow_server.stop()
    started = time.monotonic()
    result = _train_big(registry, warehouse, instance)
    assert not result.success and time.monotonic() - started < 20  # checked before training, not after
    failure = step_error(result)
    assert failure.cls_name == "RegistryUnavailableError"
    assert f"MLflow tracking server {mlflow_server.uri} is unreachable" in failure.message
    assert "champion is unchanged" in failure.message
    assert not result.get_asset_materialization_events()

    mlflow_server.start()
    assert registry.champion_version(name) == champion  # nothing moved while the server was down
    result = _train_big(registry, warehouse, instance)
    assert result.success
    materialization = result.get_asset_materialization_events()[0].event_specific_data.materialization
    assert materialization.metadata["version"].value == "2"  # the failed run registered nothing
    assert registry.champion_version(name) in {"1", "2"}


def test_one_tenants_entirely_bad_day_does_not_stop_the_other_tenants(pg_databases, dataset):
    """Every one of beta's sessions that day is rejected: a third of the day's rows, far over the 5% limit that
    used to block the whole day. Now the raw contract warns (naming beta) and alpha's features are built."""
    from stratum_pipeline.automation.local_runs import check_evaluations, execute_daily_range, materialized
    from stratum_pipeline.storage import source_schema as src

    from .helpers import checks_of, defs_for

    urls = pg_databases.create("badsrc"), pg_databases.create("badwh")
    write_source(engine_for(urls[0]), dataset)
    day, previous = "2026-03-25", "2026-03-24"
    s = src.sessions
    start = pd.Timestamp(day).to_pydatetime()
    with engine_for(urls[0]).begin() as conn:
        broken = conn.execute(
            sa.update(s)
            .where(
                s.c.tenant_id == "beta",
                s.c.started_at >= start,
                s.c.started_at < start + pd.Timedelta(days=1),
            )
            .values(converted=None)
        ).rowcount
    assert broken > 5
    result = execute_daily_range(defs_for(urls), previous, day)
    assert result.success
    evaluations = {
        e.partition: e for e in check_evaluations(result) if e.asset_key.to_user_string() == "raw_sessions"
    }
    assert evaluations[previous].passed is True  # the day before is fine, and says so on its own partition
    evaluation = evaluations[day]
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["tenants_over_limits"].value == {day: ["beta"]}
    assert checks_of(result)["raw_campaign_daily:raw_contract"] is True
    assert {"campaign_features", "creative_features", "session_features"} <= set(materialized(result))
    with engine_for(urls[1]).connect() as conn:
        features = pd.read_sql(
            sa.select(wh.session_features).where(wh.session_features.c.date == pd.Timestamp(day).date()), conn
        )
        rejected = pd.read_sql(
            sa.select(wh.raw_sessions_quarantine).where(
                wh.raw_sessions_quarantine.c.partition_date == pd.Timestamp(day).date()
            ),
            conn,
        )
    assert (
        set(features["tenant_id"]) == {"alpha"} and len(features) > 0
    )  # the other tenant's features were built
    beta_rejected = rejected[rejected["tenant_id"] == "beta"]
    assert len(beta_rejected) == broken and beta_rejected["reason"].str.contains("missing value").all()


def test_overlapping_writes_of_one_day_take_turns_and_never_duplicate_rows(pg_databases):
    """A writer still inside its transaction (e.g. the scheduled run) holds the table's turn: an overlapping
    replace of the same day (e.g. a one-tenant rerun) waits, then its DELETE sees the committed rows, so the day
    ends with one copy of each row. Without the turn both inserts would survive."""
    warehouse = Warehouse(url=pg_databases.create("wh"))
    day = pd.Timestamp("2026-03-01").date()
    warehouse.replace_partitions(wh.daily_roas_forecasts, forecast_rows("a", ["old"], day), day, day)
    first = warehouse.engine.connect()
    transaction = first.begin()
    first.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": "stratum:daily_roas_forecasts"}
    )
    first.execute(sa.delete(wh.daily_roas_forecasts).where(wh.daily_roas_forecasts.c.date == day))
    first.execute(
        sa.insert(wh.daily_roas_forecasts), forecast_rows("a", ["c1", "c2"], day).to_dict("records")
    )
    second = threading.Thread(
        target=warehouse.replace_partitions,
        args=(wh.daily_roas_forecasts, forecast_rows("a", ["c1", "c2"], day), day, day, "date", "a"),
    )
    second.start()
    time.sleep(1.0)
    assert second.is_alive(), "the overlapping write did not wait for the open one"
    transaction.commit()
    first.close()
    second.join(30)
    assert not second.is_alive()
    rows = warehouse.read_range(wh.daily_roas_forecasts, day, day)
    assert sorted(rows["campaign_id"]) == ["c1", "c2"]
