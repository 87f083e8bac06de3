"""The generator's injected regime changes (demo/changes.py): off by default, recorded in `truth_changes`,
drawn from their own random stream so that with no change every table is byte-identical, and each kind moves
what it says (and only for its tenant, from its day)."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.demo.changes import KINDS, Change
from stratum_pipeline.demo.generator import NOISE_REGIMES, DemoConfig, generate

END = date(2026, 6, 30)
START = END - timedelta(days=30)
BASE = DemoConfig.scaled(END, tenants=2, campaigns=12, days=100, sessions_per_day=150, bad_row_rate=0.0)
CHANGES = (
    Change("tenant_001", "level_shift", start=START, size=0.6),
    Change("tenant_001", "traffic_mix_shift", start=START, size=0.5),
)


@pytest.fixture(scope="module", params=["low", "realistic"])
def worlds(request):
    config = BASE.with_overrides(noise=NOISE_REGIMES[request.param])
    return generate(config), generate(config.with_overrides(changes=CHANGES))


def test_without_changes_every_table_is_unchanged_and_truth_changes_is_empty(worlds):
    off, on = worlds
    assert off["truth_changes"].empty
    for name, frame in off.tables.items():
        if name in ("campaign_daily_metrics", "truth_campaign_daily", "sessions", "truth_sessions"):
            continue
        if name in ("capi_events", "truth_changes"):
            continue  # lost conversions lose their events
        pd.testing.assert_frame_equal(frame, on[name], obj=name)


def test_level_shift_scales_only_the_tenants_revenue_from_its_day(worlds):
    off, on = worlds
    a, b = off["campaign_daily_metrics"], on["campaign_daily_metrics"]
    if not off["truth_anomalies"].empty:  # realistic regime: compare rows no anomaly touched
        hit = on["truth_anomalies"].dropna(subset=["campaign_id"])
        touched = {
            (r.campaign_id, d.date())
            for r in hit.itertuples()
            for d in pd.date_range(r.start_date, r.end_date)
        }
        clean = ~pd.Series(list(zip(a["campaign_id"], a["date"]))).isin(touched).to_numpy()
        a, b = a[clean], b[clean]
    after = (
        a["campaign_id"].str.startswith("tenant_001") & (pd.to_datetime(a["date"]) >= pd.Timestamp(START))
    ).to_numpy()
    np.testing.assert_allclose(
        b.loc[after, "revenue"], np.round(a.loc[after, "revenue"] * 0.6, 2), atol=0.011
    )
    pd.testing.assert_frame_equal(a[~after], b[~after])
    assert (a["conversions"].to_numpy() == b["conversions"].to_numpy()).all()


def test_traffic_mix_shift_moves_sources_to_paid_social_and_lowers_conversion(worlds):
    off, on = worlds
    s_off, s_on = off["sessions"], on["sessions"]
    after = (
        (s_on["tenant_id"] == "tenant_001") & (pd.to_datetime(s_on["started_at"]) >= pd.Timestamp(START))
    ).to_numpy()
    before_share = (s_off.loc[after, "traffic_source"] == "paid_social").mean()
    after_share = (s_on.loc[after, "traffic_source"] == "paid_social").mean()
    assert after_share > before_share + 0.3
    assert s_on.loc[~after].equals(s_off.loc[~after])
    assert s_on.loc[after, "converted"].sum() < s_off.loc[after, "converted"].sum()
    assert (s_on["converted"].astype(bool) <= s_off["converted"].astype(bool)).all()  # only losses
    lost = set(
        "evt-" + s_on.loc[s_off["converted"].astype(bool) & ~s_on["converted"].astype(bool), "session_id"]
    )
    assert lost and not lost & set(on["capi_events"]["event_id"])
    p_off = off["truth_sessions"]["true_probability"].to_numpy()
    p_on = on["truth_sessions"]["true_probability"].to_numpy()
    assert (p_on <= p_off + 1e-12).all() and (p_on < p_off).any()


def test_every_kind_is_recorded_with_drawn_start_and_size_from_its_own_stream():
    config = BASE.with_overrides(changes=tuple(Change("tenant_002", k) for k in KINDS))
    truth = generate(config)["truth_changes"]
    assert list(truth["kind"]) == list(KINDS)
    assert (pd.to_datetime(truth["start_date"]) >= pd.Timestamp(BASE.start_date + timedelta(days=60))).all()
    seasonal = truth[truth["kind"] == "seasonal_jump"].iloc[0]
    assert (
        seasonal["end_date"] is not None and truth[truth["kind"] != "seasonal_jump"]["end_date"].isna().all()
    )
    pd.testing.assert_frame_equal(truth, generate(config)["truth_changes"])
    other = generate(config.with_overrides(seed=BASE.seed + 1))["truth_changes"]
    assert not np.array_equal(other["size"].to_numpy(), truth["size"].to_numpy())


def test_response_change_lowers_conversions_most_where_spend_is_high():
    config = BASE.with_overrides(changes=(Change("tenant_001", "response_change", start=START, size=0.4),))
    world = generate(BASE)
    off, on = world["truth_campaign_daily"], generate(config)["truth_campaign_daily"]
    after = (
        off["campaign_id"].str.startswith("tenant_001") & (pd.to_datetime(off["date"]) >= pd.Timestamp(START))
    ).to_numpy()
    ratio = (
        on.loc[after, "expected_conversions"].to_numpy() / off.loc[after, "expected_conversions"].to_numpy()
    )
    assert (ratio < 1.0).all()
    half = world["truth_campaign_response"].set_index("campaign_id")["half_saturation"]
    relative = (
        off.loc[after, "adstocked_spend"].to_numpy() / half.reindex(off.loc[after, "campaign_id"]).to_numpy()
    )
    assert pd.Series(relative).corr(pd.Series(ratio), method="spearman") < -0.8  # hit hardest at high spend
    pd.testing.assert_frame_equal(off[~after], on[~after])


def test_a_bad_change_spec_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown change kind"):
        Change("tenant_001", "alien_invasion")
    with pytest.raises(ValueError, match="within"):
        Change("tenant_001", "conversion_shift", size=1.5)
