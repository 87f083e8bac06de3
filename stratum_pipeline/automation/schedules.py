"""Schedules (UTC), standing in for the seed's Celery beat."""

import dagster as dg

from stratum_pipeline.automation.jobs import (
    anomalies_job,
    daily_forecasts_job,
    daily_ingest_job,
    fatigue_scores_job,
    live_predictions_job,
    monitoring_job,
    train_anomaly_detectors_job,
    train_default_anomaly_detector_job,
    train_default_models_job,
    train_tenant_batch_job,
    training_batch_requests,
)
from stratum_pipeline.partitions import tenant_partitions
from stratum_pipeline.resources import Warehouse

# Yesterday's data, extracted at 01:00 so features are ready before the 03:00 and 06:00 product runs.
# Every schedule starts RUNNING: `dagster-daemon` on the project's instance launches them without a click.
RUNNING = dg.DefaultScheduleStatus.RUNNING

daily_ingest_schedule = dg.build_schedule_from_partitioned_job(
    daily_ingest_job, hour_of_day=1, minute_of_hour=0, default_status=RUNNING
)

# Fatigue scores at 03:00, forecasts (with budget scenarios and event-match quality) at 06:00, for yesterday.
fatigue_scores_schedule = dg.build_schedule_from_partitioned_job(
    fatigue_scores_job, hour_of_day=3, minute_of_hour=0, default_status=RUNNING
)
daily_forecasts_schedule = dg.build_schedule_from_partitioned_job(
    daily_forecasts_job, hour_of_day=6, minute_of_hour=0, default_status=RUNNING
)

# Monitoring at 02:00 for yesterday: yesterday's features hold the actuals of the forecasts made the day before.
monitoring_schedule = dg.build_schedule_from_partitioned_job(
    monitoring_job, hour_of_day=2, minute_of_hour=0, default_status=RUNNING
)

# Campaign anomalies at 02:30 for yesterday, after the 01:00 extract.
anomalies_schedule = dg.build_schedule_from_partitioned_job(
    anomalies_job, hour_of_day=2, minute_of_hour=30, default_status=RUNNING
)

live_predictions_schedule = dg.ScheduleDefinition(
    name="live_predictions_schedule",
    job=live_predictions_job,
    cron_schedule="*/30 * * * *",
    execution_timezone="UTC",
    default_status=RUNNING,
    description="Every 30 minutes: score the sessions of the last window.",
)


@dg.schedule(
    job=train_tenant_batch_job, cron_schedule="0 4 1 * *", execution_timezone="UTC", default_status=RUNNING
)
def monthly_tenant_retraining(context: dg.ScheduleEvaluationContext):
    """04:00 UTC on the 1st: retrain every tenant's models (the promotion gate decides what serves), in batch runs
    of up to 50 tenants per training bucket (start-up paid once per run; each tenant's partitions materialised)."""
    month = context.scheduled_execution_time.strftime("%Y-%m")
    tenants = context.instance.get_dynamic_partitions(tenant_partitions.name)
    if not tenants:
        return dg.SkipReason("no tenants registered yet")
    return training_batch_requests(tenants, f"monthly-{month}")


@dg.schedule(
    job=train_tenant_batch_job, cron_schedule="0 4 * * 1", execution_timezone="UTC", default_status=RUNNING
)
def weekly_tenant_retraining(context: dg.ScheduleEvaluationContext, warehouse: Warehouse):
    """04:00 UTC on Mondays: retrain the models of tenants switched to weekly retraining (busy periods) in the
    warehouse `tenant_settings` table (`stratum cadence <tenant> weekly`), in batch runs; every other tenant stays
    monthly."""
    week = context.scheduled_execution_time.strftime("%G-W%V")
    registered = set(context.instance.get_dynamic_partitions(tenant_partitions.name))
    tenants = [t for t in warehouse.tenants_with_cadence("weekly") if t in registered]
    if not tenants:
        return dg.SkipReason("no tenant is on weekly retraining")
    return training_batch_requests(tenants, f"weekly-{week}")


monthly_default_retraining = dg.ScheduleDefinition(
    name="monthly_default_retraining",
    job=train_default_models_job,
    cron_schedule="0 3 1 * *",
    execution_timezone="UTC",
    default_status=RUNNING,
    description="03:00 UTC on the 1st: retrain the global default models (before the tenants' at 04:00).",
)


@dg.schedule(
    job=train_anomaly_detectors_job,
    cron_schedule="30 3 * * 0",
    execution_timezone="UTC",
    default_status=RUNNING,
)
def weekly_anomaly_detectors(context: dg.ScheduleEvaluationContext):
    """03:30 UTC on Sundays: refit, gate and publish every tenant's anomaly detector on its last 90 days."""
    week = context.scheduled_execution_time.strftime("%G-W%V")
    tenants = context.instance.get_dynamic_partitions(tenant_partitions.name)
    if not tenants:
        return dg.SkipReason("no tenants registered yet")
    return [dg.RunRequest(partition_key=t, run_key=f"anomaly-{week}-{t}") for t in tenants]


weekly_default_anomaly_detector = dg.ScheduleDefinition(
    name="weekly_default_anomaly_detector",
    job=train_default_anomaly_detector_job,
    cron_schedule="0 3 * * 0",
    execution_timezone="UTC",
    default_status=RUNNING,
    description="03:00 UTC on Sundays: refit, gate and publish the default anomaly detector.",
)

all_schedules = [
    daily_ingest_schedule,
    fatigue_scores_schedule,
    daily_forecasts_schedule,
    monitoring_schedule,
    anomalies_schedule,
    live_predictions_schedule,
    monthly_tenant_retraining,
    monthly_default_retraining,
    weekly_tenant_retraining,
    weekly_anomaly_detectors,
    weekly_default_anomaly_detector,
]
