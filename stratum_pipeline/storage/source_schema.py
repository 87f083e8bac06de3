"""The source database: the tables the product's backend owns and this pipeline reads.

The demo generator writes these tables (SQLite for the embedded default); in a
deployment they are the backend's PostgreSQL tables. The `truth_*` tables exist
only in generated data: the generator's ground truth, kept beside the data so
models can be measured against the noise floor.

Metric rows carry a surrogate `id` and no unique constraint on their business
key: platform syncs do deliver duplicates, and the raw extracts must catch them.
"""

import sqlalchemy as sa

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

KNOWN_PLATFORMS = ("meta", "google", "tiktok", "linkedin")

metadata = sa.MetaData()

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("daily_budget", sa.Float, nullable=False),
    sa.Column("audience_size", sa.BigInteger, nullable=False),
    sa.Column("avg_order_value", sa.Float, nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date),
    sa.Column("status", sa.String(16), nullable=False),
)

campaign_daily_metrics = sa.Table(
    "campaign_daily_metrics",
    metadata,
    sa.Column("id", RowId, primary_key=True),
    sa.Column("campaign_id", sa.String(64)),
    sa.Column("platform", sa.String(32)),
    sa.Column("date", sa.Date, index=True),
    sa.Column("spend", sa.Float),
    sa.Column("impressions", sa.BigInteger),
    sa.Column("clicks", sa.BigInteger),
    sa.Column("conversions", sa.BigInteger),
    sa.Column("revenue", sa.Float),
    sa.Column("recorded_at", sa.DateTime),
)

creatives = sa.Table(
    "creatives",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("campaign_id", sa.String(64), nullable=False, index=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("launch_date", sa.Date, nullable=False),
)

creative_daily_metrics = sa.Table(
    "creative_daily_metrics",
    metadata,
    sa.Column("id", RowId, primary_key=True),
    sa.Column("creative_id", sa.String(80)),
    sa.Column("date", sa.Date, index=True),
    sa.Column("impressions", sa.BigInteger),
    sa.Column("reach", sa.BigInteger),
    sa.Column("frequency", sa.Float),
    sa.Column("clicks", sa.BigInteger),
    sa.Column("engagements", sa.BigInteger),
    sa.Column("recorded_at", sa.DateTime),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", RowId, primary_key=True),
    sa.Column("session_id", sa.String(64)),
    sa.Column("tenant_id", sa.String(64)),
    sa.Column("visitor_id", sa.String(64)),
    sa.Column("started_at", sa.DateTime, index=True),
    sa.Column("session_duration", sa.Float),  # seconds
    sa.Column("pages_viewed", sa.Integer),
    sa.Column("cart_value", sa.Float),
    sa.Column("items_in_cart", sa.Integer),
    sa.Column("time_since_last_visit", sa.Float),  # hours; NULL on a first visit
    sa.Column("previous_purchases", sa.Integer),
    sa.Column("device_type", sa.String(32)),
    sa.Column("traffic_source", sa.String(32)),
    sa.Column("user_segment", sa.String(32)),
    sa.Column("converted", sa.Boolean),
    sa.Column("recorded_at", sa.DateTime),
)

capi_events = sa.Table(
    "capi_events",
    metadata,
    sa.Column("id", RowId, primary_key=True),
    sa.Column("event_id", sa.String(64)),
    sa.Column("tenant_id", sa.String(64)),
    sa.Column("platform", sa.String(32)),
    sa.Column("event_name", sa.String(64)),
    sa.Column("event_time", sa.DateTime, index=True),
    sa.Column("value", sa.Float),
    sa.Column("currency", sa.String(3)),
    sa.Column("email", sa.String(128)),
    sa.Column("phone", sa.String(128)),
    sa.Column("fbc", sa.String(128)),
    sa.Column("fbp", sa.String(128)),
    sa.Column("gclid", sa.String(128)),
    sa.Column("ttclid", sa.String(128)),
    sa.Column("client_ip_address", sa.String(64)),
    sa.Column("client_user_agent", sa.String(256)),
    sa.Column("external_id", sa.String(128)),
    sa.Column("recorded_at", sa.DateTime),
)

# --- ground truth of generated data -------------------------------------------------

truth_campaign_daily = sa.Table(
    "truth_campaign_daily",
    metadata,
    sa.Column("campaign_id", sa.String(64), primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("expected_conversions", sa.Float, nullable=False),
    sa.Column("expected_revenue", sa.Float, nullable=False),
    sa.Column("expected_roas", sa.Float, nullable=False),
    sa.Column(
        "adstocked_spend", sa.Float, comment="the spend the response curve saw that day (carry-over included)"
    ),
)

truth_campaign_response = sa.Table(
    "truth_campaign_response",
    metadata,
    sa.Column("campaign_id", sa.String(64), primary_key=True),
    sa.Column("vmax", sa.Float, nullable=False),
    sa.Column("half_saturation", sa.Float, nullable=False),
    sa.Column("hill_shape", sa.Float, nullable=False),
    sa.Column("adstock_rate", sa.Float, nullable=False),
    sa.Column("avg_order_value", sa.Float, nullable=False),
    sa.Column("dispersion", sa.Float, comment="negative-binomial size of daily conversions; NULL: Poisson"),
    sa.Column("order_value_sigma", sa.Float, comment="lognormal sigma of single orders; NULL: Gamma, CV 0.3"),
    sa.Column("noise_regime", sa.String(16), nullable=False),
)

truth_sessions = sa.Table(
    "truth_sessions",
    metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("true_probability", sa.Float, nullable=False),
)

truth_creative_daily = sa.Table(
    "truth_creative_daily",
    metadata,
    sa.Column("creative_id", sa.String(80), primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("true_ctr_decay", sa.Float, nullable=False),
    sa.Column("true_fatigue_score", sa.Float, nullable=False),
    sa.Column("true_fatigue_level", sa.String(16), nullable=False),
)

truth_bad_rows = sa.Table(
    "truth_bad_rows",
    metadata,
    sa.Column("table_name", sa.String(64), primary_key=True),
    sa.Column("source_id", sa.BigInteger, primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
)

truth_anomalies = sa.Table(
    "truth_anomalies",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column(
        "campaign_id", sa.String(64), comment="NULL for a tenant-platform anomaly (capi_match_key_outage)"
    ),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=False),
    sa.Column("days", sa.Integer, nullable=False),
    sa.Column("size", sa.Float, nullable=False, comment="kind-specific: demo/anomalies.py SIZE_MEANING"),
)

truth_changes = sa.Table(
    "truth_changes",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False, comment="demo/changes.py KINDS"),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, comment="last changed day; NULL: the change persists"),
    sa.Column("size", sa.Float, nullable=False, comment="kind-specific: demo/changes.py SIZE_MEANING"),
    sa.Column("model_type", sa.String(16), nullable=False, comment="the model the change concerns"),
    sa.Column("moved_features", sa.String(256), nullable=False, comment="watched features that truly move"),
)

SOURCE_TABLES = (
    tenants,
    campaigns,
    campaign_daily_metrics,
    creatives,
    creative_daily_metrics,
    sessions,
    capi_events,
)
TRUTH_TABLES = (
    truth_campaign_daily,
    truth_campaign_response,
    truth_sessions,
    truth_creative_daily,
    truth_bad_rows,
    truth_anomalies,
    truth_changes,
)
