"""Campaign anomalies: each campaign-day judged against that campaign's own expected level.

Tests per campaign-day, each a tail probability of what was observed under what the campaign's own
recent days predict (the "window": the previous `window_days` days that were not themselves flagged):

- spend: the log ratio of the day's spend to the previous day's, under a mixture fitted per
  tenant: small daily pacing noise (sigma) plus, at rate `jump_rate`, budget changes (sigma `jump_sigma`).
  Upper tail -> `spend_spike`.
- clicks, and impressions when the metrics carry them: the day's count given its spend and the count per
  unit spend of the last 3 unflagged days, negative binomial whose variance is the counting noise of both
  (3 clicks against 10 expected is no news, 300 against 1,000 is) plus the tenant's noise, with a fitted
  share of lasting level changes. Lower tail -> `cpc_jump` (the same spend buys fewer clicks). Clicks per
  spend also move with a new creative's CTR; impressions per spend (the price of reach, CPM) move with the
  auction, so they find CPC jumps that a creative change would hide.
- conversions: the day's conversions given its spend and weekday, from the window's conversions per unit
  of exposure (weekday factor x spend^elasticity; window days weighted by a `halflife_days` half-life),
  negative binomial with the tenant's overdispersion, the rate's uncertainty (a window of N conversions
  knows its rate to ~1/sqrt(N)) and the uncertainty of extrapolating along spend^elasticity when spend
  moved away from the window's ((`elasticity_sigma` x the log spend change)^2). Lower tail ->
  `tracking_outage` when (almost) nothing is recorded, else `conversion_rate_drop`. A campaign at 2 a day
  seen at 0 is not an anomaly (probability ~0.1); one at 200 seen at 0 is.
- conversions over runs of 2-`scan_days` days ending on the day (`run_probability`): the run's total against
  the rate known before it started. A day's own noise averages out over a run while a shared level error
  (`conversion_drift`, fitted) does not, so a drop to x0.3 for 4 days at 80 a day is found though no day of
  it alone is; an outage of 2 days at 10 a day is found on its second day.

Per tenant, `fit` estimates the weekday factors, the overdispersion of conversions (and the part of it that
neighbouring days share), of clicks and impressions, and the spend mixture from its history (anomalies in
the history count as noise there, so the fit is robust: trimmed moments and medians); with too little
history a tenant uses `AnomalyDetector()` (defaults). The alphas are set for <= 1 false alarm per 1,000
clean campaign-days in total (benchmarks/anomalies.py). `detect` returns one row per flagged campaign-day:
kind, severity, metric, expected, observed, probability (for a run: per day of the run, and its probability).

CAPI match-key outages are judged per tenant, platform and day by `match_key_outages`: the count of events
carrying an email against the window's share, binomial.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from stratum_pipeline.ml.inputs import InputError, date_column, numeric_column, require_frame

KINDS = ("tracking_outage", "spend_spike", "conversion_rate_drop", "cpc_jump", "capi_match_key_outage")
CRITICAL_KINDS = ("tracking_outage", "spend_spike")
METRIC = {
    "tracking_outage": "conversions",
    "conversion_rate_drop": "conversions",
    "spend_spike": "spend",
    "cpc_jump": "cpc",
    "capi_match_key_outage": "events_with_email",
}
REQUIRED = ("campaign_id", "date", "spend", "clicks", "conversions")
FINDING_COLUMNS = ["campaign_id", "date", "kind", "severity", "metric", "expected", "observed", "probability"]
OUTAGE_SHARE = 0.1  # conversions at or below this share of the expected level: an outage, not a drop
MIN_FIT_CAMPAIGN_DAYS = 600  # a tenant's own detector needs this many campaign-days of history


@dataclass(frozen=True)
class DetectorParams:
    """What a tenant's detector knows about its accounts (the defaults: a typical tenant)."""

    weekday: tuple[float, ...] = (1.0,) * 7  # conversion multiplier Monday..Sunday (mean 1)
    elasticity: float = 0.6  # conversions ~ spend^elasticity within a window
    elasticity_sigma: float = 0.25  # how wrong that elasticity can be (S-shaped, saturated campaigns, ...)
    conversion_dispersion: float = (
        5.0  # negative-binomial size of daily conversions around the expected level
    )
    conversion_drift: float = 0.02  # the part of 1/conversion_dispersion shared by neighbouring days (a level
    # error of the expected level that lasts: it does not average out over a run of days)
    click_sigma: float = 0.05  # daily log-noise of clicks per unit spend beyond counting noise
    click_jump_rate: float = 0.03  # share of days where clicks per spend change (a new creative, ...)
    click_jump_sigma: float = 0.2  # log-size of those changes
    impression_sigma: float = 0.05  # the same three for impressions per unit spend (the price of reach, CPM):
    impression_jump_rate: float = 0.01  # an auction change moves it; a new creative moves clicks, not CPM
    impression_jump_sigma: float = 0.2
    spend_sigma: float = 0.04  # daily log-spend pacing noise
    jump_rate: float = 0.02  # share of days with a budget change
    jump_sigma: float = 0.5  # log-size of budget changes
    budget_center: float = 0.0  # median log(spend / daily budget)
    budget_sigma: float = 0.3  # robust spread of log(spend / daily budget)
    alpha_conversions: float = (
        5e-4  # each test flags below its tail probability (set for ~1 false alarm per 1,000)
    )
    alpha_clicks: float = 1e-6
    alpha_impressions: float = 1e-4
    alpha_spend: float = 5e-5
    alpha_scan: float = 4e-5  # the multi-day conversions test (the smallest of its windows' probabilities)
    scan_days: int = 5  # the longest run of days the multi-day test sums (an anomaly lasts 1-5 days)
    window_days: int = 28
    halflife_days: float = 14.0  # weight of a window day: 0.5^(age / halflife) (0: every day alike)
    min_window_days: int = 7
    fitted_on: int = 0  # campaign-days of history (0: the default detector)

    def to_dict(self) -> dict:
        return asdict(self)


def _validate(metrics, what: str = "campaign metrics") -> pd.DataFrame:
    frame = require_frame(metrics, what, REQUIRED)
    if frame.empty:
        raise InputError(f"{what} is empty: nothing to judge")
    out = pd.DataFrame(
        {
            "campaign_id": frame["campaign_id"].astype(str).to_numpy(),
            "date": date_column(frame["date"], "date").dt.normalize().to_numpy(),
        }
    )
    if frame["campaign_id"].isna().any():
        raise InputError(f"campaign_id has {int(frame['campaign_id'].isna().sum())} missing values")
    for column in REQUIRED[2:]:
        values = numeric_column(frame[column], column)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            raise InputError(
                f"{column} has {int(bad.sum())} values that are missing, infinite or negative "
                f"(e.g. {frame[column].to_numpy()[bad][0]!r})"
            )
        out[column] = values
    if "impressions" in frame.columns:  # optional: impressions per spend (CPM) sharpen the CPC test
        values = numeric_column(frame["impressions"], "impressions")
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            raise InputError(
                f"impressions has {int(bad.sum())} values that are missing, infinite or negative "
                f"(e.g. {frame['impressions'].to_numpy()[bad][0]!r})"
            )
        out["impressions"] = values
    if "daily_budget" in frame.columns:  # optional: spend against the budget sharpens the spike test
        budget = numeric_column(frame["daily_budget"], "daily_budget")
        out["daily_budget"] = np.where(budget > 0, budget, np.nan)
    if out.duplicated(["campaign_id", "date"]).any():
        raise InputError("campaign metrics have more than one row for a campaign and date")
    return out


@dataclass
class _Grid:
    """Metrics as campaign x day arrays (NaN where a campaign has no row)."""

    campaigns: np.ndarray
    days: pd.DatetimeIndex
    spend: np.ndarray
    clicks: np.ndarray
    conversions: np.ndarray
    impressions: np.ndarray  # all NaN when the metrics carry no impressions
    budget: np.ndarray  # per campaign: its (last known) daily budget, NaN when unknown
    present: np.ndarray = field(init=False)

    def __post_init__(self):
        self.present = np.isfinite(self.spend)

    @classmethod
    def of(cls, frame: pd.DataFrame) -> _Grid:
        campaigns = np.sort(frame["campaign_id"].unique())
        days = pd.date_range(frame["date"].min(), frame["date"].max(), freq="D")
        c = np.searchsorted(campaigns, frame["campaign_id"].to_numpy())
        t = ((frame["date"] - days[0]) // pd.Timedelta(days=1)).to_numpy()
        arrays = []
        for column in ("spend", "clicks", "conversions", "impressions"):
            grid = np.full((len(campaigns), len(days)), np.nan)
            if column in frame.columns:
                grid[c, t] = frame[column].to_numpy()
            arrays.append(grid)
        budget = np.full(len(campaigns), np.nan)
        if "daily_budget" in frame.columns:
            last = (
                frame.dropna(subset=["daily_budget"])
                .sort_values("date")
                .drop_duplicates("campaign_id", keep="last")
            )
            budget[np.searchsorted(campaigns, last["campaign_id"].to_numpy())] = last[
                "daily_budget"
            ].to_numpy()
        return cls(campaigns, days, *arrays, budget)


def _mixture_cdf(x, counting_var, sigma: float, rate: float, jump_sigma: float) -> np.ndarray:
    """P(X <= x) for a log ratio that is normal noise (variance sigma^2 + counting_var) on most days and,
    at `rate`, a level change (variance jump_sigma^2 + counting_var)."""
    x = np.nan_to_num(np.asarray(x, dtype=float), nan=0.0)
    return (1.0 - rate) * stats.norm.cdf(x / np.sqrt(sigma**2 + counting_var)) + rate * stats.norm.cdf(
        x / np.sqrt(jump_sigma**2 + counting_var)
    )


def _persists(level: np.ndarray, before: np.ndarray, jump: np.ndarray, days: int = 11) -> np.ndarray:
    """Whether a jump at each campaign-day is a lasting level change: the median level of the next `days`
    days (longer than twice an anomaly) moved from `before` in the jump's direction by at least half of it
    (a spike or a CPC jump of a few days is transient; a budget change or a new creative stays)."""
    n_t = level.shape[1]
    ahead = np.full(level.shape, np.nan)
    padded = np.concatenate([level, np.full((level.shape[0], days), np.nan)], axis=1)
    window = np.lib.stride_tricks.sliding_window_view(padded[:, 1:], days, axis=1)[:, :n_t]
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ahead = np.nanmedian(window, axis=2)
    moved = ahead - before
    return np.isfinite(moved) & (moved * jump > 0) & (np.abs(moved) >= 0.5 * np.abs(jump))


def _fit_mixture(
    x: np.ndarray,
    counting_var,
    default: tuple[float, float, float],
    lasting: np.ndarray | None = None,
    side: int = 0,
) -> tuple[float, float, float]:
    """(sigma, rate, jump_sigma) of `_mixture_cdf` from observed log ratios: sigma such that the ratios divided
    by their standard deviation have a robust (MAD) spread of 1; the share of standardised ratios beyond 5 as
    the rate (shrunk towards a small prior); the root mean square of those beyond it as jump_sigma. With
    `lasting`, only lasting jumps count as normal: transient ones (anomalies in the history) are left out.
    `side` -1 / +1 fits the jumps of that direction only (the tail the test uses), mirrored."""
    counting = np.broadcast_to(np.asarray(counting_var, dtype=float), np.shape(x))
    ok = np.isfinite(x) & np.isfinite(counting)
    if ok.sum() < 50:  # too few ratios (e.g. metrics without impressions): the defaults
        return default
    if lasting is not None:
        sd0 = np.sqrt(np.nanmedian(counting) + 1e-4)
        ok &= lasting | (np.abs(np.nan_to_num(x)) < 3 * 1.4826 * np.nanmedian(np.abs(x[ok])) + 3 * sd0)
    x, counting = x[ok], counting[ok]
    if len(x) < 50:
        return default
    grid = np.geomspace(0.005, 2.0, 60)
    spread = np.array([1.4826 * np.median(np.abs(x) / np.sqrt(g**2 + counting)) for g in grid])
    sigma = float(grid[np.argmax(spread <= 1.0)]) if (spread <= 1.0).any() else float(grid[-1])
    beyond = np.abs(x) / np.sqrt(sigma**2 + counting) > 5
    if side:
        beyond &= np.sign(x) == side
    jumps, jump_counting = x[beyond], counting[beyond]
    rate = float(np.clip(((2 if side else 1) * len(jumps) + 1) / (len(x) + 100), 0.002, 0.3))
    jump_sigma = (
        float(np.sqrt(max(np.mean(jumps**2 - jump_counting), 0.1**2))) if len(jumps) >= 5 else default[2]
    )
    return sigma, rate, jump_sigma


def run_probability(
    conversions: np.ndarray,
    exposure: np.ndarray,
    rate: np.ndarray,
    window_conversions: np.ndarray,
    dispersion: float,
    usable: np.ndarray,
    max_days: int,
    drift: float = 0.0,
    spend_shift: tuple[np.ndarray, np.ndarray, float] | None = None,
) -> tuple[np.ndarray, ...]:
    """The multi-day lower-tail test of conversions on the runs of days that end on the last column.

    Arrays are campaign x day; the last column is the day judged. For each run of 2..`max_days` days ending
    there (starting on day s, none of its earlier days `usable`-False, i.e. already flagged), the run's
    conversions are summed and compared with the run's expected total, `rate[:, s]` (the per-exposure rate
    known before the run started, from `window_conversions[:, s]` conversions) x the run's exposure: a
    negative binomial whose mean is that total and whose size matches the variance of a sum of independent
    daily negative binomials (1/size = `dispersion`'s inverse, of which `drift` is shared by the run's days
    and so does not average out) plus the rate's own uncertainty (~1/N). Daily noise
    averages out over a run (a 5-day run of size-5 days has size ~25) while the rate's error does not, so
    a drop to x0.4 for 3 days at 20 a day is found where no single day of it is. Only runs whose last day
    is itself below the run's expected level count (a low day followed by a normal one is not today's news).
    `spend_shift` (log spend per day, the window's mean log spend per day, elasticity sigma) adds the
    uncertainty of extrapolating along spend^elasticity: (sigma x the run's log spend change)^2.
    Returns (probability, days, expected total, observed total) per campaign, the run of the smallest
    probability; NaN (0 days) where no run qualifies."""
    n_c, n_t = conversions.shape
    best = np.full(n_c, np.nan)
    days, expected, observed = np.zeros(n_c, dtype=int), np.full(n_c, np.nan), np.full(n_c, np.nan)
    clean = np.ones(n_c, dtype=bool)
    for length in range(2, min(max_days, n_t) + 1):
        s = n_t - length
        clean &= usable[:, s]  # the run's earlier days: none flagged
        r, e = rate[:, s], exposure[:, s:]
        total = r * e.sum(axis=1)
        y = conversions[:, s:].sum(axis=1)
        ok = clean & np.isfinite(r) & (total > 0) & (conversions[:, -1] < r * e[:, -1])
        if not ok.any():
            continue
        with np.errstate(all="ignore"):
            own = max(1.0 / dispersion - drift, 1e-6)  # the day's own noise: averages out over the run
            inv_size = (
                own * (r**2 * (e**2).sum(axis=1)) / total**2 + drift + 1.0 / (window_conversions[:, s] + 0.5)
            )
            if spend_shift is not None:
                log_spend, window_log_spend, sigma = spend_shift
                inv_size = inv_size + (sigma * (log_spend[:, s:].mean(axis=1) - window_log_spend[:, s])) ** 2
        prob = np.where(ok, _nb_cdf(y, np.where(ok, total, 1.0), 1.0 / np.where(ok, inv_size, 1.0)), np.nan)
        better = ok & ~(prob >= best)  # NaN best: any run is better
        best[better], days[better] = prob[better], length
        expected[better], observed[better] = total[better], y[better]
    return best, days, expected, observed


def fit_drift(
    expected: np.ndarray, observed: np.ndarray, window: np.ndarray, inv_size: float, length: int = 3
) -> float:
    """The relative variance of the expected level's error shared by `length` neighbouring days (tau^2).

    The daily test's 1/size (`inv_size`) holds the day's own noise (1/k) and that shared error:
    E[(y - mu)^2 - mu] = mu^2 (1/k + tau^2 + 1/N). Over non-overlapping runs of `length` days (campaign x day
    arrays, NaN where not judged), E[(Y - M)^2 - M] = sum(mu^2)/k + M^2 (tau^2 + 1/N): the day's own noise
    averages out, the shared error does not. The two trimmed moments (the 1% largest excesses left out:
    anomalies in the history) solve for tau^2, clipped to [0, inv_size]."""
    n_c, n_t = expected.shape
    usable = n_t // length * length
    if usable == 0:
        return 0.0
    mu = expected[:, :usable].reshape(n_c, -1, length)
    y = observed[:, :usable].reshape(n_c, -1, length)
    n = window[:, :usable].reshape(n_c, -1, length)[..., 0]
    ok = np.isfinite(mu).all(axis=2) & np.isfinite(y).all(axis=2) & np.isfinite(n)
    if ok.sum() < 30:
        return 0.0
    total, seen = mu.sum(axis=2)[ok], y.sum(axis=2)[ok]
    share = (mu**2).sum(axis=2)[ok] / np.maximum(total**2, 1e-12)  # sum(mu^2) / M^2: ~1/length
    excess = (seen - total) ** 2 - total - total**2 / np.maximum(n[ok], 1)
    keep = excess <= np.quantile(excess, 0.99)
    weight = (total[keep] ** 2).sum()
    # excess / M^2 = share/k + tau^2 and inv_size = 1/k + tau^2: two equations, two unknowns
    b = excess[keep].sum() / max(weight, 1e-12)
    c = (share[keep] * total[keep] ** 2).sum() / max(weight, 1e-12)
    inv_k = (inv_size - b) / max(1.0 - c, 1e-6)
    return float(np.clip(inv_size - inv_k, 0.0, inv_size))


def _per_spend_test(
    counts: np.ndarray,
    spend: np.ndarray,
    recent: np.ndarray,
    sigma: float,
    jump_rate: float,
    jump_sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The last column's count (clicks or impressions) given its spend and the count per unit spend of the
    `recent` days before it (campaign x day arrays; `recent` has one column fewer): (expected count, lower-tail
    probability), NaN where no recent day had spend. A negative binomial around the expected count, its
    extra variance the tenant's daily noise (`sigma`) plus the baseline's counting noise, mixed at
    `jump_rate` with the rarer lasting level changes (`jump_sigma`)."""
    spend_base = (spend[:, :-1] * recent).sum(axis=1)
    count_base = (counts[:, :-1] * recent).sum(axis=1)
    has = recent.any(axis=1) & (spend_base > 0)
    expected = np.where(has, (count_base + 0.5) / np.maximum(spend_base, 1e-9) * spend[:, -1], np.nan)
    base_var = 1.0 / (count_base + 0.5)
    mean = np.nan_to_num(expected)
    noise = _nb_cdf(counts[:, -1], mean, 1.0 / (sigma**2 + base_var))
    level = _nb_cdf(counts[:, -1], mean, 1.0 / (jump_sigma**2 + base_var))
    return expected, np.where(has, (1.0 - jump_rate) * noise + jump_rate * level, np.nan)


def _nb_cdf(observed, mean, size) -> np.ndarray:
    """P(X <= observed) for a negative binomial with this mean and size (the Poisson limit for size -> inf)."""
    mean = np.maximum(mean, 1e-9)
    return stats.nbinom.cdf(observed, size, size / (size + mean))


class AnomalyDetector:
    """Judges campaign-days against each campaign's own expected level (see the module docstring)."""

    FORMAT = 1  # bumped when a pickled detector of an older version can no longer be used

    def __init__(self, params: DetectorParams | None = None):
        self.params = params or DetectorParams()
        self.format_ = self.FORMAT

    @property
    def is_default(self) -> bool:
        return self.params.fitted_on == 0

    # --- fitting ---------------------------------------------------------------------------------

    def fit(self, history: pd.DataFrame) -> AnomalyDetector:
        """Estimate the tenant's parameters from its campaign metrics; raises InputError with too little history."""
        frame = _validate(history, "history")
        if len(frame) < MIN_FIT_CAMPAIGN_DAYS:
            raise InputError(
                f"history has {len(frame)} campaign-days; a tenant's detector needs at least "
                f"{MIN_FIT_CAMPAIGN_DAYS} (use the default detector)"
            )
        grid = _Grid.of(frame)
        p = self.params
        # Weekday factors: each weekday's conversions against the campaign's spend-based expectation.
        exposure = np.where(grid.present, np.nan_to_num(grid.spend) ** p.elasticity, 0.0)
        conv = np.nan_to_num(grid.conversions)
        rate = conv.sum(axis=1, keepdims=True) / np.maximum(exposure.sum(axis=1, keepdims=True), 1e-9)
        dow = grid.days.dayofweek.to_numpy()
        num = np.array([conv[:, dow == d].sum() for d in range(7)])
        den = np.array([(rate * exposure)[:, dow == d].sum() for d in range(7)])
        weekday = np.where(den > 0, (num + 20) / (den + 20), 1.0)
        weekday = tuple(float(w) for w in weekday / weekday.mean())
        staged = AnomalyDetector(DetectorParams(**{**p.to_dict(), "weekday": weekday}))
        scored = staged._score_grid(grid, exclude_flagged=False)
        ok = np.isfinite(scored["conv_expected"])
        # Overdispersion of conversions: trimmed method of moments, (y - mu)^2 - mu = mu^2 (1/k + 1/N).
        mu, y, n = scored["conv_expected"][ok], grid.conversions[ok], scored["conv_window"][ok]
        excess = (y - mu) ** 2 - mu
        keep = excess <= np.quantile(excess, 0.99) if len(excess) else excess.astype(bool)
        inv_k = (excess[keep].sum() - (mu[keep] ** 2 / np.maximum(n[keep], 1)).sum()) / max(
            (mu[keep] ** 2).sum(), 1e-9
        )
        conversion_dispersion = float(np.clip(1.0 / max(inv_k, 1e-3), 0.5, 1000.0))
        conversion_drift = fit_drift(
            scored["conv_expected"], grid.conversions, scored["conv_window"], 1.0 / conversion_dispersion
        )
        with np.errstate(all="ignore"):
            click_x = np.log((grid.clicks + 0.5) / (scored["click_expected"] + 0.5))
            click_level = np.log((grid.clicks + 0.5) / grid.spend)
            spend_level = np.log(np.maximum(grid.spend, 0.01))
        click_lasting = _persists(click_level, click_level - click_x, click_x)
        click_sigma, click_rate, click_jump = _fit_mixture(
            click_x,
            2.0 / (scored["click_expected"] + 0.5),
            (p.click_sigma, p.click_jump_rate, p.click_jump_sigma),
            click_lasting,
            side=-1,
        )
        with np.errstate(all="ignore"):
            imp_x = np.log((grid.impressions + 0.5) / (scored["impression_expected"] + 0.5))
            imp_level = np.log((grid.impressions + 0.5) / grid.spend)
        imp_sigma, imp_rate, imp_jump = _fit_mixture(
            imp_x,
            2.0 / (scored["impression_expected"] + 0.5),
            (p.impression_sigma, p.impression_jump_rate, p.impression_jump_sigma),
            _persists(imp_level, imp_level - imp_x, imp_x),
            side=-1,
        )
        spend_x = scored["spend_log_ratio"]
        spend_lasting = _persists(spend_level, spend_level - spend_x, spend_x)
        sigma, jump_rate, jump_sigma = _fit_mixture(
            spend_x, 0.0, (p.spend_sigma, p.jump_rate, p.jump_sigma), spend_lasting, side=1
        )
        with np.errstate(all="ignore"):
            over = np.log(np.maximum(grid.spend, 0.01) / grid.budget[:, None])
        over = over[np.isfinite(over)]
        budget_center = float(np.median(over)) if len(over) >= 50 else p.budget_center
        budget_sigma = (
            float(max(1.4826 * np.median(np.abs(over - budget_center)), 0.05))
            if len(over) >= 50
            else p.budget_sigma
        )
        self.params = DetectorParams(
            **{
                **p.to_dict(),
                "weekday": weekday,
                "budget_center": budget_center,
                "budget_sigma": budget_sigma,
                "conversion_dispersion": conversion_dispersion,
                "conversion_drift": conversion_drift,
                "click_sigma": click_sigma,
                "click_jump_rate": click_rate,
                "click_jump_sigma": click_jump,
                "impression_sigma": imp_sigma,
                "impression_jump_rate": imp_rate,
                "impression_jump_sigma": imp_jump,
                "spend_sigma": sigma,
                "jump_rate": jump_rate,
                "jump_sigma": jump_sigma,
                "fitted_on": len(frame),
            }
        )
        return self

    # --- scoring ---------------------------------------------------------------------------------

    def _score_grid(
        self, grid: _Grid, exclude_flagged: bool = True, first_t: int = 0
    ) -> dict[str, np.ndarray]:
        """Expected levels and tail probabilities for every campaign-day from `first_t` on; with
        `exclude_flagged`, a flagged day does not enter later days' windows."""
        p = self.params
        n_c, n_t = grid.spend.shape
        usable = grid.present.copy()
        out = {
            k: np.full((n_c, n_t), np.nan)
            for k in (
                "conv_expected",
                "conv_window",
                "p_conv",
                "click_expected",
                "p_clicks",
                "impression_expected",
                "p_impressions",
                "spend_expected",
                "spend_log_ratio",
                "p_spend",
                "p_run",
                "run_days",
                "run_expected",
                "run_observed",
            )
        }
        rate_at, window_at, wlog_at = (np.full((n_c, n_t), np.nan) for _ in range(3))
        weekday = np.asarray(p.weekday)[grid.days.dayofweek.to_numpy()]
        spend = np.nan_to_num(grid.spend)
        exposure = weekday[None, :] * spend**p.elasticity
        budget = grid.budget
        clicks, conv = np.nan_to_num(grid.clicks), np.nan_to_num(grid.conversions)
        log_spend = np.log(np.maximum(spend, 0.01))
        impressions, has_impressions = np.nan_to_num(grid.impressions), np.isfinite(grid.impressions)
        for t in range(max(first_t, p.min_window_days), n_t):
            lo, lo7 = max(0, t - p.window_days), max(0, t - 7)
            u = usable[:, lo:t]
            n_days = u.sum(axis=1)
            today = grid.present[:, t] & (n_days >= p.min_window_days)
            if not today.any():
                continue
            # Conversions: rate per exposure over the window.
            w = u * (0.5 ** ((t - 1 - np.arange(lo, t)) / p.halflife_days) if p.halflife_days > 0 else 1.0)
            conv_w = (conv[:, lo:t] * w).sum(axis=1)
            expo_w = (exposure[:, lo:t] * w).sum(axis=1)
            rate = np.where(expo_w > 0, (conv_w + 0.5) / np.maximum(expo_w, 1e-9), 0.0)
            if p.halflife_days > 0:  # the effective number of conversions the weighted rate rests on
                conv_w = conv_w**2 / np.maximum((conv[:, lo:t] * w**2).sum(axis=1), 1e-9)
            mu = rate * exposure[:, t]
            # Extrapolating along spend^elasticity is as uncertain as the elasticity x how far spend moved.
            wlog_at[:, t] = (log_spend[:, lo:t] * w).sum(axis=1) / np.maximum(np.sum(w, axis=1), 1e-12)
            shift_var = (p.elasticity_sigma * (log_spend[:, t] - wlog_at[:, t])) ** 2
            size = 1.0 / (1.0 / p.conversion_dispersion + 1.0 / (conv_w + 0.5) + shift_var)
            p_conv = _nb_cdf(conv[:, t], mu, size)
            rate_at[:, t], window_at[:, t] = np.where(today, rate, np.nan), conv_w
            lo_run = max(0, t - p.scan_days + 1)
            p_run, run_days, run_expected, run_observed = run_probability(
                conv[:, lo_run : t + 1],
                exposure[:, lo_run : t + 1],
                rate_at[:, lo_run : t + 1],
                window_at[:, lo_run : t + 1],
                p.conversion_dispersion,
                usable[:, lo_run : t + 1],
                p.scan_days,
                p.conversion_drift,
                (log_spend[:, lo_run : t + 1], wlog_at[:, lo_run : t + 1], p.elasticity_sigma),
            )
            # Clicks, and impressions, per unit spend over the last (up to) 3 unflagged days of the past week.
            u7 = usable[:, lo7:t]
            recent = u7 & (np.cumsum(u7[:, ::-1], axis=1)[:, ::-1] <= 3)
            mc, p_clicks = _per_spend_test(
                clicks[:, lo7 : t + 1],
                spend[:, lo7 : t + 1],
                recent,
                p.click_sigma,
                p.click_jump_rate,
                p.click_jump_sigma,
            )
            mi, p_imps = _per_spend_test(
                impressions[:, lo7 : t + 1],
                spend[:, lo7 : t + 1],
                recent & has_impressions[:, lo7:t],
                p.impression_sigma,
                p.impression_jump_rate,
                p.impression_jump_sigma,
            )
            mi, p_imps = (
                np.where(has_impressions[:, t], mi, np.nan),
                np.where(has_impressions[:, t], p_imps, np.nan),
            )
            # Spend against the previous day's (a spike is judged on its first day).
            prev = grid.present[:, t - 1]
            med = np.where(prev, spend[:, t - 1], np.nan)
            with np.errstate(all="ignore"):
                ratio = np.log(np.maximum(spend[:, t], 0.01) / np.maximum(med, 0.01))
            p_jump = np.where(
                prev, 1.0 - _mixture_cdf(ratio, 0.0, p.spend_sigma, p.jump_rate, p.jump_sigma), np.nan
            )
            # And against the budget: a budget change moves spend within the budget's usual range, a pacing error
            # far beyond it. The two tail probabilities are combined (Fisher) where the budget is known.
            over = np.log(np.maximum(spend[:, t], 0.01) / budget) - p.budget_center
            p_budget = stats.norm.sf(over / p.budget_sigma)
            with np.errstate(divide="ignore"):
                both = np.log(np.maximum(p_jump, 1e-300)) + np.log(np.maximum(p_budget, 1e-300))
                fisher = stats.chi2.sf(-2.0 * both, 4)
            p_spend = np.where(np.isfinite(budget) & (budget > 0), fisher, p_jump)
            for key, value in (
                ("conv_expected", mu),
                ("conv_window", conv_w),
                ("p_conv", p_conv),
                ("click_expected", mc),
                ("p_clicks", p_clicks),
                ("impression_expected", mi),
                ("p_impressions", p_imps),
                ("spend_expected", med),
                ("spend_log_ratio", ratio),
                ("p_spend", p_spend),
                ("p_run", p_run),
                ("run_days", run_days),
                ("run_expected", run_expected),
                ("run_observed", run_observed),
            ):
                out[key][:, t] = np.where(today, value, np.nan)
            if exclude_flagged:
                flagged = today & (
                    (p_conv < p.alpha_conversions)
                    | (np.nan_to_num(p_clicks, nan=1.0) < p.alpha_clicks)
                    | (np.nan_to_num(p_imps, nan=1.0) < p.alpha_impressions)
                    | (np.nan_to_num(p_spend, nan=1.0) < p.alpha_spend)
                )
                usable[flagged, t] = False
                in_run = today & (np.nan_to_num(p_run, nan=1.0) < p.alpha_scan)
                for c in np.flatnonzero(in_run):  # the whole run leaves later windows
                    usable[c, t - run_days[c] + 1 : t + 1] = False
        return out

    def score(self, metrics: pd.DataFrame, since=None) -> pd.DataFrame:
        """Every campaign-day (from `since` on) with its expected levels and the three tail probabilities
        (NaN where a campaign has too little history before that day). `metrics` must hold the window
        before `since` too."""
        frame = _validate(metrics)
        grid = _Grid.of(frame)
        first_t = 0 if since is None else max(0, int((pd.Timestamp(since) - grid.days[0]).days))
        s = self._score_grid(grid, first_t=first_t)
        c, t = np.nonzero(grid.present)
        keep = t >= first_t
        c, t = c[keep], t[keep]
        out = pd.DataFrame(
            {
                "campaign_id": grid.campaigns[c],
                "date": grid.days[t],
                "spend": grid.spend[c, t],
                "clicks": grid.clicks[c, t],
                "impressions": grid.impressions[c, t],
                "conversions": grid.conversions[c, t],
            }
        )
        for key, values in s.items():
            out[key] = values[c, t]
        return out

    def anomaly_score(self, scored: pd.DataFrame) -> np.ndarray:
        """One number per scored campaign-day: -log10 of the smallest tail probability relative to its test's
        alpha (> 0: flagged). Moving one threshold on it moves every test's alpha by the same factor."""
        p = self.params
        ratios = [
            scored[column].fillna(1.0).to_numpy() / alpha
            for column, alpha in (
                ("p_conv", p.alpha_conversions),
                ("p_clicks", p.alpha_clicks),
                ("p_spend", p.alpha_spend),
                ("p_impressions", p.alpha_impressions),
                ("p_run", p.alpha_scan),
            )
        ]
        return -np.log10(np.maximum(np.minimum.reduce(ratios), 1e-300))

    def classify(self, scored: pd.DataFrame, scale: float = 1.0) -> pd.DataFrame:
        """Findings (FINDING_COLUMNS) from `score` output: one per campaign-day with a tail probability below
        its test's alpha (times `scale`)."""
        s = scored
        p = self.params
        p_spend = s["p_spend"].fillna(1.0).to_numpy()
        p_clicks = s["p_clicks"].fillna(1.0).to_numpy()
        day_test = s["p_conv"].fillna(1.0).to_numpy() < p.alpha_conversions * scale
        # The day's own conversions, else the run of days that ends on it (reported per day of the run).
        run = ~day_test & (s["p_run"].fillna(1.0).to_numpy() < p.alpha_scan * scale)
        days = np.maximum(s["run_days"].fillna(1.0).to_numpy(), 1.0)
        conv_expected = np.where(run, s["run_expected"].to_numpy() / days, s["conv_expected"].to_numpy())
        conv_observed = np.where(run, s["run_observed"].to_numpy() / days, s["conversions"].to_numpy())
        p_conv = np.where(run, s["p_run"].to_numpy(), s["p_conv"].fillna(1.0).to_numpy())
        spike = p_spend < p.alpha_spend * scale
        p_imps = s["p_impressions"].fillna(1.0).to_numpy()
        cpc = ~spike & ((p_clicks < p.alpha_clicks * scale) | (p_imps < p.alpha_impressions * scale))
        conv_low = ~spike & ~cpc & (day_test | run)
        outage = conv_low & (conv_observed <= OUTAGE_SHARE * np.nan_to_num(conv_expected))
        # Conversions down with the clicks (fewer clicks for the money, not fewer conversions per click): CPC.
        with np.errstate(divide="ignore", invalid="ignore"):
            click_share = s["clicks"].to_numpy() / s["click_expected"].to_numpy()
            reach_share = (
                s["impressions"].to_numpy() / s["impression_expected"].to_numpy()
                if "impressions" in s.columns
                else np.full(len(s), np.nan)
            )
        cpc |= (
            conv_low
            & ~outage
            & (((p_clicks < 0.01) & (click_share <= 0.8)) | ((p_imps < 0.01) & (reach_share <= 0.8)))
        )
        conv_low &= ~cpc
        kind = np.select(
            [spike, cpc, outage, conv_low],
            ["spend_spike", "cpc_jump", "tracking_outage", "conversion_rate_drop"],
            "",
        )
        flagged = kind != ""
        f = s[flagged]
        kind = kind[flagged]
        with np.errstate(divide="ignore", invalid="ignore"):
            expected_cpc = f["spend"] / f["click_expected"]
            observed_cpc = f["spend"] / f["clicks"].where(f["clicks"] > 0)
        expected = np.select(
            [kind == "spend_spike", kind == "cpc_jump"],
            [f["spend_expected"], expected_cpc],
            conv_expected[flagged],
        )
        observed = np.select(
            [kind == "spend_spike", kind == "cpc_jump"], [f["spend"], observed_cpc], conv_observed[flagged]
        )
        probability = np.select(
            [kind == "spend_spike", kind == "cpc_jump"],
            [p_spend[flagged], np.minimum(p_clicks, p_imps)[flagged]],
            p_conv[flagged],
        )
        ratio = np.where(
            kind == "cpc_jump",
            expected / np.where(observed > 0, observed, np.nan),
            observed / np.where(expected > 0, expected, np.nan),
        )
        severity = np.where(
            np.isin(kind, CRITICAL_KINDS), "critical", np.where(ratio < 0.5, "high", "medium")
        )
        return pd.DataFrame(
            {
                "campaign_id": f["campaign_id"].to_numpy(),
                "date": pd.to_datetime(f["date"]).dt.date.to_numpy(),
                "kind": kind,
                "severity": severity,
                "metric": [METRIC[k] for k in kind],
                "expected": np.round(expected.astype(float), 4),
                "observed": np.round(observed.astype(float), 4),
                "probability": probability.astype(float),
            },
            columns=FINDING_COLUMNS,
        )

    def detect(self, metrics: pd.DataFrame, since=None, campaign_id: str | None = None) -> pd.DataFrame:
        """The anomalies (FINDING_COLUMNS) among the campaign-days of `metrics` from `since` on; the days
        before `since` serve as each campaign's window. `campaign_id` restricts the answer to one campaign
        (an InputError if `metrics` has no row of it)."""
        if campaign_id is not None:
            frame = require_frame(metrics, "campaign metrics", REQUIRED)
            metrics = frame[frame["campaign_id"].astype(str) == str(campaign_id)]
            if metrics.empty:
                raise InputError(f"unknown campaign {campaign_id!r}: no metrics for it")
        return self.classify(self.score(metrics, since=since))

    def predict_frame(self, metrics: pd.DataFrame) -> pd.DataFrame:
        """The findings of every day of `metrics` (the MLflow pyfunc interface: metrics rows in, findings out)."""
        return self.detect(metrics)

    def flag_rate(self, history: pd.DataFrame) -> float:
        """Share of the judged campaign-days of `history` this detector flags (the publishing gate's check)."""
        scored = self.score(history)
        judged = scored[["p_conv", "p_clicks", "p_impressions", "p_spend"]].notna().any(axis=1).sum()
        return float(len(self.classify(scored)) / judged) if judged else 0.0


def touches_flagged(
    rows: pd.DataFrame, flagged: pd.DataFrame, shifts: tuple[int, ...] = (0, 1)
) -> np.ndarray:
    """For each (campaign_id, date) row of `rows`: whether the campaign was flagged on date + s for any s in
    `shifts` (a ROAS training row of day d learns the ROAS of day d + 1, so (0, 1) drops both ends)."""
    if len(rows) == 0 or flagged is None or len(flagged) == 0:
        return np.zeros(len(rows), dtype=bool)
    keys = set(zip(flagged["campaign_id"].astype(str), pd.to_datetime(flagged["date"]).dt.normalize()))
    campaign = rows["campaign_id"].astype(str).to_numpy()
    day = pd.to_datetime(rows["date"]).dt.normalize()
    hit = np.zeros(len(rows), dtype=bool)
    for shift in shifts:
        shifted = (day + pd.Timedelta(days=shift)).to_numpy()
        hit |= np.fromiter(
            ((c, pd.Timestamp(d)) in keys for c, d in zip(campaign, shifted)), dtype=bool, count=len(rows)
        )
    return hit


def fit_detector(history: pd.DataFrame) -> AnomalyDetector:
    """A tenant's detector fitted on its history, or the default detector when the history is too short."""
    frame = _validate(history, "history")
    if len(frame) < MIN_FIT_CAMPAIGN_DAYS:
        return AnomalyDetector()
    return AnomalyDetector().fit(frame)


def match_key_outages(
    events: pd.DataFrame, since=None, alpha: float = 2e-4, window_days: int = 28
) -> pd.DataFrame:
    """CAPI match-key outages: per tenant, platform and day, the events carrying an email against the share
    of the previous `window_days` (binomial lower tail). `events` has tenant_id, platform, event_time, email."""
    frame = require_frame(events, "capi events", ("tenant_id", "platform", "event_time", "email"))
    if frame.empty:
        return pd.DataFrame(columns=["tenant_id", "platform", *FINDING_COLUMNS[1:]])
    day = date_column(frame["event_time"], "event_time").dt.normalize()
    daily = (
        pd.DataFrame(
            {
                "tenant_id": frame["tenant_id"].astype(str),
                "platform": frame["platform"].astype(str),
                "date": day,
                "n": 1,
                "with_email": frame["email"].notna().astype(int),
            }
        )
        .groupby(["tenant_id", "platform", "date"], as_index=False)[["n", "with_email"]]
        .sum()
    )
    rows = []
    for (tenant, platform), g in daily.groupby(["tenant_id", "platform"]):
        g = g.set_index("date").asfreq("D", fill_value=0)
        n, k = g["n"].to_numpy(), g["with_email"].to_numpy()
        usable = np.ones(len(g), dtype=bool)
        for t in range(len(g)):
            if (since is not None and g.index[t] < pd.Timestamp(since)) or n[t] == 0:
                continue
            lo = max(0, t - window_days)
            nw, kw = (n[lo:t] * usable[lo:t]).sum(), (k[lo:t] * usable[lo:t]).sum()
            if nw < 20:
                continue
            share = (kw + 0.5) / (nw + 1.0)
            prob = float(stats.binom.cdf(k[t], n[t], share))
            if prob < alpha:
                usable[t] = False
                rows.append(
                    {
                        "tenant_id": tenant,
                        "platform": platform,
                        "date": g.index[t].date(),
                        "kind": "capi_match_key_outage",
                        "severity": "high",
                        "metric": "events_with_email",
                        "expected": round(share * n[t], 4),
                        "observed": float(k[t]),
                        "probability": prob,
                    }
                )
    return pd.DataFrame(rows, columns=["tenant_id", "platform", *FINDING_COLUMNS[1:]])
