"""Feature builders: values on hand-made data, calendar windows, and no future data in any feature."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.ml import fatigue
from stratum_pipeline.ml.features import (
    CONVERSION_FEATURES,
    FATIGUE_FEATURES,
    ROAS_FEATURES,
    _rolling_sums,
    campaign_features,
    creative_features,
    session_features,
)

START = date(2026, 1, 1)


def daily_campaign(days=40, campaign="a-c1", spend=100.0, revenue=300.0, skip=()):
    rows = []
    for i in range(days):
        if i in skip:
            continue
        rows.append(
            dict(
                tenant_id="alpha",
                campaign_id=campaign,
                platform="meta",
                date=START + timedelta(days=i),
                spend=spend,
                revenue=revenue,
                impressions=1000 * (i + 1),
                clicks=10 * (i + 1),
                conversions=i + 1,
                audience_size=50_000,
                daily_budget=120.0,
            )
        )
    return pd.DataFrame(rows)


def daily_creative(days=20, launch=START, creative="a-c1-k1", ctr=(0.02, 0.01)):
    rates = np.linspace(ctr[0], ctr[1], days)
    return pd.DataFrame(
        dict(
            tenant_id="alpha",
            campaign_id="a-c1",
            creative_id=creative,
            launch_date=launch,
            date=[launch + timedelta(days=i) for i in range(days)],
            impressions=10_000,
            clicks=(rates * 10_000).astype(int),
            engagements=(rates * 25_000).astype(int),
            audience_size=100_000,
        )
    )


def test_campaign_features_have_the_eleven_roas_features():
    out = campaign_features(daily_campaign())
    assert set(ROAS_FEATURES) <= set(out.columns)
    assert len(ROAS_FEATURES) == 11


def test_rolling_roas_and_rates_on_known_values():
    frame = daily_campaign(revenue=300.0)
    frame.loc[frame["date"] == START + timedelta(days=39), "revenue"] = 1000.0
    out = campaign_features(frame).set_index("date")
    last = out.loc[pd.Timestamp(START + timedelta(days=39))]
    assert last["roas_7d"] == pytest.approx((6 * 300 + 1000) / 700)
    assert last["roas_30d"] == pytest.approx((29 * 300 + 1000) / 3000)
    assert last["spend_velocity"] == pytest.approx(1.0)
    assert last["ctr"] == pytest.approx(0.01)
    clicks7 = sum(10 * (i + 1) for i in range(33, 40))
    assert last["conversion_rate"] == pytest.approx(sum(i + 1 for i in range(33, 40)) / clicks7)
    imps7 = sum(1000 * (i + 1) for i in range(33, 40))
    imps_prev = sum(1000 * (i + 1) for i in range(26, 33))
    assert last["impressions_growth"] == pytest.approx(imps7 / imps_prev - 1)
    # Calendar features describe the forecast day (the next day).
    nxt = pd.Timestamp(START + timedelta(days=40))
    assert last["day_of_week"] == nxt.dayofweek and last["season"] == nxt.quarter
    assert last["history_days"] == 30


def test_spend_against_its_recent_daily_averages():
    frame = daily_campaign(spend=100.0)
    frame.loc[frame["date"] == START + timedelta(days=39), "spend"] = 200.0
    frame.loc[frame["date"] == START + timedelta(days=9), "spend"] = (
        400.0  # outside the 30 days ending on day 39
    )
    out = campaign_features(frame).set_index("date")
    last = out.loc[pd.Timestamp(START + timedelta(days=39))]
    assert last["spend_vs_3d"] == pytest.approx(200 / (400 / 3))
    assert last["spend_vs_7d"] == pytest.approx(200 / (800 / 7))
    assert last["spend_vs_30d"] == pytest.approx(200 / (3100 / 30))
    steady = out.loc[pd.Timestamp(START + timedelta(days=5))]
    assert steady[["spend_vs_3d", "spend_vs_7d", "spend_vs_30d"]].tolist() == pytest.approx([1.0, 1.0, 1.0])
    # calendar windows: after a 10-day gap the 7-day average holds only the days actually in it
    gap = campaign_features(daily_campaign(days=20, skip=set(range(5, 15)))).set_index("date")
    assert gap.loc[pd.Timestamp(START + timedelta(days=15)), "spend_vs_7d"] == pytest.approx(1.0)


def test_windows_are_calendar_days_not_rows():
    out = campaign_features(daily_campaign(days=20, skip=set(range(5, 15)))).set_index("date")
    day = out.loc[pd.Timestamp(START + timedelta(days=15))]
    # Days 9..15 hold only day 15: one day of spend, not seven rows.
    assert day["history_days"] == 6  # days 0-4 and 15 within 30 days
    assert day["spend_velocity"] == pytest.approx(1.0)


def test_campaign_features_use_no_future_rows():
    history = daily_campaign(days=30)
    future = daily_campaign(days=40, spend=999.0, revenue=1.0).iloc[30:]
    before = campaign_features(history, start=START, end=START + timedelta(days=29))
    after = campaign_features(pd.concat([history, future]), start=START, end=START + timedelta(days=29))
    pd.testing.assert_frame_equal(before, after)


def test_range_selects_days_and_keeps_one_row_per_campaign_day():
    frame = pd.concat([daily_campaign(campaign="a-c1"), daily_campaign(campaign="a-c2", days=10)])
    out = campaign_features(frame, start=START + timedelta(days=5), end=START + timedelta(days=9))
    assert len(out) == 10 and not out.duplicated(["campaign_id", "date"]).any()


def test_creative_fatigue_input_is_the_impression_weighted_mean():
    camp = daily_campaign(days=3)
    fat = pd.DataFrame(
        dict(
            campaign_id="a-c1",
            date=[START + timedelta(days=2)] * 2,
            fatigue_score=[20.0, 80.0],
            impressions_7d=[999, 2999],
        )
    )
    out = campaign_features(camp, fat).set_index("date")
    assert out.loc[pd.Timestamp(START + timedelta(days=2)), "creative_fatigue"] == pytest.approx(
        (1000 * 20 + 3000 * 80) / 4000
    )
    assert np.isnan(out.loc[pd.Timestamp(START), "creative_fatigue"])


def test_creative_features_track_decay_from_the_launch_baseline():
    out = creative_features(daily_creative(days=20))
    assert set(FATIGUE_FEATURES) <= set(out.columns)
    last = out.iloc[-1]
    assert last["days_active"] == 20
    assert last["frequency"] == pytest.approx(20 * 10_000 / 100_000)
    assert last["ctr_baseline"] == pytest.approx(out["ctr_current"].iloc[:3].mean(), rel=0.05)
    assert last["ctr_current"] < last["ctr_baseline"]
    assert out["fatigue_score"].is_monotonic_increasing
    assert 0 <= out["fatigue_score"].min() and out["fatigue_score"].max() <= 100


def test_creative_features_use_no_future_rows():
    full = daily_creative(days=20)
    early = full.iloc[:10]
    end = START + timedelta(days=9)
    pd.testing.assert_frame_equal(creative_features(early, end=end), creative_features(full, end=end))


def test_session_features_clean_and_keep_missing_values():
    raw = pd.DataFrame(
        dict(
            tenant_id="alpha",
            session_id=["s1", "s2"],
            started_at=["2026-01-01 10:00", "2026-01-01 23:59"],
            session_duration=[30_000.0, None],
            pages_viewed=[3, None],
            cart_value=[0.0, 12.5],
            items_in_cart=[0, 1],
            time_since_last_visit=[None, 4.0],
            previous_purchases=[0, 2],
            device_type=[" Mobile ", None],
            traffic_source=["EMAIL", ""],
            user_segment=["new", "VIP"],
            converted=[False, True],
        )
    )
    out = session_features(raw)
    assert list(CONVERSION_FEATURES) == [c for c in out.columns if c in CONVERSION_FEATURES]
    assert out.loc[0, "session_duration"] == 4 * 3600
    assert np.isnan(out.loc[1, "session_duration"]) and np.isnan(out.loc[0, "time_since_last_visit"])
    assert out.loc[0, "device_type"] == "mobile" and out.loc[1, "device_type"] is None
    assert out.loc[0, "traffic_source"] == "email" and out.loc[1, "traffic_source"] is None
    assert out.loc[1, "user_segment"] == "vip"
    assert (out["date"] == pd.Timestamp("2026-01-01")).all()


def test_fatigue_levels_follow_the_thresholds():
    assert list(fatigue.fatigue_level([0, 29.9, 50, 69.9, 70, 85, 100])) == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "critical",
        "critical",
    ]
    score = fatigue.fatigue_score([0, 60], [1.0, 8.0], [0.0, 0.5], [0.0, 0.5])
    assert score[0] == 0 and score[1] == pytest.approx(100)


def test_an_id_that_is_a_list_is_a_clear_error():
    from stratum_pipeline.ml.inputs import InputError

    frame = daily_campaign(days=3)
    frame["campaign_id"] = frame["campaign_id"].astype(object)
    frame.at[1, "campaign_id"] = ["a-c1"]  # found by the hostile-input property test
    with pytest.raises(
        InputError, match="campaign daily rows: campaign_id has 1 values that are not a text or number id"
    ):
        campaign_features(frame)


@pytest.mark.parametrize("days", [1, 3, 7, 30])
def test_vectorised_rolling_sums_equal_pandas_calendar_rolling(days):
    """_rolling_sums against pandas' groupby().rolling(f"{days}D") on keys with gaps, single days and floats."""
    rng = np.random.default_rng(days)
    parts = []
    for key in ["a", "b", "c", "d"]:
        n = int(rng.integers(1, 60))
        dates = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.sort(rng.choice(120, n, replace=False)), "D")
        parts.append(
            pd.DataFrame({"k": key, "date": dates, "x": rng.normal(100, 50, n), "y": rng.integers(0, 9, n)})
        )
    frame = pd.concat(parts, ignore_index=True).sort_values(["k", "date"]).reset_index(drop=True)
    got = _rolling_sums(frame, "k", ["x", "y"], days)
    rolled = frame.set_index("date").groupby("k", sort=False)[["x", "y"]].rolling(f"{days}D")
    expected = rolled.sum().reset_index(drop=True)
    np.testing.assert_allclose(got[f"x_{days}d"], expected["x"], rtol=1e-12)
    np.testing.assert_array_equal(got[f"y_{days}d"], expected["y"])
    np.testing.assert_array_equal(got[f"n_{days}d"], rolled.count().reset_index(drop=True)["x"])
