"""ml.monitoring at its boundaries: exact shares, PSI, calibration and the thresholds that turn them into statuses.

Small hand-checked inputs, so that a changed bin edge, threshold comparison or column name shows (issue #22's
mutation benchmark found them unpinned).
"""

import math

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.ml import monitoring as M

MISSING = M.MISSING


def test_numeric_shares_per_bin_edge_and_missing():
    entry = {"kind": "numeric", "edges": [2.5, 5.0]}
    # a value on an edge belongs to the bin above it; text that is not a number counts as missing
    shares = M.distribution(entry, pd.Series(["1", "2.5", "x", "7", None]))
    assert shares == {"0": 0.2, "1": 0.2, "2": 0.2, MISSING: 0.4}
    # every bin is present even when empty
    assert M.distribution(entry, pd.Series([1.0])) == {"0": 1.0, "1": 0.0, "2": 0.0, MISSING: 0.0}
    assert M.distribution(entry, pd.Series([], dtype=float)) == {"0": 0.0, "1": 0.0, "2": 0.0, MISSING: 0.0}


def test_category_shares_with_missing_and_unknown_categories():
    entry = {"kind": "categorical", "categories": ["meta", "google"]}
    shares = M.distribution(entry, pd.Series(["meta", "meta", None, "tiktok"]))
    assert shares == {"meta": 0.5, MISSING: 0.25, M.OTHER: 0.25}


def test_feature_profile_exact_edges_shares_and_kinds():
    frame = pd.DataFrame(
        {
            "x": np.arange(1.0, 11.0),
            "flag": [True, False] * 5,
            "device": ["mobile"] * 6 + ["desktop"] * 3 + [None],
            "empty": [np.nan] * 10,
        }
    )
    profile = M.feature_profile(frame, ["absent", "x", "flag", "device", "empty"])
    assert profile["rows"] == 10 and list(profile["features"]) == ["x", "flag", "device", "empty"]
    x = profile["features"]["x"]
    assert x["kind"] == "numeric" and x["edges"] == pytest.approx([2.8, 4.6, 6.4, 8.2])
    assert x["shares"] == {"0": 0.2, "1": 0.2, "2": 0.2, "3": 0.2, "4": 0.2, MISSING: 0.0}
    assert profile["features"]["flag"] == {
        "kind": "categorical",
        "categories": ["True", "False"],
        "shares": {"True": 0.5, "False": 0.5},
    }
    assert profile["features"]["device"] == {
        "kind": "categorical",
        "categories": ["mobile", "desktop"],
        "shares": {"mobile": 0.6, "desktop": 0.3, MISSING: 0.1},
    }
    assert profile["features"]["empty"] == {
        "kind": "numeric",
        "edges": [],
        "shares": {"0": 0.0, MISSING: 1.0},
    }
    assert M.feature_profile(frame, ["x"], bins=2)["features"]["x"]["edges"] == [5.5]


def test_psi_over_the_union_of_bins():
    expected = {"a": 0.5, "b": 0.5}
    actual = {"a": 0.7, "c": 0.3}
    e, a = np.array([0.5, 0.5, 1e-4]), np.array([0.7, 1e-4, 0.3])  # a, b, c
    assert M.psi(expected, actual) == pytest.approx(float(((a - e) * np.log(a / e)).sum()))
    assert M.psi(expected, expected) == 0.0
    assert M.psi(expected, actual) == pytest.approx(M.psi(actual, expected))  # symmetric


@pytest.mark.parametrize(
    "value, status", [(0.0, "ok"), (0.1, "ok"), (0.1 + 1e-9, "warn"), (0.25, "warn"), (0.25 + 1e-9, "fail")]
)
def test_drift_status_at_the_thresholds(value, status):
    assert M.drift_status(value) == status


@pytest.mark.parametrize(
    "statuses, retrain",
    [
        ([], False),
        (["fail"], True),
        (["fail", "ok", "ok"], True),
        (["fail", "ok", "ok", "ok"], False),
        (["warn", "warn", "warn"], False),
    ],
)
def test_retraining_needs_a_third_of_the_features_failing(statuses, retrain):
    assert bool(M.drift_needs_retraining(pd.Series(statuses, dtype=object))) is retrain


def test_feature_drift_rows_and_columns():
    profile = M.feature_profile(pd.DataFrame({"x": np.arange(1.0, 11.0), "z": np.arange(10.0)}), ["x", "z"])
    profile["features"] = {
        "gone": profile["features"]["z"],
        **profile["features"],
    }  # a feature the frame lacks
    out = M.feature_drift(profile, pd.DataFrame({"x": np.arange(1.0, 11.0), "z": np.full(10, 100.0)}))
    assert list(out.columns) == M.DRIFT_COLUMNS[:4] + ["noise_psi", "drift_score", "days_above"]
    assert out["feature"].tolist() == ["x", "z"]
    row = out.set_index("feature")
    assert row.loc["x", "psi"] == 0.0 and row.loc["x", "status"] == "ok" and row.loc["x", "rows"] == 10
    assert row.loc["z", "status"] == "fail"
    empty = M.feature_drift({"features": {}}, pd.DataFrame({"x": [1.0]}))
    assert empty.empty and list(empty.columns) == M.DRIFT_COLUMNS


def test_feature_drift_skips_a_missing_feature_and_goes_on():
    profile = M.feature_profile(pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0)}), ["a", "b"])
    out = M.feature_drift(profile, pd.DataFrame({"b": np.arange(10.0)}))
    assert out["feature"].tolist() == ["b"]


def test_calibration_exact_bins_and_gap():
    p = [0.05, 0.15, 0.85, 0.95, 1.2, -0.1]  # clipped to [0, 1]: 1.0 and 0.0
    y = [0, 1, 1, 1, 0, 0]
    out = M.calibration(p, y)
    # bins (width 0.1, 1.0 in the last): {0.05, 0.0} -> 0, {0.15} -> 1, {0.85} -> 8, {0.95, 1.0} -> 9
    clipped = np.array([0.05, 0.15, 0.85, 0.95, 1.0, 0.0])
    ece = (
        (2 / 6) * abs(0.025 - 0)
        + (1 / 6) * abs(0.15 - 1)
        + (1 / 6) * abs(0.85 - 1)
        + (2 / 6) * abs(0.975 - 0.5)
    )
    assert set(out) == {"rows", "predicted_rate", "observed_rate", "rate_gap", "ece"}
    assert out["rows"] == 6
    assert out["predicted_rate"] == pytest.approx(clipped.mean())
    assert out["observed_rate"] == pytest.approx(0.5)
    assert out["rate_gap"] == pytest.approx(clipped.mean() - 0.5)
    assert out["ece"] == pytest.approx(ece)
    one = M.calibration([0.3], [1])
    assert one["rows"] == 1 and one["rate_gap"] == pytest.approx(-0.7) and one["ece"] == pytest.approx(0.7)
    empty = M.calibration([], [])
    assert set(empty) == {"rows", "predicted_rate", "observed_rate", "rate_gap", "ece"} and empty["rows"] == 0
    assert all(math.isnan(empty[k]) for k in ("predicted_rate", "observed_rate", "rate_gap", "ece"))


@pytest.mark.parametrize(
    "gap, status",
    [
        (0.0, "ok"),
        (0.02, "ok"),
        (-0.02 - 1e-9, "warn"),
        (0.05, "warn"),
        (0.05 + 1e-9, "fail"),
        (-0.3, "fail"),
        (float("nan"), "ok"),
    ],
)
def test_calibration_status_at_the_thresholds(gap, status):
    assert M.calibration_status(gap) == status


def test_recent_accuracy_window_weights_and_columns():
    accuracy = pd.DataFrame(
        {
            "tenant_id": ["a", "a", "a", "b"],
            "date": ["2026-01-02", "2026-01-03", "2026-01-09", "2026-01-01"],
            "model_name": ["m"] * 3 + ["n"],
            "model_version": ["1"] * 4,
            "campaigns": [99, 10, 30, 5],
            "mae": [9.0, 0.2, 0.6, 0.1],
            "coverage_80": [0.0, 0.8, 0.4, 0.9],
        }
    )
    out = M.recent_accuracy(accuracy, 7).set_index("tenant_id")  # a: 01-03 .. 01-09 (01-02 is 7 days before)
    assert list(out.columns) == [
        "model_name",
        "model_version",
        "days",
        "campaigns",
        "last_day",
        "mae",
        "coverage_80",
    ]
    assert out.loc["a", "days"] == 2 and out.loc["a", "campaigns"] == 40
    assert out.loc["a", "mae"] == pytest.approx((0.2 * 10 + 0.6 * 30) / 40)
    assert out.loc["a", "coverage_80"] == pytest.approx((0.8 * 10 + 0.4 * 30) / 40)
    assert out.loc["a", "last_day"] == pd.Timestamp("2026-01-09")
    assert out.loc["b", "days"] == 1 and out.loc["b", "coverage_80"] == pytest.approx(0.9)
    empty = M.recent_accuracy(accuracy.iloc[:0], 7)
    assert empty.empty and list(empty.columns) == [
        "tenant_id",
        "model_name",
        "model_version",
        "days",
        "campaigns",
        "mae",
        "coverage_80",
        "last_day",
    ]


def test_accuracy_is_degraded_only_above_the_limit():
    assert M.accuracy_degraded(0.3, None) == (False, "recent MAE 0.300 <= limit 0.300")
    assert M.accuracy_degraded(0.301, None) == (True, "recent MAE 0.301 > limit 0.300")
    assert M.accuracy_degraded(0.5, float("nan"))[0] is True
    assert M.accuracy_degraded(0.59, 0.4) == (False, "recent MAE 0.590 <= limit 0.600")


def test_actual_roas_drops_days_without_a_number():
    features = pd.DataFrame(
        {"campaign_id": ["c1", "c2", "c3"], "date": ["2026-01-02"] * 3, "roas": ["1.5", "x", None]}
    )
    out = M.actual_next_day_roas(features)
    assert out["campaign_id"].tolist() == ["c1"] and list(out.columns) == [
        "campaign_id",
        "forecast_date",
        "actual_roas",
    ]
    assert out["forecast_date"].iloc[0] == pd.Timestamp("2026-01-02")


def test_feature_summary_exact():
    frame = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, np.nan, 5.0], "device": ["m", "m", "d", None, "m"], "blank": [np.nan] * 5}
    )
    out = M.summarize_features(frame, ["absent", "x", "device", "blank"]).set_index("feature")
    assert list(out.index) == ["x", "device", "blank"]
    x = out.loc["x"]
    assert x["rows"] == 5 and x["missing"] == pytest.approx(0.2) and x["mean"] == pytest.approx(2.75)
    assert (x["p10"], x["p50"], x["p90"]) == pytest.approx((1.3, 2.5, 4.4))
    assert out.loc["device", "top"] == "m (75%)" and out.loc["device", "missing"] == pytest.approx(0.2)
    assert out.loc["blank", "missing"] == 1.0 and math.isnan(out.loc["blank", "mean"])
    empty = M.summarize_features(frame.iloc[:0], ["x"])
    assert empty.to_dict("records") == [{"feature": "x", "rows": 0, "missing": 0.0}]


def _forecasts(**columns):
    base = {
        "tenant_id": ["a", "a"],
        "campaign_id": ["c1", "c2"],
        "date": ["2026-01-01"] * 2,
        "forecast_date": ["2026-01-02"] * 2,
        "predicted_roas": [2.0, 3.0],
        "confidence_lower": [1.5, 2.0],
        "confidence_upper": [2.5, 3.0],
        "model_name": ["m"] * 2,
        "model_version": ["1"] * 2,
    }
    base.update(columns)
    return pd.DataFrame(base)


ACCURACY_COLUMNS = [
    "tenant_id",
    "date",
    "model_name",
    "model_version",
    "campaigns",
    "mae",
    "bias",
    "coverage_80",
    "mean_actual_roas",
    "mean_predicted_roas",
]


def test_forecast_accuracy_counts_the_interval_bounds_as_inside():
    actuals = M.actual_next_day_roas(
        pd.DataFrame({"campaign_id": ["c1", "c2"], "date": ["2026-01-02"] * 2, "roas": [1.5, 3.0]})
    )  # exactly the lower and upper bounds
    out = M.forecast_accuracy(_forecasts(), actuals)
    assert list(out.columns) == ACCURACY_COLUMNS
    row = out.iloc[0]
    assert row["coverage_80"] == 1.0 and row["campaigns"] == 2 and row["mae"] == pytest.approx(0.25)
    assert row["bias"] == pytest.approx(0.25) and row["date"] == pd.Timestamp("2026-01-02")


def test_forecast_accuracy_without_forecasts_actuals_or_matches():
    actuals = M.actual_next_day_roas(
        pd.DataFrame({"campaign_id": ["c1"], "date": ["2026-01-05"], "roas": [1.0]})
    )
    for forecasts, acts in (
        (pd.DataFrame(), actuals),
        (_forecasts(), actuals.iloc[:0]),
        (_forecasts(), actuals),
    ):
        out = M.forecast_accuracy(forecasts, acts)
        assert out.empty and list(out.columns) == ACCURACY_COLUMNS


def test_top_drift_lists_each_tenants_features_above_their_noise_highest_first():
    drift = pd.DataFrame(
        {
            "tenant_id": ["t2", "t1", "t1", "t1", "t2", "t1"],
            "feature": ["spend", "ctr", "roas_7d", "cpc", "cvr", "clicks"],
            "drift_score": [5.0, 2.0, 3.5, 1.0, "n/a", 1.01],  # 1.0 is at the threshold, not above it
        }
    )
    assert M.top_drift(drift) == {"t1": ["roas_7d", "ctr", "clicks"], "t2": ["spend"]}
    assert list(M.top_drift(drift)) == ["t1", "t2"]  # by tenant, though t2 holds the highest score
    assert M.top_drift(drift.drop(columns="drift_score")) == {}  # rows written before the noise levels
    assert M.top_drift(drift.iloc[:0]) == {}
    assert M.top_drift(drift.assign(drift_score=0.5)) == {}


@pytest.mark.parametrize(
    "noise_psi, threshold",
    [(None, 0.1), (float("nan"), 0.1), (float("inf"), 0.1), (0.0, 0.05), (0.02, 0.05), (0.5, 0.75)],
)
def test_the_drift_threshold_is_a_margin_over_the_noise_with_a_floor(noise_psi, threshold):
    assert M.drift_threshold(noise_psi) == threshold


@pytest.mark.parametrize("value, status, days_above", [(0.6, "ok", 0), (0.75, "ok", 0), (1.2, "warn", 1)])
def test_a_calibrated_feature_warns_only_above_its_noise_and_others_keep_the_fixed_thresholds(
    monkeypatch, value, status, days_above
):
    frame = pd.DataFrame({"x": np.arange(100.0), "y": np.arange(100.0)})
    profile = {**M.feature_profile(frame, ["x", "y"]), "noise": {"x": 0.5}}  # x's threshold: 1.5 x 0.5 = 0.75
    monkeypatch.setattr(M, "psi", lambda expected, actual: value)  # the PSI itself is pinned elsewhere
    out = M.feature_drift(profile, frame)
    assert list(out.columns) == M.DRIFT_COLUMNS
    x, y = out.set_index("feature").loc["x"], out.set_index("feature").loc["y"]
    assert (x["psi"], x["status"], x["noise_psi"], x["drift_score"], x["days_above"]) == (
        value,
        status,
        0.5,
        value / 0.75,
        days_above,
    )
    assert (y["status"], y["drift_score"], y["days_above"]) == ("fail", value / 0.1, 1)  # PSI above 0.25
    assert np.isnan(y["noise_psi"]) and x["rows"] == y["rows"] == 100
    # a profile without noise levels: every feature on the fixed thresholds
    plain = M.feature_drift({**profile, "noise": None}, frame).set_index("feature")
    assert plain["noise_psi"].isna().all() and list(plain["status"]) == ["fail", "fail"]


def _drift(score, day=4, **fields):
    """A calibrated feature_drift row of tenant t, model m, version 1, feature x on day `day`."""
    date = pd.Timestamp("2026-06-01") + pd.Timedelta(days=day)
    return {"tenant_id": "t", "model_name": "m", "model_version": "1", "feature": "x", "status": "ok"} | {
        "noise_psi": 0.05,
        "drift_score": score,
        "days_above": int(score > 1),
        "date": date,
        **fields,
    }


def test_persistence_counts_only_scores_above_one_and_needs_no_history():
    today = pd.DataFrame([_drift(1.5)])
    alone = M.persistent_drift(today, None)  # the first evaluated day: today alone
    assert alone["days_above"].tolist() == [1] and alone["days_above"].dtype.kind == "i"
    assert alone["status"].tolist() == ["ok"]  # persistent_drift sets only 'fail'; feature_drift set the rest
    at_one = pd.DataFrame([_drift(1.0, day) for day in range(4)])  # exactly at the threshold: not above it
    out = M.persistent_drift(today, at_one)
    assert out["days_above"].tolist() == [1] and out["days_above"].dtype.kind == "i"
    assert M.persistent_drift(pd.DataFrame([_drift(1.0)]), None)["days_above"].tolist() == [0]
    # rows written before the noise levels have no drift_score: no history
    older = pd.DataFrame([_drift(3.0, day) for day in range(4)]).drop(columns="drift_score")
    assert M.persistent_drift(today, older)["days_above"].tolist() == [1]
    above = pd.DataFrame([_drift(3.0, day) for day in range(2)])
    out = M.persistent_drift(today, above)
    assert out["days_above"].tolist() == [3] and out["status"].tolist() == ["fail"]


def _bias_days(rows):
    """forecast_accuracy rows from (day, relative bias, mean actual ROAS)."""
    return pd.DataFrame(
        [
            {"date": f"2026-06-0{day}", "bias": relative * actual, "mean_actual_roas": actual}
            for day, relative, actual in rows
        ]
    )


def test_bias_degradation_at_its_limits():
    # BIAS_Z x sd / sqrt(2 days) = 4 x 0.1 / 1.414 = 28%
    assert M.bias_degraded(_bias_days([(1, 0.25, 0.5), (2, 0.35, 0.5)]), 0.1) == (
        True,
        "relative bias +30% over 2 days beyond +-28% (the noise)",
    )
    # the last two days by date, whatever the row order: +15%
    late_quiet = _bias_days([(3, 0.0, 2.0), (1, 0.3, 2.0), (2, 0.3, 2.0)])
    assert M.bias_degraded(late_quiet, 0.1) == (False, "relative bias +15% within +-28%")
    # a day without revenue has no relative bias: too few days
    assert M.bias_degraded(_bias_days([(1, 0.5, 2.0), (2, 0.5, 0.0)]), 0.1) == (
        False,
        "too few days for the bias rule",
    )
    for sd in (None, 0.0, float("inf"), float("nan")):
        assert M.bias_degraded(_bias_days([(1, 0.9, 2.0), (2, 0.9, 2.0)]), sd) == (
            False,
            "no bias noise level",
        )
    assert M.bias_degraded(_bias_days([]), 0.1) == (False, "no bias noise level")


def test_the_daily_bias_noise_on_hand_checked_days():
    dates = ["2026-06-01", "2026-06-01", "2026-06-02", "2026-06-03", "2026-06-04"]
    actual = [0.5, 1.5, 0.5, 2.0, 0.0]  # day means 1.0, 0.5, 2.0 and 0 (no revenue: no relative bias)
    predicted = [1.0, 1.4, 0.4, 2.0, 1.0]  # day means 1.2, 0.4, 2.0: relative biases +0.2, -0.2, 0
    assert M.daily_bias_sd(dates, actual, predicted) == pytest.approx(0.2)  # sqrt((0.04 + 0.04) / 2)
    assert np.isnan(M.daily_bias_sd(dates[:3], actual[:3], predicted[:3]))  # two days: no level


# --- a self-correcting error, the bias rule at its limit, noise windows day by day ------------------------------


def _error_days(relative_mae, relative_bias=None, mean_actual=1.0, shuffle=False) -> pd.DataFrame:
    n = len(relative_mae)
    days = pd.DataFrame(
        {
            "date": pd.date_range("2026-06-01", periods=n).astype(str),
            "mae": np.asarray(relative_mae, dtype=float) * mean_actual,
            "bias": np.asarray(relative_bias if relative_bias is not None else [0.0] * n, dtype=float)
            * mean_actual,
            "mean_actual_roas": mean_actual,
        }
    )
    return days.iloc[::-1] if shuffle else days


def test_an_error_returning_at_exactly_its_share_of_the_peak_with_the_reason_word_for_word():
    # smoothed over 2 days: 0.625, 0.5625, 0.4375, 0.375; the peak 2+ days back, the latest exactly 0.6 x 0.625
    days = _error_days([0.625, 0.625, 0.5, 0.375, 0.375], shuffle=True)  # any row order: sorted by date
    assert M.error_returning(days) == (True, "relative MAE down from 62% to 38% over 5 days")
    # the peak in the middle of the week counts (not only the first smoothed days)
    assert M.error_returning(_error_days([0.1, 0.1, 0.1, 0.9, 0.9, 0.3, 0.3])) == (
        True,
        "relative MAE down from 90% to 30% over 7 days",
    )
    # the bias: a shift all campaigns share, with the MAE flat; judged relative to the day's actual ROAS
    shared = _error_days([0.5] * 5, [0.0, 0.5, 0.5, 0.2, 0.2], mean_actual=0.5)
    assert M.error_returning(shared) == (True, "relative bias down from 50% to 20% over 5 days")
    # still rising, and no bias at all (a zero peak is not a peak to return from)
    assert M.error_returning(_error_days([0.1, 0.2, 0.3, 0.4, 0.5])) == (
        False,
        "error not returning: relative MAE 45% (peak 25%), relative bias 0% (peak 0%)",
    )
    assert M.error_returning(_error_days([0.6, 0.2, 0.2])) == (False, "error not returning: too few days")
    # days without actual ROAS are not judged: a ROAS of 0.5 is, 0 is not
    half = _error_days([0.625, 0.625, 0.5, 0.375, 0.375], mean_actual=0.5)
    assert M.error_returning(half) == (True, "relative MAE down from 62% to 38% over 5 days")
    assert M.error_returning(_error_days([0.5, 0.5], mean_actual=0.0)) == (
        False,
        "no days to judge the error's trend",
    )
    mixed = pd.concat([_error_days([0.625, 0.625, 0.5, 0.375, 0.375]), _error_days([9.0], mean_actual=0.0)])
    assert M.error_returning(mixed) == (True, "relative MAE down from 62% to 38% over 5 days")


def test_bias_beyond_the_limit_is_degraded_and_at_the_limit_is_not():
    sd = 0.25
    limit = M.BIAS_Z * sd / np.sqrt(M.BIAS_DAYS)
    at = pd.DataFrame(
        {"date": ["2026-06-01", "2026-06-02"], "bias": [limit, limit], "mean_actual_roas": [1.0, 1.0]}
    )
    assert M.bias_degraded(at, sd) == (False, "relative bias +71% within +-71%")
    beyond = at.assign(bias=[limit, limit * 1.001])
    assert M.bias_degraded(beyond, sd)[0] is True


def test_a_drift_score_that_is_not_a_number_counts_as_not_above():
    row = {
        "tenant_id": "t",
        "model_name": "m",
        "model_version": "1",
        "feature": "f",
        "status": "warn",
        "noise_psi": 0.1,
        "days_above": 0,
    }
    today = pd.DataFrame([{**row, "drift_score": "n/a"}, {**row, "feature": "g", "drift_score": 2.0}])
    earlier = pd.DataFrame(
        [{**row, "date": d, "drift_score": s} for d, s in (("2026-06-01", "n/a"), ("2026-06-02", 3.0))]
        + [{**row, "feature": "g", "date": d, "drift_score": 2.0} for d in ("2026-06-01", "2026-06-02")]
    )
    out = M.persistent_drift(today, earlier)
    assert out["days_above"].tolist() == [1, 3] and out["status"].tolist() == ["warn", "fail"]


def test_noise_windows_are_every_seven_day_window_of_the_35_days_before_the_reference(monkeypatch):
    windows = []
    monkeypatch.setattr(M, "distribution", lambda entry, series: sorted(series.tolist()))
    monkeypatch.setattr(M, "psi", lambda expected, days: windows.append(days) or float(days[-1]))
    profile = {
        "features": {"f": {"kind": "numeric", "shares": {}}, "absent": {"kind": "numeric", "shares": {}}}
    }

    def train(first: int, gap=()):
        days = [d for d in range(first, 100) if d not in gap]  # day 99 is the last training day
        return pd.DataFrame({"date": pd.Timestamp("2026-01-01") + pd.to_timedelta(days, unit="D"), "f": days})

    # reference weeks: days 72-99; noise history: days 37-71; windows end on days 43..71, one day apart
    levels = M.noise_levels(train(0, gap=range(50, 58)), profile)
    ends = [e for e in range(43, 72) if e not in (56, 57)]  # the windows wholly inside the gap are skipped
    gap = range(50, 58)
    assert windows == [[d for d in range(e - 6, e + 1) if d not in gap] for e in ends]
    assert levels == {"f": pytest.approx(np.quantile([float(w[-1]) for w in windows], M.NOISE_QUANTILE))}
    # 14 windows give a noise level, 13 do not
    windows.clear()
    assert set(M.noise_levels(train(52), profile)) == {"f"} and len(windows) == 14
    assert M.noise_levels(train(53), profile) == {}
    # nothing to sample
    assert M.noise_levels(train(0), {}) == {} and M.noise_levels(train(0).iloc[:0], profile) == {}
