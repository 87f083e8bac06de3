"""The daily product tables and live predictions, materialised with real models from MLflow."""

import json
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from stratum_pipeline.automation.local_runs import execute_daily_range
from stratum_pipeline.demo.writer import write_source
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.storage.database import engine_for
from stratum_pipeline.storage.sqlio import insert_frame

from .helpers import train
from .model_data import MODEL_CONFIG, model_features

# slow: each test trains models in its fixture (5-8 s a test); the fast tier is -m "not slow"
pytestmark = pytest.mark.slow


def read(warehouse_url, table):
    with engine_for(warehouse_url).connect() as conn:
        return pd.read_sql(sa.select(table), conn)


@pytest.fixture
def trained(stack):  # noqa: F811
    defs, registry, instance = stack
    assert train(defs, instance, "train_default_models_job")[0].success
    assert train(defs, instance, "train_tenant_models_job", "big")[0].success
    warehouse_url = defs.resources["warehouse"].url
    return defs, registry, instance, warehouse_url


def raw_campaign_rows(data) -> pd.DataFrame:
    """The dataset's campaign-days as raw_campaign_daily holds them (the response curves' input)."""
    campaigns = data["campaigns"].rename(columns={"id": "campaign_id"})
    rows = data["campaign_daily_metrics"].merge(
        campaigns[["campaign_id", "tenant_id", "daily_budget", "audience_size", "avg_order_value"]],
        on="campaign_id",
    )
    return rows.rename(columns={"id": "source_id"})[[c.name for c in wh.raw_campaign_daily.columns]]


def test_forecasts_scenarios_and_fatigue_for_the_last_days(trained):
    defs, registry, instance, url = trained
    last = MODEL_CONFIG.end_date
    first = last - timedelta(days=1)
    with engine_for(url).begin() as conn:
        insert_frame(conn, wh.raw_campaign_daily, raw_campaign_rows(model_features()[3]))
    result = execute_daily_range(
        defs, first.isoformat(), last.isoformat(), instance=instance, job_name="daily_forecasts_job"
    )
    assert result.success
    forecasts = read(url, wh.daily_roas_forecasts)
    features = read(url, wh.campaign_features)
    active = features[pd.to_datetime(features["date"]).dt.date >= first]
    assert len(forecasts) == len(active) > 0
    served = forecasts.groupby("tenant_id")["served_by"].first().to_dict()
    assert served == {"big": "big", "small": "default"}
    assert (forecasts["confidence_lower"] <= forecasts["predicted_roas"]).all()
    assert set(forecasts["trend"]) <= {"improving", "stable", "declining"}
    assert (
        (forecasts["model_version"] == registry.champion_version("stratum-roas-big"))
        .where(forecasts.tenant_id == "big", True)
        .all()
    )
    # budget advice from the campaign's response curve where it has one, else the average-ROAS rule, said so
    reasons = forecasts["recommendation_reason"]
    assert reasons.str.startswith(("marginal ROAS", "response curve at the edge", "no response curve")).all()
    assert reasons.str.startswith("marginal ROAS").any()

    scenarios = read(url, wh.budget_scenarios)
    assert set(scenarios["scenario"]) == {"baseline", "-20%", "+20%", "+50%"}
    per_campaign = scenarios.pivot_table(index=["campaign_id", "date"], columns="scenario", values="roas")
    assert (per_campaign["+50%"] < per_campaign["baseline"]).mean() > 0.95  # diminishing returns
    assert (scenarios["revenue_p5"] <= scenarios["revenue"]).all() and (
        scenarios["revenue"] <= scenarios["revenue_p95"]
    ).all()
    assert (
        set(scenarios["curve_source"]) <= {"fitted", "pooled", "fallback"}
        and (scenarios["curve_source"] != "fallback").any()
    )

    curves = read(url, wh.campaign_response_curves)
    assert set(pd.to_datetime(curves["date"]).dt.date) == {first, last}
    assert (
        set(curves["curve_source"]) <= {"fitted", "pooled", "fallback"}
        and (curves["curve_source"] == "fitted").any()
    )
    fitted = curves[
        (curves["curve_source"] != "fallback") & (curves["base_spend"] > 0)
    ]  # ended campaigns: no forecast
    assert len(fitted) and fitted["revenue_30d"].notna().all()
    assert (fitted["revenue_30d_p5"] <= fitted["revenue_30d"]).all() and (
        fitted["revenue_30d"] <= fitted["revenue_30d_p95"]
    ).all()
    allocations = read(url, wh.budget_allocations)
    assert len(allocations) > 0
    for _, day in allocations.groupby(["tenant_id", "date"]):
        assert day["proposed_budget"].sum() == pytest.approx(day["current_budget"].sum(), abs=0.05 * len(day))
        assert (day["proposed_budget"] <= 2 * day["current_budget"] + 0.01).all()
        assert (day["proposed_budget"] >= 0.5 * day["current_budget"] - 0.01).all()

    result = execute_daily_range(
        defs, first.isoformat(), last.isoformat(), instance=instance, job_name="fatigue_scores_job"
    )
    assert result.success
    fatigue = read(url, wh.creative_fatigue_scores)
    assert len(fatigue) > 0 and fatigue["fatigue_score"].between(0, 100).all()
    assert set(fatigue["fatigue_level"]) <= {"low", "medium", "high", "critical"}
    assert all(isinstance(json.loads(a), list) for a in fatigue["suggested_actions"])


def test_event_match_quality_and_live_predictions(trained, tmp_path):
    defs, registry, instance, url = trained
    data = model_features()[3]
    source_url = defs.resources["source"].url
    write_source(engine_for(source_url), data)
    last = MODEL_CONFIG.end_date
    assert execute_daily_range(
        defs, last.isoformat(), last.isoformat(), instance=instance
    ).success  # raw extracts
    assert execute_daily_range(
        defs, last.isoformat(), last.isoformat(), instance=instance, job_name="daily_forecasts_job"
    ).success
    emq = read(url, wh.event_match_quality)
    events = read(url, wh.raw_capi_events)
    assert emq["events"].sum() == len(events) > 0
    assert (
        emq[["events_excellent", "events_good", "events_fair", "events_poor"]].sum(axis=1) == emq["events"]
    ).all()
    assert all(json.loads(r) for r in emq["recommendations"])

    as_of = pd.Timestamp(last) + pd.Timedelta(days=1)
    result = defs.resolve_job_def("live_predictions_job").execute_in_process(
        instance=instance,
        run_config={"ops": {"live_conversion_predictions": {"config": {"as_of": as_of.isoformat()}}}},
    )
    assert result.success
    live = read(url, wh.live_conversion_predictions)
    sessions = data["sessions"]
    window = sessions[
        (sessions["started_at"] >= as_of - pd.Timedelta(minutes=30)) & (sessions["started_at"] < as_of)
    ]
    assert len(live) == window["session_id"].nunique() > 0
    assert live["conversion_probability"].between(0, 1).all()
    assert set(live["model_name"]) <= {"stratum-conversion-big", "stratum-conversion-default"}
    assert len(json.loads(live["top_factors"].iloc[0])) == 3
