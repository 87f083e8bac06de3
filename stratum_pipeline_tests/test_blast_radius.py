"""Issue 15: one tenant's failure stays that tenant's, every error is one line, no secret is stored.

One test (or more) per numbered failure of the issue; storage is exercised on SQLite and PostgreSQL.
"""

import json
import os
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from stratum_pipeline import cli
from stratum_pipeline.assets.products import daily_roas_forecasts
from stratum_pipeline.assets.raw import build_raw_extract, raw_campaign_daily
from stratum_pipeline.ml.emq import DataQualityAnalyzer
from stratum_pipeline.ml.inputs import InputError, number
from stratum_pipeline.ml.simulator import BudgetSimulator, SimulationInputError
from stratum_pipeline.modelops.registry import _load, model_name
from stratum_pipeline.resources import ModelRegistry, SourceDatabase, Warehouse
from stratum_pipeline.serving.cache import cache_from_url
from stratum_pipeline.serving.inference import InferenceService
from stratum_pipeline.settings import mask_url
from stratum_pipeline.storage import source_schema
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.storage.database import engine_for, is_transient
from stratum_pipeline.storage.extracts import EXTRACTS
from stratum_pipeline.storage.validation import validate_rows

from .helpers import cli_in_process as run_cli
from .helpers import stratum_cli as stratum
from .small_models import roas_predictor, roas_rows

DAY = "2026-03-12"
SECRET = "S3cretPW"


def one_line(done) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


# 1. One tenant's broken champion ------------------------------------------------------------------------------


def _pickles(folder: Path) -> set[Path]:
    return set(folder.rglob("python_model.pkl"))


@pytest.fixture
def champions(tmp_path):
    """A store with champions for tenant_a, tenant_b and the default model; the path of each one's pickle."""
    registry = ModelRegistry(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    example = roas_rows()[0][roas_predictor().feature_names]
    pickles = {}
    for owner, level in (("tenant_a", 2.0), ("tenant_b", 0.5), ("default", 1.0)):
        before = _pickles(tmp_path)
        version = registry.log_and_register(
            model_name("roas", owner), roas_predictor(level), example, {}, {}, {}
        )
        registry.set_champion(model_name("roas", owner), version.version)
        (pickles[owner],) = _pickles(tmp_path) - before
    _load.cache_clear()
    yield registry, pickles
    _load.cache_clear()


def _features(tenants) -> pd.DataFrame:
    frame, _ = roas_rows(n=6)
    frame = pd.concat(
        [frame.assign(tenant_id=t, campaign_id=[f"{t}-c{i}" for i in range(6)]) for t in tenants]
    )
    return frame.assign(
        date=pd.Timestamp(DAY),
        day_of_week=3,
        season=1,
        day_of_quarter=71,
        audience_size=1000,
        spend=100.0,
        revenue=200.0,
        daily_budget=120.0,
        history_days=60,
    )[[c.name for c in wh.campaign_features.columns]]


def test_a_broken_champion_is_replaced_by_the_default_model_for_that_tenant_only(urls, champions):
    registry, pickles = champions
    warehouse = Warehouse(url=urls[1])
    day = date.fromisoformat(DAY)
    warehouse.replace_partitions(wh.campaign_features, _features(["tenant_a", "tenant_b"]), day, day)
    pickles["tenant_a"].write_bytes(np.random.default_rng(0).bytes(2048))  # the repro: random bytes
    resources = {"warehouse": warehouse, "registry": registry}
    result = dg.materialize(
        [daily_roas_forecasts],
        partition_key=DAY,
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert result.success
    with engine_for(urls[1]).connect() as conn:
        rows = pd.read_sql(sa.select(wh.daily_roas_forecasts), conn)
        alerts = pd.read_sql(sa.select(wh.alerts), conn)
    served = rows.groupby("tenant_id")["model_name"].unique().to_dict()
    assert list(served["tenant_a"]) == ["stratum-roas-default"] and list(served["tenant_b"]) == [
        "stratum-roas-tenant_b"
    ]
    metadata = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert (
        "stratum-roas-tenant_a v1 could not be loaded: UnpicklingError"
        in metadata["model_fallbacks"].value["tenant_a"]
    )
    (alert,) = alerts.itertuples()
    assert alert.kind == "model_fallback" and alert.partition_key == "tenant_a"
    assert "tenant tenant_a" in alert.summary and "stratum-roas-tenant_a v1" in alert.summary

    # The same fallback when serving one prediction (InferenceService, `stratum predict`).
    service = InferenceService(registry, cache_from_url(None))
    answer = service.get_prediction("roas", {"roas_7d": 2.0, "roas_30d": 2.0, "platform": "meta"}, "tenant_a")
    assert answer["served_by"] == "default" and answer["model"] == "stratum-roas-default:1"

    # No model at all can serve tenant_a (the default is broken too): its rows are skipped and named, tenant_b's written.
    pickles["default"].write_bytes(b"not a pickle")
    _load.cache_clear()
    result = dg.materialize(
        [daily_roas_forecasts],
        partition_key=DAY,
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert result.success
    with engine_for(urls[1]).connect() as conn:
        rows = pd.read_sql(sa.select(wh.daily_roas_forecasts), conn)
    assert set(rows["tenant_id"]) == {"tenant_b"}
    metadata = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert metadata["unserved_campaign_days"].value == {"tenant_a": 6}


# 2. Passwords in a URL's query string ------------------------------------------------------------------------


def test_mask_url_hides_query_string_secrets():
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/x?password={SECRET}&sslmode=require&sslpassword=k2"
    assert (
        mask_url(url)
        == "postgresql+psycopg2://postgres@127.0.0.1:5432/x?password=***&sslmode=require&sslpassword=***"
    )
    assert (
        mask_url(f"https://mlflow:5000/?token={SECRET}&api_key={SECRET}&x=1")
        == "https://mlflow:5000/?token=***&api_key=***&x=1"
    )
    assert mask_url(f"postgresql://u:{SECRET}@h/db?secret={SECRET}") == "postgresql://u:***@h/db?secret=***"


def test_no_query_string_password_in_storage_logs_or_output(pg_databases, dataset, tmp_path, capfd):
    source_url = pg_databases.create("qsrc")
    from stratum_pipeline.demo.writer import write_source

    write_source(engine_for(source_url), dataset)
    secret_url = f"{source_url}?password={SECRET}"  # trust auth: carried, not checked
    missing_url = (
        sa.engine.make_url(source_url).set(database="stratum_no_such_db").render_as_string(False)
        + f"?password={SECRET}"
    )
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        ok = dg.materialize(
            [raw_campaign_daily],
            partition_key=DAY,
            instance=instance,
            resources={"source": SourceDatabase(url=secret_url), "warehouse": Warehouse(url=warehouse_url)},
        )
        once = build_raw_extract(EXTRACTS["raw_campaign_daily"], dg.RetryPolicy(max_retries=1, delay=0.1))
        failed = dg.materialize(
            [once],
            partition_key=DAY,
            instance=instance,
            raise_on_error=False,
            resources={"source": SourceDatabase(url=missing_url), "warehouse": Warehouse(url=warehouse_url)},
        )
        assert ok.success and not failed.success
        failure = failed.get_step_failure_events()[0].step_failure_data
        assert "stratum_no_such_db" in failure.user_failure_data.description  # names the database...
        stored = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert (
        len(stored) > 10_000 and SECRET.encode() not in stored
    )  # ...never the password (storage, compute logs)
    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err
    engine_for(secret_url).dispose()

    # `stratum env` and `stratum predict` with the same URL.
    cli_home = tmp_path / "stratum"
    done = stratum(cli_home, "env", STRATUM_SOURCE_URL=missing_url)
    assert done.returncode == 0 and "password=***" in done.stdout and SECRET not in done.stdout + done.stderr
    done = stratum(
        cli_home, "predict", "roas", "--tenant", "acme", '{"roas_7d": 2}', STRATUM_SOURCE_URL=missing_url
    )
    line = one_line(done)
    assert done.returncode == 2 and "stratum_no_such_db" in line and SECRET not in done.stdout + line


# 3. Work limits ----------------------------------------------------------------------------------------------


def test_simulate_refuses_work_above_its_limits_with_one_line():
    campaign = {"daily_spend": 100, "roas": 2}
    with pytest.raises(SimulationInputError, match="^100,000 scenarios is more than the limit of 100$"):
        BudgetSimulator().simulate(campaign, [0.1] * 100_000, iterations=100_000)
    with pytest.raises(
        SimulationInputError, match=r"iterations x days x \(scenarios \+ baseline\) = 100,000 x 366 x 4"
    ):
        BudgetSimulator().simulate(campaign, None, days=366, iterations=100_000)
    at_limit = BudgetSimulator().simulate(
        campaign, [], days=200, iterations=100_000, seed=1
    )  # exactly 20 million
    assert at_limit["iterations"] == 100_000 and at_limit["baseline"]["revenue"] > 0


def test_emq_refuses_oversized_keys_and_reads_only_the_weighted_ones():
    analyzer = DataQualityAnalyzer()
    with pytest.raises(
        InputError, match="^email is 5,000,000 characters long, more than the limit of 4,096$"
    ):
        analyzer.analyze({"email": "a" * 5_000_000}, "meta")
    started = time.perf_counter()
    many = {f"k{i}": i for i in range(200_000)} | {"email": "a@b.c"}
    assert analyzer.analyze(many, "meta")["present_fields"] == ["email"]
    assert time.perf_counter() - started < 5  # 200,000 unknown keys are not a 200,000-column frame


def test_cli_input_above_one_mib_is_one_line(tmp_path):
    big = json.dumps({"email": "a" * (2 << 20)})
    done = stratum(tmp_path / "h", "emq", stdin=big)
    assert (
        done.returncode == 2
        and one_line(done) == "stratum: input is larger than 1,048,576 bytes: send one record at a time"
    )
    scenarios = json.dumps(
        {"campaign": {"daily_spend": 100, "roas": 2}, "scenarios": [0.1] * 100_000, "iterations": 100_000}
    )
    done = stratum(tmp_path / "h", "simulate", stdin=scenarios)
    assert (
        done.returncode == 2 and one_line(done) == "stratum: 100,000 scenarios is more than the limit of 100"
    )


# 4. One line, not a traceback --------------------------------------------------------------------------------


def test_a_400_digit_integer_is_a_number_not_an_overflow():
    assert np.isnan(number(10**400, "x")) and np.isnan(number(-(10**400), "x"))  # infinite counts as missing
    code, out, err = run_cli(
        "simulate", json.dumps({"daily_spend": 100, "roas": 2, "elasticity": 10**400, "seed": 1})
    )
    assert code == 0 and json.loads(out)["baseline"]["revenue"] > 0, err
    code, out, err = run_cli("simulate", json.dumps({"daily_spend": 10**400, "roas": 2}))
    assert (
        code == 2
        and err.strip()
        == "stratum: daily_spend must be a finite number, got 1000000000000000000000000000000000000..."
    ), err


@pytest.mark.slow
def test_empty_variables_and_unreachable_hosts_are_one_line(tmp_path):
    home = tmp_path / "stratum"
    for variable in ("STRATUM_SOURCE_URL", "STRATUM_WAREHOUSE_URL"):
        done = stratum(home, "cadence", "acme", "weekly", **{variable: ""})
        assert done.returncode == 2 and f"stratum: {variable} is set but empty" in one_line(done)
    done = stratum(home, "env", DAGSTER_HOME="")
    assert done.returncode == 2 and "DAGSTER_HOME is set but empty" in one_line(done)
    assert not (tmp_path / "dagster.yaml").exists()  # nothing written into the current folder
    unreachable = "postgresql+psycopg2://postgres@stratum-no-such-host.invalid:5432/x"
    for args in (("cadence", "acme", "weekly"), ("demo",)):
        done = stratum(home, *args, STRATUM_SOURCE_URL=unreachable, STRATUM_WAREHOUSE_URL=unreachable)
        line = one_line(done)
        assert done.returncode == 2 and "could not translate host name" in line and "--debug" in line, line
    done = stratum(home, "--debug", "cadence", "acme", "weekly", STRATUM_SOURCE_URL=unreachable)
    assert done.returncode != 0 and "Traceback" in done.stderr


# 5. Permanent errors are not retried -------------------------------------------------------------------------


def test_only_transient_errors_are_retried(pg_databases, tmp_path):
    base = sa.engine.make_url(pg_databases.create("retry"))
    cases = {
        "no such database": (base.set(database="stratum_no_such_db"), False),
        "unknown host": (base.set(host="stratum-no-such-host.invalid"), False),
        "connection refused": (base.set(port=1), True),
    }
    for label, (url, transient) in cases.items():
        with pytest.raises(sa.exc.OperationalError) as caught:
            sa.create_engine(url, poolclass=sa.pool.NullPool).connect()
        assert is_transient(caught.value) is transient, label
    asset = build_raw_extract(EXTRACTS["raw_campaign_daily"], dg.RetryPolicy(max_retries=3, delay=5))
    started = time.monotonic()
    result = dg.materialize(
        [asset],
        partition_key=DAY,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        resources={
            "source": SourceDatabase(url=cases["no such database"][0].render_as_string(False)),
            "warehouse": Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}"),
        },
    )
    assert not result.success and time.monotonic() - started < 5  # three retries 5 s apart would take 15 s
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    description = result.get_step_failure_events()[0].step_failure_data.user_failure_data.description
    assert "not retried" in description and 'database "stratum_no_such_db" does not exist' in description


# 6. A lock on the embedded state folder ----------------------------------------------------------------------


def test_a_second_demo_on_the_same_folder_is_refused(tmp_path):
    home = tmp_path / "stratum"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pathlib import Path; from stratum_pipeline.cli import lock_home;"
                f"lock_home(Path({str(home)!r}), 'demo'); print('locked', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        done = stratum(home, "demo")
        line = one_line(done)
        assert done.returncode == 2 and f"another stratum demo or ui is using {home.resolve()}" in line
        assert f"pid {holder.pid}" in line
    finally:
        holder.kill()
        holder.wait()
    cli.lock_home(home, "test")  # free again once the holder is gone
    os.close(cli._held_locks.pop(home.resolve()))


# 7. Tenant ids validated at ingest ---------------------------------------------------------------------------

HOSTILE_IDS = ["x'; DROP TABLE campaigns;--", "a" * 5000, "../etc", "", "Acme", "default"]


@pytest.mark.parametrize(
    "tenant", HOSTILE_IDS, ids=["sql", "5000-chars", "dot-dot", "empty", "uppercase", "reserved"]
)
def test_a_hostile_tenant_id_is_quarantined(tenant):
    rules = EXTRACTS["raw_campaign_daily"].rules
    rows = pd.DataFrame(
        [
            {
                "source_id": i,
                "tenant_id": t,
                "campaign_id": f"c{i}",
                "platform": "meta",
                "date": datetime(2026, 3, 12),
                "spend": 10.0,
                "impressions": 100,
                "clicks": 5,
                "conversions": 1,
                "revenue": 20.0,
                "daily_budget": 20.0,
                "audience_size": 1000,
                "avg_order_value": 20.0,
                "recorded_at": datetime(2026, 3, 13),
            }
            for i, t in enumerate(["acme", tenant])
        ]
    )
    result = validate_rows(rows, rules)
    assert list(result.clean["tenant_id"]) == ["acme"]
    (reason,) = result.quarantine["reason"]
    assert reason == "invalid tenant id"
    assert result.reason_counts == {"invalid tenant id": 1}
    assert result.quarantine["tenant_id"].iloc[0] == tenant[:64]


def test_ingest_quarantines_rows_of_invalid_tenants(urls, dataset):
    from stratum_pipeline.demo.writer import write_source

    source_url, warehouse_url = urls
    hostile = ["x'; DROP TABLE campaigns;--", "../etc", ""] + (
        ["a" * 5000] if source_url.startswith("sqlite") else []
    )
    write_source(engine_for(source_url), dataset)
    metrics = dataset.tables["campaign_daily_metrics"]

    def plain(row: pd.Series) -> dict:
        return {
            k: (v.item() if isinstance(v, np.generic) else None if v is pd.NaT or v is None or v != v else v)
            for k, v in row.to_dict().items()
        }

    template = plain(metrics[pd.to_datetime(metrics["date"]) == pd.Timestamp(DAY)].iloc[0])
    campaign = plain(dataset.tables["campaigns"].iloc[0])
    with engine_for(source_url).begin() as conn:
        for i, tenant in enumerate(hostile):
            conn.execute(
                source_schema.campaigns.insert(), [{**campaign, "id": f"hostile{i}", "tenant_id": tenant}]
            )
            conn.execute(
                source_schema.campaign_daily_metrics.insert(),
                [{**template, "id": 10_000_000 + i, "campaign_id": f"hostile{i}"}],
            )
    result = dg.materialize(
        [raw_campaign_daily],
        partition_key=DAY,
        instance=dg.DagsterInstance.ephemeral(),
        resources={"source": SourceDatabase(url=source_url), "warehouse": Warehouse(url=warehouse_url)},
    )
    assert result.success
    with engine_for(warehouse_url).connect() as conn:
        raw = pd.read_sql(sa.select(wh.raw_campaign_daily), conn)
        quarantine = pd.read_sql(sa.select(wh.raw_campaign_daily_quarantine), conn)
    assert set(raw["tenant_id"]) == {"alpha", "beta"} and len(raw) > 0
    invalid = quarantine[quarantine["reason"].str.contains("invalid tenant id")]
    assert sorted(json.loads(r)["tenant_id"] for r in invalid["record"]) == sorted(hostile)


@pytest.mark.slow
def test_cadence_refuses_unknown_and_invalid_tenants(tmp_path):
    home = tmp_path / "stratum"
    home.mkdir()
    engine = sa.create_engine(cli.embedded_environment(home)["STRATUM_SOURCE_URL"])
    source_schema.metadata.create_all(engine, tables=[source_schema.tenants])
    with engine.begin() as conn:
        conn.execute(
            source_schema.tenants.insert(),
            [{"id": "known", "name": "Known", "created_at": datetime(2026, 1, 1)}],
        )
    for tenant, message in (("nobody", "unknown tenant 'nobody'"), ("../x", "invalid tenant id '../x'")):
        done = stratum(home, "cadence", tenant, "weekly")
        assert done.returncode == 2 and message in one_line(done)
    done = stratum(home, "cadence", "known", "weekly")
    assert done.returncode == 0, done.stderr
    with engine_for(cli.embedded_environment(home)["STRATUM_WAREHOUSE_URL"]).connect() as conn:
        assert conn.execute(sa.select(wh.tenant_settings.c.tenant_id)).scalars().all() == ["known"]


# 8. Killed runs ----------------------------------------------------------------------------------------------

KILLED_RUN = r"""
import os, sys, time
from pathlib import Path
import dagster as dg
from stratum_pipeline.cli import apply_environment
apply_environment(Path(sys.argv[1]))

@dg.op
def slow():
    print("started", flush=True)
    time.sleep(120)

@dg.job
def killed_job():
    slow()

killed_job.execute_in_process(instance=dg.DagsterInstance.get())
"""


def test_a_killed_run_is_marked_failed_by_the_next_start(tmp_path, monkeypatch):
    home = tmp_path / "stratum"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATUM_", "DAGSTER_", "ML_"))}
    worker = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(home)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert worker.stdout.readline().strip() == "started"
    worker.kill()  # kill -9
    worker.wait()
    for key in [k for k in os.environ if k.startswith(("STRATUM_", "DAGSTER_", "ML_"))]:
        monkeypatch.delenv(key)
    for key, value in cli.embedded_environment(home).items():
        monkeypatch.setenv(key, value)
    assert "run_monitoring" in (home / "dagster_home" / "dagster.yaml").read_text()
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.STARTED  # the repro: left STARTED
        assert cli.fail_orphaned_runs(home) == [run.run_id]
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_training_ends_its_models_runs_left_running_by_a_dead_process(tmp_path):
    import socket

    registry = ModelRegistry(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    name = model_name("roas", "acme")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    client = registry.client()
    tags = {"stratum_model": name, "stratum_host": socket.gethostname()}
    stale = client.create_run(
        registry.experiment_id(), tags={**tags, "stratum_pid": str(dead.pid)}
    ).info.run_id
    alive = client.create_run(
        registry.experiment_id(), tags={**tags, "stratum_pid": str(os.getppid())}
    ).info.run_id
    other = client.create_run(
        registry.experiment_id(),
        tags={**tags, "stratum_model": "stratum-roas-other", "stratum_pid": str(dead.pid)},
    ).info.run_id
    example = roas_rows()[0][roas_predictor().feature_names]
    registry.log_and_register(name, roas_predictor(), example, {}, {}, {})
    status = {run_id: client.get_run(run_id).info.status for run_id in (stale, alive, other)}
    assert status == {stale: "FAILED", alive: "RUNNING", other: "RUNNING"}
