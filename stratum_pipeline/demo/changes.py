"""Injected, dated changes of a tenant's world with their ground truth (`truth_changes`).

Unlike an anomaly (a few bad days), a change is a new regime a model may have to learn:

- `level_shift`: the tenant's order value (so revenue and ROAS) is multiplied by `size` from `start` on;
  conversions and every volume stay as they were;
- `response_change`: the tenant's campaigns saturate at `size` x their old spend (the Hill curve's ceiling and
  half-saturation spend both x size: the same return on the first dollar, a lower ceiling), so conversions
  fall most where spend is high;
- `conversion_shift`: the odds that a session converts are multiplied by `size` (a checkout change): the
  session (conversion) model's calibration moves, its inputs do not;
- `traffic_mix_shift`: a share `size` of the tenant's sessions (with a known source) now come from paid social,
  the source that converts least: the `traffic_source` mix moves, and conversions with it;
- `seasonal_jump`: demand (expected conversions) is multiplied by `size` for `days` days (a sale season), then
  returns.

A change's start and size are given in its `Change` spec or drawn; every draw (those and the redrawn
conversions) comes from the changes' own random stream, derived from the seed, so with no change configured
every table is byte-identical to a world without this module. Truth tables follow the change
(`truth_campaign_daily` holds the new expected level; `truth_sessions` the new probability) and
`truth_changes` says what was done: tenant, kind, first and last day, size, the model it concerns and the
watched features that truly move.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

CAMPAIGN_KINDS = ("level_shift", "response_change", "seasonal_jump")
SESSION_KINDS = ("conversion_shift", "traffic_mix_shift")
KINDS = CAMPAIGN_KINDS + SESSION_KINDS
SIZE = {
    "level_shift": (0.5, 0.7),
    "response_change": (0.35, 0.55),
    "conversion_shift": (0.35, 0.6),
    "traffic_mix_shift": (0.4, 0.6),
    "seasonal_jump": (1.4, 1.8),
}
SIZE_MEANING = {
    "level_shift": "order value multiplier",
    "response_change": "saturation spend multiplier (ceiling and half-saturation)",
    "conversion_shift": "conversion odds multiplier",
    "traffic_mix_shift": "share of sessions moved to paid_social",
    "seasonal_jump": "demand multiplier",
}
SEASONAL_DAYS = (14, 21)
MIN_HISTORY_DAYS = 60  # a drawn start leaves at least this many days of the old regime
MODEL = {
    "level_shift": "roas",
    "response_change": "roas",
    "seasonal_jump": "roas",
    "conversion_shift": "conversion",
    "traffic_mix_shift": "conversion",
}
# The watched features (ml/monitoring.py DRIFT_FEATURES) that truly move; conversion_shift moves none of the
# inputs, only the observed rate (the conversion model's calibration).
MOVED_FEATURES = {
    "level_shift": ("roas_7d", "roas_30d"),
    "response_change": ("conversion_rate", "roas_7d", "roas_30d"),
    "seasonal_jump": ("conversion_rate", "roas_7d", "roas_30d"),
    "conversion_shift": (),
    "traffic_mix_shift": ("traffic_source",),
}
LOW_SOURCE = "paid_social"  # the traffic source with the lowest conversion coefficient (0)
COLUMNS = [
    "id",
    "tenant_id",
    "kind",
    "start_date",
    "end_date",
    "size",
    "model_type",
    "moved_features",
]


@dataclass(frozen=True)
class Change:
    """One change of one tenant: `start` (None: drawn after MIN_HISTORY_DAYS of the tenant's history),
    `size` (None: drawn from SIZE[kind]) and, for a seasonal jump, `days` (None: drawn from SEASONAL_DAYS)."""

    tenant_id: str
    kind: str
    start: date | None = None
    size: float | None = None
    days: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown change kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.kind in SESSION_KINDS and self.size is not None and not 0.0 <= self.size <= 1.0:
            raise ValueError(
                f"{self.kind} size must be within [0, 1] ({SIZE_MEANING[self.kind]}), got {self.size}"
            )


def change_rng(seed: int) -> np.random.Generator:
    """The changes' own random stream: independent of the generator's main and anomaly streams."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0xC4A]))


def inject(
    seed: int,
    changes: tuple[Change, ...],
    first_day: dict[str, pd.Timestamp],
    days: pd.DatetimeIndex,
    campaigns: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    source_coefficients: dict[str, float],
) -> pd.DataFrame:
    """Apply `changes` in place to `tables` (campaign_daily_metrics, truth_campaign_daily, sessions,
    truth_sessions, capi_events) and return the `truth_changes` rows. `source_coefficients` are the true
    conversion log-odds per traffic source. `first_day` is each tenant's first day of
    history; `campaigns` still carries the generator's private columns (_vmax, _half, _shape). Changes of
    tenants not in the data (another chunk's) are skipped."""
    rng = change_rng(seed)
    rows = []
    for change in changes:
        start, size, length = _draw(rng, change, first_day, days)
        if start is None:
            continue
        end = None if length is None else min(start + pd.Timedelta(days=length - 1), days[-1])
        if change.kind in CAMPAIGN_KINDS:
            _apply_campaigns(rng, change.kind, size, change.tenant_id, start, end, campaigns, tables)
        else:
            _apply_sessions(rng, change.kind, size, change.tenant_id, start, tables, source_coefficients)
        rows.append(
            {
                "tenant_id": change.tenant_id,
                "kind": change.kind,
                "start_date": start.date(),
                "end_date": None if end is None else end.date(),
                "size": round(float(size), 4),
                "model_type": MODEL[change.kind],
                "moved_features": ",".join(MOVED_FEATURES[change.kind]),
            }
        )
    out = pd.DataFrame(rows, columns=COLUMNS[1:])
    out.insert(0, "id", np.arange(1, len(out) + 1, dtype=np.int64))
    return out


def _draw(rng, change: Change, first_day: dict, days: pd.DatetimeIndex):
    """(start, size, days) of a change, its missing parts drawn; start None if the tenant is absent."""
    # Draw every part whether given or not, so one change's spec does not move the next one's draws.
    first = first_day.get(change.tenant_id)
    earliest = None if first is None else first + pd.Timedelta(days=MIN_HISTORY_DAYS)
    span = 0 if earliest is None else max((days[-1] - earliest).days + 1, 1)
    offset = int(rng.integers(0, max(span, 1)))
    lo, hi = SIZE[change.kind]
    size = float(rng.uniform(lo, hi))
    length = int(rng.integers(SEASONAL_DAYS[0], SEASONAL_DAYS[1] + 1))
    if first is None:
        return None, None, None
    start = pd.Timestamp(change.start) if change.start is not None else earliest + pd.Timedelta(days=offset)
    return (
        start,
        change.size if change.size is not None else size,
        (change.days or length) if change.kind == "seasonal_jump" else None,
    )


def _apply_campaigns(rng, kind, size, tenant, start, end, campaigns, tables) -> None:
    metrics, truth = tables["campaign_daily_metrics"], tables["truth_campaign_daily"]
    camp = campaigns.set_index("id")
    owner = camp["tenant_id"].reindex(metrics["campaign_id"]).to_numpy()
    when = pd.to_datetime(metrics["date"])
    hit = (owner == tenant) & (when >= start).to_numpy()
    if end is not None:
        hit &= (when <= end).to_numpy()
    at = np.flatnonzero(hit)
    if len(at) == 0:
        return
    idx = metrics.index[at]
    revenue = metrics["revenue"].to_numpy()[at].astype(float)
    if kind == "level_shift":
        metrics.loc[idx, "revenue"] = np.round(revenue * size, 2)
        for column in ("expected_revenue", "expected_roas"):
            truth.loc[truth.index[at], column] = truth[column].to_numpy()[at] * size
        return
    expected = truth["expected_conversions"].to_numpy()[at]
    if kind == "seasonal_jump":
        factor = np.full(len(at), float(size))
    else:  # response_change: ceiling and half-saturation x size, on the same (adstocked) spend
        ids = metrics["campaign_id"].to_numpy()[at]
        vmax, half, shape = (camp[k].reindex(ids).to_numpy() for k in ("_vmax", "_half", "_shape"))
        s = np.maximum(truth["adstocked_spend"].to_numpy()[at], 1e-9)

        def hill(v, k):
            return v * s**shape / (k**shape + s**shape)

        factor = hill(vmax * size, half * size) / np.maximum(hill(vmax, half), 1e-12)
    conv = metrics["conversions"].to_numpy()[at].astype(np.int64)
    up = factor > 1.0
    new = np.where(
        up,
        conv + rng.poisson(np.maximum(expected * (factor - 1.0), 0.0)),
        rng.binomial(conv, np.clip(factor, 0.0, 1.0)),
    )
    aov = camp["avg_order_value"].reindex(metrics["campaign_id"].to_numpy()[at]).to_numpy()
    per_order = np.where(conv > 0, revenue / np.maximum(conv, 1), aov)
    metrics.loc[idx, "conversions"] = new.astype(np.int64)
    metrics.loc[idx, "revenue"] = np.round(new * per_order, 2)
    spend = np.maximum(metrics["spend"].to_numpy()[at].astype(float), 0.01)
    truth.loc[truth.index[at], "expected_conversions"] = expected * factor
    truth.loc[truth.index[at], "expected_revenue"] = expected * factor * aov
    truth.loc[truth.index[at], "expected_roas"] = expected * factor * aov / spend


def _apply_sessions(rng, kind, size, tenant, start, tables, coefficients) -> None:
    sessions, truth, events = tables["sessions"], tables["truth_sessions"], tables["capi_events"]
    hit = ((sessions["tenant_id"] == tenant) & (pd.to_datetime(sessions["started_at"]) >= start)).to_numpy()
    u_move, u_keep = rng.random(len(sessions)), rng.random(len(sessions))
    p_by_id = truth.set_index("session_id")["true_probability"]
    p = p_by_id.reindex(sessions["session_id"]).to_numpy()
    logit = np.log(p) - np.log1p(-p)
    if kind == "conversion_shift":
        shift = np.where(hit, np.log(size), 0.0)
    else:  # traffic_mix_shift: a share of the sessions with a known source now come from paid social
        source = sessions["traffic_source"]
        moved = hit & source.notna().to_numpy() & (u_move < size)
        old = source.map(coefficients).fillna(0.0).to_numpy()
        shift = np.where(moved, coefficients[LOW_SOURCE] - old, 0.0)
        sessions.loc[moved, "traffic_source"] = LOW_SOURCE
    p_new = 1.0 / (1.0 + np.exp(-(logit + shift)))
    # shift <= 0: a converting session still converts with probability p_new / p (so P(convert) = p_new).
    lost = sessions["converted"].to_numpy(dtype=bool) & (u_keep >= p_new / np.maximum(p, 1e-12))
    sessions.loc[lost, "converted"] = False
    truth["true_probability"] = (
        pd.Series(p_new, index=sessions["session_id"].to_numpy()).reindex(truth["session_id"]).to_numpy()
    )
    gone = set("evt-" + sessions.loc[lost, "session_id"].astype(str))
    if gone:
        keep = ~events["event_id"].isin(gone)
        tables["capi_events"] = events[keep].reset_index(drop=True)
