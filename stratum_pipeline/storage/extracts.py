"""What each raw extract reads from the source (bound-parameter SQL) and the rules its rows must meet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from stratum_pipeline.storage import source_schema as src
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.storage.validation import RowRules


@dataclass(frozen=True)
class Extract:
    name: str
    description: str
    table: sa.Table
    quarantine: sa.Table
    rules: RowRules
    query: "callable"  # (start, end) -> Select over [start, end)


def _campaign_daily(start: datetime, end: datetime) -> sa.Select:
    m, c = src.campaign_daily_metrics, src.campaigns
    return (
        sa.select(
            m.c.id.label("source_id"),
            c.c.tenant_id,
            m.c.campaign_id,
            m.c.platform,
            m.c.date,
            m.c.spend,
            m.c.impressions,
            m.c.clicks,
            m.c.conversions,
            m.c.revenue,
            c.c.daily_budget,
            c.c.audience_size,
            c.c.avg_order_value,
            m.c.recorded_at,
        )
        .select_from(m.outerjoin(c, c.c.id == m.c.campaign_id))
        .where(m.c.date >= start.date(), m.c.date < end.date())
    )


def _creative_daily(start: datetime, end: datetime) -> sa.Select:
    m, cr, c = src.creative_daily_metrics, src.creatives, src.campaigns
    return (
        sa.select(
            m.c.id.label("source_id"),
            cr.c.tenant_id,
            cr.c.campaign_id,
            m.c.creative_id,
            cr.c.launch_date,
            c.c.audience_size,
            m.c.date,
            m.c.impressions,
            m.c.reach,
            m.c.frequency,
            m.c.clicks,
            m.c.engagements,
            m.c.recorded_at,
        )
        .select_from(m.outerjoin(cr, cr.c.id == m.c.creative_id).outerjoin(c, c.c.id == cr.c.campaign_id))
        .where(m.c.date >= start.date(), m.c.date < end.date())
    )


def _sessions(start: datetime, end: datetime) -> sa.Select:
    s, t = src.sessions, src.tenants
    return (
        sa.select(
            s.c.id.label("source_id"),
            s.c.session_id,
            t.c.id.label("tenant_id"),
            s.c.visitor_id,
            s.c.started_at,
            s.c.session_duration,
            s.c.pages_viewed,
            s.c.cart_value,
            s.c.items_in_cart,
            s.c.time_since_last_visit,
            s.c.previous_purchases,
            s.c.device_type,
            s.c.traffic_source,
            s.c.user_segment,
            s.c.converted,
            s.c.recorded_at,
        )
        .select_from(s.outerjoin(t, t.c.id == s.c.tenant_id))
        .where(s.c.started_at >= start, s.c.started_at < end)
    )


def _capi_events(start: datetime, end: datetime) -> sa.Select:
    e, t = src.capi_events, src.tenants
    return (
        sa.select(
            e.c.id.label("source_id"),
            e.c.event_id,
            t.c.id.label("tenant_id"),
            e.c.platform,
            e.c.event_name,
            e.c.event_time,
            e.c.value,
            e.c.currency,
            e.c.email,
            e.c.phone,
            e.c.fbc,
            e.c.fbp,
            e.c.gclid,
            e.c.ttclid,
            e.c.client_ip_address,
            e.c.client_user_agent,
            e.c.external_id,
            e.c.recorded_at,
        )
        .select_from(e.outerjoin(t, t.c.id == e.c.tenant_id))
        .where(e.c.event_time >= start, e.c.event_time < end)
    )


EXTRACTS = {
    x.name: x
    for x in (
        Extract(
            "raw_campaign_daily",
            "One row per campaign and day as the ad platforms reported it: spend, impressions, clicks, "
            "conversions and revenue, with the campaign's budget, audience and order value. The basis of "
            "every ROAS forecast and budget scenario. Rejected rows are in raw_campaign_daily_quarantine.",
            wh.raw_campaign_daily,
            wh.raw_campaign_daily_quarantine,
            RowRules(
                key=("campaign_id", "date"),
                partition_column="date",
                required=(
                    "tenant_id",
                    "campaign_id",
                    "platform",
                    "date",
                    "spend",
                    "impressions",
                    "clicks",
                    "conversions",
                    "revenue",
                ),
                # budget, audience and order value may be unknown (NULL), never negative
                non_negative=(
                    "spend",
                    "impressions",
                    "clicks",
                    "conversions",
                    "revenue",
                    "daily_budget",
                    "audience_size",
                    "avg_order_value",
                ),
                allowed_values={"platform": src.KNOWN_PLATFORMS},
                not_greater=(("clicks", "impressions"),),
            ),
            _campaign_daily,
        ),
        Extract(
            "raw_creative_daily",
            "One row per ad creative and day: impressions, reach, frequency, clicks and engagements, with the "
            "creative's launch date. The evidence behind creative-fatigue scores. Rejected rows are in "
            "raw_creative_daily_quarantine.",
            wh.raw_creative_daily,
            wh.raw_creative_daily_quarantine,
            RowRules(
                key=("creative_id", "date"),
                partition_column="date",
                required=(
                    "tenant_id",
                    "campaign_id",
                    "creative_id",
                    "date",
                    "impressions",
                    "reach",
                    "clicks",
                    "engagements",
                ),
                non_negative=("impressions", "reach", "frequency", "clicks", "engagements"),
                not_greater=(("clicks", "impressions"), ("reach", "impressions")),
            ),
            _creative_daily,
        ),
        Extract(
            "raw_sessions",
            "One row per web session on a tenant's site with the conversion signals the product scores "
            "(duration, pages, cart, recency, purchases, device, traffic source, segment) and whether it "
            "converted. Missing signals are normal and kept. Rejected rows are in raw_sessions_quarantine.",
            wh.raw_sessions,
            wh.raw_sessions_quarantine,
            RowRules(
                key=("session_id",),
                partition_column="started_at",
                required=("session_id", "tenant_id", "started_at", "converted"),
                non_negative=(
                    "session_duration",
                    "pages_viewed",
                    "cart_value",
                    "items_in_cart",
                    "time_since_last_visit",
                    "previous_purchases",
                ),
            ),
            _sessions,
        ),
        Extract(
            "raw_capi_events",
            "One row per conversion event sent to an ad platform's conversion API, with the match keys it "
            "carried (email, phone, click ids, IP, user agent, external id; any may be missing). Input of "
            "event-match-quality scoring. Rejected rows are in raw_capi_events_quarantine.",
            wh.raw_capi_events,
            wh.raw_capi_events_quarantine,
            RowRules(
                key=("event_id",),
                partition_column="event_time",
                required=("event_id", "tenant_id", "platform", "event_name", "event_time"),
                non_negative=("value",),
                allowed_values={"platform": src.KNOWN_PLATFORMS},
            ),
            _capi_events,
        ),
    )
}
