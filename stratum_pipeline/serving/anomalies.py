"""A tenant's recent campaign anomalies from the warehouse `campaign_anomalies` table (no Dagster here).

`InferenceService.anomalies(tenant, campaign_id=None, days=7)` and `stratum anomalies` answer with the
anomalies of the `days` days up to the latest day judged for the tenant (`as_of`), newest first.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import sqlalchemy as sa

from stratum_pipeline.storage import warehouse_schema as wh

FIELDS = ("campaign_id", "date", "kind", "severity", "metric", "expected", "observed", "probability")
MAX_DAYS = 365


class AnomalyQueryError(ValueError):
    """Bad arguments (days, an unknown campaign): a one-line message for the caller."""


def _days(days) -> int:
    if (
        isinstance(days, bool)
        or not isinstance(days, (int, float))
        or days != int(days)
        or not 1 <= days <= MAX_DAYS
    ):
        raise AnomalyQueryError(f"days must be a whole number from 1 to {MAX_DAYS}, got {days!r}")
    return int(days)


def recent_anomalies(engine: sa.Engine, tenant: str, campaign_id: str | None = None, days: int = 7) -> dict:
    """{tenant_id, campaign_id, days, as_of, counts: {kind: n}, anomalies: [{FIELDS}]}; AnomalyQueryError for a
    campaign the tenant does not have."""
    days = _days(days)
    t = wh.campaign_anomalies
    with engine.connect() as conn:
        if campaign_id is not None:
            raw = wh.raw_campaign_daily
            known = conn.execute(
                sa.select(raw.c.campaign_id)
                .where(raw.c.tenant_id == tenant, raw.c.campaign_id == str(campaign_id))
                .limit(1)
            ).first()
            if known is None:
                raise AnomalyQueryError(f"unknown campaign {campaign_id!r} for tenant {tenant!r}")
        judged = wh.raw_campaign_daily
        as_of = conn.execute(
            sa.select(sa.func.max(judged.c.date)).where(judged.c.tenant_id == tenant)
        ).scalar()
        rows = pd.DataFrame()
        if as_of is not None:
            as_of = pd.Timestamp(as_of).date()
            statement = sa.select(*(t.c[f] for f in FIELDS)).where(
                t.c.tenant_id == tenant, t.c.date > as_of - timedelta(days=days), t.c.date <= as_of
            )
            if campaign_id is not None:
                statement = statement.where(t.c.campaign_id == str(campaign_id))
            rows = pd.DataFrame(
                conn.execute(statement.order_by(t.c.date.desc(), t.c.campaign_id)).mappings().all()
            )
    anomalies = (
        []
        if rows.empty
        else [
            {
                **r,
                "date": str(pd.Timestamp(r["date"]).date()),
                **{
                    k: (None if pd.isna(r[k]) else float(r[k]))
                    for k in ("expected", "observed", "probability")
                },
            }
            for r in rows.to_dict("records")
        ]
    )
    counts: dict[str, int] = {}
    for a in anomalies:
        counts[a["kind"]] = counts.get(a["kind"], 0) + 1
    return {
        "tenant_id": tenant,
        "campaign_id": campaign_id,
        "days": days,
        "as_of": None if as_of is None else str(as_of),
        "counts": counts,
        "anomalies": anomalies,
    }
