"""ROASPredictor, ConversionPredictor and the promotion gate, on generated data (no Dagster, no MLflow)."""

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.ml.conversion import ConversionPredictor, operating_threshold
from stratum_pipeline.ml.evaluation import conversion_metrics, roas_metrics
from stratum_pipeline.ml.features import CONVERSION_FEATURES, campaign_features
from stratum_pipeline.ml.roas import TARGET, ROASPredictor, budget_recommendation, roas_trend, training_frame
from stratum_pipeline.modelops.gate import decide
from stratum_pipeline.modelops.training import holdout_split

from .model_data import model_features


@pytest.fixture(scope="module")
def features():
    return model_features()


@pytest.fixture(scope="module")
def roas_split(features):
    frame = training_frame(features[0][features[0]["tenant_id"] == "big"])
    return holdout_split(frame, 7)


@pytest.fixture(scope="module")
def roas_model(roas_split):
    train, _ = roas_split
    return ROASPredictor(n_estimators=200).fit(train, train[TARGET])


def test_training_frame_targets_the_next_days_roas(features):
    campaign = features[0]
    frame = training_frame(campaign)
    row = frame.iloc[0]
    following = campaign[
        (campaign["campaign_id"] == row["campaign_id"])
        & (pd.to_datetime(campaign["date"]) == row["date"] + pd.Timedelta(days=1))
    ]
    assert row[TARGET] == pytest.approx(following["roas"].iloc[0])
    assert frame.groupby("campaign_id")["date"].max().max() < pd.to_datetime(campaign["date"]).max()


def test_roas_forecasts_are_accurate_with_ordered_intervals(roas_model, roas_split):
    _, test = roas_split
    forecast = roas_model.predict_frame(test)
    metrics = roas_metrics(test[TARGET], forecast)
    assert metrics["r2"] > 0.8 and metrics["mae"] < 0.5
    assert 0.6 <= metrics["coverage_80"] <= 0.95
    assert (forecast["confidence_lower"] <= forecast["predicted_roas"]).all()
    assert (forecast["predicted_roas"] <= forecast["confidence_upper"]).all()


def test_roas_predict_returns_the_seed_shape(roas_model, roas_split):
    _, test = roas_split
    out = roas_model.predict(test.iloc[0].to_dict())
    batch = roas_model.predict_frame(test.head(1)).iloc[0]
    assert out["predicted_roas"] == pytest.approx(batch["predicted_roas"], abs=1e-3)
    assert set(out) == {
        "predicted_roas",
        "confidence_lower",
        "confidence_upper",
        "trend",
        "recommendation",
        "budget_recommendation",
    }
    assert out["trend"] in {"improving", "stable", "declining"}
    assert set(out["budget_recommendation"]) == {"action", "budget_change_percent", "reason"}
    assert isinstance(out["recommendation"], str)  # the seed's sentence, e.g. "Increase budget by 20%"


def test_roas_predictor_errors_are_clear(roas_model):
    with pytest.raises(ValueError, match="missing columns: roas_7d"):
        roas_model.predict_frame(pd.DataFrame({"roas_30d": [2.0], "platform": ["meta"]}))
    with pytest.raises(RuntimeError, match="not fitted"):
        ROASPredictor().predict_frame(pd.DataFrame({"roas_7d": [1.0]}))
    with pytest.raises(ValueError, match="at least 50 rows"):
        ROASPredictor().fit(pd.DataFrame({"roas_7d": [1.0], "roas_30d": [1.0], "platform": ["meta"]}), [1.0])


def test_trend_and_recommendation_rules():
    assert (
        roas_trend(3.3, 3.0) == "improving"
        and roas_trend(2.7, 3.0) == "declining"
        and roas_trend(3.0, 3.0) == "stable"
    )
    assert roas_trend(None, 3.0) == "stable"
    assert budget_recommendation(0.7, 0.5, 0.9, 0.8, 0.8, 1.0, "stable")["budget_change_percent"] == -30
    assert budget_recommendation(0.9, 0.6, 1.2, 0.8, 0.8, 1.0, "stable")["budget_change_percent"] == -15
    assert (
        budget_recommendation(4.0, 3.0, 5.0, 3.5, 4.0, 1.5, "declining")["action"] == "maintain"
    )  # diminishing
    assert budget_recommendation(4.0, 3.0, 5.0, 4.0, 4.0, 1.0, "stable")["budget_change_percent"] == 20
    assert budget_recommendation(1.3, 1.1, 1.5, 1.3, 1.2, 1.0, "improving")["budget_change_percent"] == 10


@pytest.fixture(scope="module")
def conversion_split(features):
    sessions = features[1][features[1]["tenant_id"] == "big"]
    return holdout_split(sessions, 7)


@pytest.fixture(scope="module")
def conversion_model(conversion_split):
    train, _ = conversion_split
    return ConversionPredictor(n_estimators=150).fit(train, train["converted"])


def test_conversion_model_discriminates_and_is_calibrated(conversion_model, conversion_split):
    _, test = conversion_split
    p = conversion_model.predict_proba(test)
    metrics = conversion_metrics(test["converted"], p, conversion_model.threshold_)
    assert metrics["auc"] > 0.85
    assert abs(p.mean() - test["converted"].mean()) < 0.03  # calibrated on average
    high = p > 0.6
    assert abs(test["converted"][high].mean() - p[high].mean()) < 0.1  # and where it is confident


def test_missing_values_all_missing_columns_and_unseen_categories(conversion_model, conversion_split):
    _, test = conversion_split
    odd = test[list(CONVERSION_FEATURES)].head(50).copy()
    odd["cart_value"] = np.nan  # a whole column missing
    odd["device_type"] = "smart_fridge"  # never seen in training
    odd.loc[odd.index[:10], "traffic_source"] = None
    p = conversion_model.predict_proba(odd)
    assert p.shape == (50,) and np.isfinite(p).all() and ((0 <= p) & (p <= 1)).all()
    out = conversion_model.predict({"pages_viewed": 12, "items_in_cart": 2, "device_type": "hologram"})
    assert 0 <= out["conversion_probability"] <= 1


def test_top_factors_are_per_prediction_contributions(conversion_model, conversion_split):
    _, test = conversion_split
    rows = test[list(CONVERSION_FEATURES)].head(200)
    contributions = conversion_model.contributions(rows)
    # TreeSHAP: contributions + bias add up to the booster's log-odds for every row.
    raw = conversion_model._raw(conversion_model._design(rows))
    np.testing.assert_allclose(contributions.sum(axis=1), np.log(raw / (1 - raw)), atol=1e-3)
    tops = {
        tuple(f["feature"] for f in conversion_model.predict(r)["top_factors"])
        for r in rows.head(30).to_dict("records")
    }
    assert len(tops) > 1  # different sessions, different reasons
    out = conversion_model.predict(rows.iloc[0].to_dict())
    # the single-session fast path agrees with the batch path
    assert out["conversion_probability"] == pytest.approx(
        conversion_model.predict_proba(rows.head(1))[0], abs=1e-4
    )
    assert set(out) == {"conversion_probability", "confidence", "top_factors", "will_convert"}
    assert len(out["top_factors"]) == 3 and {"feature", "value", "impact", "direction"} <= set(
        out["top_factors"][0]
    )


def _roas(mae=0.2, bias=0.0, coverage=0.8, naive_mae=0.3):
    return {
        "mae": mae,
        "bias": bias,
        "coverage_80": coverage,
        "naive": "trailing_30d",
        "naive_mae": naive_mae,
    }


def test_gate_promotes_only_good_enough_challengers():
    assert decide("roas", _roas(), None).promote
    assert decide("roas", _roas(), _roas()).promote
    worse = decide("roas", _roas(mae=0.25), _roas(mae=0.2))
    assert not worse.promote and "worse than champion" in worse.summary
    assert not decide("roas", _roas(coverage=0.5), None).promote
    assert decide("conversion", {"auc": 0.9}, {"auc": 0.902}).promote
    assert not decide("conversion", {"auc": 0.88}, {"auc": 0.9}).promote
    assert not decide("conversion", {"auc": 0.8}, None).promote


def test_gate_refuses_a_biased_forecast_or_one_that_loses_to_the_naive_forecast():
    assert decide("roas", _roas(bias=-0.099), None).promote
    biased = decide("roas", _roas(bias=-0.11), None)
    assert not biased.promote and "bias" in biased.summary
    assert not decide("roas", _roas(bias=0.11), None).promote
    assert not decide("roas", _roas(bias=0.11), _roas(bias=0.05)).promote
    # after a change in the account: a biased challenger still replaces a more biased champion
    assert decide("roas", _roas(bias=-0.12), _roas(mae=0.3, bias=0.4)).promote
    # no better than a trailing average beyond the 2% tolerance: refused, and the reason names the naive forecast
    assert decide("roas", _roas(mae=0.305, naive_mae=0.3), None).promote
    loses = decide("roas", _roas(mae=0.31, naive_mae=0.3), None)
    assert not loses.promote and "trailing_30d" in loses.summary


def _noisy_campaigns(seed: int, campaigns: int = 300, days: int = 60) -> pd.DataFrame:
    """Campaign-days with a known expected next-day ROAS and heavy noise around it: negative-binomial
    conversion counts (zero-revenue days) and lognormal order values, 0.3-30 conversions a day."""
    rng = np.random.default_rng(seed)
    level = rng.lognormal(np.log(2.0), 0.4, campaigns)
    volume = rng.lognormal(np.log(4.0), 1.0, campaigns)
    c = np.repeat(np.arange(campaigns), days)
    spend = np.full(len(c), 100.0)
    expected = level[c]
    mean_conversions = volume[c]
    counts = rng.poisson(mean_conversions * rng.gamma(3.0, 1 / 3.0, len(c)))
    order_value = expected * spend / mean_conversions  # so that E[revenue] = expected * spend
    owner = np.repeat(np.arange(len(c)), counts)
    revenue = np.bincount(
        owner, weights=rng.lognormal(np.log(order_value[owner]) - 0.8**2 / 2, 0.8), minlength=len(c)
    )
    daily = pd.DataFrame(
        {
            "tenant_id": "t",
            "campaign_id": [f"c{i}" for i in c],
            "platform": "meta",
            "audience_size": 1e5,
            "daily_budget": 100.0,
            "date": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.tile(np.arange(days), campaigns), "D"),
            "spend": spend,
            "revenue": revenue,
            "impressions": 10_000,
            "clicks": 200,
            "conversions": counts,
        }
    )
    frame = training_frame(campaign_features(daily))
    return frame.assign(expected_roas=level[frame["campaign_id"].str[1:].astype(int).to_numpy()])


@pytest.mark.parametrize("seed", [1, 2])
def test_the_forecast_is_the_expected_roas_under_heavy_noise(seed):
    frame = _noisy_campaigns(seed)
    train, test = holdout_split(frame, 10)
    model = ROASPredictor(n_estimators=150).fit(train, train[TARGET])
    predicted = model.predict_frame(test)["predicted_roas"].to_numpy()
    assert predicted.mean() / test["expected_roas"].mean() == pytest.approx(1.0, abs=0.05)
    # a geometric-mean forecaster (what a squared error on log ROAS learns) would be far below the mean here
    realised = test[TARGET].to_numpy()
    assert np.exp(np.log(np.maximum(realised, 0.01)).mean()) < 0.8 * test["expected_roas"].mean()


def test_operating_threshold_is_the_highest_recall_at_the_precision():
    p = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4])
    y = np.array([1, 1, 1, 0, 1, 0, 0, 1])
    # flagging the top 5 gives precision 4/5 = 0.8 (the lowest threshold that still reaches 0.8)
    assert operating_threshold(p, y, precision=0.8, min_flagged=1) == 0.7
    assert operating_threshold(p, y, precision=0.81, min_flagged=1) == 0.85
    assert operating_threshold(p, y, precision=0.8, min_flagged=6) == 1.0  # never reached by 6 or more
    # ties: a threshold flags every session at its value
    assert (
        operating_threshold(np.array([0.9, 0.5, 0.5]), np.array([1, 1, 0]), precision=0.8, min_flagged=1)
        == 0.9
    )


def test_calibration_keeps_the_boosters_ranking(conversion_model, conversion_split):
    from sklearn.metrics import roc_auc_score

    _, test = conversion_split
    raw = conversion_model._raw(conversion_model._design(test))
    calibrated = conversion_model.predict_proba(test)
    assert roc_auc_score(test["converted"], calibrated) == pytest.approx(
        roc_auc_score(test["converted"], raw), abs=1e-9
    )
    assert decide("conversion", {"auc": 0.9}, {"auc": 0.902}).promote
    assert not decide("conversion", {"auc": 0.88}, {"auc": 0.9}).promote
    assert not decide("conversion", {"auc": 0.8}, None).promote
