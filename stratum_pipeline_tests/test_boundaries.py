"""The decision code at its boundaries: each test pins a behaviour a small, plausible bug would break.

Written against planted bugs (issue #22): a tolerance added instead of multiplied, a rule dropped from an
extract, scenarios that stop sharing random numbers, a moved fatigue threshold, a case-sensitive URL
scheme, a conformal step left out. Fast: no Dagster runs, no databases; part of the mutation benchmark's
test set (benchmarks/mutation.py).
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.ml.evaluation import roas_metrics
from stratum_pipeline.ml.fatigue import THRESHOLDS, FatigueScorer, days_until_critical, fatigue_level
from stratum_pipeline.ml.features import campaign_features
from stratum_pipeline.ml.roas import TARGET, ROASPredictor, training_frame
from stratum_pipeline.ml.simulator import BudgetSimulator
from stratum_pipeline.modelops.gate import (
    CONVERSION_AUC_TOLERANCE,
    CONVERSION_LOG_LOSS_TOLERANCE,
    CONVERSION_TARGETS,
    ROAS_MAE_TOLERANCE,
    ROAS_NAIVE_TOLERANCE,
    ROAS_TARGETS,
    decide,
)
from stratum_pipeline.modelops.registry import ServingModel
from stratum_pipeline.modelops.training import holdout_split
from stratum_pipeline.serving.cache import MemoryCache
from stratum_pipeline.serving.inference import InferenceService
from stratum_pipeline.settings import mask_url
from stratum_pipeline.storage.extracts import EXTRACTS
from stratum_pipeline.storage.validation import RowRules, validate_rows
from stratum_pipeline.tenancy import InvalidTenantId, validate_tenant_id

# --- the promotion gate: tolerances are relative (x1.02), the AUC one absolute --------------------------


def _roas(mae=0.5, bias=0.0, coverage=0.8, naive_mae=1.0):
    return {
        "mae": mae,
        "bias": bias,
        "coverage_80": coverage,
        "naive": "trailing_30d",
        "naive_mae": naive_mae,
    }


@pytest.mark.parametrize("champion_mae", [0.5, 2.0])
def test_a_challenger_just_past_the_champion_tolerance_is_refused(champion_mae):
    # at 0.5 a tolerance added (+0.02) would allow 0.52, at 2.0 it would refuse 2.03: only x1.02 passes both
    limit = champion_mae * (1 + ROAS_MAE_TOLERANCE)
    champion = _roas(mae=champion_mae)
    naive = 10.0  # far away: only the champion comparison decides
    assert decide("roas", _roas(mae=limit, naive_mae=naive), champion).promote
    assert decide("roas", _roas(mae=limit * 0.999, naive_mae=naive), champion).promote
    refused = decide("roas", _roas(mae=limit * 1.001, naive_mae=naive), champion)
    assert refused.promote is False
    assert any("worse than champion" in r for r in refused.reasons)
    assert ROAS_MAE_TOLERANCE == 0.02


@pytest.mark.parametrize("naive_mae", [0.5, 2.0])
def test_a_challenger_just_past_the_naive_tolerance_is_refused(naive_mae):
    limit = naive_mae * (1 + ROAS_NAIVE_TOLERANCE)
    assert decide("roas", _roas(mae=limit, naive_mae=naive_mae), None).promote
    refused = decide("roas", _roas(mae=limit * 1.001, naive_mae=naive_mae), None)
    assert not refused.promote
    assert refused.reasons == [
        f"MAE {limit * 1.001:.3f} loses to the naive trailing_30d forecast's {naive_mae:.3f} (+2%)"
    ]
    assert ROAS_NAIVE_TOLERANCE == 0.02


def test_the_bias_and_coverage_limits_are_inclusive():
    bias_max = ROAS_TARGETS["bias_max"]
    low, high = ROAS_TARGETS["coverage_range"]
    assert (bias_max, low, high) == (0.10, 0.7, 0.9)
    for bias in (bias_max, -bias_max):
        assert decide("roas", _roas(bias=bias), None).promote
    for bias in (bias_max + 1e-6, -bias_max - 1e-6):
        decision = decide("roas", _roas(bias=bias), None)
        assert not decision.promote and decision.reasons[0].startswith("mean bias")
    for coverage in (low, high):
        assert decide("roas", _roas(coverage=coverage), None).promote
    for coverage in (low - 1e-6, high + 1e-6):
        decision = decide("roas", _roas(coverage=coverage), None)
        assert not decision.promote and decision.reasons[0].startswith("80% interval coverage")


def test_a_biased_challenger_passes_only_against_a_more_biased_champion():
    challenger = _roas(bias=0.15)
    assert decide("roas", challenger, _roas(bias=-0.2, mae=0.5)).promote
    assert not decide("roas", challenger, _roas(bias=0.15, mae=0.5)).promote  # as biased: not better
    assert not decide("roas", challenger, _roas(bias=0.05, mae=0.5)).promote
    assert not decide("roas", challenger, None).promote


def test_the_gate_reports_every_failure_and_its_verdict():
    decision = decide("roas", _roas(mae=2.0, bias=0.3, coverage=0.5, naive_mae=1.0), _roas(mae=1.0))
    assert not decision.promote and len(decision.reasons) == 4
    assert decision.summary.startswith("not promoted: mean bias +30.0%")
    first = decide("roas", _roas(), None)
    assert (
        first.promote
        and first.reasons[0] == "meets the targets"
        and first.reasons[-1] == "the first champion"
    )
    assert first.summary.startswith("promoted: meets the targets")
    assert decide("roas", _roas(), _roas(mae=0.5)).reasons[-1] == "MAE 0.500 vs champion's 0.500"


def test_the_conversion_gate_at_its_limits():
    auc_min = CONVERSION_TARGETS["auc_min"]
    assert not decide("conversion", {"auc": auc_min}, None).promote  # must be above the minimum
    assert decide("conversion", {"auc": auc_min + 1e-6}, None).promote
    champion = {"auc": 0.95}
    assert decide("conversion", {"auc": 0.95 - CONVERSION_AUC_TOLERANCE}, champion).promote
    refused = decide("conversion", {"auc": 0.95 - CONVERSION_AUC_TOLERANCE - 1e-6}, champion)
    assert not refused.promote and refused.reasons == ["AUC 0.945 worse than champion's 0.950"]
    assert decide("conversion", {"auc": 0.9}, None).reasons == ["meets the targets", "the first champion"]
    with pytest.raises(ValueError, match="unknown model type 'fatigue'"):
        decide("fatigue", {}, None)


def _conversion(auc=0.9, log_loss=0.25, mean_probability=0.1, base_rate=0.1, without=()):
    metrics = {"auc": auc, "log_loss": log_loss, "mean_probability": mean_probability, "base_rate": base_rate}
    return {k: v for k, v in metrics.items() if k not in without}


def test_the_conversion_gate_s_calibration_and_log_loss_at_their_limits():
    assert CONVERSION_TARGETS["calibration_gap_max"] == 0.05 and CONVERSION_LOG_LOSS_TOLERANCE == 0.02
    # the mean probability within +-0.05 of the observed rate, either side: a note; just beyond it: refused
    for mean in (0.25 + 0.0499, 0.25 - 0.0499):
        ok = decide("conversion", _conversion(mean_probability=mean, base_rate=0.25), None)
        assert ok.promote and ok.reasons == [
            "meets the targets",
            f"mean probability {mean:.3f} vs observed rate 0.250",
            "the first champion",
        ]
    exactly = decide("conversion", _conversion(mean_probability=0.05, base_rate=0.1), None)  # a gap of -0.05
    assert 0.05 - 0.1 == -0.05 and exactly.promote  # exactly at the limit: still within it
    high = decide("conversion", _conversion(mean_probability=0.3001, base_rate=0.25), None)
    assert not high.promote
    assert high.reasons == [
        "mean probability 0.300 vs observed rate 0.250: calibration gap +0.050 beyond ±0.05"
    ]
    low = decide("conversion", _conversion(mean_probability=0.15, base_rate=0.25), None)
    assert low.reasons == [
        "mean probability 0.150 vs observed rate 0.250: calibration gap -0.100 beyond ±0.05"
    ]
    # beyond the limit but nearer than the champion on the same rows (either sign): a note, not a failure
    challenger = _conversion(mean_probability=0.375, base_rate=0.25)
    for champion_mean in (0.40, 0.10):
        better = decide("conversion", challenger, _conversion(mean_probability=champion_mean, base_rate=0.25))
        assert better.promote
        assert better.reasons[1] == (
            "mean probability 0.375 vs observed rate 0.250 (beyond ±0.05), but the champion's gap is "
            f"{champion_mean - 0.25:+.3f}"
        )
    # exactly as far off as the champion (+0.125 vs -0.125), or a champion without either calibration figure: refused
    for champion in (
        _conversion(mean_probability=0.125, base_rate=0.25),
        _conversion(mean_probability=0.45, base_rate=0.25, without=("base_rate",)),
        _conversion(mean_probability=0.45, base_rate=0.25, without=("mean_probability",)),
        {"auc": 0.9},
    ):
        refused = decide("conversion", challenger, champion)
        assert not refused.promote, champion
        assert refused.reasons[0] == (
            "mean probability 0.375 vs observed rate 0.250: calibration gap +0.125 beyond ±0.05"
        )
    # a challenger's metrics of an older version (either figure missing): calibration not judged
    for missing in ("mean_probability", "base_rate"):
        older = _conversion(mean_probability=0.45, base_rate=0.25, without=(missing,))
        assert decide("conversion", older, None).reasons == ["meets the targets", "the first champion"]
    # log loss: up to x1.02 the champion's is a note, beyond it a failure, word for word
    champion = _conversion(log_loss=0.25)
    at_limit = decide("conversion", _conversion(log_loss=0.25 * 1.02), champion)
    assert at_limit.promote and at_limit.reasons == [
        "meets the targets",
        "mean probability 0.100 vs observed rate 0.100",
        "AUC 0.900 vs champion's 0.900",
        "log loss 0.2550 vs champion's 0.2500",
    ]
    worse = decide("conversion", _conversion(log_loss=0.25 * 1.02 + 1e-6), champion)
    assert not worse.promote and worse.reasons == ["log loss 0.2550 worse than champion's 0.2500 (+2%)"]
    # a champion without a log loss is not compared on it
    assert decide("conversion", _conversion(log_loss=9.0), _conversion(without=("log_loss",))).reasons == [
        "meets the targets",
        "mean probability 0.100 vs observed rate 0.100",
        "AUC 0.900 vs champion's 0.900",
    ]


# --- extract rules: every rule of every RowRules, broken alone --------------------------------------------

NOW = datetime(2026, 3, 10, 12, 0)
RECORDED = datetime(2026, 3, 2, 3, 0)
VALID = {
    "source_id": 1,
    "tenant_id": "t1",
    "campaign_id": "c1",
    "platform": "meta",
    "date": date(2026, 3, 1),
    "spend": 100.0,
    "impressions": 1000,
    "clicks": 10,
    "conversions": 2,
    "revenue": 300.0,
    "daily_budget": 120.0,
    "audience_size": 50_000,
    "avg_order_value": 150.0,
    "recorded_at": RECORDED,
    "creative_id": "cr1",
    "launch_date": date(2026, 2, 1),
    "reach": 800,
    "frequency": 1.25,
    "engagements": 30,
    "session_id": "s1",
    "visitor_id": "v1",
    "started_at": datetime(2026, 3, 1, 10),
    "session_duration": 120.0,
    "pages_viewed": 3,
    "cart_value": 50.0,
    "items_in_cart": 1,
    "time_since_last_visit": 36.0,
    "previous_purchases": 0,
    "device_type": "mobile",
    "traffic_source": "paid",
    "user_segment": "new",
    "converted": False,
    "event_id": "e1",
    "event_name": "Purchase",
    "event_time": datetime(2026, 3, 1, 10),
    "value": 50.0,
    "currency": "USD",
    "email": "a@b.c",
    "phone": "+100",
    "fbc": "fb.1",
    "fbp": "fb.2",
    "gclid": "g",
    "ttclid": "t",
    "client_ip_address": "10.0.0.1",
    "client_user_agent": "ua",
    "external_id": "x1",
}
# The contract: what each extract must reject. A rule dropped or added in extracts.py fails here.
RULE_CONTRACT = {
    "raw_campaign_daily": {
        "required": {
            "tenant_id",
            "campaign_id",
            "platform",
            "date",
            "spend",
            "impressions",
            "clicks",
            "conversions",
            "revenue",
        },
        "non_negative": {
            "spend",
            "impressions",
            "clicks",
            "conversions",
            "revenue",
            "daily_budget",
            "audience_size",
            "avg_order_value",
        },
        "allowed_values": {"platform"},
        "not_greater": {("clicks", "impressions")},
    },
    "raw_creative_daily": {
        "required": {
            "tenant_id",
            "campaign_id",
            "creative_id",
            "date",
            "impressions",
            "reach",
            "clicks",
            "engagements",
        },
        "non_negative": {"impressions", "reach", "frequency", "clicks", "engagements"},
        "allowed_values": set(),
        "not_greater": {("clicks", "impressions"), ("reach", "impressions")},
    },
    "raw_sessions": {
        "required": {"session_id", "tenant_id", "started_at", "converted"},
        "non_negative": {
            "session_duration",
            "pages_viewed",
            "cart_value",
            "items_in_cart",
            "time_since_last_visit",
            "previous_purchases",
        },
        "allowed_values": set(),
        "not_greater": set(),
    },
    "raw_capi_events": {
        "required": {"event_id", "tenant_id", "platform", "event_name", "event_time"},
        "non_negative": {"value"},
        "allowed_values": {"platform"},
        "not_greater": set(),
    },
}


def _row(extract: str, **overrides) -> dict:
    x = EXTRACTS[extract]
    columns = [c.name for c in x.query(datetime(2026, 3, 1), datetime(2026, 3, 2)).selected_columns]
    return {c: overrides.get(c, VALID[c]) for c in columns}


def _breaking_rows():
    """(extract, changes, expected reason): one row per rule, breaking only that rule."""
    for name, contract in RULE_CONTRACT.items():
        for column in sorted(contract["required"]):
            yield name, {column: None}, f"missing value: {column}"
        for column in sorted(contract["non_negative"]):
            # a negative upper bound of a pair (impressions) also puts its lower column above it
            implied = "".join(
                f"; {a} > {b}: {VALID[a]} > -1" for a, b in sorted(contract["not_greater"]) if b == column
            )
            yield name, {column: -1}, f"negative value: {column}=-1{implied}"
        for column in sorted(contract["allowed_values"]):
            yield name, {column: "myspace"}, "unknown platform: 'myspace'"
        for a, b in sorted(contract["not_greater"]):
            yield name, {a: VALID[b] + 1}, f"{a} > {b}: {VALID[b] + 1} > {VALID[b]}"


BREAKING = list(_breaking_rows())


@pytest.mark.parametrize("extract", sorted(EXTRACTS))
def test_the_extract_rules_are_the_contract(extract):
    rules = EXTRACTS[extract].rules
    contract = RULE_CONTRACT[extract]
    assert set(rules.required) == contract["required"]
    assert set(rules.non_negative) == contract["non_negative"]
    assert set(rules.allowed_values) == contract["allowed_values"]
    assert set(rules.not_greater) == contract["not_greater"]


@pytest.mark.parametrize("extract", sorted(EXTRACTS))
def test_a_valid_row_of_each_extract_is_clean(extract):
    result = validate_rows(pd.DataFrame([_row(extract)]), EXTRACTS[extract].rules, NOW)
    assert len(result.clean) == 1 and result.quarantine.empty
    assert result.reason_counts == {}


@pytest.mark.parametrize(
    "extract, changes, reason",
    BREAKING,
    ids=[f"{e}-{next(iter(c))}-{r.split(':')[0]}" for e, c, r in BREAKING],
)
def test_a_row_breaking_one_rule_is_quarantined_for_that_rule_only(extract, changes, reason):
    rows = pd.DataFrame([_row(extract, **changes)])
    result = validate_rows(rows, EXTRACTS[extract].rules, NOW)
    assert result.clean.empty
    assert result.quarantine["reason"].tolist() == [reason]
    assert result.reason_counts == {r.split(":")[0]: 1 for r in reason.split("; ")}


@pytest.mark.parametrize("extract", sorted(EXTRACTS))
def test_an_invalid_tenant_id_is_quarantined_by_every_extract(extract):
    for bad in ("../etc", "Alpha", "default", "x" * 64, "y" * 70):  # quarantined as given, cut to 64
        result = validate_rows(pd.DataFrame([_row(extract, tenant_id=bad)]), EXTRACTS[extract].rules, NOW)
        assert result.quarantine["reason"].tolist() == ["invalid tenant id"], bad
        assert result.quarantine["tenant_id"].tolist() == [bad[:64]]
    for good in ("0", "a", "x" * 63, "a_b-c"):
        assert validate_rows(
            pd.DataFrame([_row(extract, tenant_id=good)]), EXTRACTS[extract].rules, NOW
        ).quarantine.empty


@pytest.mark.parametrize("extract", sorted(EXTRACTS))
def test_a_duplicate_key_keeps_the_lowest_source_id(extract):
    rows = pd.DataFrame([_row(extract, source_id=9), _row(extract, source_id=4)])
    result = validate_rows(rows, EXTRACTS[extract].rules, NOW)
    assert result.clean["source_id"].tolist() == [4]
    key = ", ".join(EXTRACTS[extract].rules.key)
    assert result.quarantine["reason"].tolist() == [f"duplicate key ({key}): first seen as source_id 4"]
    assert len(result.clean) + len(result.quarantine) == 2


def test_a_calendar_date_after_its_recording_day_is_in_the_future():
    rules = EXTRACTS["raw_campaign_daily"].rules
    same_day = _row("raw_campaign_daily", date=date(2026, 3, 2))  # recorded 03:00 that day: fine
    next_day = _row("raw_campaign_daily", date=date(2026, 3, 3), source_id=2, campaign_id="c2")
    after_now = _row(
        "raw_campaign_daily",
        date=date(2026, 3, 11),
        recorded_at=datetime(2026, 3, 12),
        source_id=3,
        campaign_id="c3",
    )
    result = validate_rows(pd.DataFrame([same_day, next_day, after_now]), rules, NOW)
    assert result.clean["source_id"].tolist() == [1]
    reasons = result.quarantine.set_index("source_id")["reason"]
    assert reasons[2] == "date in the future: 2026-03-03 00:00:00 recorded at 2026-03-02 03:00:00"
    assert reasons[3].startswith("date in the future: 2026-03-11")
    assert result.quarantine.set_index("source_id")["partition_date"][2] == date(2026, 3, 3)


def test_a_timestamp_may_be_up_to_five_minutes_ahead_of_its_recording_or_now():
    rules = EXTRACTS["raw_sessions"].rules
    rec = datetime(2026, 3, 1, 10)
    rows = [
        _row(
            "raw_sessions",
            source_id=1,
            session_id="s1",
            started_at=rec + timedelta(minutes=5),
            recorded_at=rec,
        ),
        _row(
            "raw_sessions",
            source_id=2,
            session_id="s2",
            started_at=rec + timedelta(minutes=5, seconds=1),
            recorded_at=rec,
        ),
        _row(
            "raw_sessions",
            source_id=3,
            session_id="s3",
            started_at=NOW + timedelta(minutes=5),
            recorded_at=NOW + timedelta(hours=1),
        ),
        _row(
            "raw_sessions",
            source_id=4,
            session_id="s4",
            started_at=NOW + timedelta(minutes=5, seconds=1),
            recorded_at=NOW + timedelta(hours=1),
        ),
    ]
    result = validate_rows(pd.DataFrame(rows), rules, NOW)
    assert result.clean["source_id"].tolist() == [1, 3]
    assert result.quarantine["source_id"].tolist() == [2, 4]
    assert all(r.startswith("date in the future") for r in result.quarantine["reason"])
    # an aware `now` is read as UTC
    aware = pd.Timestamp(NOW).tz_localize("Europe/Berlin").to_pydatetime()  # 11:00 UTC
    result = validate_rows(pd.DataFrame(rows[2:3]), rules, aware)
    assert result.quarantine["source_id"].tolist() == [3]


def test_several_problems_are_all_reported_in_order():
    row = _row("raw_campaign_daily", spend=-1, platform="myspace", clicks=5000)
    result = validate_rows(pd.DataFrame([row]), EXTRACTS["raw_campaign_daily"].rules, NOW)
    assert result.quarantine["reason"].tolist() == [
        "negative value: spend=-1; unknown platform: 'myspace'; clicks > impressions: 5000 > 1000"
    ]
    assert result.reason_counts == {"negative value": 1, "unknown platform": 1, "clicks > impressions": 1}
    assert '"platform": "myspace"' in result.quarantine["record"].iloc[0]


def test_a_pair_at_equality_is_clean():
    for extract, a, b in (
        ("raw_campaign_daily", "clicks", "impressions"),
        ("raw_creative_daily", "clicks", "impressions"),
        ("raw_creative_daily", "reach", "impressions"),
    ):
        row = _row(extract, **{a: VALID[b]})
        assert validate_rows(pd.DataFrame([row]), EXTRACTS[extract].rules, NOW).quarantine.empty, (a, b)


def test_text_or_an_infinity_in_a_numeric_column_is_quarantined_with_its_reason():
    """A SQLite source stores text in any column: such a row is never clean (nor does it stop validation)."""
    for bad, reasons in (
        ({"spend": "abc", "clicks": "many"}, ["not a number: clicks='many'", "not a number: spend='abc'"]),
        ({"impressions": "lots"}, ["not a number: impressions='lots'"]),  # the upper side of a pair
        ({"revenue": float("inf")}, ["not a number: revenue=inf"]),
        # a long text is cut at 200 characters in its reason
        ({"spend": "x" * 300}, [("not a number: spend='" + "x" * 300)[:200]]),
    ):
        rows = pd.DataFrame(
            [_row("raw_campaign_daily", **bad), _row("raw_campaign_daily", source_id=2, campaign_id="c2")]
        )
        result = validate_rows(rows, EXTRACTS["raw_campaign_daily"].rules, NOW)
        assert list(result.clean["source_id"]) == [2], bad
        assert sorted(result.quarantine.iloc[0]["reason"].split("; ")) == reasons


def test_an_allowed_values_rule_on_another_column_is_named_after_it():
    rules = RowRules(
        key=("session_id",), partition_column="started_at", allowed_values={"device_type": ("mobile",)}
    )
    rows = pd.DataFrame(
        [_row("raw_sessions"), _row("raw_sessions", source_id=2, session_id="s2", device_type="tv")]
    )
    result = validate_rows(rows, rules, NOW)
    assert result.clean["source_id"].tolist() == [1]
    assert result.quarantine["reason"].tolist() == ["unknown device_type: 'tv'"]
    # an extract without tenants: the quarantine's tenant_id is empty
    result = validate_rows(rows.drop(columns="tenant_id"), rules, NOW)
    assert result.quarantine["tenant_id"].isna().tolist() == [True]
    assert list(result.quarantine.columns) == ["source_id", "tenant_id", "partition_date", "reason", "record"]


def test_a_calendar_date_is_judged_by_days_not_by_a_five_minute_tolerance():
    rules = EXTRACTS["raw_campaign_daily"].rules
    today = _row("raw_campaign_daily", date=date(2026, 3, 10), recorded_at=datetime(2026, 3, 10, 6))
    # dated the next day, recorded two minutes before midnight: in the future by days
    late = _row(
        "raw_campaign_daily",
        source_id=2,
        campaign_id="c2",
        date=date(2026, 3, 3),
        recorded_at=datetime(2026, 3, 2, 23, 58),
    )
    result = validate_rows(pd.DataFrame([today, late]), rules, NOW)
    assert result.clean["source_id"].tolist() == [1]  # dated today (NOW's day): not in the future
    assert result.quarantine["reason"].tolist() == [
        "date in the future: 2026-03-03 00:00:00 recorded at 2026-03-02 23:58:00"
    ]


def test_the_clean_rows_keep_their_columns_and_a_record_is_sorted_json_with_nulls():
    rows = pd.DataFrame(
        [_row("raw_campaign_daily", source_id=2), _row("raw_campaign_daily", campaign_id="c2")]
    )
    rows["spend"] = [100.0, np.nan]  # a float column: the missing value is NaN
    rows["recorded_at"] = pd.to_datetime([RECORDED, None])  # a datetime column: NaT
    result = validate_rows(rows, EXTRACTS["raw_campaign_daily"].rules, NOW)
    assert list(result.clean.columns) == list(rows.columns)
    assert result.clean["source_id"].tolist() == [2] and result.clean.index.tolist() == [0]
    (record,) = result.quarantine["record"]
    assert result.quarantine["reason"].tolist() == ["missing value: spend"]
    assert '"spend": null' in record and '"recorded_at": null' in record  # valid JSON: no NaN, no "NaT"
    assert list(json.loads(record)) == sorted(rows.columns)


@pytest.fixture
def machine_zone_ahead_of_utc(monkeypatch):
    """The process runs in UTC+14 (Kiribati) for one test."""
    monkeypatch.setenv("TZ", "Etc/GMT-14")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_default_now_is_utc_whatever_the_machine_zone(machine_zone_ahead_of_utc):
    ahead = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(hours=2)  # naive UTC, as the source
    row = _row("raw_sessions", started_at=ahead, recorded_at=ahead)
    result = validate_rows(pd.DataFrame([row]), EXTRACTS["raw_sessions"].rules)
    assert result.quarantine["reason"].str.startswith("date in the future").tolist() == [True]


# --- tenancy ----------------------------------------------------------------------------------------------


def test_tenant_ids_at_their_limits():
    assert validate_tenant_id(123) == "123"
    assert validate_tenant_id(np.int64(0)) == "0"
    assert validate_tenant_id("a" * 63) == "a" * 63
    assert validate_tenant_id("a_b-c") == "a_b-c"
    for bad in (-1, True, 1.0, "a" * 64, "", "_a", "-a", "A", "a.b", "../a", "a/b", "default", None):
        with pytest.raises(InvalidTenantId, match="invalid tenant id"):
            validate_tenant_id(bad)
    with pytest.raises(InvalidTenantId, match="reserved for the global default model"):
        validate_tenant_id("default")


# --- the simulator: scenarios share their random numbers ----------------------------------------------------

CAMPAIGN = {
    "daily_spend": 200.0,
    "roas": 3.0,
    "confidence_lower": 2.0,
    "confidence_upper": 4.5,
    "avg_order_value": 60.0,
}


def test_a_zero_budget_change_returns_exactly_the_baseline():
    out = BudgetSimulator().simulate(CAMPAIGN, [0.0, 0.2, -0.2], days=30, iterations=500, seed=3)
    base, same = out["baseline"], out["scenarios"][0]
    for field in ("spend", "revenue", "roas", "conversions", "confidence_interval"):
        assert same[field] == base[field], field
    assert same["marginal_roas"] is None  # no extra spend: no marginal return
    # common random numbers: every iteration of +20% beats the baseline, so its whole interval does too
    up, down = out["scenarios"][1], out["scenarios"][2]
    assert up["confidence_interval"][0] > base["confidence_interval"][0]
    assert down["revenue"] < base["revenue"] < up["revenue"]
    assert down["roas"] > base["roas"] > up["roas"]  # diminishing returns


def test_the_baseline_does_not_depend_on_the_other_scenarios():
    one = BudgetSimulator().simulate(CAMPAIGN, [0.5], iterations=200, seed=9)
    many = BudgetSimulator().simulate(CAMPAIGN, [0.5, -0.5, 1.0], iterations=200, seed=9)
    assert one["baseline"] == many["baseline"]
    assert one["scenarios"][0] == many["scenarios"][0]


def test_the_simulated_mean_follows_the_response_curve():
    days, iterations = 30, 20_000
    out = BudgetSimulator().simulate(
        {"daily_spend": 100.0, "roas": 2.0, "elasticity": 0.5},
        [1.0, -0.5],
        days=days,
        iterations=iterations,
        seed=1,
    )
    base, double, half = out["baseline"], *out["scenarios"]
    assert base["spend"] == 3000.0 and double["spend"] == 6000.0 and half["spend"] == 1500.0
    assert base["revenue"] == pytest.approx(100.0 * 2.0 * days, rel=0.01)
    assert double["revenue"] == pytest.approx(base["revenue"] * 2**0.5, rel=0.01)
    assert half["revenue"] == pytest.approx(base["revenue"] * 0.5**0.5, rel=0.01)
    assert double["marginal_roas"] == pytest.approx((double["revenue"] - base["revenue"]) / 3000.0, rel=1e-3)
    assert half["marginal_roas"] == pytest.approx((base["revenue"] - half["revenue"]) / 1500.0, rel=1e-3)
    assert base["conversions"] is None  # no order value: no conversions
    assert base["roas"] == pytest.approx(base["revenue"] / base["spend"], abs=1e-4)


def test_the_forecast_interval_sets_the_spread_of_outcomes():
    narrow = BudgetSimulator().simulate(
        {**CAMPAIGN, "confidence_lower": 2.9, "confidence_upper": 3.1}, [], iterations=5000, seed=2
    )["baseline"]
    wide = BudgetSimulator().simulate(CAMPAIGN, [], iterations=5000, seed=2)["baseline"]
    width = lambda b: b["confidence_interval"][1] - b["confidence_interval"][0]  # noqa: E731
    assert width(wide) > 2 * width(narrow)
    assert narrow["confidence_interval"][0] < narrow["revenue"] < narrow["confidence_interval"][1]
    assert wide["conversions"] == pytest.approx(wide["revenue"] / 60.0, abs=0.05)


# --- fatigue levels at their thresholds --------------------------------------------------------------------


@pytest.mark.parametrize(
    "score, level",
    [
        (0.0, "low"),
        (29.9, "low"),
        (30.0, "low"),
        (49.9, "low"),
        (50.0, "medium"),
        (69.9, "medium"),
        (70.0, "high"),
        (84.9, "high"),
        (85.0, "critical"),
        (100.0, "critical"),
    ],
)
def test_fatigue_levels_at_the_thresholds(score, level):
    assert str(fatigue_level(score)) == level
    assert fatigue_level(np.array([score]))[0] == level


def test_the_thresholds_are_the_seeds():
    assert THRESHOLDS == {"low": 30.0, "medium": 50.0, "high": 70.0, "critical": 85.0}


def test_days_until_critical_at_the_threshold():
    assert days_until_critical(85.0, 10).tolist() == 0.0
    assert days_until_critical(84.9, 10).tolist() == 1.0  # 8.49 a day: one more day crosses 85
    assert days_until_critical(42.5, 10).tolist() == 10.0
    assert np.isnan(days_until_critical(0.0, 10))
    assert days_until_critical(95.0, 10).tolist() == 0.0  # past critical: 0, not a negative count


def test_a_bad_optional_fatigue_input_is_named_in_its_error():
    from stratum_pipeline.ml.inputs import InputError

    features = pd.DataFrame([_creative(0.9)]).assign(impressions_7d="abc")
    with pytest.raises(InputError, match="^impressions_7d must be a number, got 'abc'$"):
        FatigueScorer().score_frame(features)


def _creative(retention):
    """A creative on its first day whose CTR pair says its retention: the scorer reads retention directly."""
    return {
        "days_active": 0,
        "frequency": 8.0,
        "ctr_current": retention,
        "ctr_baseline": 1.0,
        "engagement_rate_current": np.nan,
        "engagement_rate_baseline": np.nan,
    }


def test_a_creative_scored_exactly_at_a_threshold_takes_the_higher_level():
    # retention 0.5 -> 85 (critical), 0.7 -> 70 (high), 0.85 -> 50 (medium), 1 -> 0 (low)
    scorer = FatigueScorer()
    at_85 = scorer.calculate_score(_creative(0.5))
    assert at_85["fatigue_score"] == 85.0 and at_85["fatigue_level"] == "critical"
    assert at_85["days_until_critical"] == 0
    at_70 = scorer.calculate_score(_creative(0.7))
    assert at_70["fatigue_score"] == 70.0 and at_70["fatigue_level"] == "high"
    frame = scorer.score_frame(pd.DataFrame([_creative(r) for r in (0.5, 0.7, 0.85, 1.0)]))
    assert frame["fatigue_score"].tolist() == [85.0, 70.0, 50.0, 0.0]
    assert frame["fatigue_level"].tolist() == ["critical", "high", "medium", "low"]
    assert frame["suggested_actions"].iloc[3] == []


# --- URL masking: the scheme is matched in any case ------------------------------------------------------


@pytest.mark.parametrize(
    "url, masked",
    [
        ("POSTGRESQL://u:pw@h/db", "POSTGRESQL://u:***@h/db"),
        ("PostgreSQL://u:pa/ss@host/db", "PostgreSQL://u:***@host/db"),
        ("Postgresql+Psycopg2://user:p@ss@host/db", "Postgresql+Psycopg2://user:***@host/db"),
        ("REDIS://:secret@127.0.0.1:6379/0", "REDIS://:***@127.0.0.1:6379/0"),
        ("HTTPS://user:tok/en@mlflow:5000", "HTTPS://user:***@mlflow:5000"),
        (
            "postgresql://u@h/db?PassWord=pw&sslmode=require",
            "postgresql://u@h/db?PassWord=***&sslmode=require",
        ),
    ],
)
def test_upper_and_mixed_case_schemes_are_masked(url, masked):
    assert mask_url(url) == masked


# --- the cache key: model version, data version, tenant, model type and input ----------------------------


class _Predictor:
    def __init__(self):
        self.calls = 0

    def predict(self, x):
        self.calls += 1
        return {"predicted_roas": float(x["roas_7d"]), "call": self.calls}


class _Registry:
    """Serves one predictor per tenant under a version the test moves."""

    def __init__(self):
        self.version = "1"
        self.predictor = _Predictor()

    def serving_model(self, model_type, tenant):
        return ServingModel(f"stratum-{model_type}-t{tenant}", self.version, self.predictor, tenant)


def test_the_cache_key_holds_the_model_version_data_version_tenant_and_input():
    registry = _Registry()
    service = InferenceService(registry, MemoryCache(), champion_refresh_seconds=0.0)
    x = {"roas_7d": 2.0, "roas_30d": 1.5}
    first = service.get_prediction("roas", x, "t1")
    assert first["call"] == 1 and first["model"] == "stratum-roas-tt1:1" and first["served_by"] == "t1"
    assert (
        service.get_prediction("roas", dict(reversed(list(x.items()))), "t1")["call"] == 1
    )  # same input: hit
    assert service.get_prediction("roas", x, 7)["call"] == 2  # another tenant
    assert service.get_prediction("roas", x, "7")["call"] == 2  # 7 and "7" are one tenant
    assert service.get_prediction("roas", {**x, "roas_7d": 2.5}, "t1")["call"] == 3  # another input
    assert service.notify_new_data("t1") == 1
    assert service.get_prediction("roas", x, "t1")["call"] == 4  # new data
    assert service.get_prediction("roas", x, "t1")["call"] == 4
    assert service.get_prediction("roas", x, 7)["call"] == 2  # the other tenant's entry still holds
    registry.version = "2"
    assert service.get_prediction("roas", x, "t1")["call"] == 5  # a new champion version
    assert service.get_prediction("conversion", x, "t1")["call"] == 6  # another model type


def test_the_champion_is_looked_up_again_after_the_refresh_interval():
    registry = _Registry()
    service = InferenceService(registry, MemoryCache(), champion_refresh_seconds=3600.0)
    x = {"roas_7d": 2.0}
    assert service.get_prediction("roas", x, "t1")["model"] == "stratum-roas-tt1:1"
    registry.version = "2"
    assert service.get_prediction("roas", x, "t1")["model"] == "stratum-roas-tt1:1"  # within the interval
    service.champion_refresh_seconds = 0.0
    assert service.get_prediction("roas", x, "t1")["model"] == "stratum-roas-tt1:2"


# --- the conformal step: a too-narrow band is widened to its coverage on held-out data --------------------


class _NarrowBand(ROASPredictor):
    """The quantile band shrunk to a tenth of its width: what the conformal step has to repair."""

    @staticmethod
    def _raw_band(band, X):
        lo, hi = ROASPredictor._raw_band(band, X)
        mid = (lo + hi) / 2
        return mid - 0.1 * (mid - lo), mid + 0.1 * (hi - mid)


def _exchangeable_campaigns(seed: int, campaigns: int = 80, days: int = 45) -> pd.DataFrame:
    """Campaign-days whose ROAS scatters around a steady level per campaign: held-out days are exchangeable
    with the calibration days, the setting where conformal coverage is a guarantee."""
    rng = np.random.default_rng(seed)
    level = rng.lognormal(np.log(2.0), 0.4, campaigns)
    c = np.repeat(np.arange(campaigns), days)
    spend = np.full(len(c), 100.0)
    revenue = spend * level[c] * rng.lognormal(-(0.3**2) / 2, 0.3, len(c))
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
            "conversions": np.maximum(1, np.round(revenue / 50)),
        }
    )
    return training_frame(campaign_features(daily))


@pytest.mark.parametrize("seed", [7, 11])
def test_the_conformal_step_widens_a_too_narrow_band_to_its_coverage(seed):
    train, test = holdout_split(_exchangeable_campaigns(seed), 12)  # 960 held-out campaign-days
    model = _NarrowBand(n_estimators=40, select_complexity=False, n_jobs=1).fit(train, train[TARGET])
    calibrated = roas_metrics(test[TARGET], model.predict_frame(test))["coverage_80"]
    adjustment = model.interval_adjustment_
    model.interval_adjustment_ = 0.0  # the raw band, as it would be without the conformal step
    raw = roas_metrics(test[TARGET], model.predict_frame(test))["coverage_80"]
    assert adjustment > 0
    assert raw < 0.5, f"the test band should start too narrow, covers {raw:.2f}"
    assert calibrated == pytest.approx(0.8, abs=0.05), f"raw {raw:.2f}, calibrated {calibrated:.2f}"


def test_the_forecast_is_the_base_times_the_model_and_the_band_is_clipped_around_it():
    train, test = holdout_split(_exchangeable_campaigns(7, campaigns=30, days=30), 7)
    model = ROASPredictor(n_estimators=20, select_complexity=False, n_jobs=1).fit(train, train[TARGET])
    X, base = model._design(test)
    rel = np.asarray(model.point_.inplace_predict(X))
    lo, hi = model._raw_band(model.band_, X)
    out = model.predict_frame(test)
    np.testing.assert_allclose(out["predicted_roas"], base * rel, rtol=1e-12)
    adjustment = model.interval_adjustment_
    np.testing.assert_allclose(out["confidence_lower"], base * np.clip(lo - adjustment, 0.0, rel), rtol=1e-12)
    np.testing.assert_allclose(out["confidence_upper"], base * np.maximum(hi + adjustment, rel), rtol=1e-12)
    # a huge widening stops at 0 below; a (negative) narrowing stops at the forecast on both sides
    model.interval_adjustment_ = 100.0
    wide = model.predict_frame(test)
    assert (wide["confidence_lower"] == 0).all()
    np.testing.assert_allclose(wide["confidence_upper"], base * (hi + 100.0), rtol=1e-12)
    model.interval_adjustment_ = -100.0
    narrow = model.predict_frame(test)
    assert (narrow["confidence_lower"] == narrow["predicted_roas"]).all()
    assert (narrow["confidence_upper"] == narrow["predicted_roas"]).all()


def test_the_band_s_quantiles_are_ordered_and_an_unusable_model_says_why():
    class Crossing:  # quantile models may cross: the band is their minimum and maximum
        def inplace_predict(self, X):
            return np.array([[3.0, 1.0], [1.0, 2.0]])

    lo, hi = ROASPredictor._raw_band(Crossing(), np.zeros((2, 1)))
    assert lo.tolist() == [1.0, 1.0] and hi.tolist() == [3.0, 2.0]
    with pytest.raises(RuntimeError) as caught:
        ROASPredictor().predict_frame(pd.DataFrame({"x": [1.0]}))
    assert str(caught.value) == "ROASPredictor is not fitted"
    older = ROASPredictor()  # a pickle from before the format was recorded
    older.interval_adjustment_ = 0.0
    with pytest.raises(RuntimeError, match=r"\(format None, this version reads"):
        older.predict_frame(pd.DataFrame({"x": [1.0]}))
    old = ROASPredictor()
    old.interval_adjustment_ = 0.0
    old.format_ = 0
    with pytest.raises(RuntimeError) as caught:
        old.predict_frame(pd.DataFrame({"x": [1.0]}))
    assert str(caught.value) == (
        f"this ROASPredictor was fitted by an incompatible version of stratum-pipeline (format 0, this version "
        f"reads {ROASPredictor.FORMAT}): retrain and republish it"
    )


# --- partition writes: a rerun replaces its days (of its tenant) and nothing else --------------------------


def _emq_rows(tenant: str, days, events: int) -> pd.DataFrame:
    from stratum_pipeline.storage import warehouse_schema as wh

    rows = []
    for day in days:
        row = {c.name: None for c in wh.event_match_quality.columns}
        row.update({c.name: 0 for c in wh.event_match_quality.columns if not c.nullable})
        row.update(tenant_id=tenant, platform="meta", date=day, events=events)
        rows.append(row)
    return pd.DataFrame(rows)


def test_a_partition_write_replaces_only_its_days_and_its_tenant(tmp_path):
    from stratum_pipeline.resources import Warehouse
    from stratum_pipeline.storage import warehouse_schema as wh

    table = wh.event_match_quality
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}")
    days = [date(2026, 3, d) for d in (1, 2, 3)]
    warehouse.replace_partitions(
        table, pd.concat([_emq_rows("a", days, 1), _emq_rows("b", days, 1)]), days[0], days[-1]
    )
    # a rerun of day 2 for every tenant, then of days 2-3 for tenant a alone
    warehouse.replace_partitions(
        table, pd.concat([_emq_rows("a", days[1:2], 2), _emq_rows("b", days[1:2], 2)]), days[1], days[1]
    )
    warehouse.replace_partitions(table, _emq_rows("a", days[1:], 3), days[1], days[2], tenant_id="a")
    stored = warehouse.read_range(table, days[0], days[-1])
    events = sorted((r.tenant_id, pd.Timestamp(r.date).day, r.events) for r in stored.itertuples())
    assert events == [("a", 1, 1), ("a", 2, 3), ("a", 3, 3), ("b", 1, 1), ("b", 2, 2), ("b", 3, 1)]
    with pytest.raises(ValueError, match="belong to other tenants than a"):
        warehouse.replace_partitions(table, _emq_rows("b", days[:1], 4), days[0], days[0], tenant_id="a")
    with pytest.raises(ValueError, match="fall outside the partitions"):
        warehouse.replace_partitions(table, _emq_rows("a", days[2:], 4), days[0], days[1], tenant_id="a")


def test_urls_in_logs_and_metadata_are_masked():
    from stratum_pipeline.storage.database import describe_url

    assert (
        describe_url("postgresql+psycopg2://app:hunter2@db:5432/stratum?sslpassword=k3y")
        == "postgresql+psycopg2://app:***@db:5432/stratum?sslpassword=***"
    )
    assert describe_url("sqlite:////tmp/wh.db") == "sqlite:////tmp/wh.db"


class _Remote:
    """A Vertex stand-in: answers, or fails with a VertexError."""

    model_id = "vertex:projects/p/endpoints/e"

    def __init__(self, fail=False):
        self.fail, self.calls = fail, []

    def predict(self, model_type, tenant, x):
        from stratum_pipeline.serving.vertex import VertexError

        self.calls.append((model_type, tenant))
        if self.fail:
            raise VertexError("endpoint unavailable")
        return {"predicted_roas": 9.0 * x.get("roas_7d", 1.0)}


def test_the_service_refuses_bad_requests_with_one_line_errors():
    from stratum_pipeline.serving.inference import PredictionError

    service = InferenceService(_Registry(), MemoryCache(), tenant_exists=lambda t: t == "t1")
    for args, message in [
        (("forecast", {"a": 1}, "t1"), "unknown model type 'forecast': use one of roas, conversion, fatigue"),
        (("roas", {}, "t1"), "input must be a non-empty JSON object"),
        (("roas", [1], "t1"), "input must be a non-empty JSON object"),
        (("roas", {"roas_7d": 1.0}, "t2"), "unknown tenant 't2'"),
    ]:
        with pytest.raises(PredictionError) as caught:
            service.get_prediction(*args)
        assert str(caught.value) == message
    with pytest.raises(PredictionError, match=r"^invalid tenant id '\.\./x'"):
        service.get_prediction("roas", {"roas_7d": 1.0}, "../x")
    assert service.get_prediction("roas", {"roas_7d": 1.0}, "t1")["predicted_roas"] == 1.0

    class Broken(_Predictor):
        def predict(self, x):
            raise ValueError("roas_7d must be a number")

    registry = _Registry()
    registry.predictor = Broken()
    with pytest.raises(PredictionError) as caught:
        InferenceService(registry, MemoryCache()).get_prediction("roas", {"roas_7d": "x"}, "t1")
    assert str(caught.value) == "bad roas input: roas_7d must be a number"

    class Empty(_Registry):
        def serving_model(self, model_type, tenant):
            from stratum_pipeline.modelops.registry import NoModelError

            raise NoModelError(f"no {model_type} model for tenant {tenant}")

    with pytest.raises(PredictionError) as caught:
        InferenceService(Empty(), MemoryCache()).get_prediction("conversion", {"a": 1}, "t1")
    assert str(caught.value) == "no conversion model for tenant t1"


def test_fatigue_is_scored_in_process_and_cached_per_tenant():
    cache = MemoryCache()
    service = InferenceService(_Registry(), cache)
    creative = {
        "days_active": 0,
        "frequency": 8.0,
        "ctr_current": 0.01,
        "ctr_baseline": 0.02,
        "launched": date(2026, 1, 1),
    }  # CTR at half its launch rate on day one: retention 0.5
    out = service.get_prediction("fatigue", creative, "t1")
    assert out["fatigue_score"] == 85.0 and out["fatigue_level"] == "critical"
    keys = [k for k in cache._data if k.startswith("stratum:pred:")]
    assert len(keys) == 1 and keys[0].startswith("stratum:pred:fatigue:t1:fatigue-scorer:0:")
    assert len(keys[0].rsplit(":", 1)[1]) == 32  # the input's digest
    assert cache._data[keys[0]][0] - __import__("time").monotonic() > 23 * 3600  # the seed's 24 h TTL
    service.get_prediction("fatigue", creative, "t2")
    assert len([k for k in cache._data if k.startswith("stratum:pred:fatigue:t2:")]) == 1


def test_a_remote_model_serves_and_falls_back_only_when_asked(caplog):
    from stratum_pipeline.serving.vertex import VertexError

    remote = _Remote()
    service = InferenceService(_Registry(), MemoryCache(), remote=remote)
    out = service.get_prediction("roas", {"roas_7d": 2.0}, 5)
    assert out == {"predicted_roas": 18.0, "served_by": "vertex"} and remote.calls == [("roas", "5")]
    assert service.get_prediction("roas", {"roas_7d": 2.0}, "5") == out and len(remote.calls) == 1  # cached
    assert service.get_prediction("roas", {"roas_7d": 3.0}, "5")["predicted_roas"] == 27.0  # another input
    assert any(
        k.startswith("stratum:pred:roas:5:vertex:projects/p/endpoints/e:0:") for k in service.cache._data
    )

    failing = InferenceService(_Registry(), MemoryCache(), remote=_Remote(fail=True))
    with pytest.raises(VertexError, match="endpoint unavailable"):
        failing.get_prediction("roas", {"roas_7d": 2.0}, "t1")
    falling_back = InferenceService(
        _Registry(), MemoryCache(), remote=_Remote(fail=True), remote_fallback=True
    )
    with caplog.at_level("WARNING", logger="stratum_pipeline.serving.inference"):
        out = falling_back.get_prediction("conversion", {"roas_7d": 2.0}, "t1")
    assert out["served_by"] == "t1" and out["model"] == "stratum-conversion-tt1:1"
    assert (
        "Vertex AI failed, serving the local conversion model for t1: endpoint unavailable" in caplog.messages
    )


def test_an_invalid_tenant_id_says_what_is_allowed():
    with pytest.raises(InvalidTenantId) as caught:
        validate_tenant_id("A/b")
    assert str(caught.value) == (
        "invalid tenant id 'A/b': use a non-negative integer or 1-63 lowercase letters, digits, "
        "'_' or '-', starting with a letter or digit"
    )


def test_the_gate_reasons_word_for_word():
    refused = decide(
        "roas", _roas(mae=2.0, bias=-0.3, coverage=0.95, naive_mae=1.0), _roas(mae=1.0, bias=0.0)
    )
    assert refused.reasons == [
        "mean bias -30.0% beyond ±10%",
        "MAE 2.000 loses to the naive trailing_30d forecast's 1.000 (+2%)",
        "80% interval coverage 0.95 outside 0.7-0.9",
        "MAE 2.000 worse than champion's 1.000 (+2%)",
    ]
    promoted = decide("roas", _roas(mae=0.5, bias=0.2, naive_mae=1.0), _roas(mae=0.6, bias=0.3))
    assert promoted.reasons == [
        "meets the targets",
        "mean bias +20.0% beyond ±10%, but the champion's is +30.0%",
        "MAE 0.500 vs naive trailing_30d 1.000",
        "MAE 0.500 vs champion's 0.600",
    ]
    assert promoted.summary == "promoted: " + "; ".join(promoted.reasons)
    auc = decide("conversion", {"auc": 0.8}, {"auc": 0.9})
    assert auc.reasons == ["AUC 0.800 <= 0.85", "AUC 0.800 worse than champion's 0.900"]
    assert decide("conversion", {"auc": 0.9}, {"auc": 0.9}).reasons == [
        "meets the targets",
        "AUC 0.900 vs champion's 0.900",
    ]
    no_bias = decide(
        "roas", _roas(bias=0.2), {"mae": 0.5}
    )  # a champion without a recorded bias counts as unbiased
    assert not no_bias.promote and no_bias.reasons[0] == "mean bias +20.0% beyond ±10%"


@pytest.mark.parametrize(
    "url, masked",
    [
        (
            "postgresql://u@h/db?sslpassword=pw&token=t&api_key=k&auth=a&signature=s&credential=c&secret=x&app=stratum",
            "postgresql://u@h/db?sslpassword=***&token=***&api_key=***&auth=***&signature=***&credential=***&secret=***"
            "&app=stratum",
        ),
        (
            "postgresql://u:pw@h/db?application_name=a;password=p",
            "postgresql://u:***@h/db?application_name=a;password=***",
        ),
        ("http://mlflow:5000/#token=t", "http://mlflow:5000/#token=t"),
        ("http://user@mlflow:5000", "http://user@mlflow:5000"),
        ("file:./mlruns", "file:./mlruns"),
        ("", ""),
        (None, ""),
        ("not a url :pw@", "not a url :pw@"),
        # a password the text rule cannot delimit ('#', '?') is still masked, the way SQLAlchemy reads the URL
        ("postgresql://u:p#w@host/db", "postgresql://u:***@host/db"),
        ("postgresql://u:p?w@host/db", "postgresql://u:***@host/db"),
        (
            "postgresql://u:p#w@host/db?sslmode=require&password=x",
            "postgresql://u:***@host/db?password=***&sslmode=require",
        ),
    ],
)
def test_mask_url_hides_every_secret_and_nothing_else(url, masked):
    assert mask_url(url) == masked


# --- tenant training batches: buckets stable across processes, runs cut at the limit ----------------------------


def test_training_buckets_are_a_fixed_hash_and_batches_are_cut_at_the_limit():
    from stratum_pipeline.tenancy import training_batches, training_bucket

    # CRC-32 of the id modulo 4: the same bucket in every process and release (the deployment limits runs per
    # bucket, so a tenant moving bucket could train twice at once)
    assert [training_bucket(t) for t in ("acme", "beta", "t007", "42")] == ["2", "3", "3", "0"]
    tenants = [f"t{i:03d}" for i in range(400)]  # 100 a bucket
    runs = training_batches(tenants + tenants[:10])  # a tenant listed twice is trained once
    assert [(bucket, len(batch)) for bucket, batch in runs] == [
        (b, 50) for b in "00112233"
    ]  # default: 50 a run
    cut = training_batches(reversed(tenants), max_per_run=33)
    assert [(bucket, len(batch)) for bucket, batch in cut] == [
        (b, n) for b in "0123" for n in (33, 33, 33, 1)
    ]
    assert sorted(t for _, batch in cut for t in batch) == tenants
    first = runs[0][1]
    assert list(first) == sorted(t for t in tenants if training_bucket(t) == "0")[:50]
    assert training_batches(["b", "a"], max_per_run=1) == sorted(
        [(training_bucket("a"), ("a",)), (training_bucket("b"), ("b",))], key=lambda r: int(r[0])
    )
    assert training_batches([]) == []
    with pytest.raises(ValueError) as caught:
        training_batches(["a"], max_per_run=0)
    assert str(caught.value) == "max_per_run must be at least 1, not 0"
