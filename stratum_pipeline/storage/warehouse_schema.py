"""The warehouse: the tables this pipeline writes and the product reads.

Every daily table has a `date` column (UTC day = the Dagster partition); a materialisation
replaces the rows of its partitions in one transaction, so re-running a partition or a backfill
leaves identical tables. Raw extracts have a `<name>_quarantine` twin holding rejected rows.
"""

import sqlalchemy as sa

metadata = sa.MetaData()


def _quarantine(name: str) -> sa.Table:
    return sa.Table(
        f"{name}_quarantine",
        metadata,
        sa.Column("source_id", sa.BigInteger, nullable=False),
        sa.Column("tenant_id", sa.String(64)),
        sa.Column("partition_date", sa.Date, nullable=False, index=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(64)),
    )


def _session_signals() -> list[sa.Column]:
    """The 9 conversion signals of a session (numbers as floats so missing values stay NULL)."""
    numeric = ["session_duration", "pages_viewed", "cart_value", "items_in_cart", "time_since_last_visit",
               "previous_purchases"]
    categorical = ["device_type", "traffic_source", "user_segment"]
    return [sa.Column(c, sa.Float) for c in numeric] + [sa.Column(c, sa.String(32)) for c in categorical]


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
    sa.Column("avg_order_value", sa.Float),
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
    sa.Column("launch_date", sa.Date),
    sa.Column("audience_size", sa.BigInteger),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column("impressions", sa.BigInteger, nullable=False),
    sa.Column("reach", sa.BigInteger, nullable=False),
    sa.Column("frequency", sa.Float),
    sa.Column("clicks", sa.BigInteger, nullable=False),
    sa.Column("engagements", sa.BigInteger, nullable=False),
    sa.Column("recorded_at", sa.DateTime),
)
raw_creative_daily_quarantine = _quarantine("raw_creative_daily")

raw_sessions = sa.Table(
    "raw_sessions",
    metadata,
    sa.Column("source_id", sa.BigInteger, nullable=False),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("visitor_id", sa.String(64)),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    *_session_signals(),
    sa.Column("converted", sa.Boolean, nullable=False),
    sa.Column("recorded_at", sa.DateTime),
)
raw_sessions_quarantine = _quarantine("raw_sessions")

raw_capi_events = sa.Table(
    "raw_capi_events",
    metadata,
    sa.Column("source_id", sa.BigInteger, nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("event_name", sa.String(64), nullable=False),
    sa.Column("event_time", sa.DateTime, nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column("value", sa.Float),
    sa.Column("currency", sa.String(3)),
    *(sa.Column(c, sa.String(256)) for c in (
        "email", "phone", "fbc", "fbp", "gclid", "ttclid", "client_ip_address", "client_user_agent", "external_id")),
    sa.Column("recorded_at", sa.DateTime),
)
raw_capi_events_quarantine = _quarantine("raw_capi_events")

campaign_features = sa.Table(
    "campaign_features",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("roas_7d", sa.Float),
    sa.Column("roas_30d", sa.Float),
    sa.Column("roas_3d", sa.Float),
    sa.Column("roas_14d", sa.Float),
    sa.Column("spend_velocity", sa.Float),
    sa.Column("ctr", sa.Float),
    sa.Column("conversion_rate", sa.Float),
    sa.Column("impressions_growth", sa.Float),
    sa.Column("day_of_week", sa.Integer, nullable=False),
    sa.Column("season", sa.Integer, nullable=False),
    sa.Column("day_of_quarter", sa.Integer, nullable=False),
    sa.Column("audience_size", sa.BigInteger),
    sa.Column("creative_fatigue", sa.Float),
    sa.Column("spend", sa.Float, nullable=False),
    sa.Column("revenue", sa.Float, nullable=False),
    sa.Column("roas", sa.Float),
    sa.Column("spend_vs_3d", sa.Float, comment="the day's spend / its average daily spend over the days with rows in the last 3 days"),
    sa.Column("spend_vs_7d", sa.Float, comment="the day's spend / its average daily spend over the days with rows in the last 7 days"),
    sa.Column("spend_vs_30d", sa.Float, comment="the day's spend / its average daily spend over the days with rows in the last 30 days"),
    sa.Column("daily_budget", sa.Float),
    sa.Column("conversions_30d", sa.Float, comment="the campaign's conversions over the last 30 days (its volume)"),
    sa.Column("history_days", sa.Integer, nullable=False),
)

creative_features = sa.Table(
    "creative_features",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("creative_id", sa.String(80), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column("days_active", sa.Integer, nullable=False),
    sa.Column("frequency", sa.Float),
    sa.Column("ctr_current", sa.Float),
    sa.Column("ctr_baseline", sa.Float),
    sa.Column("engagement_rate_current", sa.Float),
    sa.Column("engagement_rate_baseline", sa.Float),
    sa.Column("impressions_7d", sa.BigInteger),
    sa.Column("fatigue_score", sa.Float),
)

session_features = sa.Table(
    "session_features",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    *_session_signals(),
    sa.Column("converted", sa.Boolean, nullable=False),
)


# --- daily product tables ------------------------------------------------------------

daily_roas_forecasts = sa.Table(
    "daily_roas_forecasts",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),  # the features' day; the forecast is for the next day
    sa.Column("forecast_date", sa.Date, nullable=False),
    sa.Column("predicted_roas", sa.Float, nullable=False),
    sa.Column("confidence_lower", sa.Float, nullable=False),
    sa.Column("confidence_upper", sa.Float, nullable=False),
    sa.Column("trend", sa.String(16), nullable=False),
    sa.Column("recommendation_action", sa.String(16), nullable=False),
    sa.Column("budget_change_percent", sa.Integer, nullable=False),
    sa.Column("recommendation_reason", sa.Text, nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(16), nullable=False),
    sa.Column("served_by", sa.String(64), nullable=False),
)

creative_fatigue_scores = sa.Table(
    "creative_fatigue_scores",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("creative_id", sa.String(80), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column("fatigue_score", sa.Float, nullable=False),
    sa.Column("fatigue_level", sa.String(16), nullable=False),
    sa.Column("age_score", sa.Float, nullable=False),
    sa.Column("frequency_score", sa.Float, nullable=False),
    sa.Column("ctr_decay_score", sa.Float, nullable=False),
    sa.Column("engagement_decay_score", sa.Float, nullable=False),
    sa.Column("days_until_critical", sa.Float),
    sa.Column("recommendation", sa.Text, nullable=False),
    sa.Column("suggested_actions", sa.Text, nullable=False),  # JSON list
)

budget_scenarios = sa.Table(
    "budget_scenarios",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column("scenario", sa.String(32), nullable=False),  # baseline, -20%, +20%, +50%
    sa.Column("budget_change", sa.Float, nullable=False),
    sa.Column("days", sa.Integer, nullable=False),
    sa.Column("spend", sa.Float, nullable=False),
    sa.Column("revenue", sa.Float, nullable=False),
    sa.Column("roas", sa.Float, nullable=False),
    sa.Column("conversions", sa.Float),
    sa.Column("marginal_roas", sa.Float),
    sa.Column("revenue_p5", sa.Float, nullable=False),
    sa.Column("revenue_p95", sa.Float, nullable=False),
    sa.Column("curve_source", sa.String(16), comment="fitted / pooled: the campaign's response curve; fallback: "
              "constant elasticity 0.6 on the ROAS forecast (no usable curve)"),
)

campaign_response_curves = sa.Table(
    "campaign_response_curves",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True, comment="the decision day: fitted on days up to it only"),
    sa.Column("curve_source", sa.String(16), nullable=False, comment="fitted, pooled or fallback"),
    sa.Column("fallback_reason", sa.Text),
    sa.Column("days_used", sa.Integer, nullable=False, comment="days with spend in the fit window"),
    sa.Column("base_spend", sa.Float, comment="the day's spend (or the last 7 days' average)"),
    sa.Column("vmax", sa.Float, comment="daily revenue at saturation (median draw)"),
    sa.Column("half_saturation", sa.Float, comment="adstocked daily spend at half of vmax"),
    sa.Column("hill_shape", sa.Float, comment="Hill exponent: above 1 the curve is S-shaped"),
    sa.Column("adstock_rate", sa.Float, comment="geometric carry-over of spend to the next day"),
    sa.Column("conversions_per_revenue", sa.Float),
    sa.Column("dispersion", sa.Float, comment="quasi-Poisson dispersion of daily revenue around the curve"),
    sa.Column("level_sd", sa.Float, comment="log-sd of the level's drift around the curve over a month"),
    sa.Column("elasticity", sa.Float, comment="d log revenue / d log spend at base_spend (median draw)"),
    sa.Column("elasticity_p5", sa.Float),
    sa.Column("elasticity_p95", sa.Float),
    sa.Column("deviance_explained", sa.Float),
    sa.Column("spend_range", sa.Float, comment="90th / 10th percentile of daily spend: how much the data can tell"),
    sa.Column("season", sa.Text, comment="JSON: the tenant's seasonal log-coefficients (6 weekday, 4 quarterly)"),
    sa.Column("draws", sa.Text, comment="JSON: posterior draws [vmax, half_saturation, hill_shape, adstock_rate, "
              "adstock_state]"),
    sa.Column("revenue_7d", sa.Float, comment="expected revenue over the next 7 days at base_spend"),
    sa.Column("revenue_7d_p5", sa.Float),
    sa.Column("revenue_7d_p95", sa.Float),
    sa.Column("revenue_30d", sa.Float, comment="expected revenue over the next 30 days at base_spend"),
    sa.Column("revenue_30d_p5", sa.Float),
    sa.Column("revenue_30d_p95", sa.Float),
    sa.Column("roas_30d", sa.Float, comment="expected ROAS over the next 30 days at base_spend"),
)

budget_allocations = sa.Table(
    "budget_allocations",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column("curve_source", sa.String(16), nullable=False),
    sa.Column("current_budget", sa.Float, nullable=False, comment="the day's spend"),
    sa.Column("proposed_budget", sa.Float, nullable=False, comment="same tenant total, each within 0.5x-2x"),
    sa.Column("expected_revenue_current", sa.Float, comment="expected daily revenue over the next 30 days"),
    sa.Column("expected_revenue_proposed", sa.Float),
    sa.Column("marginal_roas_current", sa.Float),
    sa.Column("marginal_roas_proposed", sa.Float),
    sa.Column("note", sa.Text),
    sa.Column("tenant_expected_uplift", sa.Float, comment="the tenant's expected daily revenue uplift"),
    sa.Column("tenant_uplift_p5", sa.Float),
    sa.Column("tenant_uplift_p95", sa.Float),
)

campaign_anomalies = sa.Table(
    "campaign_anomalies",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False,
              comment="tracking_outage, spend_spike, conversion_rate_drop or cpc_jump"),
    sa.Column("severity", sa.String(16), nullable=False, comment="critical (outage, spend spike), high or medium"),
    sa.Column("metric", sa.String(32), nullable=False, comment="conversions, spend or cpc"),
    sa.Column("expected", sa.Float, comment="the campaign's expected level of the metric that day"),
    sa.Column("observed", sa.Float, comment="what the day recorded"),
    sa.Column("probability", sa.Float, nullable=False,
              comment="tail probability of a value this far from the expected level (count-aware)"),
    sa.Column("detector", sa.String(16), nullable=False, comment="tenant (fitted on its history) or default"),
)

event_match_quality = sa.Table(
    "event_match_quality",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("score_mean", sa.Float),
    sa.Column("score_p10", sa.Float),
    sa.Column("score_p50", sa.Float),
    sa.Column("score_p90", sa.Float),
    *(sa.Column(f"events_{level}", sa.Integer, nullable=False) for level in ("excellent", "good", "fair", "poor")),
    sa.Column("most_missing_fields", sa.Text, nullable=False),  # JSON {field: share missing}
    sa.Column("attribution_accuracy_estimate", sa.Float),
    sa.Column("recommendations", sa.Text, nullable=False),  # JSON list
)

live_conversion_predictions = sa.Table(
    "live_conversion_predictions",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("conversion_probability", sa.Float, nullable=False),
    sa.Column("will_convert", sa.Boolean, nullable=False),
    sa.Column("top_factors", sa.Text, nullable=False),  # JSON list of {feature, value, impact, direction}
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(16), nullable=False),
    sa.Column("predicted_at", sa.DateTime, nullable=False),
)


# --- monitoring ------------------------------------------------------------------------

forecast_accuracy = sa.Table(
    "forecast_accuracy",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),  # the forecast day (the day the actual ROAS is for)
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(16), nullable=False),
    sa.Column("campaigns", sa.Integer, nullable=False),
    sa.Column("mae", sa.Float, nullable=False),
    sa.Column("bias", sa.Float, nullable=False),  # mean(predicted - actual)
    sa.Column("coverage_80", sa.Float, nullable=False),  # share of actuals inside the 10-90% interval
    sa.Column("mean_actual_roas", sa.Float, nullable=False),
    sa.Column("mean_predicted_roas", sa.Float, nullable=False),
    sa.Column("evaluated_at", sa.DateTime, nullable=False),
)

feature_drift = sa.Table(
    "feature_drift",
    metadata,
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("date", sa.Date, nullable=False, index=True),  # the last day of the compared window
    sa.Column("model_name", sa.String(128), nullable=False),  # whose training profile is the reference
    sa.Column("model_version", sa.String(16), nullable=False),
    sa.Column("feature", sa.String(64), nullable=False),  # a feature name, or "conversion_calibration"
    sa.Column("psi", sa.Float),  # population stability index (NULL for calibration rows)
    sa.Column("rate_gap", sa.Float),  # calibration rows: mean predicted - observed conversion rate
    sa.Column("ece", sa.Float),  # calibration rows: expected calibration error
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # ok, warn, fail
)

# Retraining cadence per tenant: 'monthly' (the default for a tenant without a row) or 'weekly' (busy periods).
tenant_settings = sa.Table(
    "tenant_settings",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("retraining_cadence", sa.String(16), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime, nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),  # run_failure, ...
    sa.Column("run_id", sa.String(64)),
    sa.Column("job_name", sa.String(128)),
    sa.Column("partition_key", sa.String(128)),  # the day or the tenant
    sa.Column("summary", sa.Text, nullable=False),
)

TABLES = {t.name: t for t in metadata.sorted_tables}
