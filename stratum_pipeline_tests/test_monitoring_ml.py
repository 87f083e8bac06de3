"""ml.monitoring: accuracy against actuals, PSI from a stored profile, calibration."""

import json

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.ml import monitoring as M


def test_forecast_accuracy_joins_the_next_days_actual_and_leaves_out_missing_actuals():
    forecasts = pd.DataFrame(
        {
            "tenant_id": ["a", "a", "a", "b"],
            "campaign_id": ["c1", "c2", "c1", "c3"],
            "date": pd.to_datetime(["2026-01-01", "2026-01-01", "2026-01-02", "2026-01-01"]),
            "forecast_date": pd.to_datetime(["2026-01-02", "2026-01-02", "2026-01-03", "2026-01-02"]),
            "predicted_roas": [2.0, 3.0, 2.0, 1.0],
            "confidence_lower": [1.5, 2.9, 1.0, 0.5],
            "confidence_upper": [2.5, 3.1, 3.0, 1.5],
            "model_name": ["m-a"] * 3 + ["m-b"],
            "model_version": ["1"] * 4,
        }
    )
    features = pd.DataFrame(
        {
            "campaign_id": ["c1", "c2", "c3", "c9"],
            "date": pd.to_datetime(["2026-01-02"] * 4),
            "roas": [2.2, 4.0, 1.0, np.nan],
        }
    )
    out = M.forecast_accuracy(forecasts, M.actual_next_day_roas(features)).set_index("tenant_id")
    assert list(out.index) == ["a", "b"]  # c1's forecast for 01-03 has no actual yet
    assert out.loc["a", "campaigns"] == 2 and np.isclose(out.loc["a", "mae"], (0.2 + 1.0) / 2)
    assert np.isclose(out.loc["a", "coverage_80"], 0.5) and np.isclose(out.loc["a", "bias"], (-0.2 - 1.0) / 2)
    assert out.loc["b", "mae"] == 0 and out.loc["b", "coverage_80"] == 1


def test_recent_accuracy_and_degradation_limit():
    accuracy = pd.DataFrame(
        {
            "tenant_id": ["a"] * 3,
            "date": pd.to_datetime(["2026-01-01", "2026-01-05", "2026-01-09"]),
            "model_name": ["m"] * 3,
            "model_version": ["1"] * 3,
            "campaigns": [10, 10, 30],
            "mae": [9.0, 0.2, 0.6],
            "coverage_80": [0.0, 0.8, 0.4],
        }
    )
    recent = M.recent_accuracy(accuracy, 7).iloc[0]
    assert recent["days"] == 2 and np.isclose(recent["mae"], (0.2 * 10 + 0.6 * 30) / 40)
    assert M.accuracy_degraded(0.5, 0.2) == (True, "recent MAE 0.500 > limit 0.300")
    assert M.accuracy_degraded(0.5, 0.4)[0] is False  # within 1.5 x its own holdout MAE
    assert M.accuracy_degraded(0.25, None)[0] is False


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shifted_one():
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {
            "x": rng.normal(0, 1, 5000),
            "y": rng.normal(0, 1, 5000),
            "c": rng.choice(["a", "b", "c"], 5000, p=[0.5, 0.3, 0.2]),
        }
    )
    profile = json.loads(
        json.dumps(M.feature_profile(train, ["x", "y", "c"]))
    )  # survives the MLflow JSON artifact
    later = pd.DataFrame(
        {
            "x": rng.normal(0.8, 1, 2000),
            "y": rng.normal(0, 1, 2000),
            "c": rng.choice(["a", "b", "c", "new"], 2000, p=[0.2, 0.3, 0.2, 0.3]),
        }
    )
    drift = M.feature_drift(profile, later).set_index("feature")
    assert drift.loc["y", "psi"] < 0.02 and drift.loc["y", "status"] == "ok"
    assert drift.loc["x", "psi"] > 0.25 and drift.loc["x", "status"] == "fail"
    assert drift.loc["c", "status"] == "fail"  # an unseen category counts as 'other'
    assert M.drift_status(0.15) == "warn"
    # Missing values are a bin of their own: more of them is drift.
    later.loc[: len(later) // 2, "y"] = np.nan
    assert M.feature_drift(profile, later).set_index("feature").loc["y", "status"] == "fail"


def test_calibration_gap_and_ece():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.3, 20_000)
    calibrated = M.calibration(p, rng.random(len(p)) < p)
    assert abs(calibrated["rate_gap"]) < 0.01 and calibrated["ece"] < 0.01
    assert M.calibration_status(calibrated["rate_gap"]) == "ok"
    drifted = M.calibration(p, rng.random(len(p)) < p / 2)  # conversions halved
    assert drifted["rate_gap"] > 0.05 and drifted["ece"] > 0.05
    assert M.calibration_status(drifted["rate_gap"]) == "fail"


def test_feature_summary_describes_numbers_and_categories():
    frame = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0], "c": ["a", "a", "b", None]})
    summary = M.summarize_features(frame, ["x", "c", "absent"]).set_index("feature")
    assert summary.loc["x", "missing"] == 0.25 and summary.loc["x", "p50"] == 2.0
    assert summary.loc["c", "top"] == "a (67%)" and "absent" not in summary.index


def test_profiles_use_the_recent_training_weeks_and_retraining_needs_broad_drift():
    train = pd.DataFrame({"date": pd.date_range("2026-01-01", periods=60, freq="D"), "x": range(60)})
    recent = M.reference_rows(train)
    assert len(recent) == M.PROFILE_DAYS and recent["x"].min() == 60 - M.PROFILE_DAYS
    assert M.drift_needs_retraining(pd.Series(["fail", "fail", "fail", "ok", "ok", "ok", "ok", "ok", "warn"]))
    assert not M.drift_needs_retraining(
        pd.Series(["fail", "fail", "ok", "ok", "ok", "ok", "ok", "ok", "warn"])
    )
    assert not M.drift_needs_retraining(pd.Series([], dtype=object))


@pytest.mark.parametrize(
    "relative_mae, relative_bias, returning",
    [
        # a level shift fading out of a trailing-ROAS forecast: the error peaks, then falls back
        ([0.10, 0.62, 0.58, 0.45, 0.33, 0.26, 0.21], [0.0, 0.6, 0.55, 0.4, 0.3, 0.2, 0.15], True),
        # a shift all campaigns share, hidden in a noisy MAE: the bias shows it fading
        ([0.30, 0.34, 0.33, 0.31, 0.32, 0.30, 0.31], [0.0, 0.35, 0.30, 0.2, 0.12, 0.08, 0.05], True),
        # a plateau with day-to-day noise: not returning
        ([0.10, 0.50, 0.56, 0.48, 0.53, 0.50, 0.55], [0.0, 0.3, 0.35, 0.28, 0.33, 0.3, 0.34], False),
        # still rising: the peak is the latest days
        ([0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6], False),
        # too few days to see a trend
        ([0.60, 0.20], [0.6, 0.2], False),
    ],
)
def test_an_error_returning_toward_its_old_level_is_self_correcting(relative_mae, relative_bias, returning):
    mean_actual = 2.0
    days = pd.DataFrame(
        {
            "date": pd.date_range("2026-06-01", periods=len(relative_mae)),
            "mae": np.array(relative_mae) * mean_actual,
            "bias": np.array(relative_bias) * mean_actual,
            "mean_actual_roas": mean_actual,
        }
    )
    verdict, reason = M.error_returning(days)
    assert verdict is returning, reason
    assert ("down from" in reason) is returning
