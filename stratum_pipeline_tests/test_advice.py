"""Advice that can be checked (#19): fatigue against the true retention, budget recommendations from marginal
returns on the campaign's response curve, the per-tenant target ROAS and the generator's fatigue truth."""

import re

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.demo.generator import retention_level
from stratum_pipeline.ml.fatigue import (
    DEFAULT_CALIBRATION,
    FatigueScorer,
    InputError,
    calibrate,
    retention_score,
)
from stratum_pipeline.ml.response_curves import encode_draws
from stratum_pipeline.ml.roas import budget_recommendation, curve_recommendations, recommendation_arrays
from stratum_pipeline.settings import SettingsError, target_roas_for

SEED_FATIGUE_KEYS = [
    "fatigue_score",
    "fatigue_level",
    "component_scores",
    "days_until_critical",
    "recommendation",
    "suggested_actions",
]
FRAME_COLUMNS = [
    "fatigue_score",
    "fatigue_level",
    "age_score",
    "frequency_score",
    "ctr_decay_score",
    "engagement_decay_score",
    "days_until_critical",
    "recommendation",
    "suggested_actions",
]


def creative(**overrides) -> dict:
    row = {
        "days_active": 30,
        "frequency": 3.0,
        "ctr_current": 0.012,
        "ctr_baseline": 0.012,
        "engagement_rate_current": 0.03,
        "engagement_rate_baseline": 0.03,
        "impressions_7d": 200_000,
    }
    return {**row, **overrides}


def curve_row(
    vmax: float, half_saturation: float, shape: float = 1.0, spread: float = 0.05, seed: int = 0
) -> dict:
    """A fitted campaign_response_curves row whose 64 draws scatter `spread` (log) around the given curve."""
    rng = np.random.default_rng(seed)
    noise = np.exp(rng.normal(0.0, spread, (64, 2)))
    draws = np.column_stack(
        [
            vmax * noise[:, 0],
            half_saturation * noise[:, 1],
            np.full(64, shape),
            np.zeros(64),
            np.full(64, half_saturation),
        ]
    )
    return {"curve_source": "fitted", "draws": encode_draws(draws), "season": "[]", "as_of": "2026-11-24"}


def recommend(curves: list[dict | None], spend, predicted, lower, upper, target=1.0):
    """The marginal rule over the average-ROAS rule's answer for forecasts with these curves."""
    n = len(curves)
    current = recommendation_arrays(
        predicted, lower, upper, [1.0] * n, [1.0] * n, [1.0] * n, ["stable"] * n, target
    )
    frame = pd.DataFrame(
        [c or {"curve_source": "fallback", "draws": None, "season": None, "as_of": None} for c in curves]
    )
    return curve_recommendations(*current, frame, spend, target)


def test_a_saturated_campaign_with_a_high_average_roas_is_not_told_to_increase():
    # revenue = 1000 s / (50 + s): at a spend of 500 the average ROAS is 1.82, the next dollar returns 0.17
    saturated = curve_row(vmax=1000.0, half_saturation=50.0)
    old_change, old_action, _ = recommendation_arrays([1.82], [1.6], [2.0], [1.8], [1.8], [1.0], ["stable"])
    assert old_action[0] == "increase" and old_change[0] == 20  # the average-ROAS rule would add 20%
    change, action, reason = recommend([saturated], [500.0], [1.82], [1.6], [2.0])
    assert action[0] == "decrease" and change[0] == -30
    assert reason[0].startswith("marginal ROAS of the last 30% of today's spend: 0.")
    assert "< target 1.00" in reason[0]


def test_an_unsaturated_campaign_increases_only_while_its_added_spend_beats_the_tenants_target():
    # revenue = 5000 s / (1000 + s): at a spend of 100 the next 20% returns about 4.06, the last 30% 4.25
    open_curve = curve_row(vmax=5000.0, half_saturation=1000.0)
    change, action, reason = recommend([open_curve], [100.0], [4.5], [4.0], [5.0])
    assert (action[0], change[0]) == ("increase", 20)
    assert re.fullmatch(
        r"marginal ROAS of the next 20%: (3\.9\d|4\.0\d) > target 1\.00 \(100% of the curve's draws\)",
        reason[0],
    )
    change, action, reason = recommend([open_curve], [100.0], [4.5], [4.0], [5.0], target=6.0)
    assert action[0] == "decrease" and "< target 6.00" in reason[0]
    change, action, _ = recommend([open_curve], [100.0], [4.5], [4.0], [5.0], target=4.4)  # too close to call
    assert action[0] == "maintain" and change[0] == 0


def test_an_uncertain_curve_keeps_the_budget_and_a_missing_curve_falls_back_and_says_so():
    vague = curve_row(vmax=5000.0, half_saturation=1000.0, spread=1.5)
    change, action, reason = recommend(
        [vague, None], [100.0, 100.0], [4.5, 4.5], [4.0, 4.0], [5.0, 5.0], target=2.5
    )
    assert action[0] == "maintain" and "not clear enough to move" in reason[0]
    assert (action[1], change[1]) == ("increase", 20)  # the average-ROAS rule: lower bound >= 1.5x target
    assert (
        reason[1]
        == "no response curve, average-ROAS rule: the pessimistic forecast is well above the target ROAS"
    )


def test_recommendation_output_shape_is_the_seeds():
    out = budget_recommendation(4.0, 3.0, 5.0, 4.0, 4.0, 1.0, "stable")
    assert list(out) == ["action", "budget_change_percent", "reason"] and out["budget_change_percent"] == 20
    change, action, reason = recommend(
        [curve_row(1000.0, 50.0), None], [500.0, 10.0], [1.8, 0.5], [1.6, 0.3], [2.0, 0.7]
    )
    assert change.dtype.kind == "i" and set(change) <= {-30, -15, 0, 10, 20}
    assert set(action) <= {"increase", "decrease", "maintain"} and all(isinstance(r, str) for r in reason)


def test_target_roas_is_a_per_tenant_setting_with_breakeven_default():
    env = {"STRATUM_TARGET_ROAS": "acme_outdoor=2.5, *=1.5"}
    assert target_roas_for("acme_outdoor", env) == 2.5 and target_roas_for("corner_bakery", env) == 1.5
    assert target_roas_for("acme_outdoor", {}) == 1.0
    for bad in ("acme=0", "acme=-1", "acme=abc", "acme", "=2"):
        with pytest.raises(SettingsError, match="STRATUM_TARGET_ROAS"):
            target_roas_for("acme", {"STRATUM_TARGET_ROAS": bad})


def test_a_fresh_creative_with_a_noisy_low_volume_ctr_dip_is_not_critical():
    scorer = FatigueScorer()
    dip = {"ctr_current": 0.003, "engagement_rate_current": 0.008}  # a 75% dip on a few hundred impressions
    fresh = scorer.calculate_score(creative(days_active=5, frequency=0.3, impressions_7d=400, **dip))
    assert fresh["fatigue_level"] == "low" and fresh["days_until_critical"] > 7
    # the same dip with plenty of clicks on a creative its audience has seen many times is critical
    worn = scorer.calculate_score(creative(days_active=40, frequency=6.0, impressions_7d=500_000, **dip))
    assert worn["fatigue_level"] == "critical" and worn["days_until_critical"] == 0


def test_fatigue_levels_are_bands_on_retention_and_the_forecast_counts_down():
    assert retention_score([1.0, 0.85, 0.7, 0.5, 0.0]).tolist() == [0.0, 50.0, 70.0, 85.0, 100.0]
    scorer = FatigueScorer()
    # retention exp(-0.156 x frequency): frequency 2.5 ~ 0.68 (high), crossing 0.5 at ~4.4
    steady = [
        scorer.calculate_score(
            creative(
                days_active=d,
                frequency=0.1 * d,
                ctr_current=0.012 * np.exp(-0.156 * 0.1 * (d - 4.5)),
                engagement_rate_current=0.03 * np.exp(-1.3 * 0.156 * 0.1 * (d - 4.5)),
            )
        )
        for d in (20, 25, 30)
    ]
    assert [s["fatigue_level"] for s in steady] == ["medium", "high", "high"]
    days = [s["days_until_critical"] for s in steady]
    assert days[0] > days[1] > days[2] > 0


def test_seed_fatigue_output_shape_is_unchanged():
    out = FatigueScorer().calculate_score(
        {"days_in_rotation": 20, "avg_frequency": 3.5, "initial_ctr": 0.02, "current_ctr": 0.012}
    )
    assert list(out) == SEED_FATIGUE_KEYS
    assert list(out["component_scores"]) == ["age", "frequency", "ctr_decay", "engagement_decay"]
    assert out["fatigue_level"] in {"low", "medium", "high", "critical"} and 0 <= out["fatigue_score"] <= 100
    frame = FatigueScorer().score_frame(
        pd.DataFrame([creative(), creative(ctr_current=0.004, engagement_rate_current=0.008)])
    )
    assert list(frame.columns) == FRAME_COLUMNS and len(frame) == 2
    assert frame["fatigue_level"].tolist() == ["low", "critical"]


def test_calibration_refuses_too_little_data_in_one_line():
    with pytest.raises(InputError, match="calibration needs >= 30 creative-days") as err:
        calibrate(pd.DataFrame([creative()]))
    assert "\n" not in str(err.value)


def test_calibration_recovers_the_decay_of_simulated_creatives():
    rng = np.random.default_rng(3)
    n = 400
    rate = 0.2 * np.exp(rng.normal(0, 0.2, n))
    d = rng.integers(10, 60, n).astype(float)
    f = 0.08 * d
    frame = pd.DataFrame(
        creative(
            days_active=d,
            frequency=f,
            impressions_7d=np.full(n, 1e6),
            ctr_current=0.02 * np.exp(-rate * 0.08 * (d - 4.5)),
            ctr_baseline=0.02 * np.exp(-rate * 0.08),
            engagement_rate_current=0.05 * np.exp(-1.5 * rate * 0.08 * (d - 4.5)),
            engagement_rate_baseline=0.05 * np.exp(-1.5 * rate * 0.08),
        )
    )
    cal = calibrate(frame)
    assert cal.rate_mean == pytest.approx(0.2 * np.exp(0.02), rel=0.05)
    assert cal.engagement_ratio == pytest.approx(1.5, rel=0.05)
    assert cal.days_scale == DEFAULT_CALIBRATION.days_scale


def test_generator_fatigue_truth_is_bands_on_true_retention_and_its_first_critical_day(dataset):
    truth = dataset["truth_creative_daily"]
    assert (truth["true_retention_level"] == retention_level(truth["true_ctr_retention"])).all()
    first = truth[truth["true_ctr_retention"] < 0.5].groupby("creative_id")["date"].min()
    recorded = (
        truth.dropna(subset=["true_critical_date"]).groupby("creative_id")["true_critical_date"].first()
    )
    assert len(first) > 0 and recorded.sort_index().equals(first.sort_index())
    never = truth[~truth["creative_id"].isin(first.index)]
    assert never["true_critical_date"].isna().all()
