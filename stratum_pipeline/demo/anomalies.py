"""Injected campaign anomalies with their ground truth (`truth_anomalies`).

The days advertisers lose money on, written into an already generated world:

- `tracking_outage`: the pixel / conversions API breaks; clicks and spend go on, recorded conversions (and
  revenue) fall to ~0 (0-5% still recorded);
- `spend_spike`: a budget or pacing error spends 2-5x the day's planned spend; impressions and clicks rise
  with it, conversions follow the campaign's true (saturating) response;
- `conversion_rate_drop`: a landing page stops converting: conversions x0.2-0.6 with clicks unchanged;
- `cpc_jump`: an auction change makes clicks 1.5-3x dearer: the same spend buys 1/size the impressions,
  clicks and conversions;
- `capi_match_key_outage`: a tenant's conversions-API integration stops sending emails on one platform.

Each anomaly lasts 1-5 days, starts at least `MIN_HISTORY_DAYS` after its campaign launched and is at least
`GAP_DAYS` from the campaign's previous one. The draws come from their own random stream (derived from the
seed), so turning anomalies off leaves every other table byte-identical. `truth_campaign_daily` keeps the
expected level *without* the anomaly (what the campaign would have done); `truth_anomalies` says what was
done: its campaign (or tenant and platform), days, kind and size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CAMPAIGN_KINDS = ("tracking_outage", "spend_spike", "conversion_rate_drop", "cpc_jump")
TENANT_KINDS = ("capi_match_key_outage",)
KINDS = CAMPAIGN_KINDS + TENANT_KINDS
CRITICAL_KINDS = ("tracking_outage", "spend_spike")

RATE_PER_DAY = 1 / 75  # anomalies per campaign-day (after the first MIN_HISTORY_DAYS)
MATCH_KEY_RATE_PER_DAY = 1 / 90  # match-key outages per tenant-platform-day
MIN_HISTORY_DAYS = 35
GAP_DAYS = 21
LENGTH = {
    "tracking_outage": (1, 4),
    "spend_spike": (1, 3),
    "conversion_rate_drop": (2, 5),
    "cpc_jump": (2, 5),
    "capi_match_key_outage": (1, 5),
}
SIZE = {
    "tracking_outage": (0.0, 0.05),
    "spend_spike": (2.0, 5.0),
    "conversion_rate_drop": (0.2, 0.6),
    "cpc_jump": (1.5, 3.0),
    "capi_match_key_outage": (0.0, 0.0),
}
SIZE_MEANING = {
    "tracking_outage": "share of conversions still recorded",
    "spend_spike": "spend multiplier",
    "conversion_rate_drop": "conversion multiplier",
    "cpc_jump": "CPC multiplier",
    "capi_match_key_outage": "share of emails still sent",
}
COLUMNS = ["id", "tenant_id", "campaign_id", "platform", "kind", "start_date", "end_date", "days", "size"]


def anomaly_rng(seed: int) -> np.random.Generator:
    """The anomalies' own random stream: independent of the generator's main stream."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0xA40]))


def _place(rng, first_t: int, last_t: int, rate: float, kinds: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """Non-overlapping (kind, start, length) events in the day range [first_t, last_t]."""
    span = last_t - first_t + 1
    if span <= 0:
        return []
    starts = np.sort(first_t + rng.choice(span, size=min(span, rng.poisson(span * rate)), replace=False))
    events, free_from = [], first_t
    for start in starts:
        kind = kinds[rng.integers(len(kinds))]
        lo, hi = LENGTH[kind]
        length = int(rng.integers(lo, hi + 1))
        if start < free_from or start + length - 1 > last_t:
            continue
        events.append((kind, int(start), length))
        free_from = start + length + GAP_DAYS
    return events


def inject(
    seed: int,
    campaigns: pd.DataFrame,
    days: pd.DatetimeIndex,
    metrics: pd.DataFrame,
    truth: pd.DataFrame,
    events: pd.DataFrame,
) -> pd.DataFrame:
    """Write anomalies into `metrics` (campaign_daily_metrics) and `events` (capi_events) in place; return the
    `truth_anomalies` rows. `campaigns` still carries the generator's private columns (_start_t, _vmax, ...)."""
    rng = anomaly_rng(seed)
    rows: list[dict] = []
    key = pd.MultiIndex.from_arrays(
        [metrics["campaign_id"].to_numpy(), pd.to_datetime(metrics["date"]).to_numpy()]
    )
    expected = truth["expected_conversions"].to_numpy()
    working = truth["adstocked_spend"].to_numpy()
    for c in range(len(campaigns)):
        camp = campaigns.iloc[c]
        first = int(camp["_start_t"]) + MIN_HISTORY_DAYS
        placed = _place(rng, first, int(camp["_stop_t"]), RATE_PER_DAY, CAMPAIGN_KINDS)
        for kind, start, length in placed:
            lo, hi = SIZE[kind]
            size = float(rng.uniform(lo, hi))
            at = key.get_indexer(
                pd.MultiIndex.from_arrays([[camp["id"]] * length, days[start : start + length]])
            )
            at = at[at >= 0]
            if len(at) == 0:
                continue
            _apply(rng, kind, size, metrics, at, expected[at], working[at], camp)
            rows.append(
                {
                    "tenant_id": camp["tenant_id"],
                    "campaign_id": camp["id"],
                    "platform": camp["platform"],
                    "kind": kind,
                    "start_date": days[start].date(),
                    "end_date": days[start + length - 1].date(),
                    "days": length,
                    "size": round(size, 4),
                }
            )
    rows += _match_key_outages(rng, campaigns, days, events)
    out = pd.DataFrame(rows, columns=COLUMNS[1:])
    out.insert(0, "id", np.arange(1, len(out) + 1, dtype=np.int64))
    return out


def _apply(
    rng,
    kind: str,
    size: float,
    m: pd.DataFrame,
    at: np.ndarray,
    expected: np.ndarray,
    working: np.ndarray,
    camp: pd.Series,
) -> None:
    conv = m["conversions"].to_numpy()[at].astype(np.int64)
    revenue = m["revenue"].to_numpy()[at].astype(float)
    if kind in ("tracking_outage", "conversion_rate_drop"):
        kept = rng.binomial(conv, size)
        m.loc[m.index[at], "conversions"] = kept
        m.loc[m.index[at], "revenue"] = np.round(
            revenue * np.where(conv > 0, kept / np.maximum(conv, 1), 0.0), 2
        )
    elif kind == "cpc_jump":
        share = 1.0 / size
        for column in ("impressions", "clicks", "conversions"):
            m.loc[m.index[at], column] = rng.binomial(m[column].to_numpy()[at].astype(np.int64), share)
        kept = m["conversions"].to_numpy()[at]
        m.loc[m.index[at], "revenue"] = np.round(
            revenue * np.where(conv > 0, kept / np.maximum(conv, 1), 0.0), 2
        )
    elif kind == "spend_spike":
        spend = m["spend"].to_numpy()[at].astype(float)
        extra_spend = spend * (size - 1.0)
        m.loc[m.index[at], "spend"] = np.round(spend + extra_spend, 2)
        for column in ("impressions", "clicks"):
            base = m[column].to_numpy()[at].astype(float)
            m.loc[m.index[at], column] = (base + rng.poisson(base * (size - 1.0))).astype(np.int64)
        # Conversions follow the true saturating response to the (adstocked) extra spend.
        vmax, half, shape, carry = (float(camp[k]) for k in ("_vmax", "_half", "_shape", "_adstock"))

        def hill(s):
            s = np.maximum(s, 1e-9)
            return vmax * s**shape / (half**shape + s**shape)

        gain = hill(working + (1.0 - carry) * extra_spend) / np.maximum(hill(working), 1e-12) - 1.0
        extra = rng.poisson(np.maximum(expected * gain, 0.0))
        m.loc[m.index[at], "conversions"] = conv + extra
        m.loc[m.index[at], "revenue"] = np.round(revenue + extra * float(camp["avg_order_value"]), 2)
    else:  # pragma: no cover - CAMPAIGN_KINDS and this function move together
        raise ValueError(f"unknown anomaly kind {kind}")


def _match_key_outages(
    rng, campaigns: pd.DataFrame, days: pd.DatetimeIndex, events: pd.DataFrame
) -> list[dict]:
    rows = []
    if events.empty:
        return rows
    event_day = pd.to_datetime(events["event_time"]).dt.normalize()
    first = campaigns.groupby("tenant_id")["_start_t"].min()
    for (tenant, platform), _ in campaigns.groupby(["tenant_id", "platform"], sort=True):
        for kind, start, length in _place(
            rng, int(first[tenant]) + MIN_HISTORY_DAYS, len(days) - 1, MATCH_KEY_RATE_PER_DAY, TENANT_KINDS
        ):
            hit = (
                (events["tenant_id"] == tenant)
                & (events["platform"] == platform)
                & (event_day >= days[start])
                & (event_day <= days[start + length - 1])
            ).to_numpy()
            events.loc[hit, "email"] = None
            rows.append(
                {
                    "tenant_id": tenant,
                    "campaign_id": None,
                    "platform": platform,
                    "kind": kind,
                    "start_date": days[start].date(),
                    "end_date": days[start + length - 1].date(),
                    "days": length,
                    "size": 0.0,
                }
            )
    return rows
