"""The code location: every asset, check, job, schedule, sensor and resource of Stratum Pipeline."""

import warnings

import dagster as dg

# The project uses a few of this Dagster version's beta and preview parameters on purpose (backfill policies,
# partitioned checks, partition mappings over missing upstream days): their notices would fill every process's
# log that loads the code location (`stratum ui`, the daemon), so they are not repeated here.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from stratum_pipeline.assets.anomalies import anomaly_assets
from stratum_pipeline.assets.features import feature_assets
from stratum_pipeline.assets.model_files import default_model_file_assets, tenant_model_file_assets
from stratum_pipeline.assets.models import default_model_assets, leaderboard_assets, tenant_model_assets
from stratum_pipeline.assets.monitoring import monitoring_assets
from stratum_pipeline.assets.products import live_assets, product_assets
from stratum_pipeline.assets.raw import raw_assets
from stratum_pipeline.automation.jobs import (
    anomalies_job,
    daily_forecasts_job,
    daily_ingest_job,
    fatigue_scores_job,
    live_predictions_job,
    model_leaderboard_job,
    monitoring_job,
    publish_default_model_files_job,
    publish_tenant_model_files_job,
    train_anomaly_detectors_job,
    train_default_anomaly_detector_job,
    train_default_models_job,
    train_tenant_batch_job,
    train_tenant_models_job,
)
from stratum_pipeline.automation.schedules import all_schedules
from stratum_pipeline.automation.sensors import (
    model_automation,
    retraining_sensor,
    run_failure_alerts,
    tenant_sync_sensor,
)
from stratum_pipeline.checks.data_quality import feature_contract_checks, raw_contract_checks
from stratum_pipeline.checks.freshness import build_product_freshness
from stratum_pipeline.resources import ModelFiles, ModelRegistry, SourceDatabase, Warehouse
from stratum_pipeline.settings import Env

product_freshness_checks, freshness_checks_sensor = build_product_freshness(product_assets)


def resources_from_env() -> dict:
    """Resources configured from the environment at run time (see README: Configuration)."""
    return {
        "source": SourceDatabase(url=dg.EnvVar(Env.SOURCE_URL)),
        "warehouse": Warehouse(url=dg.EnvVar(Env.WAREHOUSE_URL)),
        "registry": ModelRegistry(tracking_uri=dg.EnvVar(Env.MLFLOW_TRACKING_URI)),
        "model_files": ModelFiles(path=dg.EnvVar(Env.MODELS_PATH)),
    }


def build_definitions(resources: dict) -> dg.Definitions:
    """The project's definitions with the given resources (tests pass concrete URLs).

    `model_files` defaults to ML_MODELS_PATH, read only when a model-file asset runs.
    """
    resources = {"model_files": ModelFiles(path=dg.EnvVar(Env.MODELS_PATH)), **resources}
    return dg.Definitions(
        assets=[
            *raw_assets,
            *feature_assets,
            *tenant_model_assets,
            *default_model_assets,
            *leaderboard_assets,
            *tenant_model_file_assets,
            *default_model_file_assets,
            *product_assets,
            *anomaly_assets,
            *live_assets,
            *monitoring_assets,
        ],
        asset_checks=[*raw_contract_checks, *feature_contract_checks, *product_freshness_checks],
        jobs=[
            daily_ingest_job,
            train_tenant_models_job,
            train_tenant_batch_job,
            train_default_models_job,
            daily_forecasts_job,
            fatigue_scores_job,
            live_predictions_job,
            publish_tenant_model_files_job,
            publish_default_model_files_job,
            monitoring_job,
            anomalies_job,
            train_anomaly_detectors_job,
            train_default_anomaly_detector_job,
            model_leaderboard_job,
        ],
        schedules=all_schedules,
        sensors=[
            tenant_sync_sensor,
            retraining_sensor,
            run_failure_alerts,
            freshness_checks_sensor,
            model_automation,
        ],
        resources=resources,
    )


defs = build_definitions(resources_from_env())
