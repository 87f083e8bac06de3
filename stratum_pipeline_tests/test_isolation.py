"""Isolation and safety: tenants never share a model or cache entry, SQL is parameterised, no credential leaks."""

import json
import logging
import os
import types
import uuid
from datetime import datetime

import dagster as dg
import pandas as pd
import pytest
import redis
import sqlalchemy as sa
from dagster._serdes import serialize_value

from stratum_pipeline.assets.raw import build_raw_extract, raw_campaign_daily
from stratum_pipeline.cli import embedded_environment
from stratum_pipeline.demo.writer import write_source
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.resources import ModelRegistry, SourceDatabase, Warehouse
from stratum_pipeline.serving.cache import RedisCache
from stratum_pipeline.serving.inference import InferenceService, PredictionError
from stratum_pipeline.storage import source_schema
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.storage.database import engine_for
from stratum_pipeline.storage.extracts import EXTRACTS

from .helpers import cli_in_process as run_cli
from .helpers import stratum_cli as stratum
from .small_models import roas_predictor, roas_rows

REDIS_URL = os.environ.get("STRATUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
HOSTILE = "x'; DROP TABLE campaigns;--"
DAY = "2026-03-12"


@pytest.fixture(scope="module")
def two_champions(tmp_path_factory):
    """An MLflow store where tenant_a's and tenant_b's ROAS champions differ (4x apart), and no default model."""
    folder = tmp_path_factory.mktemp("isolation")
    registry = ModelRegistry(tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    example = roas_rows()[0][roas_predictor().feature_names]
    for tenant, level in (("tenant_a", 2.0), ("tenant_b", 0.5)):
        name = model_name("roas", tenant)
        version = registry.log_and_register(name, roas_predictor(level), example, {}, {}, {"tenant": tenant})
        registry.set_champion(name, version.version)
    return registry, folder


@pytest.fixture
def redis_cache():
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield RedisCache(REDIS_URL), client
    client.flushdb()


CAMPAIGN = {"roas_7d": 2.0, "roas_30d": 2.1, "roas": 1.9, "platform": "meta", "spend": 500.0}


def test_a_tenant_is_answered_only_by_its_own_model_and_cache_entries(two_champions, redis_cache):
    registry, _ = two_champions
    cache, client = redis_cache
    service = InferenceService(registry, cache)
    a = service.get_prediction("roas", CAMPAIGN, "tenant_a")
    b = service.get_prediction("roas", CAMPAIGN, "tenant_b")  # same input, A's answer is already cached
    assert a["served_by"] == "tenant_a" and a["model"].startswith("stratum-roas-tenant_a:")
    assert b["served_by"] == "tenant_b" and b["model"].startswith("stratum-roas-tenant_b:")
    assert a["predicted_roas"] > 2 * b["predicted_roas"]  # the two champions differ 4x
    keys = sorted(k.decode() for k in client.keys("stratum:pred:*"))
    assert (
        len(keys) == 2
        and keys[0].startswith("stratum:pred:roas:tenant_a:")
        and keys[1].startswith("stratum:pred:roas:tenant_b:")
    )
    # Served from the cache, each tenant still gets its own entry.
    assert (
        service.get_prediction("roas", CAMPAIGN, "tenant_b") == b
        and service.get_prediction("roas", CAMPAIGN, "tenant_a") == a
    )
    # A tenant without a model of its own (and no default model) is refused, never served another tenant's.
    with pytest.raises(PredictionError, match="no roas model serves tenant 'tenant_c'"):
        service.get_prediction("roas", CAMPAIGN, "tenant_c")
    # New data for tenant A invalidates A's entries only.
    service.notify_new_data("tenant_a")
    assert (
        client.get("stratum:data-version:tenant_a") == b"1"
        and client.get("stratum:data-version:tenant_b") is None
    )


@pytest.mark.slow
def test_cli_predict_hostile_json_gives_one_line_errors(two_champions, tmp_path, monkeypatch):
    registry, _ = two_champions
    home = tmp_path / "stratum"
    home.mkdir()
    engine = sa.create_engine(embedded_environment(home)["STRATUM_SOURCE_URL"])
    source_schema.metadata.create_all(engine, tables=[source_schema.tenants])
    with engine.begin() as conn:
        conn.execute(
            source_schema.tenants.insert(),
            [{"id": "tenant_a", "name": HOSTILE, "created_at": datetime(2026, 1, 1)}],
        )
    # One run end to end as a process (no traceback, one line, exit 2)...
    done = stratum(
        home,
        "predict",
        "roas",
        "--tenant",
        "tenant_a",
        '{"roas_7d": "abc"}',
        STRATUM_MLFLOW_TRACKING_URI=registry.tracking_uri,
    )
    assert done.returncode == 2 and "roas_7d must be a number, got 'abc'" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    # ...and more inputs through the same entry point in this process (the command's imports cost seconds).
    for key in [k for k in os.environ if k.startswith(("STRATUM_", "DAGSTER_"))]:
        monkeypatch.delenv(key)
    for key, value in embedded_environment(
        home
    ).items():  # set here so that monkeypatch undoes them afterwards
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("STRATUM_MLFLOW_TRACKING_URI", registry.tracking_uri)
    cases = [
        ('{"roas_7d": 1e999, "roas_30d": NaN}', "at least one of roas_7d, roas_30d or roas"),
        ('{"roas_7d": [1], "platform": "meta"}', "roas_7d must be a number"),
        ('{"roas_7d": 2', "input is not valid JSON"),
        (
            f'{{"roas_7d": 2, "platform": "{HOSTILE}"}}',
            None,
        ),  # unknown platform text: a forecast, not an error
    ]
    for payload, message in cases:
        code, out, err = run_cli("--home", str(home), "predict", "roas", "--tenant", "tenant_a", payload)
        if message is None:
            assert code == 0 and json.loads(out)["predicted_roas"] > 0, err
        else:
            assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (payload, err)


def _hostile_dataset(dataset):
    """The test dataset with a tenant name, a campaign id and a campaign name that are SQL injection attempts."""
    tables = {name: frame.copy() for name, frame in dataset.tables.items()}
    tables["tenants"].loc[tables["tenants"]["id"] == "alpha", "name"] = HOSTILE
    victim = tables["campaigns"]["id"].iloc[0]
    for name, column in (
        ("campaigns", "id"),
        ("campaign_daily_metrics", "campaign_id"),
        ("creatives", "campaign_id"),
    ):
        tables[name].loc[tables[name][column] == victim, column] = HOSTILE
    tables["campaigns"].loc[tables["campaigns"]["id"] == HOSTILE, "name"] = HOSTILE
    return types.SimpleNamespace(tables=tables)


def test_hostile_names_are_stored_and_reported_as_text(pg_databases, dataset):
    source_url, warehouse_url = pg_databases.create("injsrc"), pg_databases.create("injwh")
    write_source(engine_for(source_url), _hostile_dataset(dataset))
    resources = {"source": SourceDatabase(url=source_url), "warehouse": Warehouse(url=warehouse_url)}
    result = dg.materialize(
        [raw_campaign_daily], partition_key=DAY, resources=resources, instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    with engine_for(source_url).connect() as conn:
        assert (
            conn.execute(
                sa.select(source_schema.campaigns.c.name).where(source_schema.campaigns.c.id == HOSTILE)
            ).scalar_one()
            == HOSTILE
        )
        assert (
            conn.execute(
                sa.select(source_schema.tenants.c.name).where(source_schema.tenants.c.id == "alpha")
            ).scalar_one()
            == HOSTILE
        )
    with engine_for(warehouse_url).connect() as conn:
        rows = pd.read_sql(
            sa.select(wh.raw_campaign_daily).where(wh.raw_campaign_daily.c.campaign_id == HOSTILE), conn
        )
    assert len(rows) == 1 and rows["tenant_id"].iloc[0] in {"alpha", "beta"}
    preview = (
        result.get_asset_materialization_events()[0]
        .event_specific_data.materialization.metadata["preview"]
        .value
    )
    assert HOSTILE in preview  # reported as the text it is


@pytest.fixture
def password_role(pg_databases):
    """A login role with a password on the local server (trust auth: the password is carried, not checked)."""
    role, password = f"stratum_cred_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    with pg_databases.admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'"))
    granted_in: list[str] = []  # database URLs (as postgres) where the test granted the role something
    yield role, password, granted_in
    with pg_databases.admin.connect() as conn:
        conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"), {"r": role}
        )
    for url in granted_in:
        with engine_for(url).begin() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))  # revokes its grants there
    with pg_databases.admin.connect() as conn:
        conn.execute(sa.text(f'DROP ROLE "{role}"'))


def test_no_credential_in_logs_or_metadata(pg_databases, dataset, password_role, caplog, capfd):
    role, password, granted_in = password_role
    source_url = pg_databases.create("credsrc")
    warehouse_url = pg_databases.create("credwh")
    write_source(engine_for(source_url), dataset)
    with engine_for(source_url).begin() as conn:
        conn.execute(sa.text(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"'))
    granted_in.append(source_url)
    secret_url = (
        sa.engine.make_url(source_url)
        .set(username=role, password=password)
        .render_as_string(hide_password=False)
    )
    missing_url = (
        sa.engine.make_url(secret_url)
        .set(database="stratum_no_such_db")
        .render_as_string(hide_password=False)
    )
    instance = dg.DagsterInstance.ephemeral()
    with caplog.at_level(logging.DEBUG):
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
    error = failed.get_step_failure_events()[0].step_failure_data.error
    assert "stratum_no_such_db" in str(error.cause or error.message)  # the error says which database...
    events = [serialize_value(record) for run in (ok, failed) for record in instance.all_logs(run.run_id)]
    captured = capfd.readouterr()
    for text in (*events, caplog.text, captured.out, captured.err):
        assert password not in text  # ...but never the password
    engine_for(secret_url).dispose()
