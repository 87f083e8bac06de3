"""Drift checks on the `feature_drift` asset: one check per watched feature, plus conversion calibration.

A check looks at every tenant's PSI for its feature (each tenant against its own champion's training
profile and the noise level recorded with it) and reports the worst: WARN when a tenant's PSI is above its
noise threshold today, ERROR when above it on 3 of the last 5 evaluated days (models trained before noise
levels: WARN above PSI 0.1, ERROR above 0.25); the tenants and values are in its metadata. `conversion_calibration` does the same for the gap between the predicted and the
observed conversion rate of recent sessions.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from stratum_pipeline.ml.monitoring import (
    CALIBRATION_FAIL,
    CALIBRATION_WARN,
    DRIFT_FEATURES,
    NOISE_MARGIN,
    PERSIST_DAYS,
    PERSIST_WINDOW,
    PSI_FAIL,
    PSI_WARN,
)

ASSET = "feature_drift"
CALIBRATION = "conversion_calibration"
SEVERITY = {"warn": dg.AssetCheckSeverity.WARN, "fail": dg.AssetCheckSeverity.ERROR}


def check_name(feature: str) -> str:
    return f"psi_{feature}"


def drift_check_specs() -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec(
            check_name(feature),
            asset=ASSET,
            description=(
                f"{model_type} feature {feature}: PSI between each tenant's champion training data and the latest week; "
                f"warns above {NOISE_MARGIN}x the tenant's own noise level, errors when above it on {PERSIST_DAYS} of "
                f"the last {PERSIST_WINDOW} days (without a noise level: warns above {PSI_WARN}, errors above {PSI_FAIL})"
            ),
        )
        for model_type, features in DRIFT_FEATURES.items()
        for feature in features
    ]
    specs.append(
        dg.AssetCheckSpec(
            CALIBRATION,
            asset=ASSET,
            description=(
                "Predicted vs observed conversion rate of each tenant's champion conversion model on the latest week's sessions; "
                f"warns above a {CALIBRATION_WARN:.0%} gap, errors above {CALIBRATION_FAIL:.0%}"
            ),
        )
    )
    return specs


def _result(name: str, rows: pd.DataFrame, value_column: str) -> dg.AssetCheckResult:
    if rows.empty:
        return dg.AssetCheckResult(
            check_name=name,
            asset_key=ASSET,
            passed=True,
            metadata={"tenants": 0, "note": "no tenant with a champion of its own and enough rows"},
        )
    worst = rows.loc[rows[value_column].abs().idxmax()]
    statuses = set(rows["status"])
    status = "fail" if "fail" in statuses else "warn" if "warn" in statuses else "ok"
    by_tenant = {
        r.tenant_id: {"value": round(float(getattr(r, value_column)), 4), "status": r.status}
        for r in rows.itertuples(index=False)
    }
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=ASSET,
        passed=status == "ok",
        severity=SEVERITY.get(status, dg.AssetCheckSeverity.WARN),
        metadata={
            "worst_tenant": str(worst["tenant_id"]),
            f"worst_{value_column}": float(worst[value_column]),
            "status": status,
            "tenants": dg.MetadataValue.json(by_tenant),
        },
    )


def drift_check_results(drift: pd.DataFrame) -> list[dg.AssetCheckResult]:
    """One result per spec from the `feature_drift` rows of the evaluated day."""
    results = [
        _result(check_name(feature), drift[drift["feature"] == feature], "psi")
        for features in DRIFT_FEATURES.values()
        for feature in features
    ]
    results.append(_result(CALIBRATION, drift[drift["feature"] == CALIBRATION], "rate_gap"))
    return results
