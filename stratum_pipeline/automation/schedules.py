"""Schedules (UTC)."""

import dagster as dg

from stratum_pipeline.automation.jobs import daily_ingest_job

# Yesterday's data, extracted at 01:00 UTC so features are ready before the 03:00 and 06:00 product runs.
daily_ingest_schedule = dg.build_schedule_from_partitioned_job(daily_ingest_job, hour_of_day=1, minute_of_hour=0)
