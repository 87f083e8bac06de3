"""Event-match quality and the evaluation metrics on small hand-checked inputs (exact values, each threshold).

Written for the mutation benchmark (issue #22): summaries, levels and naive forecasts whose exact numbers the
product shows, pinned so that a changed rounding, cut-off or fallback shows.
"""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.ml.emq import (
    DataQualityAnalyzer,
    attribution_accuracy,
    quality_level,
    seed_level,
    seed_roas_impact,
)
from stratum_pipeline.ml.evaluation import (
    best_naive_roas,
    naive_roas_forecasts,
    point_metrics,
    relative_bias,
    roas_metrics,
)
from stratum_pipeline.ml.fatigue import FatigueScorer, decay_rates, retention_score, with_recent_frequency
from stratum_pipeline.ml.simulator import BudgetSimulator

HASHED = hashlib.sha256(b"a@example.com").hexdigest()


def test_emq_summary_exact():
    events = pd.DataFrame(
        {
            "gclid": ["a", None, None],
            "email": [HASHED, HASHED, None],
            "external_id": ["u", "u", "u"],
            "client_ip_address": ["1.2.3.4", "1.2.3.4", None],
            "client_user_agent": ["ua", None, None],
        }
    )  # google scores: 3.5+3+0.5+0.5+0.5 = 8.0, 3+0.5+0.5 = 4.0, 0.5
    summary = DataQualityAnalyzer().summarize(events, "google")
    assert summary == {
        "events": 3,
        "score_mean": 4.167,
        "score_p10": 1.2,
        "score_p50": 4.0,
        "score_p90": 7.2,
        "levels": {"excellent": 1, "good": 0, "fair": 1, "poor": 1},
        "most_missing_fields": {"phone": 1.0, "gclid": 0.667, "client_user_agent": 0.667},
        "attribution_accuracy_estimate": 0.629,
        "recommendations": [
            "keep the gclid from the landing URL and send it with the conversion (missing in 67% of events)",
            "send the phone number in E.164 form (SHA-256 hashed) (missing in 100% of events)",
            "forward the client user agent from the server request (missing in 67% of events)",
        ],
    }


def test_emq_summary_lists_only_fields_that_are_missing():
    full = {
        "email": HASHED,
        "phone": HASHED,
        "fbc": "fb.1",
        "external_id": "u",
        "client_ip_address": "1.2.3.4",
        "client_user_agent": "ua",
    }
    summary = DataQualityAnalyzer().summarize(pd.DataFrame([full, full]), "meta")
    assert summary["most_missing_fields"] == {"fbp": 1.0}
    assert summary["score_mean"] == 9.0 and summary["levels"]["excellent"] == 2


def test_emq_summary_of_no_events():
    summary = DataQualityAnalyzer().summarize(pd.DataFrame(columns=["gclid", "email"]), "google")
    assert summary["events"] == 0
    assert [
        summary[k]
        for k in ("score_mean", "score_p10", "score_p50", "score_p90", "attribution_accuracy_estimate")
    ] == [None] * 5
    assert summary["levels"] == {"excellent": 0, "good": 0, "fair": 0, "poor": 0}


def test_emq_daily_summaries_one_row_per_platform_and_day():
    d1, d2 = pd.Timestamp("2026-03-01").date(), pd.Timestamp("2026-03-02").date()
    keys = ("email", "phone", "fbc", "fbp", "gclid", "external_id", "client_ip_address", "client_user_agent")

    def event(platform, day, **present):
        return {"platform": platform, "date": day, **{k: present.get(k) for k in keys}}

    but_the_user_agent = dict(
        email=HASHED, phone=HASHED, fbc="f", fbp="p", external_id="u", client_ip_address="ip"
    )
    events = pd.DataFrame(
        [
            # meta, day 1: 10, 3+2+1.5+1+0.75 = 8.25, 3+1 (plain phone)+1.5+1 = 6.5, 1.0
            event("meta", d1, **but_the_user_agent, client_user_agent="ua"),
            event("meta", d1, email=HASHED, phone=HASHED, fbc="f", fbp="p", client_user_agent="ua"),
            event("meta", d1, email=HASHED, phone="+1555", fbc="f", fbp="p"),
            event("meta", d1, fbp="p"),
            # google, day 1: 3.5+3+2+0.5+0.5 = 9.5, only the user agent missing
            event(
                "google", d1, gclid="g", email=HASHED, phone=HASHED, external_id="u", client_ip_address="ip"
            ),
            # meta, day 2: everything but the user agent, 9.25
            event("meta", d2, **but_the_user_agent),
        ]
    )
    rows = DataQualityAnalyzer().daily_summaries("t1", events)
    assert [(r["tenant_id"], r["platform"], r["date"]) for r in rows] == [
        ("t1", "google", d1),
        ("t1", "meta", d1),
        ("t1", "meta", d2),
    ]
    user_agent = "forward the client user agent from the server request"
    google, meta1, meta2 = (
        {k: v for k, v in r.items() if k not in ("tenant_id", "platform", "date")} for r in rows
    )
    for row, score in ((google, 9.5), (meta2, 9.25)):
        assert {k: v for k, v in row.items() if k not in ("most_missing_fields", "recommendations")} == {
            "events": 1,
            "score_mean": score,
            "score_p10": score,
            "score_p50": score,
            "score_p90": score,
            "events_excellent": 1,
            "events_good": 0,
            "events_fair": 0,
            "events_poor": 0,
            "attribution_accuracy_estimate": round(0.4 + 0.055 * score, 3),
        }
        assert json.loads(row["most_missing_fields"]) == {"client_user_agent": 1.0}
        assert json.loads(row["recommendations"]) == [f"{user_agent} (missing in 100% of events)"]
    assert {k: v for k, v in meta1.items() if k not in ("most_missing_fields", "recommendations")} == {
        "events": 4,
        "score_mean": 6.438,  # 25.75 / 4
        "score_p10": 2.65,  # 1 + 0.3 x 5.5
        "score_p50": 7.375,
        "score_p90": 9.475,  # 8.25 + 0.7 x 1.75
        "events_excellent": 2,
        "events_good": 1,
        "events_fair": 0,
        "events_poor": 1,
        "attribution_accuracy_estimate": 0.754,  # 0.4 + 0.055 x 6.4375
    }
    assert json.loads(meta1["most_missing_fields"]) == {
        "external_id": 0.75,
        "client_ip_address": 0.75,
        "client_user_agent": 0.5,
    }
    assert json.loads(meta1["recommendations"]) == [  # by missing share x weight: 0.75, 0.5625, 0.375
        "send your stable customer id as external_id (missing in 75% of events)",
        "forward the client IP address from the server request (missing in 75% of events)",
        f"{user_agent} (missing in 50% of events)",
    ]


def test_emq_score_frame_scores_each_event_by_its_own_platform():
    events = pd.DataFrame(
        {
            "platform": ["META", "Google", "tiktok"],
            "gclid": [None, "g", None],
            "client_ip_address": ["1.2.3.4", None, "1.2.3.4"],
            "email": [None, "plain@x", None],
        },
        index=[10, 11, 12],
    )
    out = DataQualityAnalyzer().score_frame(events)
    assert list(out.index) == [10, 11, 12]
    assert list(out.columns) == ["emq_score", "quality_level", "attribution_accuracy"]
    assert out["emq_score"].tolist() == pytest.approx(
        [0.75, 5.0, 0.75]
    )  # google: gclid 3.5 + a plain email 1.5
    assert out["quality_level"].tolist() == ["poor", "fair", "poor"]
    accuracy = out["attribution_accuracy"].to_numpy()
    assert accuracy == pytest.approx([0.44125, 0.675, 0.44125], abs=6e-5)
    assert np.allclose(accuracy * 1e4, np.round(accuracy * 1e4))  # rounded to 4 decimals


@pytest.mark.parametrize(
    "score, level",
    [
        (0.0, "poor"),
        (3.99, "poor"),
        (4.0, "fair"),
        (5.99, "fair"),
        (6.0, "good"),
        (7.99, "good"),
        (8.0, "excellent"),
        (10.0, "excellent"),
    ],
)
def test_emq_levels_at_the_thresholds(score, level):
    assert str(quality_level(score)) == level


@pytest.mark.parametrize(
    "score, level, impact",
    [
        (0, "poor", "<40% attribution accuracy - significant loss"),
        (39.9, "poor", "<40% attribution accuracy - significant loss"),
        (40, "fair", "~60% attribution accuracy"),
        (59.9, "fair", "~60% attribution accuracy"),
        (60, "good", "~80% attribution accuracy"),
        (79.9, "good", "~80% attribution accuracy"),
        (80, "excellent", "~95% attribution accuracy"),
        (100, "excellent", "~95% attribution accuracy"),
    ],
)
def test_the_seed_levels_and_impact_at_the_thresholds(score, level, impact):
    assert seed_level(score) == level and seed_roas_impact(score) == impact


def test_attribution_accuracy_is_clipped_to_the_score_range():
    assert attribution_accuracy(np.array([-5.0, 0.0, 5.0, 10.0, 20.0])).tolist() == pytest.approx(
        [0.4, 0.4, 0.675, 0.95, 0.95]
    )


# --- evaluation ------------------------------------------------------------------------------------------


def _features(**columns):
    base = {
        "roas": [1.0, 2.0, np.nan],
        "roas_7d": [1.5, np.nan, np.nan],
        "roas_14d": [1.2, 2.2, np.nan],
        "roas_30d": [1.1, 2.1, np.nan],
    }
    base.update(columns)
    return pd.DataFrame(base)


def test_naive_forecasts_fall_back_to_the_longer_window_then_the_median():
    out = naive_roas_forecasts(_features())
    assert list(out) == ["today", "trailing_7d", "trailing_14d", "trailing_30d"]
    assert out["today"].tolist() == pytest.approx(
        [1.0, 2.0, 1.5]
    )  # row 3 has no 30-day ROAS either: the median
    assert out["trailing_7d"].tolist() == pytest.approx([1.5, 2.1, 1.8])
    assert out["trailing_14d"].tolist() == pytest.approx([1.2, 2.2, 1.7])
    assert out["trailing_30d"].tolist() == pytest.approx([1.1, 2.1, 1.6])
    empty = naive_roas_forecasts(_features(roas=[np.nan] * 3, roas_30d=[np.nan] * 3))
    assert empty["today"].tolist() == [1.0, 1.0, 1.0]  # nothing known at all: 1.0
    text = naive_roas_forecasts(_features(roas=["1.0", "x", None], roas_30d=["1.1", "2.1", "n/a"]))
    assert text["today"].tolist() == pytest.approx([1.0, 2.1, 1.55])


def test_the_best_naive_forecast_is_the_one_with_the_lowest_mae():
    actual = [1.2, 2.2, 1.7]
    assert best_naive_roas(actual, _features()) == {"naive": "trailing_14d", "naive_mae": pytest.approx(0.0)}
    out = best_naive_roas([1.0, 2.0, 1.0], _features())
    assert out["naive"] == "today" and out["naive_mae"] == pytest.approx(0.5 / 3)


def test_metrics_exact():
    actual = np.array([1.0, 2.0, 0.2, 4.0])
    forecast = pd.DataFrame(
        {
            "predicted_roas": [1.5, 2.0, 0.4, 3.0],
            "confidence_lower": [1.0, 2.5, 0.0, 2.0],
            "confidence_upper": [2.0, 3.0, 0.2, 3.5],
        }
    )
    m = roas_metrics(actual, forecast)
    errors = np.array([0.5, 0.0, 0.2, -1.0])
    assert m["mae"] == pytest.approx(np.abs(errors).mean()) and m["rmse"] == pytest.approx(
        np.sqrt((errors**2).mean())
    )
    assert m["r2"] == pytest.approx(1 - (errors**2).sum() / ((actual - actual.mean()) ** 2).sum())
    assert m["mape"] == pytest.approx((0.5 / 1 + 0 + 1.0 / 4) / 3)  # the 0.2 day is left out (ROAS < 0.5)
    assert m["bias"] == pytest.approx(6.9 / 7.2 - 1)
    assert m["coverage_80"] == 0.5  # the bounds count as inside (row 1 and row 3)
    assert m["rows"] == 4
    p = point_metrics(actual, forecast["predicted_roas"])
    assert (
        set(p) == {"mae", "rmse", "r2", "mape", "bias", "rows"}
        and p["mae"] == m["mae"]
        and p["r2"] == m["r2"]
    )
    flat = roas_metrics(
        [2.0, 2.0],
        pd.DataFrame(
            {"predicted_roas": [2.0, 2.0], "confidence_lower": [1.0, 1.0], "confidence_upper": [3.0, 3.0]}
        ),
    )
    assert np.isnan(flat["r2"]) and flat["mae"] == 0.0
    small = roas_metrics(
        [0.1, 0.2],
        pd.DataFrame(
            {"predicted_roas": [0.1, 0.2], "confidence_lower": [0.0, 0.0], "confidence_upper": [1.0, 1.0]}
        ),
    )
    assert np.isnan(small["mape"])


def test_relative_bias_limits():
    assert relative_bias([1.0, 3.0], [1.1, 3.3]) == pytest.approx(0.1)
    assert np.isnan(relative_bias([], []))
    assert np.isnan(relative_bias([0.0, 0.0], [1.0, 1.0]))


def test_conversion_metrics_exact_at_the_threshold_and_the_clip():
    from stratum_pipeline.ml.evaluation import conversion_metrics

    y = [0, 1, 1, 0, 1, 0]
    p = [0.0, 1.0, 0.6, 0.6, 0.0, 1.0]  # two confident mistakes: the log loss is clipped at 1e-6
    m = conversion_metrics(y, p, threshold=0.6)
    clipped = np.clip(np.array(p), 1e-6, 1 - 1e-6)
    truth = np.array(y, dtype=float)
    log_loss = -(truth * np.log(clipped) + (1 - truth) * np.log(1 - clipped)).mean()
    assert m["log_loss"] == pytest.approx(log_loss, rel=1e-9)
    assert m["brier"] == pytest.approx(((clipped - truth) ** 2).mean())
    assert m["precision"] == pytest.approx(0.5)  # p >= 0.6 chooses rows 1, 2, 3, 5
    assert m["recall"] == pytest.approx(2 / 3)  # of the converting rows 1, 2, 4
    assert (
        m["auc"] == pytest.approx(0.5) and m["base_rate"] == 0.5 and m["rows"] == 6 and m["threshold"] == 0.6
    )
    # the mean probability (after the clip) beside the base rate: what the gate's calibration check reads
    assert m["mean_probability"] == pytest.approx(clipped.mean(), rel=1e-12)
    assert sorted(m) == [
        "auc",
        "base_rate",
        "brier",
        "log_loss",
        "mean_probability",
        "precision",
        "recall",
        "rows",
        "threshold",
    ]
    none_chosen = conversion_metrics([0, 1], [0.1, 0.2], threshold=0.9)
    assert np.isnan(none_chosen["precision"]) and none_chosen["recall"] == 0.0
    one_class = conversion_metrics([0, 0], [0.1, 0.2], threshold=0.1)
    assert np.isnan(one_class["auc"]) and np.isnan(one_class["recall"]) and one_class["precision"] == 0.0


# --- budget simulator: input limits and the knobs of its uncertainty ----------------------------------------

SIM_CAMPAIGN = {"daily_spend": 100.0, "roas": 2.0}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"campaign": {"roas": 2.0}}, "campaign needs one of: daily_spend, spend"),
        (
            {"campaign": {"daily_spend": 100.0}},
            "campaign needs a usable response_curve (campaign_response_curves) or its roas",
        ),
        ({"scenarios": 0.2}, "scenarios must be a list of budget changes, got float"),
        ({"scenarios": [0.1] * 101}, "101 scenarios is more than the limit of 100"),
        ({"scenarios": [None]}, "a scenario's budget change must be a number (e.g. 0.2 for +20%), got None"),
        (
            {"scenarios": [{"name": "x"}]},
            "a scenario's budget change must be a number (e.g. 0.2 for +20%), got {'name': 'x'}",
        ),
        ({"scenarios": [-1.0]}, "a budget change must be above -100%, got -100%"),
        ({"days": 0}, "days must be a number of at least 1 and at most 366, got 0"),
        ({"days": 367}, "days must be a number of at least 1 and at most 366, got 367"),
        ({"iterations": 9}, "iterations must be a number of at least 10 and at most 100000, got 9"),
        (
            {"iterations": 100_001},
            "iterations must be a number of at least 10 and at most 100000, got 100001",
        ),
        ({"seed": -1}, "seed must be a number of at least 0 and at most 9.22337e+18, got -1"),
        (
            {"iterations": 100_000, "days": 60, "scenarios": [0.1, 0.2, 0.3]},
            "iterations x days x (scenarios + baseline) = 100,000 x 60 x 4 = 24,000,000 is more than the limit of "
            "20,000,000: use fewer iterations, days or scenarios",
        ),
    ],
)
def test_the_simulator_refuses_bad_requests_with_one_line_errors(kwargs, message):
    from stratum_pipeline.ml.simulator import SimulationInputError

    kwargs = dict(kwargs)  # the parameter's own dict is shared by every run of the test (mutmut reruns it)
    campaign = kwargs.pop("campaign", SIM_CAMPAIGN)
    with pytest.raises(SimulationInputError) as caught:
        BudgetSimulator().simulate(campaign, **{"iterations": 10, **kwargs})
    assert str(caught.value) == message


def test_the_simulator_accepts_its_limits_and_names_scenarios():
    out = BudgetSimulator().simulate(
        SIM_CAMPAIGN,
        [-0.999, {"name": "max", "budget_change": 100.0}, {"budget_change": 0.25}],
        days=1,
        iterations=10,
        seed=0,
    )
    assert [s["name"] for s in out["scenarios"]] == ["-100%", "max", "+25%"]
    assert [s["budget_change"] for s in out["scenarios"]] == [-0.999, 100.0, 0.25]
    assert out["days"] == 1 and out["iterations"] == 10
    assert out["scenarios"][1]["spend"] == 100.0 * 101
    assert BudgetSimulator().simulate(
        {"spend": 100.0, "predicted_roas": 2.0}, [], days=366, iterations=10, seed=0
    )


def test_the_uncertainty_inputs_fall_back_and_are_capped():
    sim = BudgetSimulator()
    base = sim.simulate(SIM_CAMPAIGN, [0.5], iterations=300, seed=4)
    # no elasticity (or 0, or not a number) is the default elasticity; an interval that is not one is ignored
    for extra in (
        {"elasticity": 0},
        {"elasticity": None},
        {"elasticity": 0.6},
        {"confidence_lower": 3.0, "confidence_upper": 3.0},
        {"confidence_lower": 3.0, "confidence_upper": 1.0},
        {"confidence_lower": 0, "confidence_upper": 3.0},
        {"avg_order_value": 0},
    ):
        assert sim.simulate({**SIM_CAMPAIGN, **extra}, [0.5], iterations=300, seed=4) == base, extra
    # a 10-90% interval beyond ~2,000x says nothing more: both are capped at the same spread
    huge = sim.simulate(
        {**SIM_CAMPAIGN, "confidence_lower": 1e-3, "confidence_upper": 1e3}, [], iterations=300, seed=4
    )
    huger = sim.simulate(
        {**SIM_CAMPAIGN, "confidence_lower": 1e-4, "confidence_upper": 1e4}, [], iterations=300, seed=4
    )
    assert huge == huger
    assert sim.simulate({**SIM_CAMPAIGN, "elasticity": 0.9}, [0.5], iterations=300, seed=4) != base
    assert base["baseline"]["conversions"] is None
    with_aov = sim.simulate({**SIM_CAMPAIGN, "avg_order_value": 50.0}, [0.5], iterations=300, seed=4)
    assert with_aov["baseline"]["conversions"] == pytest.approx(
        with_aov["baseline"]["revenue"] / 50.0, abs=0.05
    )


def test_the_interval_is_the_5_to_95_percent_range_of_outcomes():
    out = BudgetSimulator().simulate(SIM_CAMPAIGN, [], days=1, iterations=10_000, seed=5)["baseline"]
    low, high = out["confidence_interval"]
    # revenue over one day ~ 200 x lognormal level (sd 0.15) x lognormal noise (sd 0.1): sd ~0.18 in logs
    assert low == pytest.approx(200 * np.exp(-1.645 * 0.18), rel=0.03)
    assert high == pytest.approx(200 * np.exp(1.645 * 0.18), rel=0.03)
    assert out["revenue"] == pytest.approx(200, rel=0.01)


# --- fatigue components, recommendations and actions --------------------------------------------------------


def test_fatigue_components_exact_and_clipped():
    from stratum_pipeline.ml.fatigue import component_scores, relative_decay

    parts = component_scores([30, 120, np.nan], [4.5, 0.5, np.nan], [0.25, -0.1, np.nan], [0.1, 0.9, np.nan])
    assert parts["age"].tolist() == pytest.approx([50.0, 100.0, 0.0])
    assert parts["frequency"].tolist() == pytest.approx([50.0, 0.0, 0.0])
    assert parts["ctr_decay"].tolist() == pytest.approx([50.0, 0.0, 0.0])
    assert parts["engagement_decay"].tolist() == pytest.approx([20.0, 100.0, 0.0])
    assert relative_decay(
        [0.01, 0.03, 0.01, np.nan, -0.01], [0.02, 0.02, 0.0, 0.02, 0.02]
    ).tolist() == pytest.approx([0.5, 0.0, 0.0, 0.0, 1.0])


def test_fatigue_frame_exact():
    row = {
        "days_active": 10,
        "frequency": 4.5,
        "ctr_current": 0.015,
        "ctr_baseline": 0.02,
        "engagement_rate_current": 0.045,
        "engagement_rate_baseline": 0.05,
    }
    worn = {
        "days_active": 40,
        "frequency": 8.0,
        "ctr_current": 0.01,
        "ctr_baseline": 0.02,
        "engagement_rate_current": 0.05,
        "engagement_rate_baseline": 0.05,
    }
    frame = FatigueScorer().score_frame(pd.DataFrame([row, worn], index=[7, 8]))
    assert list(frame.index) == [7, 8]
    assert list(frame.columns) == [
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
    first = frame.loc[7]
    # retention exp(-rate x 4.05) with the posterior decay rate of a 25% CTR and 10% engagement decline
    # over 3.15 units of frequency (prior 0.156 +- 0.0475; no volume given: the model's variance alone)
    inputs = {k: np.array([v], dtype=float) for k, v in row.items()}
    rate, _, before, _ = decay_rates({**inputs, "impressions_7d": np.nan, "frequency_7d_ago": np.nan})
    assert before[0] == pytest.approx(4.05)
    assert first["fatigue_score"] == pytest.approx(
        float(retention_score(np.exp(-rate * before))[0]), abs=0.005
    )
    assert first["fatigue_score"] == 63.24 and first["fatigue_level"] == "medium"
    assert (
        first["age_score"],
        first["frequency_score"],
        first["ctr_decay_score"],
        first["engagement_decay_score"],
    ) == (16.67, 50.0, 50.0, 20.0)
    assert first["days_until_critical"] == 12.0
    assert first["recommendation"] == "monitor: prepare a refreshed variant"
    actions = ["test a new headline and visual", "cap frequency or widen the audience"]
    assert first["suggested_actions"] == actions
    second = frame.loc[8]  # CTR halved but engagement unchanged: the evidence conflicts, retention ~0.77
    assert second["fatigue_level"] == "medium" and second["fatigue_score"] == 63.5
    assert second["suggested_actions"] == actions
    one = FatigueScorer().calculate_score(worn)
    assert one["suggested_actions"] == second["suggested_actions"] and one["days_until_critical"] == 49
    assert one["component_scores"] == {
        "age": 66.67,
        "frequency": 100.0,
        "ctr_decay": 100.0,
        "engagement_decay": 0.0,
    }


def test_fatigue_recommendations_per_level():
    from stratum_pipeline.ml.fatigue import RECOMMENDATIONS

    assert RECOMMENDATIONS == {
        "low": "healthy: keep running",
        "medium": "monitor: prepare a refreshed variant",
        "high": "refresh soon: rotate in new variants this week",
        "critical": "replace now: pause the creative or swap in a fresh one",
    }
    medium = FatigueScorer().calculate_score(
        {
            "days_active": 0,
            "frequency": 8.0,
            "ctr_current": 0.01,
            "ctr_baseline": 0.02,
            "engagement_rate_current": 0.05,
            "engagement_rate_baseline": 0.05,
        }
    )
    # day one: retention read from the pairs, the geometric mean of 0.5 (CTR) and 1 (engagement): 0.71
    assert (
        medium["fatigue_level"] == "medium"
        and medium["recommendation"] == "monitor: prepare a refreshed variant"
    )
    assert medium["days_until_critical"] == 1  # 8 frequency a day: the population's rate crosses 0.5 tomorrow


# --- ROAS trend and budget recommendation at each rule's edge ----------------------------------------------


@pytest.mark.parametrize(
    "recent, longer, trend",
    [
        (1.25, 1.0, "stable"),
        (1.2501, 1.0, "improving"),
        (0.75, 1.0, "stable"),
        (0.7499, 1.0, "declining"),
        (2.0, 0.0, "stable"),
        (2.0, float("nan"), "stable"),
        (float("nan"), 1.0, "stable"),
        ("x", 1.0, "stable"),
    ],
)
def test_the_trend_at_its_tolerance(recent, longer, trend):
    from stratum_pipeline.ml.roas import roas_trend

    assert roas_trend(recent, longer, tolerance=0.25) == trend


def test_the_trend_of_a_column_of_text():
    from stratum_pipeline.ml.roas import trend_array

    out = trend_array(pd.Series(["1.3", "x", "0.5"]), pd.Series(["1.0", "1.0", "1.0"]))
    assert out.tolist() == ["improving", "stable", "declining"]
    assert trend_array([1.04, 1.06], [1.0, 1.0]).tolist() == ["stable", "improving"]  # the default 5%


@pytest.mark.parametrize(
    "predicted, lower, upper, r7, r30, velocity, trend, change, action, reason",
    [
        (
            0.8,
            0.5,
            0.99,
            1,
            1,
            1,
            "stable",
            -30,
            "decrease",
            "even the optimistic forecast is below the target ROAS",
        ),
        (0.99, 0.5, 1.0, 1, 1, 1, "stable", -15, "decrease", "the forecast is below the target ROAS"),
        (1.0, 0.5, 1.5, 1, 1, 1, "stable", 0, "maintain", "the forecast interval straddles the target ROAS"),
        (
            2.0,
            1.6,
            2.5,
            1.9,
            2.0,
            1.21,
            "stable",
            0,
            "maintain",
            "spend rose while ROAS fell: marginal returns are diminishing",
        ),
        (
            2.0,
            1.5,
            2.5,
            1.9,
            2.0,
            1.2,
            "stable",
            20,
            "increase",
            "the pessimistic forecast is well above the target ROAS",
        ),
        (
            2.0,
            1.5,
            2.5,
            2.0,
            2.0,
            1.5,
            "improving",
            20,
            "increase",
            "the pessimistic forecast is well above the target ROAS",
        ),
        (
            2.0,
            1.5,
            2.5,
            1,
            1,
            1,
            "declining",
            10,
            "increase",
            "the pessimistic forecast is well above the target ROAS, but ROAS is declining",
        ),
        (
            1.3,
            1.0,
            1.6,
            1,
            1,
            1,
            "improving",
            10,
            "increase",
            "the forecast is above target with an improving trend",
        ),
        (1.3, 1.49, 1.6, 1, 1, 1, "stable", 0, "maintain", "the forecast is above target"),
        (
            1.3,
            0.99,
            1.6,
            1,
            1,
            1,
            "improving",
            0,
            "maintain",
            "the forecast interval straddles the target ROAS",
        ),
    ],
)
def test_each_budget_rule_at_its_edge(
    predicted, lower, upper, r7, r30, velocity, trend, change, action, reason
):
    from stratum_pipeline.ml.roas import budget_recommendation

    out = budget_recommendation(predicted, lower, upper, r7, r30, velocity, trend)
    assert out == {"action": action, "budget_change_percent": change, "reason": reason}
    assert type(out["budget_change_percent"]) is int


def test_the_target_roas_moves_every_rule():
    from stratum_pipeline.ml.roas import budget_recommendation

    assert (
        budget_recommendation(2.5, 2.1, 2.9, 1, 1, 1, "stable", target_roas=3.0)["budget_change_percent"]
        == -30
    )
    assert (
        budget_recommendation(4.6, 4.5, 5.0, 1, 1, 1, "stable", target_roas=3.0)["budget_change_percent"]
        == 20
    )


def test_the_recommendation_sentence():
    from stratum_pipeline.ml.roas import recommendation_sentence

    assert recommendation_sentence({"budget_change_percent": 20}) == "Increase budget by 20%"
    assert recommendation_sentence({"budget_change_percent": -15}) == "Decrease budget by 15%"
    assert recommendation_sentence({"budget_change_percent": 0}) == "Maintain current budget"
    assert recommendation_sentence({"budget_change_percent": "10"}) == "Increase budget by 10%"


# --- the conversion model's operating threshold -------------------------------------------------------------


def test_the_operating_threshold_is_the_lowest_that_keeps_the_precision():
    from stratum_pipeline.ml.conversion import operating_threshold

    p = [0.6, 0.8, 0.9, 0.8, 0.7]
    y = [0, 0, 1, 1, 1]  # by p: 0.9 hit, 0.8 hit + miss, 0.7 hit, 0.6 miss
    assert operating_threshold(p, y, precision=0.6, min_flagged=2) == 0.6  # 3 of 5 is exactly 0.6
    assert operating_threshold(p, y, precision=0.61, min_flagged=2) == 0.7  # 3 of 4
    assert operating_threshold(p, y, precision=1.0, min_flagged=1) == 0.9  # a tie at 0.8 is flagged whole
    assert operating_threshold(p, y, precision=1.0, min_flagged=2) == 1.0  # nothing qualifies: flag nothing
    assert operating_threshold(p, y, precision=0.6, min_flagged=6) == 1.0
    # only the last session of a tied value is a threshold: 0.8 flags both 0.8 sessions, one of which is a miss
    assert operating_threshold([0.9, 0.8, 0.8], [1, 1, 0], precision=1.0, min_flagged=1) == 0.9


def test_days_until_critical_with_unknown_or_short_histories():
    from stratum_pipeline.ml.fatigue import days_until_critical

    assert days_until_critical(42.5, float("nan")).tolist() == 1.0  # an unknown age counts as one day
    assert days_until_critical(42.5, 1).tolist() == 1.0
    assert days_until_critical(42.5, 0).tolist() == 1.0
    assert days_until_critical(5.0, 10).tolist() == 160.0  # half a point a day
    scorer = FatigueScorer()
    # no CTR: the population's decay at its frequency (0.8 before today: retention 0.88), 0.2 frequency a day
    fresh = scorer.calculate_score({"days_active": 5, "frequency": 1.0})
    assert fresh["fatigue_score"] == 39.11 and fresh["fatigue_level"] == "low"
    assert fresh["days_until_critical"] == 17  # 0.89 x (ln 2 / 0.156 - 0.8) / 0.2 = 16.2
    nothing = scorer.calculate_score({"days_active": 0})
    assert nothing["fatigue_score"] == 0.0 and nothing["days_until_critical"] is None  # no exposure


def test_the_seed_trend_names_stand_in_for_missing_rates():
    scorer = FatigueScorer()
    out = scorer.calculate_score(
        {"days_in_rotation": 0, "avg_frequency": 1.0, "ctr_trend_30d": -0.25, "engagement_decay_rate": 0.1}
    )
    assert (
        out["component_scores"]["ctr_decay"] == 50.0 and out["component_scores"]["engagement_decay"] == 20.0
    )
    # day one: retention from the trends, the geometric mean of 0.75 and 0.9^(1/1.293)
    retention = np.exp((np.log(0.75) + np.log(0.9) / 1.293) / 2)
    assert out["fatigue_score"] == pytest.approx(float(retention_score(retention)), abs=0.005)


def test_the_trend_compares_with_the_30_day_level():
    from stratum_pipeline.ml.roas import roas_trend

    assert roas_trend(2.0, 2.0) == "stable"
    assert roas_trend(2.2, 2.0) == "improving" and roas_trend(1.8, 2.0) == "declining"
    assert roas_trend(2.09, 2.0) == "stable"  # within the default 5%


def test_budget_rules_against_another_target_and_exactly_at_it():
    from stratum_pipeline.ml.roas import budget_recommendation, recommendation_sentence

    assert budget_recommendation(3.5, 3.2, 4.0, 1, 1, 1, "stable", target_roas=3.0) == {
        "action": "maintain",
        "budget_change_percent": 0,
        "reason": "the forecast is above target",
    }
    assert (
        budget_recommendation(3.5, 3.2, 4.0, 1, 1, 1, "declining", target_roas=3.0)["budget_change_percent"]
        == 0
    )
    assert budget_recommendation(1.3, 1.0, 1.6, 1, 1, 1, "stable")["reason"] == "the forecast is above target"
    assert recommendation_sentence({"budget_change_percent": 1}) == "Increase budget by 1%"
    assert recommendation_sentence({"budget_change_percent": -1}) == "Decrease budget by 1%"


def test_emq_analyze_word_for_word_on_both_scales():
    analyzer = DataQualityAnalyzer()
    # Meta: a plain email counts half, click_id is fbc, a huge integer id is text; the platform is read in any case
    meta = analyzer.analyze(
        {
            "email": "A@x.com ",
            "ip_address": "1.2.3.4",
            "click_id": "fb.1",
            "external_id": 12345678901234567890123,
        },
        "META",
    )
    assert meta == {
        "score": 70.0,
        "level": "good",
        "missing_fields": ["phone", "user_agent"],
        "roas_impact_estimate": "~80% attribution accuracy",
        "recommendations": [
            "send the phone number in E.164 form (SHA-256 hashed)",
            "forward the client user agent from the server request",
            "send the _fbp browser id",
            "hash email with SHA-256 before sending",
        ],
        "platform": "meta",
        "emq_score": 4.75,
        "quality_level": "fair",
        "present_fields": ["email", "fbc", "external_id", "client_ip_address"],
        "capi_missing_fields": ["phone", "fbp", "client_user_agent"],
        "unhashed_fields": ["email"],
        "attribution_accuracy_estimate": 0.661,
    }
    google = analyzer.analyze({"email": HASHED, "gclid": "g", "user_agent": "ua", "phone": ""}, "google")
    assert google == {
        "score": 60.0,
        "level": "good",
        "missing_fields": ["phone", "ip_address", "external_id"],
        "roas_impact_estimate": "~80% attribution accuracy",
        "recommendations": [
            "send the phone number in E.164 form (SHA-256 hashed)",
            "forward the client IP address from the server request",
            "send your stable customer id as external_id",
        ],
        "platform": "google",
        "emq_score": 7.0,
        "quality_level": "good",
        "present_fields": ["gclid", "email", "client_user_agent"],
        "capi_missing_fields": ["phone", "external_id", "client_ip_address"],
        "unhashed_fields": [],
        "attribution_accuracy_estimate": 0.785,
    }


def test_emq_refuses_oversized_keys_and_non_mappings():
    from stratum_pipeline.ml.inputs import InputError

    analyzer = DataQualityAnalyzer()
    assert analyzer.analyze({"external_id": "x" * 4096}, "meta")["emq_score"] == 1.0  # at the limit: fine
    with pytest.raises(InputError) as caught:
        analyzer.analyze({"external_id": "x" * 4097}, "meta")
    assert str(caught.value) == "external_id is 4,097 characters long, more than the limit of 4,096"
    with pytest.raises(TypeError, match="^event must be a dict, got list$"):
        analyzer.analyze(["email"], "meta")


def test_emq_batch_limit_is_inclusive(monkeypatch):
    from stratum_pipeline.ml import emq
    from stratum_pipeline.ml.inputs import InputError

    monkeypatch.setattr(emq, "MAX_EVENTS", 3)
    events = pd.DataFrame({"email": [HASHED, None, "plain@x", None]})
    assert DataQualityAnalyzer().field_credit(events.iloc[:3], "meta")["email"].tolist() == [3.0, 0.0, 1.5]
    with pytest.raises(InputError) as caught:
        DataQualityAnalyzer().field_credit(events, "meta")
    assert str(caught.value) == "4 events is more than the limit of 3 per batch: score them in parts"


@pytest.mark.parametrize("platform", ["meta", "google"])
def test_emq_a_plain_phone_counts_half_and_is_named_unhashed(platform):
    out = DataQualityAnalyzer().analyze({"phone": "+15550000"}, platform)
    assert out["emq_score"] == 1.0  # half of the phone's 2.0 on both platforms
    assert out["unhashed_fields"] == ["phone"]
    assert out["recommendations"][-1] == "hash phone with SHA-256 before sending"


def test_emq_numbers_are_read_as_their_digits():
    """An id too large for a float is still an id; a 64-digit number is valid SHA-256 hex; the seed's score is
    a float with one decimal, as the seed rounds it."""
    event = {"external_id": 10**400, "phone": int("1" * 64), "client_ip_address": 10**400}
    out = DataQualityAnalyzer().analyze(event, "meta")
    assert out["present_fields"] == ["phone", "external_id", "client_ip_address"]
    assert out["missing_fields"] == [
        "email",
        "click_id",
        "user_agent",
    ]  # ip_address: the other spelling counts
    assert out["unhashed_fields"] == [] and out["emq_score"] == 3.75
    assert out["score"] == 45.0 and isinstance(out["score"], float)
    full = {
        "email": HASHED,
        "phone": HASHED,
        "click_id": "c",
        "ip_address": "i",
        "user_agent": "u",
        "external_id": 7,
    }
    score = DataQualityAnalyzer().analyze(full, "meta")["score"]
    assert score == 100.0 and isinstance(score, float)


@pytest.mark.parametrize(
    "seed, capi", [("ip_address", "client_ip_address"), ("user_agent", "client_user_agent")]
)
def test_emq_a_blank_spelling_does_not_hide_the_other(seed, capi):
    for event in ({capi: "value", seed: ""}, {seed: "value", capi: " "}):
        out = DataQualityAnalyzer().analyze(event, "meta")
        assert seed not in out["missing_fields"] and capi in out["present_fields"], event


def test_emq_seed_level_below_the_scale_is_poor():
    assert seed_level(-0.1) == "poor" and seed_level(float("nan")) == "poor"


def test_top_factors_are_the_largest_contributions_in_order_with_their_inputs():
    """The session model's factors: per row the `top` signals by |impact| (TreeSHAP, summed per signal), each
    with the raw input value (None where missing), its impact to 4 digits and its direction by sign."""
    from .small_models import conversion_predictor

    model = conversion_predictor()
    rows = pd.DataFrame(
        {
            **{name: [1.0, 9.0, 5.0] for name in model.feature_names[:6]},
            "device_type": ["desktop", "mobile", "mobile"],
            "traffic_source": ["search", "social", "search"],
            "user_segment": ["new", "returning", "new"],
        }
    )
    rows.loc[2, "cart_value"] = np.nan
    contributions = model.contributions(rows)
    factors = model.top_factors(rows, top=4)
    assert [len(f) for f in factors] == [4, 4, 4]
    for i, row_factors in enumerate(factors):
        expected = contributions.drop(columns="bias").iloc[i]
        ranked = expected.abs().sort_values(ascending=False, kind="stable")
        assert [f["feature"] for f in row_factors] == list(ranked.index[:4])
        for factor in row_factors:
            impact = expected[factor["feature"]]
            assert factor["impact"] == round(float(impact), 4)
            assert factor["direction"] == ("increases" if impact > 0 else "decreases")
            raw = rows.loc[i, factor["feature"]]
            assert factor["value"] == (None if pd.isna(raw) else raw)
    assert model.top_factors(rows.iloc[:0]) == []
    assert model.top_factors(rows) == [f[:3] for f in factors]  # three by default
    # every signal: the categorical ones the trees never split on contribute exactly 0, which increases nothing
    every = model.top_factors(rows, top=len(model.feature_names))
    zero = [f for row in every for f in row if f["impact"] == 0]
    assert zero and all(f["direction"] == "decreases" for f in zero)
    assert all(
        f["direction"] == ("increases" if f["impact"] > 0 else "decreases") for row in every for f in row
    )
    # the single-session call names the same factors as the frame call
    one = model.predict({k: (None if pd.isna(v) else v) for k, v in rows.iloc[2].items()}, top=4)
    assert one["top_factors"] == factors[2]
    assert factors[0][0]["feature"] == "pages_viewed"  # the only signal the synthetic target depends on


def test_the_frequency_seven_days_earlier_is_the_same_creatives():
    days = pd.date_range("2026-03-01", periods=9)
    features = pd.DataFrame(
        {
            "creative_id": ["a"] * 9 + ["b"] * 2,
            "date": [*days.date, days[7].date(), days[8].date()],  # plain dates, as the warehouse gives them
            "frequency": [*np.arange(1.0, 10.0), 50.0, 60.0],
        },
        index=range(200, 211),
    )
    out = with_recent_frequency(features)
    assert out.index.equals(features.index) and list(out.columns) == [*features.columns, "frequency_7d_ago"]
    assert out["frequency"].equals(features["frequency"])
    ago = out["frequency_7d_ago"].tolist()
    assert np.isnan(ago[:7]).all() and ago[7:9] == [1.0, 2.0]  # days 7 and 8 of "a": its days 0 and 1
    assert np.isnan(ago[9:]).all()  # "b" has no rows a week before: not "a"'s
    # a repeated row of one creative and day: the first one's frequency
    twice = pd.concat([features.iloc[[0]].assign(frequency=99.0), features]).reset_index(drop=True)
    assert with_recent_frequency(twice)["frequency_7d_ago"].iloc[8] == 99.0
    from stratum_pipeline.ml.inputs import InputError

    with pytest.raises(InputError, match="^creative features is missing columns: frequency$"):
        with_recent_frequency(features.drop(columns="frequency"))


# --- fatigue calibration on creatives whose decay is known exactly ---------------------------------------------


def _calibration_frame(n_falling: int = 40) -> tuple[pd.DataFrame, np.ndarray]:
    """Creatives with steady delivery (0.1 frequency a day, so 0.1 x (days - 5) frequency gained between the
    baseline days and the 7-day window) whose CTR fell by exactly exp(-rate x gained): `n_falling` of them
    with rates 0.10-0.30 and engagement ratios 1.00, 1.01, ...; then rows the calibration must leave out or
    keep at its edges. Returns the frame and each row's true rate (NaN where it is left out)."""
    rows, rates = [], []

    def add(days, rate, k, impressions=1e6, ctr_current=None, engagement_change=None, counted=True):
        gained = 0.1 * (days - 5)
        ctr_baseline = 0.02 if ctr_current is None else ctr_current * np.exp(rate * gained)
        rows.append(
            {
                "creative_id": f"c{len(rows)}",
                "days_active": days,
                "frequency": 0.1 * days,
                "ctr_current": ctr_baseline * np.exp(-rate * gained) if ctr_current is None else ctr_current,
                "ctr_baseline": ctr_baseline,
                "engagement_rate_current": 0.05
                * (np.exp(-k * rate * gained) if engagement_change is None else engagement_change),
                "engagement_rate_baseline": 0.05,
                "impressions_7d": impressions,
            }
        )
        rates.append(rate if counted else np.nan)

    for i in range(n_falling):
        add(20 + i, 0.1 + 0.005 * i, 1.0 + 0.01 * i)
    for i in range(5):  # busy but not falling by 10% (rate x gained < 0.105): counted in the rates only
        add(20 + i, 0.02, 5.0)
    add(30, 0.2, 9.0, engagement_change=1.0)  # engagement unchanged: not a decline to take a ratio of
    add(30, 0.6, 1.0, impressions=51_200, ctr_current=2**-8)  # exactly 200 clicks in 7 days: counted
    add(30, 0.9, 1.0, impressions=51_199, ctr_current=2**-8)  # 199.996 clicks: left out
    add(10, 0.9, 1.0, counted=False)  # 0.5 frequency gained: too little exposure, left out
    rates[-2] = np.nan
    return pd.DataFrame(rows), np.array(rates)


def test_calibration_takes_the_mean_rate_its_spread_net_of_noise_and_the_median_engagement_ratio():
    from stratum_pipeline.ml.fatigue import DEFAULT_CALIBRATION, MODEL_VARIANCE, calibrate

    frame, rates = _calibration_frame()
    counted = np.isfinite(rates)
    cal = calibrate(frame)
    assert cal.rate_mean == pytest.approx(np.mean(rates[counted]), rel=1e-9)
    # the binomial noise of each counted rate: 1/clicks now + (7/3)/clicks at launch, plus the model's, / gained^2
    f = frame[counted]
    gained = 0.1 * (f["days_active"] - 5)
    clicks_now = f["ctr_current"] * f["impressions_7d"]
    clicks_then = 3 * f["ctr_baseline"] * f["impressions_7d"] / 7
    noise = np.mean((1 / clicks_now + 1 / clicks_then + MODEL_VARIANCE) / gained**2)
    assert cal.rate_sd == pytest.approx(np.sqrt(np.var(rates[counted]) - noise), rel=1e-6)
    # the median of the 41 falling creatives' ratios: 1.00-1.39 and the 200-click row's 1.00 (the unchanged
    # engagement and the slow ones left out)
    assert cal.engagement_ratio == pytest.approx(1.19, rel=1e-9)
    assert cal.days_scale == DEFAULT_CALIBRATION.days_scale
    # a stricter click minimum leaves out the 200-click row
    strict = calibrate(frame, min_clicks=201)
    assert strict.rate_mean == pytest.approx(np.mean(np.delete(rates[counted], -1)), rel=1e-9)
    # equal rates: their spread is floored at 5% of the mean
    same, _ = _calibration_frame()
    gained = 0.1 * (same["days_active"] - 5)
    same["ctr_current"] = same["ctr_baseline"] * np.exp(-0.2 * gained)
    floored = calibrate(same)
    assert floored.rate_mean == pytest.approx(0.2, rel=1e-9)
    assert floored.rate_sd == pytest.approx(0.05 * 0.2, rel=1e-9)


def test_calibration_needs_thirty_busy_and_thirty_falling_creatives():
    from stratum_pipeline.ml.fatigue import DEFAULT_CALIBRATION, InputError, calibrate

    frame, _ = _calibration_frame(n_falling=29)  # + the 200-click row: 30 falling, their median
    assert calibrate(frame).engagement_ratio == pytest.approx(1.135, rel=1e-9)
    frame, _ = _calibration_frame(n_falling=28)
    assert calibrate(frame).engagement_ratio == DEFAULT_CALIBRATION.engagement_ratio  # 29: the default's
    frame, _ = _calibration_frame(n_falling=23)  # 23 + 5 slow + 1 unchanged + the 200-click row = 30 busy
    assert calibrate(frame).rate_mean > 0
    frame, _ = _calibration_frame(n_falling=22)
    with pytest.raises(InputError) as caught:
        calibrate(frame)
    assert str(caught.value) == (
        "calibration needs >= 30 creative-days with 200+ clicks in 7 days and some exposure, got 29"
    )


def test_calibration_fits_the_days_scale_to_the_known_crossing_days():
    from stratum_pipeline.ml.fatigue import FatigueCalibration, InputError, _forecast, calibrate, model_inputs

    frame, _ = _calibration_frame()
    frame = pd.concat([frame, frame.iloc[:15]], ignore_index=True)  # more creatives not yet critical
    cal = calibrate(frame)
    retention, raw = _forecast(
        model_inputs(frame), FatigueCalibration(cal.rate_mean, cal.rate_sd, cal.engagement_ratio, 1.0)
    )
    usable = np.isfinite(raw) & (retention >= 0.5)  # a known crossing day counts only before the crossing
    assert usable.sum() == 39
    for scale, best in ((0.8, 0.8), (1.23, 1.23), (2.0, 1.5)):  # the grid is 0.50-1.50
        truth = np.ceil(scale * raw)
        fitted = calibrate(frame, true_days=truth)
        assert fitted.days_scale == best
        assert (fitted.rate_mean, fitted.rate_sd, fitted.engagement_ratio) == (
            cal.rate_mean,
            cal.rate_sd,
            cal.engagement_ratio,
        )
    truth = np.ceil(0.8 * raw)
    truth[np.flatnonzero(usable)[30:]] = np.nan  # 30 known crossing days before their crossing: enough
    assert calibrate(frame, true_days=truth).days_scale == 0.8
    truth[np.flatnonzero(usable)[29:]] = np.nan  # 29: too few
    with pytest.raises(InputError) as caught:
        calibrate(frame, true_days=truth)
    assert str(caught.value) == "calibration needs >= 30 creative-days with a known crossing day, got 29"


def test_calibration_edges_exactly_ten_percent_down_and_exactly_at_the_critical_retention():
    from stratum_pipeline.ml.fatigue import (
        DEFAULT_CALIBRATION,
        FatigueCalibration,
        _forecast,
        calibrate,
        model_inputs,
    )

    # a CTR down by exactly 10% (0.025 -> 0.9 x 0.025: the ratio is 0.9 to the last bit) is not "fell by more than
    # 10%": with 29 falling creatives besides it the engagement ratio stays the default's
    frame, _ = _calibration_frame(n_falling=28)  # 28 + the 200-click row = 29 falling
    edge = dict(frame.iloc[0])
    edge.update(creative_id="edge", ctr_current=0.9 * 0.025, ctr_baseline=0.025, engagement_rate_current=0.04)
    assert np.log(0.9 * 0.025 / 0.025) == np.log(0.9)
    with_edge = pd.concat([frame, pd.DataFrame([edge])], ignore_index=True)
    assert calibrate(with_edge).engagement_ratio == DEFAULT_CALIBRATION.engagement_ratio
    edge.update(ctr_current=0.0224)  # just more than 10%: the 30th falling creative, so the median is taken
    assert calibrate(
        pd.concat([frame, pd.DataFrame([edge])], ignore_index=True)
    ).engagement_ratio != pytest.approx(DEFAULT_CALIBRATION.engagement_ratio)

    # a creative at exactly 0.5 retention has not crossed yet: its known crossing day counts (29 + it = 30)
    frame, _ = _calibration_frame()
    frame = pd.concat([frame, frame.iloc[:15]], ignore_index=True)
    at_edge = {  # no frequency gained yet (3 days old): retention read from the CTR pair, 0.01 / 0.02
        "creative_id": "half",
        "days_active": 3,
        "frequency": 0.3,
        "ctr_current": 0.01,
        "ctr_baseline": 0.02,
        "engagement_rate_current": np.nan,
        "engagement_rate_baseline": np.nan,
        "impressions_7d": 1e6,
    }
    frame = pd.concat([frame, pd.DataFrame([at_edge])], ignore_index=True)
    cal = calibrate(frame)
    retention, raw = _forecast(
        model_inputs(frame), FatigueCalibration(cal.rate_mean, cal.rate_sd, cal.engagement_ratio, 1.0)
    )
    assert retention[-1] == 0.5 and np.isfinite(raw[-1])
    usable = np.flatnonzero(np.isfinite(raw) & (retention > 0.5))
    truth = np.full(len(frame), np.nan)
    truth[usable[:29]] = np.ceil(0.8 * raw[usable[:29]])
    truth[-1] = np.ceil(0.8 * raw[-1])
    assert calibrate(frame, true_days=truth).days_scale == 0.8


def test_a_list_of_mixed_values_reads_as_the_same_series_would():
    from stratum_pipeline.ml.roas import trend_array

    # numpy would make [True, "x", 2.5] an array of text ("True" is not a number); read value by value instead
    values = [True, "x", 2.5]
    as_list = trend_array(values, [0.5, 1.0, 2.0])
    as_series = trend_array(pd.Series(values, dtype=object), pd.Series([0.5, 1.0, 2.0]))
    assert as_list.tolist() == as_series.tolist() == ["improving", "stable", "improving"]


def _fatigue_x(**values) -> dict:
    """Arrays of the scorer's inputs (NaN where not given), one creative per position."""
    from stratum_pipeline.ml.fatigue import FEATURES, OPTIONAL

    names = (*FEATURES, *OPTIONAL)
    n = max(len(np.atleast_1d(v)) for v in values.values())
    return {k: np.broadcast_to(np.asarray(values.get(k, np.nan), dtype=float), (n,)).copy() for k in names}


def test_retention_read_from_the_pairs_when_there_is_no_exposure_to_model():
    from stratum_pipeline.ml.fatigue import DEFAULT_CALIBRATION, retention_forecast

    # no frequency: retention is read from the CTR pair and the engagement pair (geometric mean of those known)
    x = _fatigue_x(
        days_active=30,
        ctr_current=[0.5, 0.0, 1.2, 0.81, 0.5, 0.5],
        ctr_baseline=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        engagement_rate_current=[np.nan, np.nan, 0.64, 1.0, 0.5, 0.25],
        engagement_rate_baseline=[np.nan, np.nan, 1.0, 1.0, 0.0, 1.0],
    )
    retention, days = retention_forecast(x)
    ratio = DEFAULT_CALIBRATION.engagement_ratio
    assert retention[0] == 0.5  # exactly at the critical band: not below it, so no "0 days"
    assert np.isnan(days[0])  # no frequency: no forecast
    assert retention[1] == pytest.approx(1e-6)  # a CTR that fell to 0 is a floor of 1e-6, not "unknown"
    assert days[1] == 0.0  # below the critical band: 0 days until critical
    # a CTR that rose counts as no decline (1.0), not as more than 1
    assert retention[2] == pytest.approx(np.exp((0.0 + np.log(0.64) / ratio) / 2))
    assert retention[3] == pytest.approx(0.9)  # sqrt(0.81 x 1.0)
    assert retention[4] == 0.5  # an engagement pair with a zero baseline is unknown, not a decline
    assert retention[5] == pytest.approx(np.exp((np.log(0.5) + np.log(0.25) / ratio) / 2))


def test_the_forecast_uses_the_scorer_s_calibration_and_its_horizon_limit():
    from stratum_pipeline.ml.fatigue import (
        DEFAULT_CALIBRATION,
        FatigueCalibration,
        _forecast,
        decay_rates,
        retention_forecast,
    )

    # a creative with steady delivery and no change in its CTR: the prior's rate decides its retention
    x = _fatigue_x(
        days_active=20,
        frequency=2.0,
        ctr_current=0.02,
        ctr_baseline=0.02,
        engagement_rate_current=0.05,
        engagement_rate_baseline=0.05,
        impressions_7d=1e3,
    )
    faster = FatigueCalibration(0.4, DEFAULT_CALIBRATION.rate_sd, 1.0, 1.0)
    default_retention, default_days = retention_forecast(x)
    fast_retention, fast_days = retention_forecast(x, faster)
    assert fast_retention[0] < default_retention[0] and fast_days[0] < default_days[0]
    scored = FatigueScorer(faster).score_frame(pd.DataFrame({k: v for k, v in x.items()}))
    assert (
        scored["fatigue_score"].iloc[0]
        > FatigueScorer().score_frame(pd.DataFrame(x))["fatigue_score"].iloc[0]
    )
    # evidence from less than one unit of frequency gained still moves the rate (a scale of 0.8 is evidence)
    fell = _fatigue_x(
        days_active=13,
        frequency=1.3,  # 0.1 a day: 0.1 x (13 - 2 - 3) = 0.8 gained since the baseline days
        ctr_current=[0.02, 0.01],
        ctr_baseline=0.02,
        impressions_7d=1e6,
    )
    rate = decay_rates(fell)[0]
    assert rate[1] > rate[0] + 0.1
    # days until critical: 365 is a forecast, beyond it none
    steady = _fatigue_x(days_active=20, frequency=2.0, ctr_current=0.02, ctr_baseline=0.02)
    raw = _forecast(steady, FatigueCalibration(0.01, 1e-6, 1.0, 1.0))[1][0]  # unscaled days
    for days, expected in ((364.5, 365.0), (365.5, np.nan)):
        got = retention_forecast(steady, FatigueCalibration(0.01, 1e-6, 1.0, days / raw))[1][0]
        assert got == pytest.approx(expected, nan_ok=True), days


def test_a_creative_exactly_at_the_critical_retention_is_due_today_and_an_infinite_frequency_is_unknown():
    from stratum_pipeline.ml.fatigue import FatigueCalibration, retention_forecast

    # steady delivery, 8 days, frequency 8: 7 before today at 1 a day; the prior's rate ln 2 / 7 alone (no CTR
    # pair) puts retention at exactly 0.5 today: 0 days until critical, not 1
    at_edge = _fatigue_x(days_active=8, frequency=8.0)
    retention, days = retention_forecast(at_edge, FatigueCalibration(np.log(2.0) / 7, 0.01, 1.0, 1.0))
    assert retention[0] == 0.5
    assert days[0] == 0.0
    # an infinite frequency is no frequency: retention from the CTR pair and no forecast (not "0 days")
    unknown = _fatigue_x(
        days_active=20,
        frequency=[np.inf, np.inf, np.nan],
        frequency_7d_ago=[np.nan, 1.0, np.nan],
        ctr_current=0.02,
        ctr_baseline=0.02,
    )
    with np.errstate(invalid="ignore"):
        retention, days = retention_forecast(unknown)
    assert retention.tolist() == [1.0, 1.0, 1.0]
    assert np.isnan(days).all()


def test_the_heuristic_score_frame_keeps_the_index_and_names_the_score():
    from stratum_pipeline.ml.fatigue import fatigue_score, relative_decay, score_frame

    features = pd.DataFrame(
        {
            "days_active": [5, 45],
            "frequency": [1.5, 6.0],
            "ctr_current": [0.02, 0.01],
            "ctr_baseline": [0.02, 0.02],
            "engagement_rate_current": [0.05, 0.04],
            "engagement_rate_baseline": [0.05, 0.05],
        },
        index=["x", "y"],
    )
    got = score_frame(features)
    assert got.name == "fatigue_score" and got.index.tolist() == ["x", "y"]
    want = fatigue_score(
        features["days_active"].to_numpy(float),
        features["frequency"].to_numpy(float),
        relative_decay(features["ctr_current"].to_numpy(float), features["ctr_baseline"].to_numpy(float)),
        relative_decay(
            features["engagement_rate_current"].to_numpy(float),
            features["engagement_rate_baseline"].to_numpy(float),
        ),
    )
    assert got.tolist() == pytest.approx(list(want)) and got.iloc[1] > got.iloc[0]


def test_exposure_from_steady_delivery_or_the_last_week_s_pace_at_its_edges():
    from stratum_pipeline.ml.fatigue import exposure

    cases = [  # (days_active, frequency, frequency_7d_ago) -> (pace, frequency before today, gained)
        ((20, 2.0, np.nan), (0.1, 1.9, 0.1 * 15)),  # steady: 0.1 a day; the window's days 13 days on average
        ((20, 2.0, 0.6), (0.2, 1.8, 0.6 + 3 * 0.2 - 0.1)),  # the last week's pace: 1.4 / 7
        ((20, 2.0, 0.0), (2 / 7, 2 - 2 / 7, 3 * 2 / 7 - 0.1)),  # nothing 7 days ago is a pace too
        ((20, 2.0, 2.0), (0.0, 2.0, 2.0 - 0.1)),  # no frequency gained this week
        ((10, 1.0, 0.44), (0.08, 0.92, 0.44 + 0.24 - 0.1)),  # 10 days old: old enough for the recent pace
        ((9, 0.9, 0.3), (0.1, 0.8, 0.1 * 4)),  # 9 days: steady
        ((20, 2.0, -0.1), (0.1, 1.9, 1.5)),  # a negative earlier frequency is unknown
        ((20, 2.0, 2.5), (0.1, 1.9, 1.5)),  # more frequency 7 days ago than today: unknown
        ((np.nan, 2.0, np.nan), (2.0, 0.0, 0.0)),  # age unknown: one day
        ((0.5, 2.0, np.nan), (2.0, 0.0, 0.0)),  # under a day: one day
        ((20, np.nan, np.nan), (0.0, np.nan, 0.0)),  # frequency unknown: no exposure
        ((20, -1.0, np.nan), (0.0, 0.0, 0.0)),  # a negative frequency: unknown
    ]
    x = _fatigue_x(
        days_active=[c[0][0] for c in cases],
        frequency=[c[0][1] for c in cases],
        frequency_7d_ago=[c[0][2] for c in cases],
    )
    pace, before, gained, window = exposure(x)
    for i, (given, (want_pace, want_before, want_gained)) in enumerate(cases):
        got = (pace[i], before[i], gained[i])
        assert got == pytest.approx((want_pace, want_before, want_gained), nan_ok=True), given
    assert window.tolist() == [7.0] * 4 + [7.0, 7.0, 7.0, 7.0, 1.0, 1.0, 7.0, 7.0]


def test_the_log_ratio_and_its_binomial_variance_and_when_it_is_unusable():
    from stratum_pipeline.ml.fatigue import MODEL_VARIANCE, _log_ratio

    current = np.array([0.01, 0.01, 0.01, 0.01, 0.0, np.inf, -0.01, 0.01])
    baseline = np.array([0.02, 0.02, 0.02, 0.02, 0.02, 0.02, -0.02, 0.0])
    n = np.array([1e4, np.nan, 0.0, 1.0, 1e4, 1e4, 1e4, 1e4])
    y, var = _log_ratio(current, baseline, n, 7.0)
    # 1 / clicks now + (7 / 3) / clicks at launch (the baseline's 3 days at the window's pace), + the model's
    assert var[0] == pytest.approx(1 / (0.01 * 1e4) + 7 / (3 * 0.02 * 1e4) + MODEL_VARIANCE)
    assert var[1] == var[2] == MODEL_VARIANCE  # volume unknown or none: the model's variance alone
    assert var[3] == pytest.approx(1 / 0.01 + 7 / (3 * 0.02) + MODEL_VARIANCE)  # one impression is a volume
    assert y[:4].tolist() == pytest.approx([np.log(0.5)] * 4)
    # a zero, infinite or negative rate, or a zero baseline: unusable (no log ratio, no variance)
    assert y[4:].tolist() == [0.0] * 4 and np.isnan(var[4:]).all()


def test_a_creative_frame_without_a_feature_or_with_text_is_a_one_line_error():
    from stratum_pipeline.ml.inputs import InputError

    good = pd.DataFrame(
        {
            "days_active": [10],
            "frequency": [2.0],
            "ctr_current": [0.01],
            "ctr_baseline": [0.02],
            "engagement_rate_current": [0.03],
            "engagement_rate_baseline": [0.04],
        }
    )
    with pytest.raises(InputError) as caught:
        FatigueScorer().score_frame(good.drop(columns=["ctr_current", "frequency"]))
    assert str(caught.value) == "creative features is missing columns: frequency, ctr_current"
    with pytest.raises(InputError) as caught:
        FatigueScorer().score_frame(good.assign(frequency=["lots"]))
    assert str(caught.value) == "frequency must be a number, got 'lots'"


def test_roas_metrics_at_their_guards():
    def forecast(p):
        return pd.DataFrame({"predicted_roas": p, "confidence_lower": 0.0, "confidence_upper": 10.0})

    # a day at exactly 0.5 ROAS counts in the MAPE; an actual mean below 1 still has a bias
    out = roas_metrics([0.5, 0.4], forecast([0.6, 0.4]))
    assert out["mape"] == pytest.approx(0.2)  # |0.6 - 0.5| / 0.5; the 0.4 day is too small to divide by
    assert out["bias"] == pytest.approx(1.0 / 0.9 - 1)
    assert relative_bias([0.5], [0.6]) == pytest.approx(0.2)
    # R²: small actual variance (0.02) still has one; constant actuals have none (NaN, not -inf)
    assert roas_metrics([0.4, 0.6], forecast([0.45, 0.55]))["r2"] == pytest.approx(1 - 0.005 / 0.02)
    assert np.isnan(roas_metrics([2.0, 2.0], forecast([1.0, 3.0]))["r2"])
