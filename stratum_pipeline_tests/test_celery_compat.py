"""The seed's Celery task names start Dagster runs on a running dagster-webserver (through its GraphQL API)."""

import pandas as pd
import pytest
import sqlalchemy as sa

from stratum_pipeline.compat import celery_tasks
from stratum_pipeline.compat.celery_tasks import (
    DagsterUnavailable,
    UnknownTenant,
    calculate_all_fatigue_scores,
    generate_daily_forecasts,
    run_all_tenant_predictions,
)
from stratum_pipeline.resources import Warehouse
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.storage.database import engine_for
from stratum_pipeline.tenancy import InvalidTenantId

from .helpers import forecast_rows
from .services import free_port

pytestmark = pytest.mark.slow  # a dagster-webserver and the runs it starts


@pytest.fixture
def graphql_url(dagster_webserver, monkeypatch):
    monkeypatch.setenv(celery_tasks.GRAPHQL_URL_VARIABLE, dagster_webserver.url)
    return dagster_webserver


def rows_of_day(server, table) -> pd.DataFrame:
    with engine_for(server.project.warehouse_url).connect() as conn:
        return pd.read_sql(sa.select(table).where(table.c.date == server.project.day), conn)


def test_both_tasks_start_runs_for_yesterday_that_fill_the_tables(graphql_url):
    server = graphql_url
    forecast_run = generate_daily_forecasts()
    fatigue_run = calculate_all_fatigue_scores.delay().id  # the Celery-style call
    for run_id, job in ((forecast_run, "daily_forecasts_job"), (fatigue_run, "fatigue_scores_job")):
        assert celery_tasks.wait_for_run(run_id) == "SUCCESS"
        run = server.project.instance.get_run_by_id(run_id)
        assert run.job_name == job and run.tags["dagster/partition"] == server.project.day.isoformat()
    forecasts = rows_of_day(server, wh.daily_roas_forecasts)
    assert set(forecasts["tenant_id"]) == {"big", "small"}
    assert len(rows_of_day(server, wh.budget_scenarios)) == 4 * len(forecasts)
    assert len(rows_of_day(server, wh.creative_fatigue_scores)) > 0


def test_a_tenants_run_replaces_only_that_tenants_rows(graphql_url):
    server = graphql_url
    engine = engine_for(server.project.warehouse_url)
    table = wh.daily_roas_forecasts
    with (
        engine.begin() as conn
    ):  # mark big's rows, drop small's: the tenant run must restore small and keep big's marks
        conn.execute(table.update().where(table.c.tenant_id == "big").values(model_version="kept"))
        conn.execute(table.delete().where(table.c.tenant_id == "small"))
    big_before = rows_of_day(server, table).query("tenant_id == 'big'")

    run_id = generate_daily_forecasts(tenant_id="small")
    assert celery_tasks.wait_for_run(run_id) == "SUCCESS"
    assert server.project.instance.get_run_by_id(run_id).tags["stratum/tenant_id"] == "small"
    after = rows_of_day(server, table)
    small = after.query("tenant_id == 'small'")
    assert len(small) > 0 and (small["model_version"] != "kept").all()

    def by_campaign(frame):
        return frame.sort_values("campaign_id").reset_index(drop=True)

    pd.testing.assert_frame_equal(by_campaign(after.query("tenant_id == 'big'")), by_campaign(big_before))
    scenarios = rows_of_day(server, wh.budget_scenarios)
    assert set(scenarios["tenant_id"]) == {"big", "small"}


def test_the_live_predictions_beat_task_starts_an_unpartitioned_run(graphql_url):
    server = graphql_url
    run_id = run_all_tenant_predictions.delay().id  # the seed's third beat task (every 30 minutes)
    assert celery_tasks.wait_for_run(run_id) == "SUCCESS"
    run = server.project.instance.get_run_by_id(run_id)
    assert run.job_name == "live_predictions_job" and "dagster/partition" not in run.tags
    assert run.tags["stratum/launched_by"] == "celery-compat"


def test_bad_tenants_and_an_unreachable_server_are_clear_errors(graphql_url, monkeypatch):
    with pytest.raises(InvalidTenantId, match="invalid tenant id"):
        generate_daily_forecasts(tenant_id="Robert'); DROP TABLE")
    with pytest.raises(
        UnknownTenant, match="unknown tenant '123'"
    ):  # the seed's integer id, as its decimal string
        generate_daily_forecasts(tenant_id=123)
    with pytest.raises(UnknownTenant, match="unknown tenant 'nobody'.*big, small"):
        generate_daily_forecasts(tenant_id="nobody")
    monkeypatch.setenv(celery_tasks.GRAPHQL_URL_VARIABLE, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(
        DagsterUnavailable,
        match="could not start fatigue_scores_job on the Dagster webserver at http://127.0.0.1",
    ):
        calculate_all_fatigue_scores()
    monkeypatch.setenv(celery_tasks.GRAPHQL_URL_VARIABLE, "dagster:3000")
    with pytest.raises(ValueError, match="STRATUM_DAGSTER_GRAPHQL_URL='dagster:3000' is not an http"):
        generate_daily_forecasts()


def test_a_tenant_scoped_replace_refuses_other_tenants_rows(tmp_path):
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    day = pd.Timestamp("2026-03-01").date()
    frame = pd.concat([forecast_rows("a", ["c1"], day), forecast_rows("b", ["c2"], day)], ignore_index=True)
    assert warehouse.replace_partitions(wh.daily_roas_forecasts, frame, day, day) == 2
    assert (
        warehouse.replace_partitions(
            wh.daily_roas_forecasts, frame[frame.tenant_id == "a"], day, day, tenant_id="a"
        )
        == 1
    )
    assert len(warehouse.read_range(wh.daily_roas_forecasts, day, day)) == 2
    assert list(warehouse.read_range(wh.daily_roas_forecasts, day, day, tenant_id="b")["campaign_id"]) == [
        "c2"
    ]
    with pytest.raises(ValueError, match="1 rows for daily_roas_forecasts belong to other tenants than a"):
        warehouse.replace_partitions(wh.daily_roas_forecasts, frame, day, day, tenant_id="a")
