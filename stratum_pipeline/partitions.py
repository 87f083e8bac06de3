"""Partitions, defined once and imported everywhere."""

import dagster as dg

DAILY_START_DATE = "2024-01-01"

# One partition per UTC day; the newest is yesterday (a day is extracted once it is over).
daily_partitions = dg.DailyPartitionsDefinition(start_date=DAILY_START_DATE, timezone="UTC")

# One partition per tenant, kept in step with the source `tenants` table.
tenant_partitions = dg.DynamicPartitionsDefinition(name="tenants")
