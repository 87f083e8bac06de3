"""Jobs: selections of assets that share one partitions definition."""

import dagster as dg

from stratum_pipeline.partitions import daily_partitions

# Raw extracts and features for a day (or, as a single run, a range of days), with their checks.
daily_ingest_job = dg.define_asset_job(
    name="daily_ingest_job",
    selection=dg.AssetSelection.groups("ingestion", "features"),
    partitions_def=daily_partitions,
    description="Extract, validate and featurise one day (or a range of days) of every tenant's source data.",
)


def execute_daily_range(
    defs: dg.Definitions,
    first_day: str,
    last_day: str,
    instance: dg.DagsterInstance | None = None,
    run_id: str | None = None,
    job_name: str = "daily_ingest_job",
) -> dg.ExecuteInProcessResult:
    """Run a daily job in process for the partitions first_day..last_day (inclusive) as one run.

    The assets have a single-run backfill policy, so a range is one windowed read per asset.
    Failures (including failed blocking checks) are in the result, not raised.
    """
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    return defs.resolve_job_def(job_name).execute_in_process(
        instance=instance,
        run_id=run_id,
        tags={ASSET_PARTITION_RANGE_START_TAG: first_day, ASSET_PARTITION_RANGE_END_TAG: last_day},
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        raise_on_error=False,
    )


# Per-tenant model training: one run per tenant partition.
train_tenant_models_job = dg.define_asset_job(
    name="train_tenant_models_job",
    selection=dg.AssetSelection.assets("roas_model", "conversion_model"),
    description="Train, register and gate a tenant's ROAS and conversion models.",
)

# The global default models that serve tenants under the data minimum.
train_default_models_job = dg.define_asset_job(
    name="train_default_models_job",
    selection=dg.AssetSelection.assets("roas_default_model", "conversion_default_model"),
    description="Train, register and gate the global default ROAS and conversion models.",
)


# The daily product tables read at 06:00 UTC: forecasts, budget scenarios, event-match quality.
daily_forecasts_job = dg.define_asset_job(
    name="daily_forecasts_job",
    selection=dg.AssetSelection.assets("daily_roas_forecasts", "budget_scenarios", "event_match_quality"),
    partitions_def=daily_partitions,
    description="Forecast every active campaign, simulate its budget scenarios and score event-match quality for a day.",
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
