"""Feature tables of a generated dataset, computed in memory exactly as the feature assets compute them
(for benchmarks and tests that need features without running the pipeline)."""

from __future__ import annotations

import pandas as pd

from stratum_pipeline.demo.generator import DemoDataset
from stratum_pipeline.ml import features as F


def feature_frames(dataset: DemoDataset) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(campaign_features, session_features, creative_features) of a dataset without bad rows."""
    campaigns = dataset["campaigns"].rename(columns={"id": "campaign_id"})
    daily = dataset["campaign_daily_metrics"].merge(
        campaigns[["campaign_id", "tenant_id", "audience_size", "daily_budget"]], on="campaign_id"
    )
    creatives = (
        dataset["creative_daily_metrics"]
        .merge(dataset["creatives"].rename(columns={"id": "creative_id"}), on="creative_id")
        .merge(campaigns[["campaign_id", "audience_size"]], on="campaign_id")
    )
    creative = F.creative_features(creatives)
    return F.campaign_features(daily, creative), F.session_features(dataset["sessions"]), creative
