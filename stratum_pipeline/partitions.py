"""Partitions and the daily backfill policy, defined once and imported everywhere."""

from datetime import date, timedelta

import dagster as dg

from stratum_pipeline.settings import partitions_start

# STRATUM_PARTITIONS_START (default 2024-01-01): the demo sets its first day, so the catalog shows no day as
# missing that has no data. A bad value is a one-line SettingsError when the definitions load.
DAILY_START_DATE = partitions_start()

# One partition per UTC day from DAILY_START_DATE; the newest is yesterday (a day is extracted once it is over).
daily_partitions = dg.DailyPartitionsDefinition(start_date=DAILY_START_DATE, timezone="UTC")

# One partition per tenant, kept in step with the source `tenants` table.
tenant_partitions = dg.DynamicPartitionsDefinition(name="tenants")

# A backfill of the daily assets runs at most a month of days per run: each asset reads its range with one
# windowed query, so a run's memory grows with the days it holds. A year of 100 tenants peaked at 4.72 GiB
# in one run and at 1.63 GiB in month runs (docs/scale.md). Never one run per day.
MAX_DAYS_PER_RUN = 31
daily_backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN)


def backfill_ranges(first: date, last: date, max_days: int = MAX_DAYS_PER_RUN) -> list[tuple[date, date]]:
    """[first, last] cut into consecutive ranges of at most `max_days` days, the cap of `daily_backfill_policy`:
    the ranged runs in which the demo and the scale benchmark run a long range. (Dagster's backfill daemon
    keeps the same cap but plans per asset: assets with lookback windows run after their parents' runs.)"""
    if last < first:
        raise ValueError(f"backfill range ends ({last}) before it starts ({first})")
    if max_days < 1:
        raise ValueError(f"max_days must be at least 1, not {max_days}")
    ranges, start = [], first
    while start <= last:
        end = min(start + timedelta(days=max_days - 1), last)
        ranges.append((start, end))
        start = end + timedelta(days=1)
    return ranges


def partition_days(context) -> tuple[date, date]:
    """First and last UTC day (inclusive) of the partition or partition range being materialised."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()
