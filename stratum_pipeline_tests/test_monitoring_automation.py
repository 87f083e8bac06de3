"""The UI's self-description of every asset, failure alerts, weekly retraining cadence and product freshness."""

from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from dagster._core.test_utils import freeze_time

from stratum_pipeline.assets.products import product_assets
from stratum_pipeline.automation.local_runs import check_evaluations
from stratum_pipeline.automation.schedules import weekly_tenant_retraining
from stratum_pipeline.automation.sensors import retraining_sensor, run_failure_alerts
from stratum_pipeline.definitions import build_definitions, product_freshness_checks
from stratum_pipeline.modelops.retraining import WAIT_DAYS
from stratum_pipeline.resources import ModelRegistry, SourceDatabase, Warehouse
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.tenancy import training_bucket

GROUPS = {"ingestion", "features", "models", "model_files", "products", "monitoring"}
MODEL_ASSETS = {
    "roas_model",
    "conversion_model",
    "roas_default_model",
    "conversion_default_model",
    "anomaly_detector_model",
    "anomaly_detector_default_model",
}
MODEL_FILE_ASSETS = {f"{name}_file" for name in MODEL_ASSETS}


@pytest.fixture
def resources(tmp_path):
    return {
        "source": SourceDatabase(url=f"sqlite:///{tmp_path / 'source.db'}"),
        "warehouse": Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}"),
        "registry": ModelRegistry(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"),
    }


def test_every_asset_explains_itself(resources):
    defs = build_definitions(resources)
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    assert {"forecast_accuracy", "feature_drift"} <= set(specs)
    for name, spec in specs.items():
        assert spec.description and len(spec.description) > 60, name
        assert spec.group_name in GROUPS, name
        assert spec.kinds and spec.owners, name
        if name in MODEL_ASSETS | MODEL_FILE_ASSETS:
            # a model's code version is its fitted object's format, shared by its published file
            assert spec.code_version and spec.code_version.startswith("format-"), name
            continue
        assert spec.code_version is None, (
            name
        )  # tables carry no hand-kept version that nobody bumps  # a model (or its published .joblib file) is not a table: its page links the MLflow run instead
        schema = spec.metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == [
            c.name for c in wh.TABLES[spec.metadata["dagster/table_name"]].columns
        ]
    assert {specs[n].group_name for n in ("forecast_accuracy", "feature_drift")} == {"monitoring"}
    check_keys = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"psi_roas_7d", "psi_cart_value", "conversion_calibration"} <= check_keys


def test_a_failed_run_becomes_an_alert_row(resources):
    # No source tables: the raw extract of the day fails.
    defs = build_definitions(resources)
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("daily_ingest_job").execute_in_process(
        instance=instance, partition_key="2026-03-01", raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alerts",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        resources={"warehouse": resources["warehouse"]},
    ).for_run_failure()
    run_failure_alerts(context)
    with resources["warehouse"].engine.connect() as conn:
        alerts = pd.read_sql(sa.select(wh.alerts), conn)
    assert len(alerts) == 1
    alert = alerts.iloc[0]
    assert (alert.kind, alert.run_id, alert.job_name, alert.partition_key) == (
        "run_failure",
        result.run_id,
        "daily_ingest_job",
        "2026-03-01",
    )
    assert "raw_" in alert.summary and "no such table" in alert.summary.lower()


def test_weekly_schedule_runs_only_tenants_switched_to_weekly(resources):
    warehouse = resources["warehouse"]
    when = datetime(2026, 11, 23, 4, tzinfo=timezone.utc)

    def tick():
        # Both contexts are closed here: a schedule context left to the garbage collector would reset Dagster's
        # current defs-state storage to this (then disposed) instance and break later definitions loads.
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("tenants", ["busy", "calm", "busy_too"])
            with dg.build_schedule_context(
                instance=instance, scheduled_execution_time=when, resources={"warehouse": warehouse}
            ) as context:
                result = weekly_tenant_retraining(context)
                return result if isinstance(result, dg.SkipReason) else list(result)

    assert isinstance(tick(), dg.SkipReason)
    warehouse.set_retraining_cadence("busy", "weekly")
    warehouse.set_retraining_cadence("busy_too", "weekly")
    warehouse.set_retraining_cadence("busy_too", "monthly")  # switched back
    warehouse.set_retraining_cadence("gone", "weekly")  # no longer a registered tenant
    assert [(r.run_config["ops"]["train_tenant_batch"]["config"]["tenants"], r.run_key) for r in tick()] == [
        (["busy"], f"weekly-2026-W48-b{training_bucket('busy')}-busy")
    ]
    with pytest.raises(ValueError, match="cadence must be one of"):
        warehouse.set_retraining_cadence("busy", "daily")


def test_product_tables_are_stale_after_26_hours(resources):
    job = dg.define_asset_job("freshness", selection=dg.AssetSelection.checks(*product_freshness_checks))
    defs = dg.Definitions(
        assets=product_assets, asset_checks=product_freshness_checks, jobs=[job], resources=resources
    )
    with dg.instance_for_test() as instance:
        updated = datetime.now(timezone.utc)
        for asset in product_assets:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset.key, partition="2026-03-01"))

        def evaluate(at):
            with freeze_time(at):
                result = defs.resolve_job_def("freshness").execute_in_process(
                    instance=instance, raise_on_error=False
                )
            return {e.asset_key.to_user_string(): e for e in check_evaluations(result)}

        fresh = evaluate(updated + timedelta(hours=25))
        stale = evaluate(updated + timedelta(hours=27))
    assert len(fresh) == len(product_assets) and all(c.passed for c in fresh.values())
    assert len(stale) == len(product_assets) and not any(c.passed for c in stale.values())
    assert {c.severity for c in stale.values()} == {dg.AssetCheckSeverity.ERROR}


def _signal_day(instance, day: date, degraded=None, retrain=None, returning=None):
    """What monitoring_job records for one day: forecast_accuracy's and feature_drift's materialisations."""
    accuracy = {"degraded": dg.MetadataValue.json(degraded or {})}
    if returning is not None:
        accuracy["returning"] = dg.MetadataValue.json(returning)
    for asset, metadata in (
        ("forecast_accuracy", accuracy),
        ("feature_drift", {"retrain": dg.MetadataValue.json(retrain or {})}),
    ):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset, partition=day.isoformat(), metadata=metadata)
        )


def _tick(instance, warehouse, cursor):
    result = retraining_sensor(
        dg.build_sensor_context(instance=instance, cursor=cursor, resources={"warehouse": warehouse})
    )
    return result, result.cursor


def _alerts(warehouse) -> pd.DataFrame:
    with warehouse.engine.connect() as conn:
        return pd.read_sql(sa.select(wh.alerts).where(wh.alerts.c.kind == "retraining"), conn)


@pytest.mark.slow  # 28 monitoring days through the sensor on a real instance (~9 s here)
def test_the_retraining_sensor_merges_signals_per_tenant_and_skips_unknown_tenants(resources):
    """acme's accuracy and drift signals, and beta's drift, wait for WAIT_DAYS (per model); then one request per
    tenant-model retrains the model named from the change date (`recent_from`), ROAS on the degradation window;
    an unregistered tenant is never requested."""
    warehouse, cursor = resources["warehouse"], None
    start = date(2026, 6, 1)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", ["acme", "beta"])
        requested = {}
        for offset in range(WAIT_DAYS["roas_model"]):
            _signal_day(
                instance,
                start + timedelta(days=offset),
                degraded={"acme": "stratum-roas-acme v1: MAE 0.6 > 0.3", "ghost": "MAE 0.9 > 0.3"},
                retrain={"acme": ["conversion"], "beta": ["conversion"]},
            )
            result, cursor = _tick(instance, warehouse, cursor)
            for r in result.run_requests:
                models = tuple(sorted(k.to_user_string() for k in r.asset_selection))
                requested[(r.partition_key, models)] = (offset, r.run_config)
        since = {"recent_from": start.isoformat()}
        conversion = (WAIT_DAYS["conversion_model"] - 1, {"ops": {"conversion_model": {"config": since}}})
        assert requested[("acme", ("conversion_model",))] == conversion
        assert requested[("beta", ("conversion_model",))] == conversion  # the full window, from the change
        roas = {"ops": {"roas_model": {"config": {"training_window_days": 35, **since}}}}
        assert requested[("acme", ("roas_model",))] == (WAIT_DAYS["roas_model"] - 1, roas)
        assert len(requested) == 3 and not any(tenant == "ghost" for tenant, _ in requested)
        assert _tick(instance, warehouse, cursor)[0].run_requests == []  # no new monitoring result
    alerts = _alerts(warehouse)
    # one alert per change of action: waiting (day 0), retrain requested, per tenant-model (and what followed)
    assert set(alerts["partition_key"]) == {"acme", "beta"}
    assert alerts["summary"].str.contains("waiting: a retrain's window holds 1 of the 28").sum() == 1
    assert alerts["summary"].str.contains("waiting: a retrain's window holds 1 of the 7").sum() == 2
    assert alerts["summary"].str.contains(f"retrain requested from {start}").sum() == 3


@pytest.mark.slow  # 53 monitoring days through the sensor on a real instance (~11 s here)
def test_one_retrain_per_episode_and_the_default_model_for_a_default_served_tenant(resources):
    """A degradation named day after day by accuracy and drift is one episode: one request once the wait is
    over, a cooldown until the retrain answers, and after its refusal nothing more in the episode;
    a signal whose error is returning gets "self-correcting, no action". A default-served tenant's signal
    retrains the default model at once, never a model of the tenant's own."""
    warehouse, cursor = resources["warehouse"], None
    start = date(2026, 6, 1)
    shifted = {"acme": "stratum-roas-acme v3: MAE 0.9 > 0.4"}
    cold = {"cold": "stratum-roas-default v2: MAE 0.8 > 0.3"}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", ["acme", "cold", "calm"])
        log = []

        def day(offset, **signals):
            nonlocal cursor
            _signal_day(instance, start + timedelta(days=offset), **signals)
            result, cursor = _tick(instance, warehouse, cursor)
            log.extend(
                (offset, r.job_name, r.partition_key, sorted(k.to_user_string() for k in r.asset_selection))
                for r in result.run_requests
            )

        day(0, degraded={**shifted, **cold})
        assert log == [(0, "train_default_models_job", None, ["roas_default_model"])]
        wait = WAIT_DAYS["roas_model"]
        for offset in range(1, wait):
            day(offset, degraded=shifted, retrain={"acme": ["roas"]} if offset % 3 else {})
        assert log[1:] == [(wait - 1, "train_tenant_models_job", "acme", ["roas_model"])]
        for offset in range(wait, wait + 3):  # no outcome yet: a cooldown
            day(offset, degraded=shifted, retrain={"acme": ["roas"]})
        assert len(log) == 2
        # the retrain answers: refused by the gate (a successful run whose model asset says so)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "roas_model", partition="acme", metadata={"gate": "not promoted: MAE 0.41 worse than 0.30"}
            )
        )
        refused = wait + 3
        for offset in range(refused, refused + 20):  # the episode goes on: nothing more is requested
            day(offset, degraded=shifted, retrain={"acme": ["roas"]})
        assert len(log) == 2
        # a new episode of another tenant whose error is already returning: no request, and the alert says why
        day(100, degraded={"calm": "stratum-roas-calm v1: MAE 0.5 > 0.3"})
        day(101, degraded={"calm": "stratum-roas-calm v1: MAE 0.4 > 0.3"}, returning={"calm": "MAE down"})
        assert [entry for entry in log if entry[2] == "calm"] == []
        assert not any(job == "train_tenant_models_job" and tenant == "cold" for _, job, tenant, _ in log)
    alerts = _alerts(warehouse)
    calm = alerts[alerts["partition_key"] == "calm"]["summary"].tolist()
    assert calm[-1] == "calm/roas_model: self-correcting, no action (MAE down)"
    assert (
        alerts["summary"].str.contains("acme/roas_model: the episode's retrain was refused by the gate").sum()
        == 1
    )
