"""Row-level validation: every bad row is quarantined with a reason, every clean row passes."""

from datetime import datetime

import numpy as np
import pandas as pd

from stratum_pipeline.storage.extracts import EXTRACTS
from stratum_pipeline.storage.validation import validate_rows

NOW = datetime(2026, 3, 10, 12, 0)


def campaign_rows(**overrides) -> pd.DataFrame:
    base = {
        "source_id": [1, 2, 3],
        "tenant_id": ["alpha"] * 3,
        "campaign_id": ["a-c1", "a-c2", "a-c3"],
        "platform": ["meta", "google", "tiktok"],
        "date": [pd.Timestamp("2026-03-01").date()] * 3,
        "spend": [100.0, 200.0, 300.0],
        "impressions": [1000, 2000, 3000],
        "clicks": [10, 20, 30],
        "conversions": [1, 2, 3],
        "revenue": [300.0, 500.0, 900.0],
        "daily_budget": [120.0, None, 350.0],  # unknown (NULL) is fine; negative is not
        "audience_size": [50_000, 80_000, None],
        "avg_order_value": [60.0, 55.0, 75.0],
        "recorded_at": [datetime(2026, 3, 2, 3)] * 3,
    }
    frame = pd.DataFrame(base)
    for column, values in overrides.items():
        frame[column] = values
    return frame


RULES = EXTRACTS["raw_campaign_daily"].rules


def test_clean_rows_pass_untouched():
    result = validate_rows(campaign_rows(), RULES, NOW)
    assert len(result.clean) == 3 and result.quarantine.empty


def test_each_problem_is_quarantined_with_its_reason():
    frame = campaign_rows(
        spend=[-5.0, None, 300.0],
        platform=["meta", "google", "myspace"],
        clicks=[10, 20, 5000],
    )
    result = validate_rows(frame, RULES, NOW)
    assert result.clean.empty
    reasons = result.quarantine.set_index("source_id")["reason"]
    assert "negative value: spend" in reasons[1]
    assert "missing value: spend" in reasons[2]
    assert "unknown platform: 'myspace'" in reasons[3] and "clicks > impressions" in reasons[3]
    assert set(result.quarantine["partition_date"]) == {pd.Timestamp("2026-03-01").date()}
    assert '"campaign_id": "a-c1"' in result.quarantine.set_index("source_id").loc[1, "record"]


def test_duplicates_keep_the_first_row_and_quarantine_the_copies():
    frame = campaign_rows(campaign_id=["a-c1", "a-c1", "a-c2"], source_id=[7, 3, 5])
    result = validate_rows(frame, RULES, NOW)
    assert sorted(result.clean["source_id"]) == [3, 5]
    quarantined = result.quarantine.set_index("source_id")
    assert list(quarantined.index) == [7]
    assert "duplicate key (campaign_id, date): first seen as source_id 3" in quarantined.loc[7, "reason"]


def test_dates_after_their_recording_or_after_now_are_future():
    frame = campaign_rows(
        recorded_at=[datetime(2026, 2, 26), datetime(2026, 3, 2), datetime(2026, 3, 2)],
        date=[
            pd.Timestamp("2026-03-01").date(),
            pd.Timestamp("2026-03-01").date(),
            pd.Timestamp("2026-03-20").date(),
        ],
    )
    result = validate_rows(frame, RULES, NOW)
    assert sorted(result.quarantine["source_id"]) == [1, 3]
    assert result.quarantine["reason"].str.contains("date in the future").all()


def test_missing_optional_session_signals_are_kept():
    rules = EXTRACTS["raw_sessions"].rules
    frame = pd.DataFrame(
        {
            "source_id": [1, 2, 3],
            "session_id": ["s1", "s2", "s3"],
            "tenant_id": ["alpha", "alpha", None],
            "started_at": [datetime(2026, 3, 1, 10)] * 3,
            "session_duration": [np.nan, 30.0, 10.0],
            "pages_viewed": [1, np.nan, 2],
            "cart_value": [0.0, -3.0, 1.0],
            "items_in_cart": [0, 1, 1],
            "time_since_last_visit": [np.nan, np.nan, 5.0],
            "previous_purchases": [0, 0, 1],
            "device_type": [None, "mobile", "desktop"],
            "traffic_source": ["email", None, "organic"],
            "user_segment": ["new", "new", "vip"],
            "converted": [True, False, None],
            "recorded_at": [datetime(2026, 3, 1, 11)] * 3,
        }
    )
    result = validate_rows(frame, rules, NOW)
    assert list(result.clean["source_id"]) == [1]
    reasons = result.quarantine.set_index("source_id")["reason"]
    assert "negative value: cart_value" in reasons[2]
    assert "missing value: tenant_id" in reasons[3] and "missing value: converted" in reasons[3]


def test_nothing_is_lost(dataset):
    extract = EXTRACTS["raw_campaign_daily"]
    metrics = dataset["campaign_daily_metrics"].rename(columns={"id": "source_id"})
    metrics = metrics.merge(
        dataset["campaigns"][["id", "tenant_id", "daily_budget", "audience_size", "avg_order_value"]],
        left_on="campaign_id",
        right_on="id",
    ).drop(columns="id")
    result = validate_rows(metrics, extract.rules, NOW)
    assert len(result.clean) + len(result.quarantine) == len(metrics)
    assert result.reason_counts and all(v > 0 for v in result.reason_counts.values())
