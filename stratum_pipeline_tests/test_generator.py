"""The demo generator: deterministic, causal, with ground truth and every kind of bad row."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.demo.generator import (
    BAD_ROW_KINDS,
    DEMO_TENANTS,
    DemoConfig,
    conversion_logit,
    generate,
    hill,
)
from stratum_pipeline.storage.source_schema import KNOWN_PLATFORMS, SOURCE_TABLES, TRUTH_TABLES

from .conftest import TEST_CONFIG


def test_same_seed_same_data_and_other_seed_other_data(dataset):
    again = generate(TEST_CONFIG)
    for name, frame in dataset.tables.items():
        pd.testing.assert_frame_equal(frame, again[name], obj=name)
    other = generate(TEST_CONFIG.with_overrides(seed=TEST_CONFIG.seed + 1))
    assert not other["campaign_daily_metrics"]["spend"].equals(dataset["campaign_daily_metrics"]["spend"])


def test_every_table_of_the_schema_is_generated_with_its_columns(dataset):
    for table in SOURCE_TABLES + TRUTH_TABLES:
        assert set(c.name for c in table.columns) <= set(dataset[table.name].columns), table.name
        if table.name == "truth_anomalies":  # off in the low regime (test_anomaly_injection.py has them on)
            assert not TEST_CONFIG.inject_anomalies and dataset[table.name].empty
            continue
        if table.name == "truth_changes":  # off by default (test_change_injection.py has them on)
            assert not TEST_CONFIG.changes and dataset[table.name].empty
            continue
        assert len(dataset[table.name]) > 0, table.name


def test_every_bad_row_kind_is_injected_and_recorded(dataset):
    truth = dataset["truth_bad_rows"]
    for table, kinds in BAD_ROW_KINDS.items():
        injected = set(truth.loc[truth["table_name"] == table, "kind"])
        assert injected == set(kinds), table
        ids = set(dataset[table]["id"])
        assert set(truth.loc[truth["table_name"] == table, "source_id"]) <= ids
    metrics = dataset["campaign_daily_metrics"].set_index("id")
    negative = truth[
        (truth.table_name == "campaign_daily_metrics") & (truth.kind == "negative_spend")
    ].source_id
    assert (metrics.loc[negative, "spend"] < 0).all()
    platform = truth[
        (truth.table_name == "campaign_daily_metrics") & (truth.kind == "unknown_platform")
    ].source_id
    assert not metrics.loc[platform, "platform"].isin(KNOWN_PLATFORMS).any()


def test_no_bad_rows_when_the_rate_is_zero():
    clean = generate(TEST_CONFIG.with_overrides(bad_row_rate=0.0))
    assert clean["truth_bad_rows"].empty
    metrics = clean["campaign_daily_metrics"]
    assert (metrics["spend"] >= 0).all() and (metrics["clicks"] <= metrics["impressions"]).all()
    assert not metrics.duplicated(["campaign_id", "date"]).any()


def test_demo_default_has_tenants_below_the_training_minimum():
    # The seed's ROAS minimum: 100 campaigns with 30+ days of history.
    eligible = [t for t in DEMO_TENANTS if t.campaigns >= 100 and t.history_days >= 30]
    assert 0 < len(eligible) < len(DEMO_TENANTS)


def test_hill_response_saturates():
    spend = np.array([0.0, 500, 1000, 2000, 4000, 8000])
    conv = hill(spend, np.full(6, 400.0), np.full(6, 1000.0), np.full(6, 1.0))
    assert conv[0] == 0 and np.all(np.diff(conv) > 0)
    assert np.all(np.diff(conv / np.maximum(spend, 1))[1:] < 0)  # returns per dollar fall
    assert conv[-1] < 400


def test_realised_roas_tracks_the_expected_roas(dataset):
    metrics = dataset["campaign_daily_metrics"].merge(
        dataset["truth_campaign_daily"], on=["campaign_id", "date"]
    )
    metrics = metrics[pd.to_numeric(metrics["spend"], errors="coerce") > 0]
    realised = metrics["revenue"] / metrics["spend"].astype(float)
    assert np.corrcoef(realised, metrics["expected_roas"])[0, 1] > 0.9


def test_creative_ctr_decays_with_cumulative_frequency(dataset):
    truth = dataset["truth_creative_daily"]
    first = truth.groupby("creative_id")["true_ctr_decay"].first()
    last = truth.groupby("creative_id")["true_ctr_decay"].last()
    assert (last >= first).all() and (last > first).mean() > 0.9
    assert set(truth["true_fatigue_level"]) <= {"low", "medium", "high", "critical"}


def test_session_conversion_follows_the_true_probability(dataset):
    from sklearn.metrics import roc_auc_score

    sessions = dataset["sessions"].merge(dataset["truth_sessions"], on="session_id")
    sessions = sessions[sessions["converted"].notna()]
    assert roc_auc_score(sessions["converted"].astype(bool), sessions["true_probability"]) > 0.85
    assert abs(sessions["converted"].astype(bool).mean() - sessions["true_probability"].mean()) < 0.03


def test_conversion_logit_rises_with_cart_and_purchases():
    base = pd.DataFrame(
        {
            "session_duration": [120.0] * 3,
            "pages_viewed": [3] * 3,
            "cart_value": [0.0, 50.0, 50.0],
            "items_in_cart": [0, 1, 1],
            "time_since_last_visit": [np.nan, 10.0, 10.0],
            "previous_purchases": [0, 0, 5],
            "device_type": ["mobile"] * 3,
            "traffic_source": ["organic"] * 3,
            "user_segment": ["new", "returning", "returning"],
        }
    )
    logit = conversion_logit(base)
    assert logit[0] < logit[1] < logit[2]


def test_events_miss_match_keys_at_platform_specific_rates(dataset):
    events = dataset["capi_events"]
    by_platform = events.groupby("platform")
    assert by_platform["gclid"].apply(lambda s: s.isna().mean()).get("meta", 1.0) == 1.0
    google = events[events["platform"] == "google"]
    assert google["gclid"].notna().mean() > 0.6


def test_scaled_config_sizes():
    config = DemoConfig.scaled(
        date(2026, 1, 31), tenants=3, campaigns=4, days=10, sessions_per_day=5, bad_row_rate=0.0
    )
    data = generate(config)
    assert len(data["tenants"]) == 3 and len(data["campaigns"]) == 12
    assert data["campaign_daily_metrics"]["date"].nunique() == 10
    assert len(data["campaign_daily_metrics"]) <= 12 * 10


@pytest.mark.parametrize("rate", [0.0, 0.01])
def test_dates_stay_within_the_configured_window(rate):
    config = TEST_CONFIG.with_overrides(bad_row_rate=rate)
    data = generate(config)
    dates = pd.to_datetime(data["campaign_daily_metrics"]["date"])
    assert dates.min().date() >= config.start_date and dates.max().date() == config.end_date


def test_realistic_regime_looks_like_real_ad_accounts():
    from stratum_pipeline.demo.generator import NOISE_REGIMES

    data = generate(
        DemoConfig.scaled(
            date(2026, 6, 30),
            tenants=1,
            campaigns=200,
            days=40,
            sessions_per_day=5,
            bad_row_rate=0.0,
            noise=NOISE_REGIMES["realistic"],
        )
    )
    truth = data["truth_campaign_daily"]
    metrics = data["campaign_daily_metrics"].merge(truth, on=["campaign_id", "date"])
    volume = truth.groupby("campaign_id")["expected_conversions"].mean()
    assert (
        volume.quantile(0.1) < 2 and 3 < volume.median() < 15 and volume.quantile(0.9) > 15
    )  # ~0.5-50 a day
    assert (metrics["revenue"] == 0).mean() > 0.03  # zero-revenue days are common
    # overdispersed: the counts vary more than Poisson counts around their expected value would
    z = (metrics["conversions"] - metrics["expected_conversions"]) / np.sqrt(metrics["expected_conversions"])
    assert z.var() > 1.5
    response = data["truth_campaign_response"]
    assert (
        set(response["campaign_id"]) == set(data["campaigns"]["id"]) and (response["adstock_rate"] > 0).all()
    )
    # carry-over: the response saw a spend path that lags the day's spend
    assert not np.allclose(
        truth["adstocked_spend"],
        metrics.set_index(["campaign_id", "date"])
        .loc[list(zip(truth["campaign_id"], truth["date"])), "spend"]
        .to_numpy(),
    )


def test_adstock_carries_spend_over_and_keeps_its_level():
    from stratum_pipeline.demo.generator import adstock

    pulse = adstock(np.array([[100.0, 0, 0, 0]]), 0.5)[0]
    np.testing.assert_allclose(pulse, [50, 25, 12.5, 6.25])  # the pulse's effect decays geometrically
    steady = adstock(np.full((1, 60), 80.0), 0.4)[0]
    assert steady[-1] == pytest.approx(80.0)  # a constant spend settles at its own level
    np.testing.assert_allclose(adstock(np.array([[5.0, 7.0]]), 0.0), [[5.0, 7.0]])


def test_low_regime_has_no_carry_over():
    clean = generate(TEST_CONFIG.with_overrides(bad_row_rate=0.0))
    response = clean["truth_campaign_response"]
    assert (response["adstock_rate"] == 0).all() and (response["noise_regime"] == "low").all()
    joined = clean["campaign_daily_metrics"].merge(clean["truth_campaign_daily"], on=["campaign_id", "date"])
    np.testing.assert_allclose(joined["adstocked_spend"], joined["spend"])
