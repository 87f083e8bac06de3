"""Event-match quality and the evaluation metrics on small hand-checked inputs (exact values, each threshold).

Written for the mutation benchmark (issue #22): summaries, levels and naive forecasts whose exact numbers the
product shows, pinned so that a changed rounding, cut-off or fallback shows.
"""

import hashlib

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.ml.emq import DataQualityAnalyzer, attribution_accuracy, quality_level, seed_level, seed_roas_impact
from stratum_pipeline.ml.evaluation import (
    best_naive_roas,
    naive_roas_forecasts,
    point_metrics,
    relative_bias,
    roas_metrics,
)

HASHED = hashlib.sha256(b"a@example.com").hexdigest()


def test_emq_summary_exact():
    events = pd.DataFrame({
        "gclid": ["a", None, None], "email": [HASHED, HASHED, None], "external_id": ["u", "u", "u"],
        "client_ip_address": ["1.2.3.4", "1.2.3.4", None], "client_user_agent": ["ua", None, None],
    })  # google scores: 3.5+3+0.5+0.5+0.5 = 8.0, 3+0.5+0.5 = 4.0, 0.5
    summary = DataQualityAnalyzer().summarize(events, "google")
    assert summary == {
        "events": 3, "score_mean": 4.167, "score_p10": 1.2, "score_p50": 4.0, "score_p90": 7.2,
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
    full = {"email": HASHED, "phone": HASHED, "fbc": "fb.1", "external_id": "u", "client_ip_address": "1.2.3.4",
            "client_user_agent": "ua"}
    summary = DataQualityAnalyzer().summarize(pd.DataFrame([full, full]), "meta")
    assert summary["most_missing_fields"] == {"fbp": 1.0}
    assert summary["score_mean"] == 9.0 and summary["levels"]["excellent"] == 2


def test_emq_summary_of_no_events():
    summary = DataQualityAnalyzer().summarize(pd.DataFrame(columns=["gclid", "email"]), "google")
    assert summary["events"] == 0
    assert [summary[k] for k in ("score_mean", "score_p10", "score_p50", "score_p90",
                                 "attribution_accuracy_estimate")] == [None] * 5
    assert summary["levels"] == {"excellent": 0, "good": 0, "fair": 0, "poor": 0}


def test_emq_score_frame_scores_each_event_by_its_own_platform():
    events = pd.DataFrame({"platform": ["META", "Google", "tiktok"], "gclid": [None, "g", None],
                           "client_ip_address": ["1.2.3.4", None, "1.2.3.4"], "email": [None, "plain@x", None]},
                          index=[10, 11, 12])
    out = DataQualityAnalyzer().score_frame(events)
    assert list(out.index) == [10, 11, 12]
    assert list(out.columns) == ["emq_score", "quality_level", "attribution_accuracy"]
    assert out["emq_score"].tolist() == pytest.approx([0.75, 5.0, 0.75])  # google: gclid 3.5 + a plain email 1.5
    assert out["quality_level"].tolist() == ["poor", "fair", "poor"]
    accuracy = out["attribution_accuracy"].to_numpy()
    assert accuracy == pytest.approx([0.44125, 0.675, 0.44125], abs=6e-5)
    assert np.allclose(accuracy * 1e4, np.round(accuracy * 1e4))  # rounded to 4 decimals


@pytest.mark.parametrize("score, level", [(0.0, "poor"), (3.99, "poor"), (4.0, "fair"), (5.99, "fair"), (6.0, "good"),
                                          (7.99, "good"), (8.0, "excellent"), (10.0, "excellent")])
def test_emq_levels_at_the_thresholds(score, level):
    assert str(quality_level(score)) == level


@pytest.mark.parametrize("score, level, impact", [
    (0, "poor", "<40% attribution accuracy - significant loss"), (39.9, "poor", "<40% attribution accuracy - significant loss"),
    (40, "fair", "~60% attribution accuracy"), (59.9, "fair", "~60% attribution accuracy"),
    (60, "good", "~80% attribution accuracy"), (79.9, "good", "~80% attribution accuracy"),
    (80, "excellent", "~95% attribution accuracy"), (100, "excellent", "~95% attribution accuracy"),
])
def test_the_seed_levels_and_impact_at_the_thresholds(score, level, impact):
    assert seed_level(score) == level and seed_roas_impact(score) == impact


def test_attribution_accuracy_is_clipped_to_the_score_range():
    assert attribution_accuracy(np.array([-5.0, 0.0, 5.0, 10.0, 20.0])).tolist() == pytest.approx(
        [0.4, 0.4, 0.675, 0.95, 0.95])


# --- evaluation ------------------------------------------------------------------------------------------


def _features(**columns):
    base = {"roas": [1.0, 2.0, np.nan], "roas_7d": [1.5, np.nan, np.nan], "roas_14d": [1.2, 2.2, np.nan],
            "roas_30d": [1.1, 2.1, np.nan]}
    base.update(columns)
    return pd.DataFrame(base)


def test_naive_forecasts_fall_back_to_the_longer_window_then_the_median():
    out = naive_roas_forecasts(_features())
    assert list(out) == ["today", "trailing_7d", "trailing_14d", "trailing_30d"]
    assert out["today"].tolist() == pytest.approx([1.0, 2.0, 1.5])  # row 3 has no 30-day ROAS either: the median
    assert out["trailing_7d"].tolist() == pytest.approx([1.5, 2.1, 1.8])
    assert out["trailing_14d"].tolist() == pytest.approx([1.2, 2.2, 1.7])
    assert out["trailing_30d"].tolist() == pytest.approx([1.1, 2.1, 1.6])
    empty = naive_roas_forecasts(_features(roas=[np.nan] * 3, roas_30d=[np.nan] * 3))
    assert empty["today"].tolist() == [1.0, 1.0, 1.0]  # nothing known at all: 1.0
    text = naive_roas_forecasts(_features(roas=["1.0", "x", None]))
    assert text["today"].tolist() == pytest.approx([1.0, 2.1, 1.55])


def test_the_best_naive_forecast_is_the_one_with_the_lowest_mae():
    actual = [1.2, 2.2, 1.7]
    assert best_naive_roas(actual, _features()) == {"naive": "trailing_14d", "naive_mae": pytest.approx(0.0)}
    out = best_naive_roas([1.0, 2.0, 1.0], _features())
    assert out["naive"] == "today" and out["naive_mae"] == pytest.approx(0.5 / 3)


def test_metrics_exact():
    actual = np.array([1.0, 2.0, 0.2, 4.0])
    forecast = pd.DataFrame({"predicted_roas": [1.5, 2.0, 0.4, 3.0], "confidence_lower": [1.0, 2.5, 0.0, 2.0],
                             "confidence_upper": [2.0, 3.0, 0.2, 3.5]})
    m = roas_metrics(actual, forecast)
    errors = np.array([0.5, 0.0, 0.2, -1.0])
    assert m["mae"] == pytest.approx(np.abs(errors).mean()) and m["rmse"] == pytest.approx(np.sqrt((errors**2).mean()))
    assert m["r2"] == pytest.approx(1 - (errors**2).sum() / ((actual - actual.mean()) ** 2).sum())
    assert m["mape"] == pytest.approx((0.5 / 1 + 0 + 1.0 / 4) / 3)  # the 0.2 day is left out (ROAS < 0.5)
    assert m["bias"] == pytest.approx(6.9 / 7.2 - 1)
    assert m["coverage_80"] == 0.5  # the bounds count as inside (row 1 and row 3)
    assert m["rows"] == 4
    p = point_metrics(actual, forecast["predicted_roas"])
    assert set(p) == {"mae", "rmse", "r2", "mape", "bias", "rows"} and p["mae"] == m["mae"] and p["r2"] == m["r2"]
    flat = roas_metrics([2.0, 2.0], pd.DataFrame({"predicted_roas": [2.0, 2.0], "confidence_lower": [1.0, 1.0],
                                                  "confidence_upper": [3.0, 3.0]}))
    assert np.isnan(flat["r2"]) and flat["mae"] == 0.0
    small = roas_metrics([0.1, 0.2], pd.DataFrame({"predicted_roas": [0.1, 0.2], "confidence_lower": [0.0, 0.0],
                                                   "confidence_upper": [1.0, 1.0]}))
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
    assert m["auc"] == pytest.approx(0.5) and m["base_rate"] == 0.5 and m["rows"] == 6 and m["threshold"] == 0.6
    none_chosen = conversion_metrics([0, 1], [0.1, 0.2], threshold=0.9)
    assert np.isnan(none_chosen["precision"]) and none_chosen["recall"] == 0.0
    one_class = conversion_metrics([0, 0], [0.1, 0.2], threshold=0.1)
    assert np.isnan(one_class["auc"]) and np.isnan(one_class["recall"]) and one_class["precision"] == 0.0
