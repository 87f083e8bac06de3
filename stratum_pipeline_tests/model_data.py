"""A dataset big enough to train models on, built in memory with the pipeline's feature builders."""

import functools
from datetime import date

from stratum_pipeline.demo.generator import DemoConfig, TenantSpec, generate
from stratum_pipeline.ml import features as F

MODEL_TENANTS = (
    TenantSpec("big", "Big Brand", campaigns=60, history_days=75, sessions_per_day=220),
    TenantSpec("small", "Small Shop", campaigns=8, history_days=75, sessions_per_day=20),
)
MODEL_CONFIG = DemoConfig(end_date=date(2026, 6, 30), seed=5, tenants=MODEL_TENANTS, bad_row_rate=0.0)


@functools.lru_cache(maxsize=1)
def model_features():
    """(campaign_features, session_features, creative_features, dataset) for MODEL_CONFIG, as the assets would write them."""
    data = generate(MODEL_CONFIG)
    campaigns = data["campaigns"].rename(columns={"id": "campaign_id"})
    daily = data["campaign_daily_metrics"].merge(
        campaigns[["campaign_id", "tenant_id", "audience_size", "daily_budget"]], on="campaign_id")
    creatives = (data["creative_daily_metrics"]
                 .merge(data["creatives"].rename(columns={"id": "creative_id"}), on="creative_id")
                 .merge(campaigns[["campaign_id", "audience_size"]], on="campaign_id"))
    creative = F.creative_features(creatives)
    return F.campaign_features(daily, creative), F.session_features(data["sessions"]), creative, data
