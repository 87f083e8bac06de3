"""Monitoring end to end: one tenant's response curve shifts; accuracy degrades for it only, drift fires on the
shifted features only, the sensor names exactly that tenant's ROAS model and waits for post-change days (saying
until when), and the gate promotes the retrain it will request. Real warehouse (SQLite), MLflow store and Dagster instance."""

from datetime import date, timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from stratum_pipeline.assets.products import daily_roas_forecasts
from stratum_pipeline.automation.local_runs import check_evaluations, execute_daily_range
from stratum_pipeline.automation.sensors import _retrain_request, retraining_sensor
from stratum_pipeline.definitions import build_definitions
from stratum_pipeline.demo.features import feature_frames
from stratum_pipeline.demo.generator import DemoConfig, ResponseShift, TenantSpec, generate
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.modelops.retraining import WAIT_DAYS
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline_tests.helpers import monitoring_resources, write_features

pytestmark = pytest.mark.slow  # a month of daily runs, training and retraining

END = date(2026, 6, 30)
SHIFT_START = END - timedelta(days=24)
TENANTS = (
    TenantSpec("shifted", "Shifted Shop", campaigns=32, history_days=72, sessions_per_day=10),
    TenantSpec("steady", "Steady Store", campaigns=32, history_days=72, sessions_per_day=10),
)
# From SHIFT_START, "shifted" converts at half the rate, with a strong new weekly swing.
CONFIG = DemoConfig(
    end_date=END,
    seed=3,
    tenants=TENANTS,
    bad_row_rate=0.0,
    response_shift=ResponseShift("shifted", SHIFT_START, scale=0.5, weekly_amplitude=0.5),
)
# Small tenants: scaled-down minimums; conversion models are not trained here (too few sessions).
TRAINING = {"min_campaigns": 20, "min_campaign_days": 30, "min_sessions": 10**9, "holdout_days": 7}


def _train(defs, instance, tenant, **config):
    result = defs.resolve_job_def("train_tenant_models_job").execute_in_process(
        instance=instance,
        partition_key=tenant,
        raise_on_error=False,
        asset_selection=[dg.AssetKey("roas_model")],
        run_config={"ops": {"roas_model": {"config": {**TRAINING, **config}}}},
    )
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


def _checks(result):
    return {e.check_name: e for e in check_evaluations(result)}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("monitoring")
    resources = monitoring_resources(tmp)
    warehouse, registry = resources["warehouse"], resources["registry"]
    defs = build_definitions(resources)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenants", ["shifted", "steady"])
    frames = feature_frames(generate(CONFIG))

    # Champions trained before the shift.
    write_features(warehouse, frames, SHIFT_START - timedelta(days=1))
    champions = {t: _train(defs, instance, t) for t in ("shifted", "steady")}
    assert all(m["gate"].startswith("promote") for m in champions.values()), champions

    # The rest of the data lands; a forecast for each of the last days, then monitoring for the last day.
    write_features(warehouse, frames, END)
    first, last = END - timedelta(days=8), END - timedelta(days=1)
    forecasts = dg.materialize(
        [daily_roas_forecasts],
        resources=resources,
        instance=instance,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
        },
    )
    assert forecasts.success
    # Monitoring day by day over the last five days: a drift alarm needs 3 of the last 5 days above the noise.
    for offset in range(4, -1, -1):
        day = (END - timedelta(days=offset)).isoformat()
        monitoring = execute_daily_range(defs, day, day, instance=instance, job_name="monitoring_job")
        assert monitoring.success
    return defs, instance, warehouse, registry, champions, monitoring


def _read(warehouse, table):
    with warehouse.engine.connect() as conn:
        return pd.read_sql(sa.select(table), conn)


def test_accuracy_shows_the_degradation_for_the_shifted_tenant_only(scenario):
    defs, instance, warehouse, registry, champions, monitoring = scenario
    accuracy = _read(warehouse, wh.forecast_accuracy)
    assert set(accuracy["tenant_id"]) == {"shifted", "steady"}
    assert pd.to_datetime(accuracy["date"]).dt.date.max() == END and accuracy["campaigns"].min() > 0
    mae = accuracy.groupby("tenant_id")["mae"].mean()
    coverage = accuracy.groupby("tenant_id")["coverage_80"].mean()
    assert mae["shifted"] > 2 * mae["steady"], mae
    assert coverage["shifted"] < coverage["steady"], coverage
    metadata = {
        e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
        for e in monitoring.get_asset_materialization_events()
    }
    assert set(metadata["forecast_accuracy"]["degraded"].value) == {"shifted"}

    # The same figures are logged to the champion's MLflow monitoring run, one point per day.
    client = registry.client()
    name, version = model_name("roas", "shifted"), champions["shifted"]["version"]
    (run,) = client.search_runs(
        [registry.experiment_id()],
        filter_string=(
            f"tags.monitoring = 'accuracy' and tags.model_name = '{name}' and tags.model_version = '{version}'"
        ),
    )
    history = client.get_metric_history(run.info.run_id, "live_mae")
    assert len({m.step for m in history}) == len(accuracy[accuracy.tenant_id == "shifted"])

    # Idempotent: re-evaluating the same day leaves the same rows.
    assert execute_daily_range(
        defs, END.isoformat(), END.isoformat(), instance=instance, job_name="monitoring_job"
    ).success
    again = _read(warehouse, wh.forecast_accuracy)
    assert len(again) == len(accuracy)
    pd.testing.assert_series_equal(
        again.sort_values(["tenant_id", "date"])["mae"].reset_index(drop=True),
        accuracy.sort_values(["tenant_id", "date"])["mae"].reset_index(drop=True),
    )


def test_drift_fires_on_the_shifted_feature_and_stays_quiet_on_an_unshifted_one(scenario):
    _, _, warehouse, _, _, monitoring = scenario
    checks = _checks(monitoring)
    roas = checks["psi_roas_7d"]
    assert roas.passed is False and roas.severity == dg.AssetCheckSeverity.ERROR
    assert roas.metadata["worst_tenant"].value == "shifted"
    # Who a campaign reaches does not depend on the response curve.
    assert checks["psi_audience_size"].passed is True and checks["psi_platform"].passed is True
    drift = _read(warehouse, wh.feature_drift)
    drift = drift[pd.to_datetime(drift["date"]).dt.date == END].set_index(["tenant_id", "feature"])
    # Champions trained on 41 days have too few weeks before their reference for a noise level (fewer than
    # MIN_NOISE_WINDOWS windows): the fixed PSI thresholds apply.
    assert drift["noise_psi"].isna().all()
    assert (
        drift.loc[("shifted", "roas_7d"), "psi"] > 0.25
        and drift.loc[("shifted", "conversion_rate"), "psi"] > 0.25
    )
    assert (
        drift.loc[("steady", "roas_7d"), "psi"] < 0.25
        and drift.loc[("steady", "conversion_rate"), "psi"] < 0.1
    )
    assert drift.loc[("shifted", "audience_size"), "psi"] < 0.1
    metadata = {
        e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
        for e in monitoring.get_asset_materialization_events()
    }
    assert metadata["feature_drift"]["retrain"].value == {"shifted": ["roas"]}


def test_the_sensor_waits_for_post_change_days_and_the_retrain_it_will_request_is_promoted(scenario):
    defs, instance, warehouse, registry, champions, _ = scenario
    sensor = retraining_sensor
    context = dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse})
    result = sensor(context)
    # The first degraded day: the retrain's window cannot hold enough post-change days yet, so it waits and says
    # until when; the untouched tenant is not named.
    assert result.run_requests == []
    with warehouse.engine.connect() as conn:
        alerts = pd.read_sql(sa.select(wh.alerts).where(wh.alerts.c.kind == "retraining"), conn)
    ready = END + timedelta(days=WAIT_DAYS["roas_model"] - 1)
    assert list(alerts["partition_key"]) == ["shifted"]
    assert (
        f"waiting: a retrain's window holds 1 of the 28 post-change days roas_model needs, retrain from {ready}"
        in (alerts["summary"].iloc[0])
    )
    # Same signals on the next tick: nothing new is requested, no new alert.
    again = sensor(
        dg.build_sensor_context(instance=instance, cursor=result.cursor, resources={"warehouse": warehouse})
    )
    assert again.run_requests == []

    # The run the sensor requests once the wait is over (on the recent weeks) replaces the degraded champion
    # through the gate.
    request = _retrain_request("shifted", {"roas_model": None}, ready.isoformat())
    assert request.partition_key == "shifted" and request.asset_selection == [dg.AssetKey("roas_model")]
    name = model_name("roas", "shifted")
    retrained = _train(
        defs, instance, request.partition_key, **request.run_config["ops"]["roas_model"]["config"]
    )
    assert retrained["gate"].startswith("promote"), retrained["gate"]
    assert retrained["holdout_mae"] < retrained["champion_mae"]
    assert registry.champion_version(name) == retrained["version"] != champions["shifted"]["version"]
    assert registry.champion_version(model_name("roas", "steady")) == champions["steady"]["version"]
