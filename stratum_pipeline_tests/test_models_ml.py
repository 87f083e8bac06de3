"""ROASPredictor, ConversionPredictor and the promotion gate, on generated data (no Dagster, no MLflow)."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.checks.model_gate import decide
from stratum_pipeline.demo.generator import DemoConfig, TenantSpec, generate
from stratum_pipeline.ml.conversion import ConversionPredictor
from stratum_pipeline.ml.evaluation import conversion_metrics, roas_metrics
from stratum_pipeline.ml.features import CONVERSION_FEATURES
from stratum_pipeline.ml.roas import TARGET, ROASPredictor, budget_recommendation, roas_trend, training_frame
from stratum_pipeline.training import holdout_split

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
    following = campaign[(campaign["campaign_id"] == row["campaign_id"])
                         & (pd.to_datetime(campaign["date"]) == row["date"] + pd.Timedelta(days=1))]
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
    assert set(out) == {"predicted_roas", "confidence_lower", "confidence_upper", "trend", "recommendation",
                        "budget_recommendation"}
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
    assert roas_trend(3.3, 3.0) == "improving" and roas_trend(2.7, 3.0) == "declining" and roas_trend(3.0, 3.0) == "stable"
    assert roas_trend(None, 3.0) == "stable"
    assert budget_recommendation(0.7, 0.5, 0.9, 0.8, 0.8, 1.0, "stable")["budget_change_percent"] == -30
    assert budget_recommendation(0.9, 0.6, 1.2, 0.8, 0.8, 1.0, "stable")["budget_change_percent"] == -15
    assert budget_recommendation(4.0, 3.0, 5.0, 3.5, 4.0, 1.5, "declining")["action"] == "maintain"  # diminishing
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
    tops = {tuple(f["feature"] for f in conversion_model.predict(r)["top_factors"]) for r in rows.head(30).to_dict("records")}
    assert len(tops) > 1  # different sessions, different reasons
    out = conversion_model.predict(rows.iloc[0].to_dict())
    # the single-session fast path agrees with the batch path
    assert out["conversion_probability"] == pytest.approx(conversion_model.predict_proba(rows.head(1))[0], abs=1e-4)
    assert set(out) == {"conversion_probability", "confidence", "top_factors", "will_convert"}
    assert len(out["top_factors"]) == 3 and {"feature", "value", "impact", "direction"} <= set(out["top_factors"][0])


def test_gate_promotes_only_good_enough_challengers():
    good = {"mae": 0.2, "r2": 0.9, "coverage_80": 0.8}
    assert decide("roas", good, None).promote
    assert decide("roas", good, {"mae": 0.2, "r2": 0.9, "coverage_80": 0.8}).promote
    worse = decide("roas", {"mae": 0.25, "r2": 0.9, "coverage_80": 0.8}, {"mae": 0.2})
    assert not worse.promote and "worse than champion" in worse.summary
    assert not decide("roas", {"mae": 0.35, "r2": 0.9, "coverage_80": 0.8}, None).promote
    assert not decide("roas", {"mae": 0.2, "r2": 0.9, "coverage_80": 0.5}, None).promote
    assert decide("conversion", {"auc": 0.9}, {"auc": 0.902}).promote
    assert not decide("conversion", {"auc": 0.88}, {"auc": 0.9}).promote
    assert not decide("conversion", {"auc": 0.8}, None).promote
