"""Small helpers shared by the assets: partition windows and materialisation metadata."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg
import pandas as pd

from stratum_pipeline.tenancy import validate_tenant_id

# Run tag that restricts a daily product run to one tenant (other tenants' rows of the day stay).
TENANT_TAG = "stratum/tenant_id"


def partition_days(context) -> tuple[date, date]:
    """First and last UTC day (inclusive) of the partition or partition range being materialised."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()


def tenant_scope(context) -> str | None:
    """The tenant a run is restricted to by its `stratum/tenant_id` tag, or None for every tenant."""
    tenant = context.run.tags.get(TENANT_TAG)
    return validate_tenant_id(tenant) if tenant is not None else None


def naive_utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def preview(frame: pd.DataFrame, rows: int = 5) -> dg.MarkdownMetadataValue:
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False) if len(frame) else "_no rows_")


def window_metadata(first: date, last: date) -> dict:
    return {"first_day": str(first), "last_day": str(last), "days": (last - first).days + 1}
