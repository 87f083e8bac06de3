"""Shared fixtures: a small generated dataset, and source/warehouse databases on SQLite and PostgreSQL.

PostgreSQL tests create their own databases on the local server (STRATUM_TEST_PG_URL, default
postgresql+psycopg2://postgres@127.0.0.1:5432/postgres) and drop them afterwards.
"""

import os
import uuid
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from stratum_pipeline.demo.generator import DemoConfig, TenantSpec, generate
from stratum_pipeline.demo.writer import write_source
from stratum_pipeline.storage.database import engine_for

PG_ADMIN_URL = os.environ.get("STRATUM_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")

# Two tenants: one with a month and a half of history, one newer and smaller.
TEST_END = date(2026, 3, 31)
TEST_TENANTS = (
    TenantSpec("alpha", "Alpha Shop", campaigns=10, history_days=45, sessions_per_day=40),
    TenantSpec("beta", "Beta Bank", campaigns=5, history_days=20, sessions_per_day=20),
)
TEST_CONFIG = DemoConfig(end_date=TEST_END, seed=11, tenants=TEST_TENANTS, bad_row_rate=0.01)


@pytest.fixture(scope="session")
def dataset():
    return generate(TEST_CONFIG)


class PostgresDatabases:
    """Creates uniquely named databases on the local server and drops them at the end."""

    def __init__(self):
        self.admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def create(self, label: str) -> str:
        name = f"stratum_test_{label}_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self):
        for name in self.created:
            with self.admin.connect() as conn:
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"
                    ),
                    {"d": name},
                )
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_databases():
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request, tmp_path, pg_databases):
    """(source_url, warehouse_url) on a fresh pair of databases of the parametrised backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'warehouse.db'}"
    return pg_databases.create("src"), pg_databases.create("wh")


@pytest.fixture
def loaded_urls(urls, dataset):
    """Like `urls`, with the test dataset written to the source database."""
    write_source(engine_for(urls[0]), dataset)
    return urls


@pytest.fixture
def sqlite_loaded_urls(tmp_path, dataset):
    """SQLite source (with the test dataset) and warehouse, for behaviour that does not depend on the backend."""
    urls = f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'warehouse.db'}"
    write_source(engine_for(urls[0]), dataset)
    return urls


@pytest.fixture(scope="session")
def webserver_project(tmp_path_factory):
    """A small materialised project laid out as the embedded default (see webserver.py)."""
    from .webserver import prepare_project

    return prepare_project(tmp_path_factory.mktemp("webserver") / "project")


@pytest.fixture(scope="session")
def dagster_webserver(webserver_project):
    """`dagster-webserver` on loopback serving `webserver_project`; stopped at the end."""
    from .webserver import DagsterWebserver

    server = DagsterWebserver(webserver_project, webserver_project.root.parent / "webserver.log")
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


# The seed document's sample request to the budget simulator (docs: "3. Budget Simulator", Input), verbatim.
SEED_SIMULATE_REQUEST = {
    "campaign_id": 123,
    "base_budget": 10000,
    "scenarios": [
        {"name": "+20% Budget", "budget_change_percent": 20},
        {"name": "-20% Budget", "budget_change_percent": -20},
        {"name": "+50% Budget", "budget_change_percent": 50},
    ],
    "time_horizon_days": 30,
    "simulations": 1000,
}


@pytest.fixture
def seed_simulate_request():
    return {**SEED_SIMULATE_REQUEST, "scenarios": [dict(s) for s in SEED_SIMULATE_REQUEST["scenarios"]]}


def response_world(
    shapes,
    halves,
    days: int = 150,
    end: date = date(2026, 6, 30),
    seed: int = 5,
    vmax: float = 20_000.0,
    rate: float = 0.3,
    short: dict | None = None,
):
    """Daily rows of one tenant whose campaigns follow known adstock + Hill curves (Poisson orders of 50 each),
    with budgets that change every 3 weeks; `short` maps a campaign index to the days of history it keeps.
    Returns (rows, truth) where truth(i, spend_path) gives the expected daily revenue of campaign i."""
    import numpy as np
    import pandas as pd

    from stratum_pipeline.ml.response_curves import adstock, hill

    rng = np.random.default_rng(seed)
    dates = pd.date_range(end=pd.Timestamp(end), periods=days, freq="D")
    frames = []
    for i, (h, k) in enumerate(zip(shapes, halves)):
        budget = 1000.0 * rng.lognormal(0, 0.1)
        level = np.repeat(rng.lognormal(0, 0.35, days // 21 + 1), 21)[:days]
        spend = budget * level * rng.lognormal(0, 0.03, days)
        mean = vmax * hill(adstock(spend[None], rate)[0], k, h)
        orders = rng.poisson(mean / 50.0)
        keep = slice(days - (short or {}).get(i, days), days)
        frames.append(
            pd.DataFrame(
                {
                    "tenant_id": "t",
                    "campaign_id": f"c{i}",
                    "date": dates[keep],
                    "spend": spend[keep],
                    "revenue": orders[keep] * 50.0,
                    "conversions": orders[keep],
                }
            )
        )

    def truth(i, path):
        return vmax * hill(adstock(np.asarray(path, float)[None], rate)[0], halves[i], shapes[i])

    return pd.concat(frames, ignore_index=True), truth


@pytest.fixture
def stack(tmp_path):
    """Warehouse holding the model dataset's features, an MLflow store, an instance with both tenants:
    (definitions, registry, instance)."""
    import dagster as dg

    from stratum_pipeline.definitions import build_definitions
    from stratum_pipeline.resources import ModelRegistry, SourceDatabase, Warehouse
    from stratum_pipeline.storage import warehouse_schema as wh

    from .model_data import model_features

    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    campaign, sessions, creative, _ = model_features()
    for table, frame in (
        (wh.campaign_features, campaign),
        (wh.session_features, sessions),
        (wh.creative_features, creative),
    ):
        dates = pd.to_datetime(frame["date"])
        warehouse.replace_partitions(table, frame, dates.min().date(), dates.max().date())
    registry = ModelRegistry(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    resources = {
        "source": SourceDatabase(url=f"sqlite:///{tmp_path / 'source.db'}"),
        "warehouse": warehouse,
        "registry": registry,
    }
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenants", ["big", "small"])
    return build_definitions(resources), registry, instance


# Modules whose tests talk to a real Redis (the prediction cache); PostgreSQL users are found by their fixture.
REDIS_MODULES = {"test_serving", "test_isolation", "test_seed_backend", "test_deployment"}


def pytest_collection_modifyitems(items):
    """Mark every test that needs a running service `services`, so `-m "not services"` runs without them."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if "pg_databases" in getattr(item, "fixturenames", ()) or module in REDIS_MODULES:
            item.add_marker(pytest.mark.services)
