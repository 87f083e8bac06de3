"""Fitting, registering and gating a tenant's anomaly detector (or the default detector). No Dagster here.

A tenant with at least `MIN_FIT_CAMPAIGN_DAYS` campaign-days of history gets a detector fitted on it,
registered in MLflow as stratum-anomaly_detector-<tenant>; the others are served by the default detector
(stratum-anomaly_detector-default), fitted on every tenant's history (or, with too little, the built-in
defaults). The gate: a detector that would flag more than `MAX_FLAG_RATE` of its own history's campaign-days
is mis-fitted (the injected anomalies of the realistic demo are ~1-2% of days) and does not become champion.
"""

from __future__ import annotations

import pandas as pd

from stratum_pipeline.ml.anomalies import MIN_FIT_CAMPAIGN_DAYS, REQUIRED, AnomalyDetector
from stratum_pipeline.modelops.gate import GateDecision
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.modelops.training import TrainingOutcome, check_isolation
from stratum_pipeline.tenancy import DEFAULT_MODEL_OWNER

MODEL_TYPE = "anomaly_detector"
MAX_FLAG_RATE = 0.05
EXAMPLE_COLUMNS = [*REQUIRED, "daily_budget", "impressions"]  # impressions: the CPM test of CPC jumps


def train_anomaly_detector(tenant: str, history: pd.DataFrame, registry, tags: dict) -> TrainingOutcome:
    """Fit `tenant`'s detector on its campaign metrics (DEFAULT_MODEL_OWNER: every tenant's), register it and gate it."""
    check_isolation(history, tenant)
    rows = history.drop_duplicates(["campaign_id", "date"], keep="last") if len(history) else history
    if tenant != DEFAULT_MODEL_OWNER and len(rows) < MIN_FIT_CAMPAIGN_DAYS:
        return TrainingOutcome(
            tenant,
            MODEL_TYPE,
            DEFAULT_MODEL_OWNER,
            {
                "campaign_days": len(rows),
                "minimum_campaign_days": MIN_FIT_CAMPAIGN_DAYS,
                "served_by": DEFAULT_MODEL_OWNER,
                "reason": "below the data minimum: served by the default anomaly detector",
            },
        )
    detector = AnomalyDetector()
    if len(rows) >= MIN_FIT_CAMPAIGN_DAYS:
        detector.fit(rows)
    flag_rate = detector.flag_rate(rows) if len(rows) else 0.0
    metrics = {
        "campaign_days": float(len(rows)),
        "flag_rate": flag_rate,
        "conversion_dispersion": detector.params.conversion_dispersion,
    }
    name = model_name(MODEL_TYPE, tenant)
    example = (
        rows[[c for c in EXAMPLE_COLUMNS if c in rows.columns]].head(5)
        if len(rows)
        else pd.DataFrame(
            {
                "campaign_id": ["c1"],
                "date": [pd.Timestamp("2026-01-01")],
                "spend": [1.0],
                "clicks": [1.0],
                "conversions": [0.0],
                "daily_budget": [1.0],
            }
        )
    )
    registered = registry.log_and_register(
        name, detector, example, {"tenant": tenant, **detector.params.to_dict()}, metrics, tags
    )
    promote = flag_rate <= MAX_FLAG_RATE
    decision = GateDecision(
        promote,
        [
            f"flags {flag_rate:.2%} of its history's campaign-days "
            f"({'within' if promote else 'above'} the {MAX_FLAG_RATE:.0%} limit)"
        ],
    )
    if promote:
        registry.set_champion(name, registered.version)
    registry.tag_version(
        name,
        registered.version,
        {"gate": decision.summary[:250], "promoted": promote, "archived": not promote},
    )
    return TrainingOutcome(
        tenant,
        MODEL_TYPE,
        tenant,
        {
            "model": name,
            "version": registered.version,
            "champion_version": registered.version if promote else registry.champion_version(name),
            "mlflow_run_id": registered.run_id,
            "mlflow_run": registered.run_url,
            "gate": decision.summary,
            "served_by": tenant,
            "fitted": not detector.is_default,
            **metrics,
        },
        decision,
    )
