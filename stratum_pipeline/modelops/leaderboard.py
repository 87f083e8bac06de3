"""The model leaderboard: for every tenant and model type, which champion serves it and how it did on its
holdout against the promotion gate's targets. No Dagster here; `assets.models.model_leaderboard` writes it."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import pandas as pd

from stratum_pipeline.modelops.anomaly_training import MAX_FLAG_RATE
from stratum_pipeline.modelops.anomaly_training import MODEL_TYPE as ANOMALY_DETECTOR
from stratum_pipeline.modelops.gate import CONVERSION_TARGETS, ROAS_NAIVE_TOLERANCE, ROAS_TARGETS, decide
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.tenancy import DEFAULT_MODEL_OWNER

MODEL_TYPES = ("roas", "conversion", ANOMALY_DETECTOR)
SHOWN_METRICS = {
    "roas": ("mae", "bias", "coverage_80", "naive_mae", "r2"),
    "conversion": ("auc", "precision", "recall", "threshold"),
    ANOMALY_DETECTOR: ("flag_rate", "campaign_days"),
}
TARGETS = {
    "roas": f"mean bias within ±{ROAS_TARGETS['bias_max']:.0%}, 80% interval coverage "
    f"{ROAS_TARGETS['coverage_range'][0]}-{ROAS_TARGETS['coverage_range'][1]}, MAE at most the best naive "
    f"forecast's +{ROAS_NAIVE_TOLERANCE:.0%}",
    "conversion": f"AUC above {CONVERSION_TARGETS['auc_min']}",
    ANOMALY_DETECTOR: f"flags at most {MAX_FLAG_RATE:.0%} of its history's campaign-days",
}


def _significant(value: float) -> float:
    return float(f"{value:.4g}") if isinstance(value, (int, float)) and math.isfinite(value) else value


def meets_targets(model_type: str, metrics: dict) -> bool | None:
    """The gate's absolute targets on the champion's own holdout metrics (None when they were not recorded)."""
    try:
        if model_type == ANOMALY_DETECTOR:
            return metrics["flag_rate"] <= MAX_FLAG_RATE
        # MLflow keeps numbers only: the best naive forecast's name is not among the metrics
        return decide(model_type, {"naive": "best naive", **metrics}, None).promote
    except KeyError:
        return None


def leaderboard(registry, tenants: list[str]) -> pd.DataFrame:
    """One row per tenant (and the default owner) and model type: the champion that serves it, its holdout
    metrics, the targets and whether it meets them, and its MLflow run."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    summaries = {}

    def summary(owner: str, model_type: str):
        key = (owner, model_type)
        if key not in summaries:
            summaries[key] = registry.champion_summary(model_name(model_type, owner))
        return summaries[key]

    rows = []
    for tenant in [DEFAULT_MODEL_OWNER, *sorted(set(tenants) - {DEFAULT_MODEL_OWNER})]:
        for model_type in MODEL_TYPES:
            owner = tenant
            champion = summary(tenant, model_type)
            if champion is None and tenant != DEFAULT_MODEL_OWNER:
                owner, champion = DEFAULT_MODEL_OWNER, summary(DEFAULT_MODEL_OWNER, model_type)
            metrics = {
                k: _significant(v)
                for k, v in (champion or {}).get("metrics", {}).items()
                if k in SHOWN_METRICS[model_type]
            }
            rows.append(
                {
                    "tenant_id": tenant,
                    "model_type": model_type,
                    # "none": no champion at all serves it yet (e.g. no anomaly detector was ever trained)
                    "served_by": "none" if champion is None else "own" if owner == tenant else "default",
                    "model_name": model_name(model_type, owner) if champion else None,
                    "champion_version": champion["version"] if champion else None,
                    "trained_at": champion["trained_at"] if champion else None,
                    "metrics": json.dumps(metrics, sort_keys=True),
                    "targets": TARGETS[model_type],
                    "meets_targets": meets_targets(model_type, (champion or {}).get("metrics", {}))
                    if champion
                    else None,
                    "mlflow_run": registry.run_url(champion["run_id"]) if champion else None,
                    "updated_at": now,
                }
            )
    return pd.DataFrame(rows)
