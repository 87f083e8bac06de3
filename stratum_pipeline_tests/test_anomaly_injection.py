"""The generator's injected anomalies (demo/anomalies.py): on in the realistic regime, recorded in
`truth_anomalies`, drawn from their own random stream so that turning them off changes nothing else."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.demo import anomalies as injected
from stratum_pipeline.demo.generator import NOISE_REGIMES, DemoConfig, generate

REALISTIC = DemoConfig.scaled(
    date(2026, 6, 30),
    tenants=2,
    campaigns=25,
    days=140,
    sessions_per_day=80,
    noise=NOISE_REGIMES["realistic"],
)


@pytest.fixture(scope="module")
def worlds():
    return generate(REALISTIC), generate(REALISTIC.with_overrides(anomalies=False))


def test_on_by_default_only_in_the_realistic_regime():
    assert REALISTIC.inject_anomalies
    assert not REALISTIC.with_overrides(noise=NOISE_REGIMES["low"]).inject_anomalies
    assert REALISTIC.with_overrides(noise=NOISE_REGIMES["low"], anomalies=True).inject_anomalies


def test_turning_anomalies_off_leaves_every_other_table_identical(worlds):
    on, off = worlds
    assert off["truth_anomalies"].empty and not on["truth_anomalies"].empty
    for name, frame in off.tables.items():
        if name in ("campaign_daily_metrics", "capi_events", "truth_anomalies"):
            continue
        pd.testing.assert_frame_equal(frame, on[name], obj=name)
    # The two touched tables differ only on the anomalies' rows.
    truth = on["truth_anomalies"]
    days = (
        truth[truth.campaign_id.notna()]
        .apply(lambda r: [(r.campaign_id, d.date()) for d in pd.date_range(r.start_date, r.end_date)], axis=1)
        .explode()
    )
    touched = set(days)
    a, b = on["campaign_daily_metrics"], off["campaign_daily_metrics"]
    cols = ["spend", "clicks", "conversions"]
    changed = ((a[cols] != b[cols]) & ~(a[cols].isna() & b[cols].isna())).any(axis=1)
    assert set(zip(a.loc[changed, "campaign_id"], a.loc[changed, "date"])) <= touched
    email_lost = on["capi_events"]["email"].isna() & off["capi_events"]["email"].notna()
    assert (
        email_lost.any() and (on["capi_events"]["email"].notna() <= off["capi_events"]["email"].notna()).all()
    )


def test_every_kind_is_injected_with_its_length_and_size(worlds):
    truth = worlds[0]["truth_anomalies"]
    assert set(truth["kind"]) == set(injected.KINDS)
    assert truth["id"].is_unique
    for kind, rows in truth.groupby("kind"):
        lo, hi = injected.LENGTH[kind]
        assert rows["days"].between(lo, hi).all(), kind
        assert rows["size"].between(*injected.SIZE[kind]).all(), kind
        span = (pd.to_datetime(rows["end_date"]) - pd.to_datetime(rows["start_date"])).dt.days + 1
        assert (span == rows["days"]).all()


def test_each_kind_changes_the_metrics_the_way_it_says(worlds):
    on, off = worlds
    key = ["campaign_id", "date"]
    a = on["campaign_daily_metrics"].drop_duplicates(key).set_index(key)
    b = off["campaign_daily_metrics"].drop_duplicates(key).set_index(key)
    truth = on["truth_anomalies"].dropna(subset=["campaign_id"])
    for row in truth.itertuples():
        idx = [(row.campaign_id, d.date()) for d in pd.date_range(row.start_date, row.end_date)]
        cols = ["spend", "clicks", "conversions"]
        x, y = (f.loc[idx, cols].astype(float).sum() for f in (a, b))
        if row.kind == "tracking_outage":
            assert x.conversions <= max(1, 0.1 * y.conversions) and x.clicks == y.clicks
        elif row.kind == "spend_spike":
            assert x.spend == pytest.approx(y.spend * row.size, rel=0.01) and x.conversions >= y.conversions
        elif row.kind == "conversion_rate_drop":
            assert x.conversions <= y.conversions and x.spend == y.spend
        elif row.kind == "cpc_jump":
            assert x.spend == y.spend and x.clicks < y.clicks


def test_same_seed_same_anomalies_other_seed_other_anomalies(worlds):
    again = generate(REALISTIC)
    pd.testing.assert_frame_equal(again["truth_anomalies"], worlds[0]["truth_anomalies"])
    other = generate(REALISTIC.with_overrides(seed=REALISTIC.seed + 4))
    assert not np.array_equal(
        other["truth_anomalies"]["start_date"].to_numpy(),
        worlds[0]["truth_anomalies"]["start_date"].to_numpy(),
    )
