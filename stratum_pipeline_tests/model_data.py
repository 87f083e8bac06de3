"""A dataset big enough to train models on, built in memory with the pipeline's feature builders."""

import functools
from datetime import date

from stratum_pipeline.demo.features import feature_frames
from stratum_pipeline.demo.generator import DemoConfig, TenantSpec, generate

MODEL_TENANTS = (
    TenantSpec("big", "Big Brand", campaigns=60, history_days=75, sessions_per_day=220),
    TenantSpec("small", "Small Shop", campaigns=8, history_days=75, sessions_per_day=20),
)
MODEL_CONFIG = DemoConfig(end_date=date(2026, 6, 30), seed=5, tenants=MODEL_TENANTS, bad_row_rate=0.0)

# The model dataset is smaller than a real tenant: scale the training minimums down with it.
RUN_CONFIG = {"min_campaigns": 40, "min_campaign_days": 30, "min_sessions": 5_000, "holdout_days": 7}


@functools.lru_cache(maxsize=1)
def model_features():
    """(campaign_features, session_features, creative_features, dataset) for MODEL_CONFIG, as the assets would write them."""
    data = generate(MODEL_CONFIG)
    campaign, sessions, creative = feature_frames(data)
    return campaign, sessions, creative, data
