"""The warehouse: the tables this pipeline writes and the product reads.

Every daily table has a `date` column (UTC day = the Dagster partition); a materialisation
replaces the rows of its partitions in one transaction, so re-running a partition or a backfill
leaves identical tables. Raw extracts have a `<name>_quarantine` twin holding rejected rows.

Every column has a description (its `comment`, shown in the UI's column schema and written to
PostgreSQL as a column comment): its own `comment=` where its meaning is particular to its table,
else the GLOSSARY entry of its name, applied at the end of this module. A column with neither fails
the import, naming its table and column.
"""

import sqlalchemy as sa

metadata = sa.MetaData()

# Descriptions of the column names several tables share, in the same meaning. A column whose meaning
# differs in its table (a forecast's `date`, a scenario's `revenue`, ...) has its own `comment=`.
GLOSSARY = {
    "tenant_id": "the tenant (the product's customer account) the row belongs to",
    "campaign_id": "the ad campaign's id in the product's backend (source table campaigns)",
    "creative_id": "the ad creative's id in the product's backend (source table creatives)",
    "date": "the UTC day the row is for (the daily partition)",
    "platform": "the ad platform: meta, google, tiktok or linkedin",
    "source_id": "the row's surrogate id in its source table (the backend's `id`), to trace it back",
    "recorded_at": "when the backend recorded the row (UTC); a row dated after it is quarantined",
    "spend": "amount spent on the campaign that day, as the ad platform reported it",
    "revenue": "revenue the ad platform attributed to the campaign that day (its conversions' value)",
    "impressions": "times the ad (the row's campaign or creative) was shown that day",
    "clicks": "clicks on the ad (the row's campaign or creative) that day; never above impressions",
    "conversions": "conversions the ad platform attributed to the campaign that day",
    "daily_budget": "the campaign's daily budget from the campaigns table (its setting when read)",
    "audience_size": "the campaign's target audience size in people, from the campaigns table",
    "session_id": "the web session's id in the product's backend (source table sessions)",
    "started_at": "when the web session started (UTC)",
    "converted": "whether the session ended in a conversion",
    "fatigue_score": (
        "creative fatigue 0-100 (higher = more worn out): the component scores weighted age 15%, "
        "frequency 25%, CTR decay 35%, engagement decay 25%"
    ),
    "model_name": (
        "the registered MLflow model: stratum-<model type>-<tenant id>, or stratum-<model type>-default "
        "for the shared default model"
    ),
    "model_version": "the version of that registered model in the MLflow registry (its champion at the time)",
}

# The 9 conversion signals of a session (numbers as floats so missing values stay NULL); the seed's wording,
# with this project's units.
SESSION_SIGNALS = {
    "session_duration": ("time on site, in seconds", sa.Float),
    "pages_viewed": ("number of pages viewed in the session", sa.Float),
    "cart_value": ("cart total: the value of the items in the cart", sa.Float),
    "items_in_cart": ("number of items in the cart", sa.Float),
    "time_since_last_visit": ("hours since the visitor's previous visit; NULL on a first visit", sa.Float),
    "previous_purchases": ("historical purchase count of the visitor before the session", sa.Float),
    "device_type": ("device of the session (e.g. mobile, desktop, tablet)", sa.String(32)),
    "traffic_source": (
        "where the visit came from (e.g. organic, paid_search, paid_social, direct, email)",
        sa.String(32),
    ),
    "user_segment": ("the visitor's segment as the backend labels it (e.g. new, returning)", sa.String(32)),
}

# The customer keys a conversion-API event may carry (any may be missing): the platform matches the event to
# a user through them, and event_match_quality scores them (weights per platform in ml/emq.py).
CAPI_MATCH_KEYS = {
    "email": "the customer's email, a match key: counts in full SHA-256 hashed, half as plain text",
    "phone": "the customer's phone number, a match key: counts in full SHA-256 hashed, half as plain text",
    "fbc": "Meta click id (the _fbc cookie holding the fbclid), a match key on Meta",
    "fbp": "Meta browser id (the _fbp cookie), a match key on Meta",
    "gclid": "Google click id from the landing URL, a match key on Google",
    "ttclid": "TikTok click id from the landing URL; carried, but no platform's EMQ weights count it",
    "client_ip_address": "the client's IP address forwarded from the server request, a match key",
    "client_user_agent": "the client's browser user agent forwarded from the server request, a match key",
    "external_id": "the advertiser's stable customer id, a match key",
}

# EMQ quality levels of an event, by its 0-10 score (ml/emq.py LEVELS).
EMQ_LEVELS = {"excellent": "8 or more", "good": "6 to under 8", "fair": "4 to under 6", "poor": "under 4"}


_DAY_OF = "the UTC day of {} (the daily partition)"


def _quarantine(name: str) -> sa.Table:
    return sa.Table(
        f"{name}_quarantine",
        metadata,
        sa.Column("source_id", sa.BigInteger, nullable=False),
        sa.Column(
            "tenant_id",
            sa.String(64),
            comment="the tenant id as the row gave it, cut to 64 characters (NULL if missing; may be "
            "invalid)",
        ),
        sa.Column(
            "partition_date",
            sa.Date,
            nullable=False,
            index=True,
            comment="the UTC day the rejected row belongs to: its date, or the day of its start or event "
            "time",
        ),
        sa.Column(
            "reason",
            sa.Text,
            nullable=False,
            comment="every rule the row broke, separated by '; ' (e.g. 'missing value: spend', 'duplicate "
            "key (campaign_id, date): first seen as source_id 12')",
        ),
        sa.Column(
            "record", sa.Text, nullable=False, comment="the rejected row as read from the source, as JSON"
        ),
        sa.Column("run_id", sa.String(64), comment="the Dagster run that read and quarantined the row"),
    )


def _session_signals(cleaned: bool = False) -> list[sa.Column]:
    """The 9 conversion signals of a session; `cleaned`: as the features have them (ml/features.py)."""
    note = {
        "session_duration": "; capped at 4 hours (idle tabs)",
        **{c: "; trimmed and lower-cased" for c in ("device_type", "traffic_source", "user_segment")},
    }
    return [
        sa.Column(name, kind, comment=text + (note.get(name, "") if cleaned else ""))
        for name, (text, kind) in SESSION_SIGNALS.items()
    ]


raw_campaign_daily = sa.Table(
    "raw_campaign_daily",
    metadata,
    sa.Column("source_id", sa.BigInteger, nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column("spend", sa.Float, nullable=False),
    sa.Column("impressions", sa.BigInteger, nullable=False),
    sa.Column("clicks", sa.BigInteger, nullable=False),
    sa.Column("conversions", sa.BigInteger, nullable=False),
    sa.Column("revenue", sa.Float, nullable=False),
    sa.Column("daily_budget", sa.Float),
    sa.Column("audience_size", sa.BigInteger),
    sa.Column(
        "avg_order_value",
        sa.Float,
        comment="the campaign's average order value, from the campaigns table (turns revenue into "
        "conversions in the fallback budget simulation)",
    ),
    sa.Column("recorded_at", sa.DateTime),
)
raw_campaign_daily_quarantine = _quarantine("raw_campaign_daily")

raw_creative_daily = sa.Table(
    "raw_creative_daily",
    metadata,
    sa.Column("source_id", sa.BigInteger, nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("creative_id", sa.String(80), nullable=False),
    sa.Column("launch_date", sa.Date, comment="the day the creative went live, from the creatives table"),
    sa.Column("audience_size", sa.BigInteger),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column("impressions", sa.BigInteger, nullable=False),
    sa.Column("reach", sa.BigInteger, nullable=False, comment="people the creative reached that day"),
    sa.Column(
        "frequency",
        sa.Float,
        comment="average frequency per user that day as the platform reported it (impressions / reach)",
    ),
    sa.Column("clicks", sa.BigInteger, nullable=False),
    sa.Column(
        "engagements",
        sa.BigInteger,
        nullable=False,
        comment="engagements (interactions) with the creative that day, as the platform counted them",
    ),
    sa.Column("recorded_at", sa.DateTime),
)
raw_creative_daily_quarantine = _quarantine("raw_creative_daily")

raw_sessions = sa.Table(
    "raw_sessions",
    metadata,
    sa.Column("source_id", sa.BigInteger, nullable=False),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column(
        "visitor_id", sa.String(64), comment="the backend's id of the visitor across sessions (NULL: unknown)"
    ),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True, comment=_DAY_OF.format("started_at")),
    *_session_signals(),
    sa.Column("converted", sa.Boolean, nullable=False),
    sa.Column("recorded_at", sa.DateTime),
)
raw_sessions_quarantine = _quarantine("raw_sessions")

raw_capi_events = sa.Table(
    "raw_capi_events",
    metadata,
    sa.Column("source_id", sa.BigInteger, nullable=False),
    sa.Column(
        "event_id",
        sa.String(64),
        nullable=False,
        comment="the conversion event's id; a repeated id is quarantined as a duplicate",
    ),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column(
        "platform",
        sa.String(32),
        nullable=False,
        comment="the ad platform whose conversion API the event was sent to: meta, google, tiktok or "
        "linkedin",
    ),
    sa.Column(
        "event_name", sa.String(64), nullable=False, comment="the conversion event's name (e.g. Purchase)"
    ),
    sa.Column("event_time", sa.DateTime, nullable=False, comment="when the conversion happened (UTC)"),
    sa.Column("date", sa.Date, nullable=False, index=True, comment=_DAY_OF.format("event_time")),
    sa.Column("value", sa.Float, comment="the conversion's value, in `currency` (NULL: none sent)"),
    sa.Column("currency", sa.String(3), comment="ISO 4217 code of `value` (e.g. USD)"),
    *(sa.Column(name, sa.String(256), comment=text) for name, text in CAPI_MATCH_KEYS.items()),
    sa.Column("recorded_at", sa.DateTime),
)
raw_capi_events_quarantine = _quarantine("raw_capi_events")


def _roas(days: int) -> str:
    return f"ROAS over the last {days} days: their revenue / their spend, ending on the day (NULL: no spend)"


def _spend_vs(days: int) -> str:
    return f"the day's spend / its average daily spend over the days with rows in the last {days} days"


_NEXT_DAY = "of the next day (the day the ROAS model forecasts)"

campaign_features = sa.Table(
    "campaign_features",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("roas_7d", sa.Float, comment=_roas(7)),
    sa.Column("roas_30d", sa.Float, comment=_roas(30)),
    sa.Column("roas_3d", sa.Float, comment=_roas(3)),
    sa.Column("roas_14d", sa.Float, comment=_roas(14)),
    sa.Column(
        "spend_velocity",
        sa.Float,
        comment="spend velocity: average daily spend of the last 7 days / that of the last 30 days (days "
        "with rows); above 1: spend is rising",
    ),
    sa.Column("ctr", sa.Float, comment="click-through rate: clicks / impressions over the last 7 days"),
    sa.Column("conversion_rate", sa.Float, comment="conversions / clicks over the last 7 days"),
    sa.Column(
        "impressions_growth",
        sa.Float,
        comment="impressions trend: impressions of the last 7 days / those of the 7 days before, minus 1",
    ),
    sa.Column(
        "day_of_week", sa.Integer, nullable=False, comment=f"day of week {_NEXT_DAY}: 0 Monday .. 6 Sunday"
    ),
    sa.Column("season", sa.Integer, nullable=False, comment=f"season: the quarter (1-4) {_NEXT_DAY}"),
    sa.Column(
        "day_of_quarter",
        sa.Integer,
        nullable=False,
        comment=f"days since the start of the quarter {_NEXT_DAY}: 0 on its first day",
    ),
    sa.Column("audience_size", sa.BigInteger),
    sa.Column(
        "creative_fatigue",
        sa.Float,
        comment="the campaign's creative fatigue that day: mean fatigue score (0-100) of its creatives, "
        "weighted by their last 7 days' impressions + 1 (NULL: no creative rows)",
    ),
    sa.Column("spend", sa.Float, nullable=False),
    sa.Column("revenue", sa.Float, nullable=False),
    sa.Column(
        "roas", sa.Float, comment="return on ad spend of the day: revenue / spend (NULL when spend is 0)"
    ),
    sa.Column("spend_vs_3d", sa.Float, comment=_spend_vs(3)),
    sa.Column("spend_vs_7d", sa.Float, comment=_spend_vs(7)),
    sa.Column("spend_vs_30d", sa.Float, comment=_spend_vs(30)),
    sa.Column("daily_budget", sa.Float),
    sa.Column(
        "conversions_30d", sa.Float, comment="the campaign's conversions over the last 30 days (its volume)"
    ),
    sa.Column(
        "history_days",
        sa.Integer,
        nullable=False,
        comment="days with a row for the campaign in the last 30 days",
    ),
)

creative_features = sa.Table(
    "creative_features",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("creative_id", sa.String(80), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column(
        "days_active",
        sa.Integer,
        nullable=False,
        comment="days in rotation: days since launch (or first row) counting the launch day as 1",
    ),
    sa.Column(
        "frequency",
        sa.Float,
        comment="impressions since launch (within the last 90 days) / the campaign's audience size: average "
        "exposures per audience member so far",
    ),
    sa.Column(
        "ctr_current", sa.Float, comment="the creative's CTR over the last 7 days: clicks / impressions"
    ),
    sa.Column(
        "ctr_baseline",
        sa.Float,
        comment="the creative's launch CTR: clicks / impressions of its first 3 days live (so far, during "
        "them)",
    ),
    sa.Column(
        "engagement_rate_current",
        sa.Float,
        comment="the creative's engagements / impressions over the last 7 days",
    ),
    sa.Column(
        "engagement_rate_baseline",
        sa.Float,
        comment="the creative's launch engagement rate: engagements / impressions of its first 3 days live",
    ),
    sa.Column("impressions_7d", sa.BigInteger, comment="the creative's impressions over the last 7 days"),
    sa.Column("fatigue_score", sa.Float),
)

session_features = sa.Table(
    "session_features",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True, comment=_DAY_OF.format("started_at")),
    *_session_signals(cleaned=True),
    sa.Column("converted", sa.Boolean, nullable=False),
)


# --- daily product tables ------------------------------------------------------------

daily_roas_forecasts = sa.Table(
    "daily_roas_forecasts",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column(
        "date",
        sa.Date,
        nullable=False,
        index=True,
        comment="the features' day (the daily partition); the forecast is for the next day, forecast_date",
    ),
    sa.Column("forecast_date", sa.Date, nullable=False, comment="the day forecast: date + 1"),
    sa.Column(
        "predicted_roas",
        sa.Float,
        nullable=False,
        comment="expected (mean) ROAS of forecast_date: revenue per unit of spend, to multiply by spend",
    ),
    sa.Column(
        "confidence_lower",
        sa.Float,
        nullable=False,
        comment="10% quantile of the realised ROAS, conformally calibrated: 80% of held-out actuals fall "
        "inside the 10-90% band",
    ),
    sa.Column(
        "confidence_upper",
        sa.Float,
        nullable=False,
        comment="90% quantile of the realised ROAS, conformally calibrated: 80% of held-out actuals fall "
        "inside the 10-90% band",
    ),
    sa.Column(
        "trend",
        sa.String(16),
        nullable=False,
        comment="improving, stable or declining: the 7-day ROAS against the 30-day ROAS, beyond +/-5%",
    ),
    sa.Column(
        "recommendation_action",
        sa.String(16),
        nullable=False,
        comment="the budget recommendation: increase, decrease or maintain",
    ),
    sa.Column(
        "budget_change_percent",
        sa.Integer,
        nullable=False,
        comment="recommended budget change in percent: -30, -15, 0, +10 or +20 (against a target ROAS of 1)",
    ),
    sa.Column(
        "recommendation_reason",
        sa.Text,
        nullable=False,
        comment="why, in one sentence (e.g. 'the forecast is below the target ROAS')",
    ),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(16), nullable=False),
    sa.Column(
        "served_by",
        sa.String(64),
        nullable=False,
        comment="whose champion model made the forecast: the tenant id, or 'default' (the shared default "
        "model)",
    ),
)

creative_fatigue_scores = sa.Table(
    "creative_fatigue_scores",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("creative_id", sa.String(80), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column("fatigue_score", sa.Float, nullable=False),
    sa.Column(
        "fatigue_level",
        sa.String(16),
        nullable=False,
        comment="low (score under 50), medium (50+), high (70+) or critical (85+)",
    ),
    sa.Column(
        "age_score",
        sa.Float,
        nullable=False,
        comment="age component 0-100: days active / 60 (100 from 60 days)",
    ),
    sa.Column(
        "frequency_score",
        sa.Float,
        nullable=False,
        comment="frequency component 0-100: linear from frequency 1 (0) to 8 (100)",
    ),
    sa.Column(
        "ctr_decay_score",
        sa.Float,
        nullable=False,
        comment="CTR decay component 0-100: decline of the 7-day CTR from the launch CTR (a 50% decline: "
        "100)",
    ),
    sa.Column(
        "engagement_decay_score",
        sa.Float,
        nullable=False,
        comment="engagement decay component 0-100: decline of the 7-day engagement rate from launch (50%: "
        "100)",
    ),
    sa.Column(
        "days_until_critical",
        sa.Float,
        comment="days until the score reaches 85 at its average growth so far (0: already critical; NULL: "
        "not growing)",
    ),
    sa.Column(
        "recommendation",
        sa.Text,
        nullable=False,
        comment="what to do at this level (e.g. 'healthy: keep running', 'replace now: pause the creative "
        "...')",
    ),
    sa.Column(
        "suggested_actions",
        sa.Text,
        nullable=False,
        comment="JSON list: an action for each of the two largest weighted components (empty at level low)",
    ),
)

budget_scenarios = sa.Table(
    "budget_scenarios",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column(
        "scenario",
        sa.String(32),
        nullable=False,
        comment="baseline (today's daily spend), -20%, +20% or +50%",
    ),
    sa.Column(
        "budget_change",
        sa.Float,
        nullable=False,
        comment="the scenario's change of daily spend as a fraction: 0, -0.2, 0.2 or 0.5",
    ),
    sa.Column("days", sa.Integer, nullable=False, comment="the simulated horizon in days (30)"),
    sa.Column(
        "spend",
        sa.Float,
        nullable=False,
        comment="total spend over the horizon: the day's spend x (1 + budget_change) x days",
    ),
    sa.Column(
        "revenue",
        sa.Float,
        nullable=False,
        comment="expected revenue over the horizon: the mean of the Monte Carlo iterations",
    ),
    sa.Column(
        "roas", sa.Float, nullable=False, comment="the scenario's ROAS over the horizon: revenue / spend"
    ),
    sa.Column(
        "conversions",
        sa.Float,
        comment="expected conversions over the horizon: revenue x the curve's conversions per revenue "
        "(fallback: revenue / avg order value); NULL: unknown",
    ),
    sa.Column(
        "marginal_roas",
        sa.Float,
        comment="curve: d revenue / d spend at the scenario's daily spend; fallback: extra revenue / extra "
        "spend against the baseline (NULL on its baseline)",
    ),
    sa.Column(
        "revenue_p5",
        sa.Float,
        nullable=False,
        comment="5% quantile of the simulated revenue over the horizon",
    ),
    sa.Column(
        "revenue_p95",
        sa.Float,
        nullable=False,
        comment="95% quantile of the simulated revenue over the horizon",
    ),
    sa.Column(
        "curve_source",
        sa.String(16),
        comment="fitted / pooled: the campaign's response curve; fallback: constant elasticity 0.6 on the "
        "ROAS forecast (no usable curve)",
    ),
)

campaign_response_curves = sa.Table(
    "campaign_response_curves",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column(
        "date", sa.Date, nullable=False, index=True, comment="the decision day: fitted on days up to it only"
    ),
    sa.Column("curve_source", sa.String(16), nullable=False, comment="fitted, pooled or fallback"),
    sa.Column(
        "fallback_reason",
        sa.Text,
        comment="why the curve is not the campaign's own: under 21 days with spend (pooled), no spend or "
        "revenue or no fitted campaign to pool from (fallback); empty when fitted",
    ),
    sa.Column("days_used", sa.Integer, nullable=False, comment="days with spend in the fit window"),
    sa.Column("base_spend", sa.Float, comment="the day's spend (or the last 7 days' average)"),
    sa.Column("vmax", sa.Float, comment="daily revenue at saturation (median draw)"),
    sa.Column("half_saturation", sa.Float, comment="adstocked daily spend at half of vmax"),
    sa.Column("hill_shape", sa.Float, comment="Hill exponent: above 1 the curve is S-shaped"),
    sa.Column("adstock_rate", sa.Float, comment="geometric carry-over of spend to the next day"),
    sa.Column(
        "conversions_per_revenue",
        sa.Float,
        comment="conversions per unit of revenue in the fit window (recency-weighted): revenue to "
        "conversions",
    ),
    sa.Column("dispersion", sa.Float, comment="quasi-Poisson dispersion of daily revenue around the curve"),
    sa.Column("level_sd", sa.Float, comment="log-sd of the level's drift around the curve over a month"),
    sa.Column("elasticity", sa.Float, comment="d log revenue / d log spend at base_spend (median draw)"),
    sa.Column("elasticity_p5", sa.Float, comment="5% quantile of the elasticity over the posterior draws"),
    sa.Column("elasticity_p95", sa.Float, comment="95% quantile of the elasticity over the posterior draws"),
    sa.Column(
        "deviance_explained",
        sa.Float,
        comment="1 - the curve's Poisson deviance / that of the campaign's mean daily revenue (fit quality)",
    ),
    sa.Column(
        "spend_range", sa.Float, comment="90th / 10th percentile of daily spend: how much the data can tell"
    ),
    sa.Column(
        "season", sa.Text, comment="JSON: the tenant's seasonal log-coefficients (6 weekday, 4 quarterly)"
    ),
    sa.Column(
        "draws",
        sa.Text,
        comment="JSON: posterior draws [vmax, half_saturation, hill_shape, adstock_rate, adstock_state]",
    ),
    sa.Column("revenue_7d", sa.Float, comment="expected revenue over the next 7 days at base_spend"),
    sa.Column(
        "revenue_7d_p5", sa.Float, comment="5% quantile of the revenue over the next 7 days at base_spend"
    ),
    sa.Column(
        "revenue_7d_p95", sa.Float, comment="95% quantile of the revenue over the next 7 days at base_spend"
    ),
    sa.Column("revenue_30d", sa.Float, comment="expected revenue over the next 30 days at base_spend"),
    sa.Column(
        "revenue_30d_p5", sa.Float, comment="5% quantile of the revenue over the next 30 days at base_spend"
    ),
    sa.Column(
        "revenue_30d_p95", sa.Float, comment="95% quantile of the revenue over the next 30 days at base_spend"
    ),
    sa.Column("roas_30d", sa.Float, comment="expected ROAS over the next 30 days at base_spend"),
)

budget_allocations = sa.Table(
    "budget_allocations",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column(
        "curve_source",
        sa.String(16),
        nullable=False,
        comment="the campaign's response curve: fitted or pooled; fallback (no usable curve: keeps its "
        "budget)",
    ),
    sa.Column(
        "current_budget",
        sa.Float,
        nullable=False,
        comment="the campaign's base spend: the day's spend (or its last 7 days' average)",
    ),
    sa.Column(
        "proposed_budget",
        sa.Float,
        nullable=False,
        comment="the daily budget that maximises expected revenue: same tenant total, each within 0.5x-2x",
    ),
    sa.Column(
        "expected_revenue_current",
        sa.Float,
        comment="expected daily revenue over the next 30 days at current_budget",
    ),
    sa.Column(
        "expected_revenue_proposed",
        sa.Float,
        comment="expected daily revenue over the next 30 days at proposed_budget",
    ),
    sa.Column(
        "marginal_roas_current",
        sa.Float,
        comment="d revenue / d spend at current_budget on the curve (steady state, mean over draws)",
    ),
    sa.Column(
        "marginal_roas_proposed",
        sa.Float,
        comment="d revenue / d spend at proposed_budget on the curve (steady state, mean over draws)",
    ),
    sa.Column("note", sa.Text, comment="empty, or 'no usable response curve: keeps its budget'"),
    sa.Column("tenant_expected_uplift", sa.Float, comment="the tenant's expected daily revenue uplift"),
    sa.Column(
        "tenant_uplift_p5",
        sa.Float,
        comment="5% quantile of the tenant's daily revenue uplift over the curves' posterior draws",
    ),
    sa.Column(
        "tenant_uplift_p95",
        sa.Float,
        comment="95% quantile of the tenant's daily revenue uplift over the curves' posterior draws",
    ),
)

campaign_anomalies = sa.Table(
    "campaign_anomalies",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column(
        "kind",
        sa.String(32),
        nullable=False,
        comment="tracking_outage, spend_spike, conversion_rate_drop or cpc_jump",
    ),
    sa.Column(
        "severity", sa.String(16), nullable=False, comment="critical (outage, spend spike), high or medium"
    ),
    sa.Column("metric", sa.String(32), nullable=False, comment="conversions, spend or cpc"),
    sa.Column("expected", sa.Float, comment="the campaign's expected level of the metric that day"),
    sa.Column("observed", sa.Float, comment="what the day recorded"),
    sa.Column(
        "probability",
        sa.Float,
        nullable=False,
        comment="tail probability of a value this far from the expected level (count-aware)",
    ),
    sa.Column("detector", sa.String(16), nullable=False, comment="tenant (fitted on its history) or default"),
)

event_match_quality = sa.Table(
    "event_match_quality",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column(
        "events",
        sa.Integer,
        nullable=False,
        comment="conversion events the tenant sent to the platform that day",
    ),
    sa.Column(
        "score_mean",
        sa.Float,
        comment="mean event-match-quality (EMQ) score 0-10: the sum of the platform's weights of the match "
        "keys present (email and phone count half unless SHA-256 hashed)",
    ),
    sa.Column("score_p10", sa.Float, comment="10th percentile of the events' EMQ scores (0-10)"),
    sa.Column("score_p50", sa.Float, comment="median of the events' EMQ scores (0-10)"),
    sa.Column("score_p90", sa.Float, comment="90th percentile of the events' EMQ scores (0-10)"),
    *(
        sa.Column(
            f"events_{level}",
            sa.Integer,
            nullable=False,
            comment=f"events of quality level {level}: an EMQ score of {band}",
        )
        for level, band in EMQ_LEVELS.items()
    ),
    sa.Column(
        "most_missing_fields",
        sa.Text,
        nullable=False,
        comment="JSON {field: share of events missing it}: the (up to 3) weighted match keys most often "
        "missing",
    ),
    sa.Column(
        "attribution_accuracy_estimate",
        sa.Float,
        comment="mean estimated attribution accuracy: 40% at score 0 to 95% at 10, linear (a planning "
        "heuristic)",
    ),
    sa.Column(
        "recommendations",
        sa.Text,
        nullable=False,
        comment="JSON list: how to send each most-missing key, with the share of events missing it; the "
        "costliest gap (share missing x weight) first",
    ),
)

model_leaderboard = sa.Table(
    "model_leaderboard",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("model_type", sa.String(32), nullable=False, comment="roas, conversion or anomaly_detector"),
    sa.Column(
        "served_by",
        sa.String(16),
        nullable=False,
        comment="own: the tenant's own champion serves it; default: the global default model's champion; "
        "none: no champion serves it yet",
    ),
    sa.Column(
        "model_name",
        sa.String(128),
        nullable=True,
        comment="the registered MLflow model that serves the tenant (empty when none has a champion)",
    ),
    sa.Column(
        "champion_version", sa.String(16), nullable=True, comment="the version the `champion` alias points to"
    ),
    sa.Column(
        "trained_at", sa.DateTime, nullable=True, comment="when the champion's training run started (UTC)"
    ),
    sa.Column(
        "metrics",
        sa.Text,
        nullable=False,
        comment="JSON of the champion's holdout metrics (e.g. mae, bias, coverage_80, naive_mae; auc, "
        "precision, recall; flag_rate), rounded to 4 significant digits",
    ),
    sa.Column(
        "targets",
        sa.Text,
        nullable=False,
        comment="the promotion gate's targets for the model type, in words",
    ),
    sa.Column(
        "meets_targets",
        sa.Boolean,
        nullable=True,
        comment="whether the champion's holdout metrics meet those targets (empty without a champion)",
    ),
    sa.Column(
        "mlflow_run",
        sa.Text,
        nullable=True,
        comment="the champion's MLflow run: a URL on a tracking server, the `mlflow ui` address otherwise",
    ),
    sa.Column("updated_at", sa.DateTime, nullable=False, comment="when this row was written (UTC)"),
)

live_conversion_predictions = sa.Table(
    "live_conversion_predictions",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column(
        "conversion_probability",
        sa.Float,
        nullable=False,
        comment="calibrated probability (0-1) that the session converts",
    ),
    sa.Column(
        "will_convert",
        sa.Boolean,
        nullable=False,
        comment="conversion_probability at or above the model's operating threshold: the highest recall "
        "whose out-of-fold precision reaches the 0.8 target (plus a 0.03 margin)",
    ),
    sa.Column(
        "top_factors",
        sa.Text,
        nullable=False,
        comment="JSON list of the 3 signals that moved this prediction most: {feature, value, impact "
        "(log-odds), direction}",
    ),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(16), nullable=False),
    sa.Column("predicted_at", sa.DateTime, nullable=False, comment="when the session was scored (UTC)"),
)


# --- monitoring ------------------------------------------------------------------------

forecast_accuracy = sa.Table(
    "forecast_accuracy",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column(
        "date",
        sa.Date,
        nullable=False,
        index=True,
        comment="the forecast day: the day the forecasts were for and the actual ROAS is of",
    ),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(16), nullable=False),
    sa.Column(
        "campaigns",
        sa.Integer,
        nullable=False,
        comment="campaigns whose forecast for the day has an actual ROAS",
    ),
    sa.Column("mae", sa.Float, nullable=False, comment="mean absolute error: mean |predicted - actual ROAS|"),
    sa.Column(
        "bias", sa.Float, nullable=False, comment="mean(predicted - actual ROAS): above 0 forecasts too high"
    ),
    sa.Column(
        "coverage_80",
        sa.Float,
        nullable=False,
        comment="share of actuals inside the 10-90% interval (target 0.8)",
    ),
    sa.Column(
        "mean_actual_roas", sa.Float, nullable=False, comment="mean actual ROAS of those campaigns that day"
    ),
    sa.Column(
        "mean_predicted_roas",
        sa.Float,
        nullable=False,
        comment="mean forecast ROAS of those campaigns that day",
    ),
    sa.Column(
        "evaluated_at",
        sa.DateTime,
        nullable=False,
        comment="when the figures were computed (UTC); each run re-evaluates the last 7 forecast days",
    ),
)

feature_drift = sa.Table(
    "feature_drift",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column(
        "date", sa.Date, nullable=False, index=True, comment="the last day of the compared 7-day window"
    ),
    sa.Column(
        "model_name",
        sa.String(128),
        nullable=False,
        comment="the tenant's registered model whose training profile is the reference",
    ),
    sa.Column("model_version", sa.String(16), nullable=False, comment="that model's champion version"),
    sa.Column(
        "feature",
        sa.String(64),
        nullable=False,
        comment="a watched feature name, or 'conversion_calibration'",
    ),
    sa.Column(
        "psi",
        sa.Float,
        comment="population stability index of the window against the training profile (NULL: calibration "
        "rows)",
    ),
    sa.Column("rate_gap", sa.Float, comment="calibration rows: mean predicted - observed conversion rate"),
    sa.Column("ece", sa.Float, comment="calibration rows: expected calibration error (10 probability bins)"),
    sa.Column(
        "rows", sa.Integer, nullable=False, comment="feature rows (or sessions scored) in the tenant's window"
    ),
    sa.Column(
        "status",
        sa.String(8),
        nullable=False,
        comment="ok, warn or fail. With a noise level: warn = PSI above the tenant's noise threshold today, fail "
        "= above it on 3 of the last 5 evaluated days. Without one (older models): warn PSI over 0.1, fail over "
        "0.25. Calibration rows: warn |rate_gap| over 0.02, fail over 0.05",
    ),
    sa.Column(
        "noise_psi",
        sa.Float,
        comment="the PSI this tenant's feature reaches by chance: 95th percentile over the 7-day windows of the "
        "champion's last 8 training weeks (NULL: no noise level, fixed thresholds)",
    ),
    sa.Column(
        "drift_score",
        sa.Float,
        comment="PSI / its threshold (max(1.5 x noise_psi, 0.05), or 0.1 without a noise level): above 1 is "
        "above the noise; features rank by it",
    ),
    sa.Column(
        "days_above",
        sa.Integer,
        comment="days above the noise among this and the 4 evaluated days before it",
    ),
)

# Retraining cadence per tenant: 'monthly' (the default for a tenant without a row) or 'weekly'
# (busy periods).
tenant_settings = sa.Table(
    "tenant_settings",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column(
        "retraining_cadence",
        sa.String(16),
        nullable=False,
        comment="monthly or weekly (busy periods); a tenant without a row is retrained monthly",
    ),
    sa.Column(
        "updated_at",
        sa.DateTime,
        nullable=False,
        comment="when the cadence was last set (UTC, `stratum cadence`)",
    ),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column(
        "id", sa.Integer, primary_key=True, autoincrement=True, comment="the alert's row id (increasing)"
    ),
    sa.Column(
        "created_at", sa.DateTime, nullable=False, index=True, comment="when the alert was raised (UTC)"
    ),
    sa.Column(
        "kind",
        sa.String(32),
        nullable=False,
        comment="run_failure, tenant_failure, campaign_anomaly, model_fallback or gate_refusal",
    ),
    sa.Column("run_id", sa.String(64), comment="the Dagster run that failed or raised the alert"),
    sa.Column("job_name", sa.String(128), comment="the Dagster job of that run"),
    sa.Column(
        "partition_key",
        sa.String(128),
        comment="the tenant; for a run failure the run's partition: a day, 'first..last' or a tenant "
        "(NULL: unpartitioned)",
    ),
    sa.Column(
        "summary", sa.Text, nullable=False, comment="what happened, in one line (up to 4,000 characters)"
    ),
)


def describe_columns(tables: sa.MetaData, glossary: dict[str, str]) -> None:
    """Give every column without a comment of its own the glossary's description of its name.

    A column in neither fails here (at import), naming its table and column: a new column cannot ship
    without a description."""
    missing = [
        f"{table.name}.{column.name}"
        for table in tables.sorted_tables
        for column in table.columns
        if not column.comment and column.name not in glossary
    ]
    if missing:
        raise RuntimeError(
            f"warehouse column(s) without a description: {', '.join(missing)}; give each a comment= in its "
            "table or an entry in warehouse_schema.GLOSSARY"
        )
    for table in tables.sorted_tables:
        for column in table.columns:
            if not column.comment:
                column.comment = glossary[column.name]


def index_tenant_days(tables: sa.MetaData) -> None:
    """A (tenant_id, day) index on every table with both: a tenant's training read, a one-tenant rerun and a
    tenant's partition replace scan that tenant's rows of the window, not every tenant's."""
    for table in tables.sorted_tables:
        day = "date" if "date" in table.c else "partition_date" if "partition_date" in table.c else None
        if "tenant_id" in table.c and day:
            sa.Index(f"ix_{table.name}_tenant_{day}", table.c.tenant_id, table.c[day])


describe_columns(metadata, GLOSSARY)
index_tenant_days(metadata)
# creative_features reads the history of the creatives live on its days (Warehouse.read_histories): by creative,
# not the whole 90-day window (3x faster on SQLite at 20 tenants; the (creative_id, date) key is unique).
sa.Index("ix_raw_creative_daily_creative_date", raw_creative_daily.c.creative_id, raw_creative_daily.c.date)

TABLES = {t.name: t for t in metadata.sorted_tables}
