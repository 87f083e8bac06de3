"""Budget simulator, fatigue scorer and EMQ analyser: outputs, invariants and bad input."""

import hashlib

import pandas as pd
import pytest

from stratum_pipeline.ml.emq import DataQualityAnalyzer
from stratum_pipeline.ml.fatigue import FatigueScorer
from stratum_pipeline.ml.simulator import BudgetSimulator, SimulationInputError

CAMPAIGN = {
    "daily_spend": 1000,
    "roas": 3.0,
    "confidence_lower": 2.5,
    "confidence_upper": 3.5,
    "avg_order_value": 40,
}


def test_simulation_shape_and_diminishing_returns():
    out = BudgetSimulator().simulate(CAMPAIGN, seed=3)
    assert [s["name"] for s in out["scenarios"]] == ["-20%", "+20%", "+50%"]
    base = out["baseline"]
    assert base["spend"] == 30_000 and base["roas"] == pytest.approx(3.0, rel=0.05)
    assert base["confidence_interval"][0] < base["revenue"] < base["confidence_interval"][1]
    down, up, up50 = out["scenarios"]
    assert down["revenue"] < base["revenue"] < up["revenue"] < up50["revenue"]
    assert down["roas"] > base["roas"] > up["roas"] > up50["roas"]  # diminishing returns
    assert up["marginal_roas"] < base["roas"] and up50["marginal_roas"] < up["marginal_roas"]
    assert up["conversions"] == pytest.approx(up["revenue"] / 40, rel=1e-3)


def test_simulation_is_reproducible_for_a_seed_and_custom_scenarios_work():
    sim = BudgetSimulator()
    assert sim.simulate(CAMPAIGN, seed=1) == sim.simulate(CAMPAIGN, seed=1)
    out = sim.simulate(
        CAMPAIGN, scenarios=[{"name": "double", "budget_change": 1.0}], days=7, iterations=200, seed=1
    )
    assert out["scenarios"][0]["name"] == "double" and out["scenarios"][0]["spend"] == 14_000


@pytest.mark.parametrize(
    "campaign,match",
    [
        ({"roas": 3.0}, "daily_spend"),
        ({"daily_spend": -5, "roas": 3.0}, "positive"),
        ({"daily_spend": "lots", "roas": 3.0}, "number"),
    ],
)
def test_simulation_rejects_bad_campaigns(campaign, match):
    with pytest.raises(SimulationInputError, match=match):
        BudgetSimulator().simulate(campaign)
    with pytest.raises(SimulationInputError, match="above -100%"):
        BudgetSimulator().simulate(CAMPAIGN, scenarios=[-1.5])


def test_fatigue_scorer_single_and_frame_agree():
    scorer = FatigueScorer()
    assets = [
        {
            "days_active": 3,
            "frequency": 1.1,
            "ctr_current": 0.02,
            "ctr_baseline": 0.02,
            "engagement_rate_current": 0.05,
            "engagement_rate_baseline": 0.05,
        },
        {
            "days_active": 70,
            "frequency": 9.0,
            "ctr_current": 0.006,
            "ctr_baseline": 0.02,
            "engagement_rate_current": 0.01,
            "engagement_rate_baseline": 0.05,
        },
        {
            "days_active": 30,
            "frequency": None,
            "ctr_current": None,
            "ctr_baseline": None,
            "engagement_rate_current": None,
            "engagement_rate_baseline": None,
        },
    ]
    frame = scorer.score_frame(pd.DataFrame(assets).astype(float))
    for i, asset in enumerate(assets):
        one = scorer.calculate_score(asset)
        assert one["fatigue_score"] == pytest.approx(frame.iloc[i]["fatigue_score"])
        assert one["fatigue_level"] == frame.iloc[i]["fatigue_level"]
    fresh, worn, unknown = (scorer.calculate_score(a) for a in assets)
    assert fresh["fatigue_level"] == "low" and fresh["suggested_actions"] == []
    assert (
        worn["fatigue_level"] == "critical" and worn["days_until_critical"] == 0 and worn["suggested_actions"]
    )
    assert unknown["fatigue_score"] == 0.0 and unknown["fatigue_level"] == "low"  # no exposure, no CTR
    assert unknown["days_until_critical"] is None


def test_emq_scores_keys_and_hashing_per_platform():
    analyzer = DataQualityAnalyzer()
    hashed = hashlib.sha256(b"a@example.com").hexdigest()
    full_meta = {
        "email": hashed,
        "phone": hashlib.sha256(b"+15550000").hexdigest(),
        "fbc": "fb.1.x",
        "fbp": "fb.1.y",
        "external_id": "u1",
        "client_ip_address": "203.0.113.9",
        "client_user_agent": "Mozilla/5.0",
    }
    out = analyzer.analyze(full_meta, "meta")
    assert out["emq_score"] == 10 and out["quality_level"] == "excellent" and out["missing_fields"] == []
    plain = analyzer.analyze({**full_meta, "email": "a@example.com"}, "meta")
    assert plain["emq_score"] == 8.5 and plain["unhashed_fields"] == ["email"]
    assert any("hash email" in r for r in plain["recommendations"])
    google = analyzer.analyze({"gclid": "abc"}, "google")
    assert google["emq_score"] == 3.5 and google["quality_level"] == "poor"
    assert analyzer.analyze({"email": hashed}, "tiktok")["emq_score"] == 3.0  # falls back to Meta's weights
    assert analyzer.analyze({}, "meta")["attribution_accuracy_estimate"] == 0.4


def test_emq_summary_counts_levels_and_missing_fields():
    analyzer = DataQualityAnalyzer()
    events = pd.DataFrame({"platform": ["google"] * 4, "gclid": ["a", "b", None, "c"], "email": [None] * 4})
    summary = analyzer.summarize(events, "google")
    assert summary["events"] == 4 and sum(summary["levels"].values()) == 4
    assert summary["most_missing_fields"]["email"] == 1.0 and "gclid" not in summary["most_missing_fields"]
    scored = analyzer.score_frame(events)
    assert list(scored["emq_score"]) == [3.5, 3.5, 0.0, 3.5]
