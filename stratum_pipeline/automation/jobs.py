"""Jobs: selections of assets that share one partitions definition."""

import dagster as dg

from stratum_pipeline.assets.model_batches import train_tenant_batch
from stratum_pipeline.partitions import daily_partitions, tenant_partitions
from stratum_pipeline.tenancy import (
    TENANT_CONCURRENCY_TAG,
    TRAINING_BUCKET_TAG,
    training_batches,
    training_bucket,
)

# Raw extracts and features for a day (or, as one ranged run, a range of days), with their checks.
daily_ingest_job = dg.define_asset_job(
    name="daily_ingest_job",
    selection=dg.AssetSelection.groups("ingestion", "features"),
    partitions_def=daily_partitions,
    description="Extract, validate and featurise one day (or a range of days) of every tenant's source data.",
)


def tenant_run_tags(partition_key: str) -> dict[str, str]:
    """Tags of a run for one tenant partition: `tenant=<id>`."""
    return {TENANT_CONCURRENCY_TAG: partition_key}


def training_run_tags(partition_key: str) -> dict[str, str]:
    """Tags of one tenant's training run: the tenant and its training bucket (one training run per bucket at a
    time in the deployment, so it never runs beside a batch holding the same tenant)."""
    return {**tenant_run_tags(partition_key), TRAINING_BUCKET_TAG: training_bucket(partition_key)}


# Per-tenant model training, one tenant partition per run: the retraining sensor's targeted retrains, backfills
# and launches from the UI. Every run of a partition carries the tenant and bucket tags through the job's config.
train_tenant_models_job = dg.define_asset_job(
    name="train_tenant_models_job",
    selection=dg.AssetSelection.assets("roas_model", "conversion_model"),
    partitions_def=tenant_partitions,
    config=dg.PartitionedConfig(
        partitions_def=tenant_partitions,
        run_config_for_partition_key_fn=lambda _key: {},
        tags_for_partition_key_fn=training_run_tags,
    ),
    description="Train, register and gate a tenant's ROAS and conversion models.",
)


@dg.job(
    description="Train, register and gate the ROAS and conversion models of a batch of tenants in one run "
    "(start-up paid once); each tenant's partitions of roas_model and conversion_model are materialised on their "
    "own, and one tenant's failure does not stop the others.",
    tags={"stratum/kind": "tenant-training-batch"},
)
def train_tenant_batch_job():
    train_tenant_batch()


def training_batch_requests(tenants, run_key_prefix: str) -> list[dg.RunRequest]:
    """The batch runs that train `tenants` (tenancy.training_batches), each tagged with its training bucket; run
    keys are `<prefix>-b<bucket>-<first tenant>`, stable for the same tenants."""
    return [
        dg.RunRequest(
            job_name=train_tenant_batch_job.name,
            run_key=f"{run_key_prefix}-b{bucket}-{batch[0]}",
            run_config={"ops": {train_tenant_batch.name: {"config": {"tenants": list(batch)}}}},
            tags={TRAINING_BUCKET_TAG: bucket, "stratum/tenants": f"{len(batch)}: {batch[0]}..{batch[-1]}"},
        )
        for bucket, batch in training_batches(tenants)
    ]


# The global default models that serve tenants under the data minimum.
train_default_models_job = dg.define_asset_job(
    name="train_default_models_job",
    selection=dg.AssetSelection.assets("roas_default_model", "conversion_default_model"),
    description="Train, register and gate the global default ROAS and conversion models.",
)

# Publishing champions as the existing backend's .joblib files in ML_MODELS_PATH (a no-op when current).
publish_tenant_model_files_job = dg.define_asset_job(
    name="publish_tenant_model_files_job",
    selection=dg.AssetSelection.assets("roas_model_file", "conversion_model_file"),
    description="Publish a tenant's ROAS and conversion champions as `roas_t<tenant>.joblib` / `conversion_t<tenant>.joblib`.",
)

publish_default_model_files_job = dg.define_asset_job(
    name="publish_default_model_files_job",
    selection=dg.AssetSelection.assets("roas_default_model_file", "conversion_default_model_file"),
    description="Publish the default champions as roas_default.joblib / conversion_default.joblib.",
)


# The daily product tables read at 06:00 UTC: forecasts, response curves, budget scenarios and allocations,
# event-match quality.
daily_forecasts_job = dg.define_asset_job(
    name="daily_forecasts_job",
    selection=dg.AssetSelection.assets(
        "daily_roas_forecasts",
        "campaign_response_curves",
        "budget_scenarios",
        "budget_allocations",
        "event_match_quality",
    ),
    partitions_def=daily_partitions,
    description="Forecast every active campaign, fit its response curve, simulate its budget scenarios, re-split "
    "each tenant's budget and score event-match quality for a day.",
)

# Campaign anomalies at 02:30 for yesterday: critical ones reach the alerts table the same morning.
anomalies_job = dg.define_asset_job(
    name="anomalies_job",
    selection=dg.AssetSelection.assets("campaign_anomalies"),
    partitions_def=daily_partitions,
    description="Judge every campaign-day against the campaign's own expected level; alert on outages and spend spikes.",
)

# The anomaly detectors: fitted, registered and gated per tenant (weekly), and published to ML_MODELS_PATH.
train_anomaly_detectors_job = dg.define_asset_job(
    name="train_anomaly_detectors_job",
    selection=dg.AssetSelection.assets("anomaly_detector_model", "anomaly_detector_model_file"),
    partitions_def=tenant_partitions,
    config=dg.PartitionedConfig(
        partitions_def=tenant_partitions,
        run_config_for_partition_key_fn=lambda _key: {},
        tags_for_partition_key_fn=tenant_run_tags,
    ),
    description="Fit, register, gate and publish a tenant's campaign anomaly detector (`anomaly_detector_t<tenant>.joblib`).",
)
train_default_anomaly_detector_job = dg.define_asset_job(
    name="train_default_anomaly_detector_job",
    selection=dg.AssetSelection.assets(
        "anomaly_detector_default_model", "anomaly_detector_default_model_file"
    ),
    description="Fit, register, gate and publish the default anomaly detector (anomaly_detector_default.joblib).",
)

fatigue_scores_job = dg.define_asset_job(
    name="fatigue_scores_job",
    selection=dg.AssetSelection.assets("creative_fatigue_scores"),
    partitions_def=daily_partitions,
    description="Score the fatigue of every creative live on a day.",
)

live_predictions_job = dg.define_asset_job(
    name="live_predictions_job",
    selection=dg.AssetSelection.assets("live_conversion_predictions"),
    description="Score the sessions of the last 30 minutes.",
)

# Forecast accuracy (actuals landed for the day) and feature drift, after the day's features exist.
monitoring_job = dg.define_asset_job(
    name="monitoring_job",
    selection=dg.AssetSelection.groups("monitoring"),
    partitions_def=daily_partitions,
    description="Evaluate the last week's forecasts against actuals and the features' drift from the champions' training data.",
)


# The model leaderboard on demand (the automation sensor refreshes it after trainings; the demo runs this job).
model_leaderboard_job = dg.define_asset_job(
    name="model_leaderboard_job",
    selection=dg.AssetSelection.assets("model_leaderboard"),
    description="Rebuild model_leaderboard: every tenant's serving champions, their holdout metrics and targets.",
)
