"""ml.anomalies' multi-day conversions test, its fitted shared level error, and the impressions (CPM) test."""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.ml.anomalies import (
    AnomalyDetector,
    DetectorParams,
    InputError,
    fit_drift,
    run_probability,
)

from .test_anomalies import LAST, campaign_frame, found, last_day


def nb_frame(
    conversions_per_day: float, days: int = 70, seed: int = 0, size: float = 5.0, campaign: str = "c1"
) -> pd.DataFrame:
    """A steady campaign whose daily conversions are negative binomial (size `size`), as in real accounts."""
    frame = campaign_frame(conversions_per_day, days=days, seed=seed, campaign=campaign)
    rng = np.random.default_rng(seed + 1000)
    frame["conversions"] = rng.poisson(conversions_per_day * rng.gamma(size, 1.0 / size, days))
    return frame


def test_a_run_of_low_days_is_found_where_no_single_day_of_it_is():
    detector = AnomalyDetector(DetectorParams(conversion_drift=0.0))  # as fitted on such campaigns
    since = LAST - timedelta(days=3)
    frame = nb_frame(80.0, seed=3)
    assert detector.detect(frame, since=since).empty  # the campaign as it was: nothing
    frame.loc[frame.index[-4:], "conversions"] = 20  # a landing page converting at a quarter for 4 days
    scored = detector.score(frame, since=since)
    assert (scored["p_conv"] > detector.params.alpha_conversions).all()  # each day alone: within the noise
    findings = detector.detect(frame, since=since)
    assert list(findings["kind"]) == ["conversion_rate_drop"]
    row = findings.iloc[0]
    assert row["probability"] < detector.params.alpha_scan and row["observed"] == 20
    assert 60 < row["expected"] < 100  # per day of the run, what the days before it predicted


def test_run_probability_counts_only_clean_runs_that_end_low():
    n_c, n_t = 3, 5
    conversions = np.array([[10.0, 10, 10, 10, 10], [30, 30, 30, 30, 30], [30, 30, 30, 10, 10]])
    exposure = np.ones((n_c, n_t))
    rate = np.full((n_c, n_t), 30.0)
    window = np.full((n_c, n_t), 900.0)
    usable = np.ones((n_c, n_t), dtype=bool)
    prob, days, expected, observed = run_probability(conversions, exposure, rate, window, 5.0, usable, 5)
    assert prob[0] < 1e-4 and days[0] == 5 and expected[0] == pytest.approx(150) and observed[0] == 50
    assert np.isnan(prob[1]) and days[1] == 0  # at its expected level: no run counts
    assert days[2] == 2 and observed[2] == 20  # the low run is the last two days
    usable[0, 2] = False  # a flagged day ends the runs that reach back over it
    prob_flagged, days_flagged, _, _ = run_probability(conversions, exposure, rate, window, 5.0, usable, 5)
    assert days_flagged[0] == 2 and prob_flagged[0] > prob[0]
    # a shared level error (drift) and a spend change both widen the run's distribution
    assert (
        run_probability(conversions, exposure, rate, window, 5.0, usable, 5, drift=0.1)[0][0]
        > prob_flagged[0]
    )
    log_spend = np.zeros((n_c, n_t))
    shifted = run_probability(
        conversions, exposure, rate, window, 5.0, usable, 5, spend_shift=(log_spend + 1.0, log_spend, 0.3)
    )
    assert shifted[0][0] > prob_flagged[0]


@pytest.mark.parametrize("tau2", [0.0, 0.05])
def test_fit_drift_recovers_a_level_error_shared_by_neighbouring_days(tau2):
    rng = np.random.default_rng(7)
    n_c, n_t, k = 200, 60, 5.0
    mu = np.full((n_c, n_t), 40.0)
    shared = np.repeat(rng.lognormal(-tau2 / 2, np.sqrt(tau2), (n_c, n_t // 3)), 3, axis=1) if tau2 else 1.0
    observed = rng.poisson(mu * shared * rng.gamma(k, 1.0 / k, (n_c, n_t))).astype(float)
    excess = (observed - mu) ** 2 - mu  # the daily 1/size as `fit` estimates it (the 1% largest left out)
    keep = excess <= np.quantile(excess, 0.99)
    daily = excess[keep].sum() / (mu[keep] ** 2).sum()
    estimate = fit_drift(mu, observed, np.full((n_c, n_t), 1e9), daily)
    assert estimate == pytest.approx(tau2, abs=0.01)


def test_fit_drift_needs_enough_runs():
    assert fit_drift(np.full((2, 6), 10.0), np.full((2, 6), 10.0), np.full((2, 6), 100.0), 0.2) == 0.0


def test_a_cpm_jump_is_a_cpc_jump_and_a_ctr_change_is_not():
    frame = campaign_frame(100.0, seed=8).assign(impressions=lambda f: f["clicks"] * 40)
    assert found(frame).empty
    dearer = last_day(
        frame, impressions=int(frame["impressions"].iloc[-1] / 2), clicks=int(frame["clicks"].iloc[-1] / 2)
    )
    findings = found(dearer)
    assert list(findings["kind"]) == ["cpc_jump"] and findings.iloc[0]["probability"] < 1e-4
    # a new creative with a lower CTR: fewer clicks for the same impressions is no auction change
    assert found(last_day(frame, clicks=int(frame["clicks"].iloc[-1] / 2))).empty


def test_impressions_are_optional_and_checked():
    frame = campaign_frame(50.0).assign(impressions=lambda f: f["clicks"] * 40)
    assert "p_impressions" in AnomalyDetector().score(frame, since=LAST).columns
    assert AnomalyDetector().score(campaign_frame(50.0), since=LAST)["p_impressions"].isna().all()
    with pytest.raises(InputError, match="impressions has 1 values that are missing, infinite or negative"):
        found(last_day(frame, impressions=-3))


def test_old_pickled_params_get_the_new_defaults():
    params = DetectorParams()
    state = {k: v for k, v in params.__dict__.items() if k not in ("alpha_scan", "conversion_drift")}
    old = object.__new__(DetectorParams)
    object.__setattr__(old, "__dict__", state)
    assert old.alpha_scan == params.alpha_scan and old.conversion_drift == params.conversion_drift
