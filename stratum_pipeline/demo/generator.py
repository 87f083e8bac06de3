"""Synthetic Stratum source data from an explicit causal model, with its ground truth.

The model, per campaign c and day t:

- spend = daily budget x a budget multiplier that changes every 4 weeks x daily utilisation noise;
- impressions = spend / CPM, split over the campaign's creative slots; each slot runs a sequence
  of creatives, each live for 25-80 days;
- a creative's CTR and engagement rate decay with its cumulative frequency F (impressions so far
  per audience member): ctr = ctr0 * exp(-lambda * F), engagement = e0 * exp(-1.3 lambda F);
- expected conversions follow a Hill (saturating) response to spend,
  Vmax * s^h / (K^h + s^h), times weekly and quarterly seasonality, times creative effectiveness
  (0.6 + 0.4 x the impression-weighted effectiveness of the live creatives: CTR retention
  times a learning phase after launch);
- budgets change every 4 weeks and are paced in over a week;
- conversions ~ Poisson, revenue ~ Gamma around conversions x average order value (CV 0.3 per order);
- a session converts with a known logistic probability of its signals;
- every converted session sends a conversion event to one ad platform, with platform-specific
  rates of missing match keys.

The noise regime (`DemoConfig.noise`, NOISE_REGIMES) sets how messy the accounts are: `low` is the
world above; `realistic` has campaigns of ~0.5-50 expected conversions a day, negative-binomial counts
(zero-revenue days), lognormal order values, geometric adstock carry-over of spend (the response sees
the adstocked spend), abrupt budget changes and more mid-window launches.

Ground truth recorded beside the data: expected ROAS per campaign-day, each campaign's true response
function (`truth_campaign_response`, evaluated by `expected_daily_conversions`), the true conversion
probability per session, the true fatigue score and level per creative-day (the fatigue formula
of ml.fatigue applied to the noise-free latent state) and, independent of any scorer, the creative-day's
true CTR retention, its band (`retention_level`) and the first day its retention is below 0.5, every
injected bad row with its kind, and every injected anomaly (`DemoConfig.anomalies`, demo/anomalies.py: outages, spend spikes, conversion-rate drops,
CPC jumps, match-key outages) with its campaign, days, kind and size, and every injected regime change
(`DemoConfig.changes`, demo/changes.py: level shifts, response changes, conversion shifts, traffic-mix shifts,
seasonal jumps; off by default) in `truth_changes`.

Deterministic for a seed and an end date. Vectorised with numpy; scales to
100 tenants x 50 campaigns x 365 days.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from stratum_pipeline.demo import anomalies as injected_anomalies
from stratum_pipeline.demo import changes as injected_changes
from stratum_pipeline.ml import fatigue

# --- configuration -------------------------------------------------------------------


@dataclass(frozen=True)
class TenantSpec:
    tenant_id: str
    name: str
    campaigns: int
    history_days: int
    sessions_per_day: int


@dataclass(frozen=True)
class ResponseShift:
    """From `start` on, one tenant's response curve changes (a competitor, a tracking change, a new market):
    its expected conversions are multiplied by `scale` and swing weekly by +-`weekly_amplitude`."""

    tenant_id: str
    start: date
    scale: float = 0.5
    weekly_amplitude: float = 0.0

    def multiplier(self, tenant_ids: np.ndarray, dates: pd.DatetimeIndex) -> np.ndarray:
        d = pd.DatetimeIndex(dates)
        shifted = (np.asarray(tenant_ids) == self.tenant_id) & (d >= pd.Timestamp(self.start))
        weekly = 1.0 + self.weekly_amplitude * np.cos(2 * np.pi * (d.dayofweek.to_numpy() - 5) / 7)
        return np.where(shifted, self.scale * weekly, 1.0)


@dataclass(frozen=True)
class NoiseRegime:
    """How noisy and how varied the generated ad accounts are.

    `low` is the textbook world (hundreds of conversions a day per campaign, Poisson counts, order values
    with CV 0.3, no carry-over, budgets paced in). `realistic` looks like real ad accounts: campaigns of
    about 0.5-50 expected conversions a day within one tenant, negative-binomial (overdispersed) counts and
    so zero-revenue days, heavy-tailed (lognormal) order values, geometric adstock carry-over of spend,
    abrupt as well as paced budget changes, more campaigns launching mid-window, S-shaped as well as
    concave response curves.
    """

    name: str
    conversions_at_budget: tuple[float, float] | None = (
        None  # lognormal (median, sigma) of expected conv/day at budget
    )
    roas_at_budget: tuple[float, float] = (
        2.2,
        0.45,
    )  # lognormal (median, sigma) of the expected ROAS at budget
    order_value: tuple[float, float] = (
        25.0,
        0.4,
    )  # lognormal (median, sigma) of a campaign's average order value
    dispersion: float | None = None  # negative-binomial size of daily conversions; None = Poisson
    order_value_sigma: float | None = (
        None  # lognormal sigma of single orders; None = Gamma with CV ORDER_VALUE_CV
    )
    adstock: tuple[float, float] = (0.0, 0.0)  # uniform range of the geometric carry-over rate of spend
    hill_shape: tuple[float, float] = (0.8, 1.4)  # uniform range of the Hill exponent (> 1: S-shaped)
    saturation_sigma: float = 0.3  # lognormal sigma of the half-saturation spend around the budget
    budget_change_sigma: float = 0.3  # lognormal sigma of the 4-weekly budget multiplier
    abrupt_budget_share: float = 0.0  # share of campaigns whose budget changes land in one day
    late_launch_share: float = 0.2  # share of campaigns launching after their tenant's first day


LOW_NOISE = NoiseRegime("low")
REALISTIC_NOISE = NoiseRegime(
    "realistic",
    conversions_at_budget=(7.0, 1.1),
    roas_at_budget=(2.2, 0.45),
    order_value=(60.0, 0.5),
    dispersion=5.0,
    order_value_sigma=0.7,
    adstock=(0.1, 0.6),
    hill_shape=(0.6, 2.2),
    saturation_sigma=0.5,
    budget_change_sigma=0.4,
    abrupt_budget_share=0.5,
    late_launch_share=0.3,
)
NOISE_REGIMES = {r.name: r for r in (LOW_NOISE, REALISTIC_NOISE)}


# The demo default: two tenants big enough for models of their own, one with too few
# campaigns and one with too little history (both served by the global default model).
DEMO_TENANTS = (
    TenantSpec("acme_outdoor", "Acme Outdoor", campaigns=120, history_days=120, sessions_per_day=220),
    TenantSpec(
        "brightside_beauty", "Brightside Beauty", campaigns=110, history_days=120, sessions_per_day=160
    ),
    TenantSpec("corner_bakery", "Corner Bakery", campaigns=15, history_days=120, sessions_per_day=30),
    TenantSpec("nova_fintech", "Nova Fintech", campaigns=130, history_days=21, sessions_per_day=90),
)


@dataclass(frozen=True)
class DemoConfig:
    end_date: date
    seed: int = 7
    tenants: tuple[TenantSpec, ...] = DEMO_TENANTS
    creative_slots: int = 2
    bad_row_rate: float = 0.002
    response_shift: ResponseShift | None = None  # test scenarios: one tenant's response curve changes
    noise: NoiseRegime = LOW_NOISE  # NOISE_REGIMES["realistic"]: data as messy as real ad accounts
    anomalies: bool | None = (
        None  # injected campaign anomalies (demo/anomalies.py); None: on in the realistic regime
    )
    changes: tuple[injected_changes.Change, ...] = ()  # dated regime changes per tenant (demo/changes.py)

    @property
    def inject_anomalies(self) -> bool:
        return self.noise.name == "realistic" if self.anomalies is None else bool(self.anomalies)

    @property
    def days(self) -> int:
        return max(t.history_days for t in self.tenants)

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days - 1)

    @classmethod
    def scaled(
        cls,
        end_date: date,
        tenants: int,
        campaigns: int,
        days: int,
        sessions_per_day: int = 100,
        **kwargs,
    ) -> "DemoConfig":
        specs = tuple(
            TenantSpec(f"tenant_{i:03d}", f"Tenant {i:03d}", campaigns, days, sessions_per_day)
            for i in range(1, tenants + 1)
        )
        return cls(end_date=end_date, tenants=specs, **kwargs)

    def with_overrides(self, **kwargs) -> "DemoConfig":
        return replace(self, **kwargs)


# --- causal-model constants ------------------------------------------------------------

PLATFORM_MIX = {"meta": 0.40, "google": 0.35, "tiktok": 0.15, "linkedin": 0.10}
PLATFORM_CPM = {"meta": 9.0, "google": 12.0, "tiktok": 7.0, "linkedin": 30.0}
PLATFORM_CTR = {"meta": 0.012, "google": 0.030, "tiktok": 0.009, "linkedin": 0.006}

WEEKLY_AMPLITUDE = 0.12  # peak on Sunday
QUARTERLY_AMPLITUDE = 0.10  # rises through each quarter, peaks near its end
ORDER_VALUE_CV = 0.3
CREATIVE_LIFESPAN = (25, 80)
BUDGET_PERIOD_DAYS = 28
BUDGET_RAMP_DAYS = 7
LEARNING_PHASE_DAYS = 3.0  # a new creative converts at 60% on day 1, ~95% after a week

DEVICE_TYPES = {"mobile": 0.58, "desktop": 0.35, "tablet": 0.07}
TRAFFIC_SOURCES = {
    "paid_social": 0.30,
    "paid_search": 0.25,
    "organic": 0.20,
    "direct": 0.12,
    "email": 0.08,
    "referral": 0.05,
}
USER_SEGMENTS = {"new": 0.45, "returning": 0.35, "loyal": 0.15, "vip": 0.05}

# Logistic model of session conversion (true coefficients).
CONVERSION_MODEL = {
    "intercept": -7.4,
    "log_pages": 0.9,
    "log_minutes": 0.5,
    "has_cart": 3.4,
    "log_cart_value": 0.35,
    "log_previous_purchases": 0.6,
    "log_hours_since_visit": -0.18,
    "device_type": {"desktop": 0.35, "mobile": 0.0, "tablet": 0.15},
    "traffic_source": {
        "email": 0.7,
        "paid_search": 0.5,
        "direct": 0.4,
        "referral": 0.3,
        "organic": 0.15,
        "paid_social": 0.0,
    },
    "user_segment": {"new": 0.0, "returning": 0.3, "loyal": 0.7, "vip": 1.1},
}

# Share of conversion events without each match key, per platform.
EVENT_MISSING_RATES = {
    "meta": {
        "email": 0.15,
        "phone": 0.45,
        "fbc": 0.35,
        "fbp": 0.10,
        "gclid": 1.0,
        "ttclid": 1.0,
        "client_ip_address": 0.05,
        "client_user_agent": 0.05,
        "external_id": 0.30,
    },
    "google": {
        "email": 0.25,
        "phone": 0.55,
        "fbc": 1.0,
        "fbp": 1.0,
        "gclid": 0.12,
        "ttclid": 1.0,
        "client_ip_address": 0.20,
        "client_user_agent": 0.20,
        "external_id": 0.40,
    },
    "tiktok": {
        "email": 0.30,
        "phone": 0.50,
        "fbc": 1.0,
        "fbp": 1.0,
        "gclid": 1.0,
        "ttclid": 0.30,
        "client_ip_address": 0.10,
        "client_user_agent": 0.10,
        "external_id": 0.50,
    },
    "linkedin": {
        "email": 0.10,
        "phone": 0.70,
        "fbc": 1.0,
        "fbp": 1.0,
        "gclid": 1.0,
        "ttclid": 1.0,
        "client_ip_address": 0.30,
        "client_user_agent": 0.30,
        "external_id": 0.20,
    },
}
UNHASHED_EMAIL_RATE = 0.05
SESSION_FEATURE_MISSING_RATE = {
    "session_duration": 0.03,
    "cart_value": 0.02,
    "pages_viewed": 0.01,
    "device_type": 0.02,
    "traffic_source": 0.02,
}

# What each table can receive in bad rows.
BAD_ROW_KINDS = {
    "campaign_daily_metrics": (
        "negative_spend",
        "missing_value",
        "duplicate_key",
        "unknown_platform",
        "future_date",
        "clicks_gt_impressions",
    ),
    "creative_daily_metrics": (
        "negative_value",
        "missing_value",
        "duplicate_key",
        "future_date",
        "clicks_gt_impressions",
    ),
    "sessions": ("negative_value", "missing_value", "duplicate_key", "future_date"),
    "capi_events": ("negative_value", "missing_value", "duplicate_key", "unknown_platform", "future_date"),
}


@dataclass
class DemoDataset:
    """Generated source tables and ground truth, as DataFrames keyed by table name."""

    config: DemoConfig
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def row_counts(self) -> dict[str, int]:
        return {name: len(df) for name, df in self.tables.items()}


# --- helpers ------------------------------------------------------------------------


# Fatigue truth: bands on a creative's true CTR retention (its CTR relative to its fresh CTR).
RETENTION_BANDS = {"medium": 0.85, "high": 0.70, "critical": 0.50}  # below the value: this level or worse


def retention_level(retention) -> np.ndarray:
    """low >= 0.85 > medium >= 0.70 > high >= 0.50 > critical."""
    r = np.asarray(retention, dtype=float)
    bands = RETENTION_BANDS
    return np.select(
        [r < bands["critical"], r < bands["high"], r < bands["medium"]],
        ["critical", "high", "medium"],
        default="low",
    )


def _choice(rng: np.random.Generator, mapping: dict[str, float], size: int) -> np.ndarray:
    keys = np.array(list(mapping))
    p = np.array(list(mapping.values()), dtype=float)
    return keys[rng.choice(len(keys), size=size, p=p / p.sum())]


def _sha256(values: np.ndarray) -> np.ndarray:
    return np.array([hashlib.sha256(v.encode()).hexdigest() for v in values], dtype=object)


def seasonality(dates: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Weekly x quarterly demand multiplier for each date (the generator's true seasonality)."""
    d = pd.DatetimeIndex(dates)
    weekly = 1.0 + WEEKLY_AMPLITUDE * np.cos(2 * np.pi * (d.dayofweek.to_numpy() - 6) / 7)
    quarter_start = d.to_period("Q").start_time
    day_of_quarter = (d - quarter_start).days.to_numpy()
    quarterly = 1.0 + QUARTERLY_AMPLITUDE * np.sin(2 * np.pi * (day_of_quarter / 91.0 - 0.25))
    return weekly * quarterly


def hill(spend: np.ndarray, vmax: np.ndarray, half_saturation: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Saturating response of expected conversions to spend."""
    s = np.maximum(spend, 0.0)
    return vmax * s**shape / (half_saturation**shape + s**shape)


# --- the generator ----------------------------------------------------------------------


def generate(config: DemoConfig) -> DemoDataset:
    """Generate the whole source database (and its ground truth) for a configuration."""
    rng = np.random.default_rng(config.seed)
    days = pd.date_range(config.start_date, config.end_date, freq="D")
    ds = DemoDataset(config)

    ds.tables["tenants"] = _tenants(config)
    campaigns = _campaigns(config, rng, days)
    ds.tables["campaigns"] = campaigns.drop(
        columns=["_vmax", "_half", "_shape", "_adstock", "_cpm", "_start_t", "_stop_t"]
    )
    ds.tables["truth_campaign_response"] = _response_truth(config, campaigns)
    creatives, creative_days = _creatives(config, rng, campaigns, days)
    ds.tables["creatives"] = creatives
    metrics, truth = _campaign_days(rng, campaigns, creative_days, days, config.response_shift, config.noise)
    ds.tables["campaign_daily_metrics"] = metrics
    ds.tables["truth_campaign_daily"] = truth
    ds.tables["creative_daily_metrics"] = creative_days[
        [
            "id",
            "creative_id",
            "date",
            "impressions",
            "reach",
            "frequency",
            "clicks",
            "engagements",
            "recorded_at",
        ]
    ].copy()
    ds.tables["truth_creative_daily"] = creative_days[
        [
            "creative_id",
            "date",
            "true_ctr_decay",
            "true_fatigue_score",
            "true_fatigue_level",
            "true_ctr_retention",
            "true_retention_level",
            "true_critical_date",
        ]
    ].copy()
    sessions, truth_sessions = _sessions(config, rng, campaigns, days)
    ds.tables["sessions"] = sessions
    ds.tables["truth_sessions"] = truth_sessions
    ds.tables["capi_events"] = _capi_events(rng, campaigns, sessions)
    if config.changes:  # their own random stream too; before anomalies, which then sit on the changed world
        ds.tables["truth_changes"] = injected_changes.inject(
            config.seed,
            config.changes,
            {t.tenant_id: days[len(days) - t.history_days] for t in config.tenants},
            days,
            campaigns,
            ds.tables,
            CONVERSION_MODEL["traffic_source"],
        )
    else:
        ds.tables["truth_changes"] = pd.DataFrame(columns=injected_changes.COLUMNS)
    if config.inject_anomalies:  # their own random stream: the main stream's draws (and tables) are unchanged
        ds.tables["truth_anomalies"] = injected_anomalies.inject(
            config.seed, campaigns, days, metrics, truth, ds.tables["capi_events"]
        )
    else:
        ds.tables["truth_anomalies"] = pd.DataFrame(columns=injected_anomalies.COLUMNS)
    ds.tables["truth_bad_rows"] = _inject_bad_rows(config, rng, ds)
    return ds


def generate_in_chunks(config: DemoConfig, tenants_per_chunk: int = 1) -> Iterator[DemoDataset]:
    """The data of `config` as consecutive datasets of `tenants_per_chunk` tenants each, so a large
    configuration (100 tenants x 50 campaigns x 365 days: ~5.7 GiB generated at once) is made and written
    in bounded memory. The first chunk uses `config.seed`, chunk i a seed derived from (seed, i); integer
    ids (and `truth_bad_rows.source_id`) continue across chunks, so they stay unique in the written tables.
    With every tenant in one chunk the result is exactly `generate(config)`."""
    if tenants_per_chunk < 1:
        raise ValueError(f"tenants_per_chunk must be at least 1, got {tenants_per_chunk}")
    offsets: dict[str, int] = {}
    for i, start in enumerate(range(0, len(config.tenants), tenants_per_chunk)):
        seed = config.seed if i == 0 else int(np.random.SeedSequence([config.seed, i]).generate_state(1)[0])
        chunk = generate(
            replace(config, tenants=config.tenants[start : start + tenants_per_chunk], seed=seed)
        )
        bad = chunk.tables["truth_bad_rows"]
        if len(bad):
            bad["source_id"] = bad["source_id"] + bad["table_name"].map(offsets).fillna(0).astype(np.int64)
        for name, frame in chunk.tables.items():
            if "id" in frame.columns and pd.api.types.is_integer_dtype(frame["id"]):
                frame["id"] += offsets.get(name, 0)
                offsets[name] = int(frame["id"].max()) if len(frame) else offsets.get(name, 0)
        yield chunk
        del chunk  # not held while the next chunk is generated


def _tenants(config: DemoConfig) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [t.tenant_id for t in config.tenants],
            "name": [t.name for t in config.tenants],
            "created_at": [
                datetime.combine(config.end_date - timedelta(days=t.history_days), datetime.min.time())
                for t in config.tenants
            ],
        }
    )


def _campaigns(config: DemoConfig, rng: np.random.Generator, days: pd.DatetimeIndex) -> pd.DataFrame:
    n_days = len(days)
    tenant_ids = np.concatenate([[t.tenant_id] * t.campaigns for t in config.tenants])
    tenant_first_t = np.concatenate([[n_days - t.history_days] * t.campaigns for t in config.tenants])
    n = len(tenant_ids)
    ordinal = np.concatenate([np.arange(1, t.campaigns + 1) for t in config.tenants])
    platform = _choice(rng, PLATFORM_MIX, n)
    regime = config.noise
    if regime.conversions_at_budget is None:  # the low-noise world (its draws unchanged, so its data is too)
        budget = np.round(rng.lognormal(np.log(2500.0), 0.6, n), 2)
        audience = np.round(rng.lognormal(np.log(1.2e6), 0.7, n)).astype(np.int64)
        aov = np.round(rng.lognormal(np.log(25.0), 0.4, n), 2)
        cpm = np.array([PLATFORM_CPM[p] for p in platform]) * rng.lognormal(0.0, 0.2, n)
        # Response curve: conversions at the budget are around half of Vmax.
        vmax = rng.lognormal(np.log(700.0), 0.45, n) * (budget / 2500.0) ** 0.8
        half = budget * rng.lognormal(0.0, 0.3, n)
        shape = rng.uniform(0.8, 1.4, n)
        carry = np.zeros(n)
    else:
        # Volume first: expected conversions a day at the budget span ~0.5-50 within a tenant, and the
        # budget follows from them, the order value and the campaign's ROAS at that budget.
        audience = np.round(rng.lognormal(np.log(4e5), 0.8, n)).astype(np.int64)
        aov = np.round(rng.lognormal(np.log(regime.order_value[0]), regime.order_value[1], n), 2)
        cpm = np.array([PLATFORM_CPM[p] for p in platform]) * rng.lognormal(0.0, 0.2, n)
        volume = np.clip(
            rng.lognormal(np.log(regime.conversions_at_budget[0]), regime.conversions_at_budget[1], n),
            0.2,
            150.0,
        )
        roas_at_budget = rng.lognormal(np.log(regime.roas_at_budget[0]), regime.roas_at_budget[1], n)
        budget = np.round(np.maximum(volume * aov / roas_at_budget, 5.0), 2)
        half = budget * rng.lognormal(0.0, regime.saturation_sigma, n)
        shape = rng.uniform(*regime.hill_shape, n)
        vmax = volume * (half**shape + budget**shape) / budget**shape
        carry = rng.uniform(*regime.adstock, n)
    # 80% start with their tenant; the rest launch later. 5% have ended before the last day.
    history = n_days - tenant_first_t
    late = rng.random(n) < regime.late_launch_share
    start_t = tenant_first_t + np.where(late, (rng.random(n) * history * 0.6).astype(int), 0)
    ended = rng.random(n) < 0.05
    stop_t = np.where(ended, np.maximum(start_t + 7, n_days - 1 - rng.integers(1, 20, n)), n_days - 1)
    stop_t = np.minimum(stop_t, n_days - 1)
    dates = days.date
    return pd.DataFrame(
        {
            "id": [f"{t}-c{i:04d}" for t, i in zip(tenant_ids, ordinal)],
            "tenant_id": tenant_ids,
            "name": [f"Campaign {i}" for i in ordinal],
            "platform": platform,
            "daily_budget": budget,
            "audience_size": audience,
            "avg_order_value": aov,
            "start_date": dates[start_t],
            "end_date": np.where(stop_t < n_days - 1, dates[stop_t], None),
            "status": np.where(stop_t < n_days - 1, "completed", "active"),
            "_vmax": vmax,
            "_half": half,
            "_shape": shape,
            "_adstock": carry,
            "_cpm": cpm,
            "_start_t": start_t,
            "_stop_t": stop_t,
        }
    )


def _creatives(config, rng, campaigns: pd.DataFrame, days: pd.DatetimeIndex):
    """Creative slots, the creatives that fill them, and every creative-day with its latent fatigue."""
    n_days = len(days)
    slots = config.creative_slots
    c_idx = np.repeat(np.arange(len(campaigns)), slots)
    slot = np.tile(np.arange(slots), len(campaigns))
    max_per_slot = n_days // CREATIVE_LIFESPAN[0] + 2
    lifespans = rng.integers(CREATIVE_LIFESPAN[0], CREATIVE_LIFESPAN[1] + 1, (len(c_idx), max_per_slot))
    start_t = campaigns["_start_t"].to_numpy()[c_idx]
    stop_t = campaigns["_stop_t"].to_numpy()[c_idx]
    # Slot 2+ is staggered (its first creative is cut short) so creatives don't all rotate on the same day.
    offsets = np.where(slot == 0, 0, rng.integers(0, CREATIVE_LIFESPAN[0], len(c_idx)))
    launches = start_t[:, None] + np.concatenate(
        [np.zeros((len(c_idx), 1), dtype=int), np.cumsum(lifespans, axis=1)[:, :-1]], axis=1
    )
    launches[:, 0] = start_t
    launches[:, 1:] -= offsets[:, None]
    ends = np.minimum(
        np.concatenate([launches[:, 1:] - 1, launches[:, -1:] + lifespans[:, -1:]], axis=1), stop_t[:, None]
    )
    valid = launches <= stop_t[:, None]
    sl, k = np.nonzero(valid)
    cr = pd.DataFrame(
        {
            "_c": c_idx[sl],
            "_slot": slot[sl],
            "_k": k,
            "_launch_t": launches[sl, k],
            "_end_t": ends[sl, k],
        }
    )
    camp = campaigns.iloc[cr["_c"]]
    cr["id"] = (
        pd.Series(camp["id"].to_numpy())
        + "-s"
        + cr["_slot"].astype(str)
        + "k"
        + cr["_k"].astype(str).str.zfill(2)
    ).to_numpy()
    cr["campaign_id"] = camp["id"].to_numpy()
    cr["tenant_id"] = camp["tenant_id"].to_numpy()
    cr["format"] = _choice(rng, {"image": 0.5, "video": 0.35, "carousel": 0.15}, len(cr))
    cr["launch_date"] = days.date[cr["_launch_t"].to_numpy()]
    platform = camp["platform"].to_numpy()
    cr["_ctr0"] = np.array([PLATFORM_CTR[p] for p in platform]) * rng.lognormal(0.0, 0.3, len(cr))
    cr["_eng0"] = cr["_ctr0"] * 2.5 * rng.lognormal(0.0, 0.2, len(cr))
    cr["_lambda"] = 0.15 * rng.lognormal(0.0, 0.3, len(cr))

    # Expand to creative-days.
    length = (cr["_end_t"] - cr["_launch_t"] + 1).to_numpy()
    rows = np.repeat(np.arange(len(cr)), length)
    offset = np.arange(len(rows)) - np.repeat(np.cumsum(length) - length, length)
    cd = pd.DataFrame(
        {"_cr": rows, "_t": cr["_launch_t"].to_numpy()[rows] + offset, "days_active": offset + 1}
    )
    cd["_c"] = cr["_c"].to_numpy()[rows]
    cd["creative_id"] = cr["id"].to_numpy()[rows]
    cd["date"] = days.date[cd["_t"].to_numpy()]
    c = cd["_c"].to_numpy()
    t = cd["_t"].to_numpy()

    # Spend per campaign-day (needed here to size impressions); stored for _campaign_days.
    spend = _spend_grid(rng, campaigns, n_days, config.noise)
    audience = campaigns["audience_size"].to_numpy()[c].astype(float)
    cpm = campaigns["_cpm"].to_numpy()[c]
    share = 1.0 / slots
    expected_imps = spend[c, t] * share / cpm * 1000.0
    imps = rng.poisson(expected_imps * rng.lognormal(0.0, 0.05, len(cd))).astype(np.int64)
    cd["impressions"] = imps
    cum_imps = cd.groupby("_cr")["impressions"].cumsum().to_numpy()
    freq_before = (cum_imps - imps) / audience
    lam = cr["_lambda"].to_numpy()[rows]
    ctr_retention = np.exp(-lam * freq_before)
    eng_retention = np.exp(-1.3 * lam * freq_before)
    ctr = cr["_ctr0"].to_numpy()[rows] * ctr_retention
    eng = cr["_eng0"].to_numpy()[rows] * eng_retention
    cd["clicks"] = rng.binomial(imps, np.clip(ctr, 0, 1))
    cd["engagements"] = rng.binomial(imps, np.clip(eng, 0, 1))
    slot_audience = audience * share
    reach = np.round(slot_audience * (1.0 - np.exp(-imps / slot_audience))).astype(np.int64)
    reach = np.clip(reach, np.minimum(imps, 1), imps)
    cd["reach"] = reach
    cd["frequency"] = np.round(np.where(reach > 0, imps / np.maximum(reach, 1), 0.0), 4)
    recorded = (
        pd.to_datetime(cd["date"])
        + pd.to_timedelta(1, "D")
        + pd.to_timedelta(rng.integers(60, 6 * 3600, len(cd)), "s")
    )
    cd["recorded_at"] = recorded
    # Latent (noise-free) fatigue: the ml.fatigue formula on the true state after today's delivery.
    cd["true_ctr_decay"] = 1.0 - ctr_retention
    score = fatigue.fatigue_score(
        cd["days_active"], cum_imps / audience, 1.0 - ctr_retention, 1.0 - eng_retention
    )
    cd["true_fatigue_score"] = np.round(score, 3)
    cd["true_fatigue_level"] = fatigue.fatigue_level(score)
    # The truth of what happens next, independent of any scorer: the day's true CTR retention (CTR / fresh
    # CTR), its band (RETENTION_BANDS) and the first day of the creative's life on which retention is below 0.5.
    cd["true_ctr_retention"] = ctr_retention
    cd["true_retention_level"] = retention_level(ctr_retention)
    below = np.where(ctr_retention < RETENTION_BANDS["critical"], cd["_t"].to_numpy(), np.iinfo(np.int64).max)
    first_below = pd.Series(below).groupby(rows).transform("min").to_numpy()
    crossed = first_below < np.iinfo(np.int64).max
    cd["true_critical_date"] = np.where(crossed, days.date[np.where(crossed, first_below, 0)], None)
    learning = 1.0 - 0.4 * np.exp(-(cd["days_active"].to_numpy() - 1) / LEARNING_PHASE_DAYS)
    cd["_effectiveness"] = ctr_retention * learning
    cd["_spend"] = spend[c, t]
    cd["id"] = np.arange(1, len(cd) + 1)
    creatives = cr[["id", "campaign_id", "tenant_id", "format", "launch_date"]].copy()
    return creatives, cd


def _spend_grid(rng, campaigns: pd.DataFrame, n_days: int, regime: NoiseRegime = LOW_NOISE) -> np.ndarray:
    """Daily spend: the budget times a multiplier that the advertiser changes every 4 weeks
    (paced in over BUDGET_RAMP_DAYS, as platforms do, or from one day to the next for the regime's
    abrupt share of campaigns), times small daily pacing noise."""
    n = len(campaigns)
    periods = n_days // BUDGET_PERIOD_DAYS + 2
    multipliers = rng.lognormal(0.0, regime.budget_change_sigma, (n, periods))
    phase = rng.integers(0, BUDGET_PERIOD_DAYS, n)
    position = np.arange(n_days)[None, :] + phase[:, None]
    period = position // BUDGET_PERIOD_DAYS
    ramp_days = np.full(n, float(BUDGET_RAMP_DAYS))
    if regime.abrupt_budget_share > 0:
        ramp_days[rng.random(n) < regime.abrupt_budget_share] = 1.0
    ramp = np.minimum(1.0, (position % BUDGET_PERIOD_DAYS + 1) / ramp_days[:, None])
    current = np.take_along_axis(multipliers, period, 1)
    previous = np.take_along_axis(multipliers, np.maximum(period - 1, 0), 1)
    multiplier = np.where(period > 0, previous + (current - previous) * ramp, current)
    utilisation = rng.lognormal(0.0, 0.03, (n, n_days))
    spend = campaigns["daily_budget"].to_numpy()[:, None] * multiplier * utilisation
    return np.round(spend, 2)


def adstock(spend: np.ndarray, rate) -> np.ndarray:
    """Geometric carry-over along the last axis: a_t = (1 - rate) * s_t + rate * a_(t-1), from a_(-1) = 0.

    Normalised so that a constant spend s settles at a = s: the rate moves *when* spend works, not how much.
    `rate` is one value or one per row of `spend` (0 = no carry-over).
    """
    s = np.atleast_2d(np.asarray(spend, dtype=float))
    r = np.broadcast_to(np.asarray(rate, dtype=float).reshape(-1), (s.shape[0],))
    out = np.empty_like(s)
    carried = np.zeros(s.shape[0])
    for t in range(s.shape[1]):
        carried = (1.0 - r) * s[:, t] + r * carried
        out[:, t] = carried
    return out.reshape(np.shape(spend))


def expected_daily_conversions(
    response: pd.DataFrame | pd.Series, spend: np.ndarray, dates, effectiveness=1.0
) -> np.ndarray:
    """A campaign's true expected conversions per day for a spend path (its true response function).

    `response` is the campaign's row of `truth_campaign_response` (or rows, one per row of a 2-D `spend`);
    `spend` the daily spend from the campaign's launch (carry-over starts at zero), `dates` the days it
    falls on (seasonality), `effectiveness` the creative effectiveness (1 = fresh creatives; the generator's
    days have 0.6 + 0.4 x the live creatives' CTR retention). Multiply by `avg_order_value` for revenue.
    """
    r = response if isinstance(response, pd.DataFrame) else response.to_frame().T
    col = {
        k: r[k].to_numpy(dtype=float)[:, None]
        for k in ("vmax", "half_saturation", "hill_shape", "adstock_rate")
    }
    carried = adstock(np.atleast_2d(spend), col["adstock_rate"][:, 0])
    out = (
        hill(carried, col["vmax"], col["half_saturation"], col["hill_shape"])
        * seasonality(dates)[None, :]
        * effectiveness
    )
    return out.reshape(np.shape(spend)) if np.ndim(spend) == 1 else out


def _response_truth(config: DemoConfig, campaigns: pd.DataFrame) -> pd.DataFrame:
    """Each campaign's true response function: expected conversions on a day = Hill(adstocked spend) x
    seasonality x creative effectiveness; revenue = conversions x avg_order_value."""
    return pd.DataFrame(
        {
            "campaign_id": campaigns["id"].to_numpy(),
            "vmax": campaigns["_vmax"].to_numpy(),
            "half_saturation": campaigns["_half"].to_numpy(),
            "hill_shape": campaigns["_shape"].to_numpy(),
            "adstock_rate": campaigns["_adstock"].to_numpy(),
            "avg_order_value": campaigns["avg_order_value"].to_numpy(),
            "dispersion": np.full(
                len(campaigns), np.nan if config.noise.dispersion is None else config.noise.dispersion
            ),
            "order_value_sigma": np.full(
                len(campaigns),
                np.nan if config.noise.order_value_sigma is None else config.noise.order_value_sigma,
            ),
            "noise_regime": config.noise.name,
        }
    )


def _campaign_days(
    rng,
    campaigns: pd.DataFrame,
    creative_days: pd.DataFrame,
    days: pd.DatetimeIndex,
    shift: ResponseShift | None = None,
    regime: NoiseRegime = LOW_NOISE,
):
    agg = (
        creative_days.assign(_w=creative_days["_effectiveness"] * creative_days["impressions"])
        .groupby(["_c", "_t"])
        .agg(
            impressions=("impressions", "sum"),
            clicks=("clicks", "sum"),
            _w=("_w", "sum"),
            spend=("_spend", "first"),
        )
    )
    agg = agg.reset_index()
    c = agg["_c"].to_numpy()
    t = agg["_t"].to_numpy()
    effectiveness = np.where(agg["impressions"] > 0, agg["_w"] / agg["impressions"].clip(lower=1), 1.0)
    spend = agg["spend"].to_numpy()
    carry = campaigns["_adstock"].to_numpy()
    if carry.any():  # spend works on later days too: the response sees the adstocked spend of the active days
        grid = np.zeros((len(campaigns), len(days)))
        grid[c, t] = spend
        working = adstock(grid, carry)[c, t]
    else:
        working = spend
    season = seasonality(days[t])
    expected_conv = (
        hill(
            working,
            campaigns["_vmax"].to_numpy()[c],
            campaigns["_half"].to_numpy()[c],
            campaigns["_shape"].to_numpy()[c],
        )
        * season
        * (0.6 + 0.4 * effectiveness)
    )
    if shift is not None:
        expected_conv = expected_conv * shift.multiplier(campaigns["tenant_id"].to_numpy()[c], days[t])
    aov = campaigns["avg_order_value"].to_numpy()[c]
    if regime.dispersion is None:
        conversions = rng.poisson(expected_conv)  # view-through conversions: not bounded by clicks
    else:  # negative binomial: a Gamma-distributed daily rate with mean expected_conv
        conversions = rng.poisson(
            expected_conv * rng.gamma(regime.dispersion, 1.0 / regime.dispersion, len(agg))
        )
    if regime.order_value_sigma is None:
        k = 1.0 / ORDER_VALUE_CV**2
        revenue = np.where(conversions > 0, rng.gamma(np.maximum(conversions, 1) * k, aov / k), 0.0)
    else:  # each order lognormal with mean aov: a few large orders make a day
        sigma = regime.order_value_sigma
        owner = np.repeat(np.arange(len(agg)), conversions)
        orders = rng.lognormal(np.log(aov[owner]) - sigma**2 / 2, sigma)
        revenue = np.bincount(owner, weights=orders, minlength=len(agg))
    dates = days.date[t]
    recorded = (
        pd.to_datetime(dates)
        + pd.to_timedelta(1, "D")
        + pd.to_timedelta(rng.integers(60, 6 * 3600, len(agg)), "s")
    )
    metrics = pd.DataFrame(
        {
            "id": np.arange(1, len(agg) + 1),
            "campaign_id": campaigns["id"].to_numpy()[c],
            "platform": campaigns["platform"].to_numpy()[c],
            "date": dates,
            "spend": spend,
            "impressions": agg["impressions"].to_numpy(),
            "clicks": agg["clicks"].to_numpy(),
            "conversions": conversions.astype(np.int64),
            "revenue": np.round(revenue, 2),
            "recorded_at": recorded.to_numpy(),
        }
    )
    truth = pd.DataFrame(
        {
            "campaign_id": metrics["campaign_id"],
            "date": dates,
            "expected_conversions": expected_conv,
            "expected_revenue": expected_conv * aov,
            "expected_roas": expected_conv * aov / np.maximum(spend, 0.01),
            "adstocked_spend": working,
        }
    )
    return metrics, truth


def conversion_logit(frame: pd.DataFrame) -> np.ndarray:
    """The true log-odds of conversion for complete (noise-free) session signals."""
    m = CONVERSION_MODEL
    hours = frame["time_since_last_visit"].fillna(0.0).to_numpy()
    return (
        m["intercept"]
        + m["log_pages"] * np.log1p(frame["pages_viewed"].to_numpy())
        + m["log_minutes"] * np.log1p(frame["session_duration"].to_numpy() / 60.0)
        + m["has_cart"] * (frame["items_in_cart"].to_numpy() > 0)
        + m["log_cart_value"] * np.log1p(frame["cart_value"].to_numpy() / 10.0)
        + m["log_previous_purchases"] * np.log1p(frame["previous_purchases"].to_numpy())
        + m["log_hours_since_visit"] * np.log1p(hours)
        + frame["device_type"].map(m["device_type"]).to_numpy()
        + frame["traffic_source"].map(m["traffic_source"]).to_numpy()
        + frame["user_segment"].map(m["user_segment"]).to_numpy()
    )


def _sessions(config: DemoConfig, rng, campaigns: pd.DataFrame, days: pd.DatetimeIndex):
    n_days = len(days)
    season = seasonality(days)
    per_tenant = []
    for ti, spec in enumerate(config.tenants):
        first = n_days - spec.history_days
        counts = np.zeros(n_days, dtype=np.int64)
        counts[first:] = rng.poisson(spec.sessions_per_day * season[first:])
        per_tenant.append(counts)
    counts = np.stack(per_tenant)  # (tenants, days)
    tenant_index, day_index = np.nonzero(counts)
    reps = counts[tenant_index, day_index]
    ti = np.repeat(tenant_index, reps)
    t = np.repeat(day_index, reps)
    n = len(ti)
    tenant_ids = np.array([s.tenant_id for s in config.tenants])[ti]
    aov_by_tenant = campaigns.groupby("tenant_id")["avg_order_value"].median()

    segment = _choice(rng, USER_SEGMENTS, n)
    prev = np.select(
        [segment == "new", segment == "returning", segment == "loyal"],
        [np.zeros(n), rng.poisson(0.7, n), rng.poisson(3.0, n) + 1],
        default=rng.poisson(8.0, n) + 3,
    ).astype(np.int64)
    hours = np.where(
        segment == "new", np.nan, rng.lognormal(np.log(np.where(segment == "loyal", 30.0, 90.0)), 1.0, n)
    )
    duration = rng.lognormal(np.log(170.0), 0.9, n)
    pages = 1 + rng.poisson(duration / 60.0 * 0.9)
    intent = np.select([segment == "vip", segment == "loyal", segment == "returning"], [2.0, 1.5, 1.1], 0.8)
    items = rng.poisson(0.12 * pages * intent)
    item_price = rng.lognormal(np.log(aov_by_tenant.reindex(tenant_ids).to_numpy() / 1.5), 0.4)
    cart_value = np.round(np.where(items > 0, items * item_price, 0.0), 2)
    frame = pd.DataFrame(
        {
            "session_duration": np.round(duration, 1),
            "pages_viewed": pages.astype(np.int64),
            "cart_value": cart_value,
            "items_in_cart": items.astype(np.int64),
            "time_since_last_visit": np.round(hours, 2),
            "previous_purchases": prev,
            "device_type": _choice(rng, DEVICE_TYPES, n),
            "traffic_source": _choice(rng, TRAFFIC_SOURCES, n),
            "user_segment": segment,
        }
    )
    p = 1.0 / (1.0 + np.exp(-conversion_logit(frame)))
    converted = rng.random(n) < p
    started = pd.to_datetime(days.date[t]) + pd.to_timedelta(rng.integers(0, 86400, n), "s")
    session_ids = np.char.add(np.char.add(tenant_ids.astype("U"), "-s"), np.arange(1, n + 1).astype("U"))
    visitor = np.char.add(np.char.add(tenant_ids.astype("U"), "-v"), rng.integers(1, 50_000, n).astype("U"))
    # Missing signals are normal input: the truth above was computed before they were hidden.
    for column, rate in SESSION_FEATURE_MISSING_RATE.items():
        hide = rng.random(n) < rate
        frame[column] = frame[column].astype(object if frame[column].dtype == object else float)
        frame.loc[hide, column] = None if frame[column].dtype == object else np.nan
    sessions = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "session_id": session_ids,
            "tenant_id": tenant_ids,
            "visitor_id": visitor,
            "started_at": started,
        }
    )
    sessions = pd.concat([sessions, frame], axis=1)
    sessions["converted"] = converted
    ended = started + pd.to_timedelta(duration, "s")
    sessions["recorded_at"] = ended + pd.to_timedelta(rng.integers(1, 300, n), "s")
    truth = pd.DataFrame({"session_id": session_ids, "true_probability": p})
    return sessions, truth


def _capi_events(rng, campaigns: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    conv = sessions[sessions["converted"]].reset_index(drop=True)
    n = len(conv)
    mix = campaigns.groupby(["tenant_id", "platform"]).size().unstack(fill_value=0)
    probs = mix.div(mix.sum(axis=1), axis=0)
    platforms = np.array(probs.columns)
    tenant_probs = probs.reindex(conv["tenant_id"]).to_numpy()
    u = rng.random(n)[:, None]
    platform = platforms[(u > np.cumsum(tenant_probs, axis=1)).sum(axis=1).clip(max=len(platforms) - 1)]
    event_time = pd.to_datetime(conv["recorded_at"])
    visitor = conv["visitor_id"].to_numpy().astype("U")
    emails = np.char.add(visitor, "@example.com")
    email = _sha256(emails)
    plain = rng.random(n) < UNHASHED_EMAIL_RATE
    email[plain] = emails[plain]
    phone = _sha256(np.char.add("+1555", rng.integers(1_000_000, 9_999_999, n).astype("U")))
    ip = np.array([f"203.0.{a}.{b}" for a, b in rng.integers(0, 255, (n, 2))], dtype=object)
    ua = np.where(
        conv["device_type"].fillna("desktop").to_numpy() == "desktop",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)",
    )
    rand_token = rng.integers(10**11, 10**12, n).astype("U")
    events = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "event_id": np.char.add("evt-", conv["session_id"].to_numpy().astype("U")),
            "tenant_id": conv["tenant_id"].to_numpy(),
            "platform": platform,
            "event_name": "Purchase",
            "event_time": event_time,
            "value": np.round(
                np.where(conv["cart_value"].fillna(0) > 0, conv["cart_value"].fillna(0), 40.0), 2
            ),
            "currency": "USD",
            "email": email,
            "phone": phone,
            "fbc": np.char.add("fb.1.", rand_token),
            "fbp": np.char.add("fb.1.p", rand_token),
            "gclid": np.char.add("Cj0KCQ", rand_token),
            "ttclid": np.char.add("E.C.P.", rand_token),
            "client_ip_address": ip,
            "client_user_agent": ua.astype(object),
            "external_id": _sha256(visitor),
            "recorded_at": (event_time + pd.to_timedelta(rng.integers(1, 120, n), "s")),
        }
    )
    for plat, rates in EVENT_MISSING_RATES.items():
        on_platform = events["platform"].to_numpy() == plat
        for column, rate in rates.items():
            hide = on_platform & (rng.random(n) < rate)
            events.loc[hide, column] = None
    return events


# --- bad rows ------------------------------------------------------------------------------


def _inject_bad_rows(config: DemoConfig, rng, ds: DemoDataset) -> pd.DataFrame:
    """Corrupt a small share of rows (each kind at least once when the rate is > 0) and record them."""
    records = []
    if config.bad_row_rate <= 0:
        return pd.DataFrame(columns=["table_name", "source_id", "kind"])
    for table, kinds in BAD_ROW_KINDS.items():
        df = ds.tables[table]
        per_kind = max(1, int(round(config.bad_row_rate * len(df) / len(kinds))))
        picked = rng.choice(len(df), size=min(len(df), per_kind * len(kinds)), replace=False)
        duplicates = []
        next_id = int(df["id"].max()) + 1
        for i, kind in enumerate(kinds):
            rows = picked[i * per_kind : (i + 1) * per_kind]
            if kind == "duplicate_key":
                copies = df.iloc[rows].copy()
                copies["id"] = np.arange(next_id, next_id + len(copies))
                next_id += len(copies)
                copies["recorded_at"] = pd.to_datetime(copies["recorded_at"]) + pd.Timedelta(hours=1)
                duplicates.append(copies)
                records += [(table, int(i_), kind) for i_ in copies["id"]]
                continue
            _corrupt(df, rows, table, kind)
            records += [(table, int(i_), kind) for i_ in df["id"].iloc[rows]]
        if duplicates:
            ds.tables[table] = pd.concat([df, *duplicates], ignore_index=True)
    return pd.DataFrame(records, columns=["table_name", "source_id", "kind"])


def _corrupt(df: pd.DataFrame, rows: np.ndarray, table: str, kind: str) -> None:
    idx = df.index[rows]
    if kind == "negative_spend":
        df.loc[idx, "spend"] = -df.loc[idx, "spend"].abs() - 1.0
    elif kind == "negative_value":
        column = {"creative_daily_metrics": "impressions", "sessions": "cart_value", "capi_events": "value"}[
            table
        ]
        df.loc[idx, column] = -df.loc[idx, column].fillna(0).abs() - 1
    elif kind == "missing_value":
        column = {
            "campaign_daily_metrics": "spend",
            "creative_daily_metrics": "clicks",
            "sessions": "converted",
            "capi_events": "event_name",
        }[table]
        if df[column].dtype != object:
            df[column] = df[column].astype(object)
        df.loc[idx, column] = None
    elif kind == "unknown_platform":
        df.loc[idx, "platform"] = "myspace"
    elif kind == "future_date":
        # Recorded days before the date it claims: a date in the future at the time of recording.
        column = {
            "campaign_daily_metrics": "date",
            "creative_daily_metrics": "date",
            "sessions": "started_at",
            "capi_events": "event_time",
        }[table]
        when = pd.to_datetime(df.loc[idx, column])
        df.loc[idx, "recorded_at"] = when - pd.Timedelta(days=3)
    elif kind == "clicks_gt_impressions":
        df.loc[idx, "clicks"] = df.loc[idx, "impressions"] + 1 + df.loc[idx, "clicks"]
    else:  # pragma: no cover - BAD_ROW_KINDS and this function move together
        raise ValueError(f"unknown bad-row kind {kind}")
