"""Learning a dated change quickly (#21): recent-weighted fits, the conversion model's log-odds shift, the gate
that judges calibration, and the training path that carries the change date into MLflow params."""

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.ml.conversion import ConversionPredictor
from stratum_pipeline.ml.evaluation import conversion_metrics
from stratum_pipeline.ml.features import CONVERSION_FEATURES
from stratum_pipeline.ml.recency import apply_shift, check_weights, logit_shift, recent_weights
from stratum_pipeline.ml.roas import ROASPredictor
from stratum_pipeline.modelops.gate import decide
from stratum_pipeline.modelops.training import fit_conversion, recent_holdout_days

from .small_models import roas_rows

CHANGE = pd.Timestamp("2026-03-01")


def test_recent_weights_give_the_post_change_rows_their_share_with_a_mean_of_one():
    dates = pd.date_range("2026-02-01", periods=40)  # 28 days before the change, 12 after
    weight = recent_weights(dates, CHANGE, post_share=0.8)
    post = dates >= CHANGE
    assert weight.mean() == pytest.approx(1.0)
    assert weight[post].sum() / weight.sum() == pytest.approx(0.8)
    assert np.ptp(weight[post]) == 0 and np.ptp(weight[~post]) == 0 and weight[post][0] > weight[~post][0]
    assert (recent_weights(dates, "2027-01-01") == 1).all()  # no post-change rows: unweighted
    with pytest.raises(ValueError, match="post_share"):
        recent_weights(dates, CHANGE, post_share=1.0)
    with pytest.raises(ValueError, match="non-negative"):
        check_weights([1.0, -1.0], 2)
    with pytest.raises(ValueError, match="3 values for 2 rows"):
        check_weights([1.0, 1.0, 1.0], 2)


def test_logit_shift_recovers_a_change_of_the_odds_and_zero_leaves_probabilities_untouched():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.02, 0.6, 20_000)
    true = apply_shift(p, np.log(0.5))  # the odds halved
    y = rng.uniform(size=len(p)) < true
    assert logit_shift(p, y) == pytest.approx(np.log(0.5), abs=0.06)
    assert logit_shift(p[:50], y[:50], prior_rows=1e9) == pytest.approx(0.0, abs=1e-6)  # the prior holds it
    assert apply_shift(p, 0.0) is p or np.array_equal(apply_shift(p, 0.0), p)


def _shifted_roas(level_after: float, n: int = 900):
    """90 days of synthetic campaign-days whose next-day ROAS is 2x the 7-day ROAS, then `level_after`x from
    CHANGE (day 60) on: the inputs stay, the relation moves."""
    frame, _ = roas_rows(n=n, seed=5)
    frame["date"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n) % 90, unit="D")
    after = (frame["date"] + pd.Timedelta(days=1) >= CHANGE).to_numpy()
    rng = np.random.default_rng(6)
    target = frame["roas_7d"].to_numpy() * np.where(after, level_after, 2.0) * rng.lognormal(0, 0.1, n)
    return frame, target


def test_a_recent_weighted_fit_learns_a_shifted_level_faster_than_an_unweighted_one():
    frame, target = _shifted_roas(1.2)
    train = (frame["date"] < CHANGE + pd.Timedelta(days=14)).to_numpy()  # 15 post-change target days of 74
    test = ~train
    weight = recent_weights(frame.loc[train, "date"] + pd.Timedelta(days=1), CHANGE)
    plain = ROASPredictor(n_estimators=60, n_jobs=1).fit(frame[train], target[train])
    weighted = ROASPredictor(n_estimators=60, n_jobs=1).fit(frame[train], target[train], sample_weight=weight)
    errors = {
        name: np.abs(model.predict_frame(frame[test])["predicted_roas"] - target[test]).mean()
        / target[test].mean()
        for name, model in (("plain", plain), ("weighted", weighted))
    }
    assert errors["weighted"] < 0.6 * errors["plain"], errors


def _sessions(n: int, odds: float, seed: int, start: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.uniform(0, 10, n) for c in CONVERSION_FEATURES[:6]})
    frame["device_type"] = rng.choice(["desktop", "mobile"], n)
    frame["traffic_source"] = rng.choice(["search", "social"], n)
    frame["user_segment"] = rng.choice(["new", "returning"], n)
    frame["started_at"] = pd.Timestamp(start) + pd.to_timedelta(
        np.sort(rng.uniform(0, 10 * 86400, n)), unit="s"
    )
    frame["date"] = frame["started_at"].dt.normalize()
    logit = frame["pages_viewed"].to_numpy() - 5 + np.log(odds)
    frame["converted"] = rng.uniform(size=n) < 1 / (1 + np.exp(-logit))
    return frame


@pytest.fixture(scope="module")
def conversion_shift():
    """A model fitted before a conversion shift (odds x0.25), and sessions after it: 10 days to learn from,
    then a later holdout."""
    before = _sessions(3000, 1.0, 1, "2026-02-19")
    after = _sessions(3000, 0.25, 2, "2026-03-01")
    holdout = _sessions(2000, 0.25, 3, "2026-03-11")
    champion = ConversionPredictor(n_estimators=30, n_jobs=1).fit(before, before["converted"])
    return before, after, holdout, champion


def _metrics(model, rows):
    return conversion_metrics(rows["converted"], model.predict_proba(rows), model.threshold_)


def test_the_conversion_gate_refuses_a_badly_calibrated_challenger_and_promotes_a_recalibrated_one(
    conversion_shift,
):
    before, after, holdout, champion = conversion_shift
    stale = ConversionPredictor(n_estimators=30, n_jobs=1, random_state=1).fit(before, before["converted"])
    recalibrated = champion.recalibrated(after, after["converted"])
    on_holdout = {
        name: _metrics(m, holdout)
        for name, m in (("champion", champion), ("stale", stale), ("fresh", recalibrated))
    }
    # a challenger retrained on the old regime ranks as well (AUC) but predicts far above the observed rate:
    # refused as a first model, and against a calibrated champion
    for champion_metrics in (None, on_holdout["fresh"]):
        refused = decide("conversion", on_holdout["stale"], champion_metrics)
        assert not refused.promote
        assert any("calibration gap +0.1" in r for r in refused.reasons), refused.reasons
    assert any("log loss" in r and "worse" in r for r in refused.reasons)
    # the champion's own log-odds shifted on the post-change sessions replaces the stale champion
    promoted = decide("conversion", on_holdout["fresh"], on_holdout["champion"])
    assert promoted.promote, promoted.reasons
    assert on_holdout["fresh"]["log_loss"] < 0.95 * on_holdout["champion"]["log_loss"]
    assert recalibrated.logit_shift_ < -0.8  # log(0.25) = -1.39, shrunk a little by its prior
    assert _metrics(recalibrated, holdout)["auc"] == pytest.approx(on_holdout["champion"]["auc"], abs=1e-9)
    assert np.array_equal(
        champion.predict_proba(holdout), champion.predict_proba(holdout)
    )  # the original stays


def test_the_conversion_gate_refuses_a_worse_log_loss_even_with_a_good_auc():
    champion = {"auc": 0.9, "log_loss": 0.30, "mean_probability": 0.10, "base_rate": 0.10}
    worse = {"auc": 0.9, "log_loss": 0.31, "mean_probability": 0.11, "base_rate": 0.10}
    decision = decide("conversion", worse, champion)
    assert not decision.promote and "log loss 0.3100 worse than champion's 0.3000 (+2%)" in decision.summary
    assert decide("conversion", {**worse, "log_loss": 0.305}, champion).promote
    # older champions' metrics without the calibration figures are judged on what they have
    assert decide("conversion", {**worse, "log_loss": 0.305}, {"auc": 0.9}).promote


def test_fit_conversion_from_a_change_date_recalibrates_on_the_sessions_since_and_says_so(conversion_shift):
    before, after, _, _ = conversion_shift
    rows = pd.concat([before, after], ignore_index=True)
    holdout_days = recent_holdout_days(rows["date"], "2026-03-01", 14)
    assert holdout_days == 5  # half of the 10 post-change days
    assert recent_holdout_days(rows["date"], None, 14) == 14
    predictor, params = fit_conversion(rows, "2026-03-01", n_estimators=30, n_jobs=1)
    assert params["recent_from"] == "2026-03-01"
    assert params["recalibration_sessions"] == len(after) and params["logit_shift"] == round(
        predictor.logit_shift_, 4
    )
    plain, none = fit_conversion(rows, None, n_estimators=30, n_jobs=1)
    assert none == {} and plain.logit_shift_ == 0.0
    observed = after["converted"].mean()
    assert abs(predictor.predict_proba(after).mean() - observed) < abs(
        plain.predict_proba(after).mean() - observed
    )
