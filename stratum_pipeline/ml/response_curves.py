"""Per-campaign response curves: how a campaign's daily revenue responds to its daily spend.

The model (the form Meridian, Robyn and PyMC-Marketing use), per campaign c and day t:

    expected revenue = vmax_c * hill(a_ct; K_c, h_c) * season_t
    a_ct  = geometric adstock of spend: a_t = (1 - r_c) * s_t + r_c * a_(t-1)   (carry-over, settles at s)
    hill(a; K, h) = a^h / (K^h + a^h)                                            (saturation; h > 1: S-shaped)
    season_t = exp(day-of-week + quarterly Fourier terms), one per tenant

Fit: a vectorised grid posterior, no sampler. For every campaign and every cell of a grid over the adstock
rate r, the Hill shape h and the half-saturation K (relative to the campaign's median spend), vmax has a
closed-form quasi-Poisson estimate and the cell a quasi-likelihood (revenue is overdispersed; the
dispersion is estimated per campaign). Partial pooling is empirical Bayes: the tenant's prior over the
grid is the average posterior of its campaigns (a few EM steps from `base_prior`, which centres the
half-saturation on the median spend and stays mixed in), so a campaign whose spend hardly varied,
or with a short history, borrows the shape of its siblings' curves instead of getting a wild one. Draws
(cell from the posterior, vmax lognormal around its estimate) carry the parameter uncertainty to the
simulator.

`curve_source`: `fitted` (at least MIN_FIT_DAYS days with spend: own likelihood x tenant prior),
`pooled` (fewer days: the tenant prior's shape with the campaign's own level), `fallback` (no spend or
revenue to anchor a level, or no fitted sibling to pool from: the simulator uses a constant elasticity).

Only rows dated on or before `as_of` are used: a curve used for a decision on day D knows only days <= D.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from scipy.signal import lfilter

ADSTOCK_GRID = np.array([0.0, 0.15, 0.3, 0.45, 0.6, 0.7])
SHAPE_GRID = np.array([0.5, 0.7, 0.9, 1.1, 1.35, 1.6, 1.9, 2.2, 2.6])
KAPPA_GRID = np.exp(
    np.linspace(np.log(0.2), np.log(8.0), 13)
)  # half-saturation / the campaign's median spend
MIN_FIT_DAYS = 21
WINDOW_DAYS = 365
HALF_LIFE_DAYS = 90.0  # recency weight of a day in the fit (accounts drift: creatives tire, markets move)
EM_STEPS = 4
PRIOR_FLOOR = 0.05  # share of the base prior mixed into the tenant prior (no cell is ruled out a priori)
N_DRAWS = 64
# base prior's log-sd of the half-saturation around the median spend (0.8 fitted the S-curve test's campaign worse;
# a prior on the Hill exponent, log-sd 0.5 around 1, measured no better: it stays uniform)
KAPPA_PRIOR_SD = 1.2
LIKELIHOOD_TEMPER = (
    0.5  # quasi-likelihood tempering: days are autocorrelated, so each counts for less than one
)
LEVEL_BLOCK, LEVEL_BLOCKS = 14, 8  # blocks of days over which the level's drift around the curve is measured
MIN_DRIFT_VAR = 0.03**2
SEASON_RIDGE = 20.0  # ridge on the seasonal log-coefficients (in orders): short histories stay near flat
CURVE_SOURCES = ("fitted", "pooled", "fallback")
CURVE_INPUTS = (
    "campaign_id",
    "date",
    "spend",
    "revenue",
    "conversions",
)  # the columns of a campaign-day it reads
DRAW_FIELDS = ("vmax", "half_saturation", "hill_shape", "adstock_rate", "adstock_state")


class CurveInputError(ValueError):
    """Bad input to the fit: a one-line message."""


def hill(a, k, h):
    """a^h / (k^h + a^h), 0 at a <= 0; broadcasts."""
    a = np.asarray(a, dtype=float)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        out = 1.0 / (1.0 + np.exp(h * (np.log(k) - np.log(np.maximum(a, 1e-300)))))
    return np.where(a > 0, out, 0.0)


def adstock(spend: np.ndarray, rate: float) -> np.ndarray:
    """Geometric carry-over along the last axis, normalised so a constant spend s settles at s:
    a_t = (1 - rate) s_t + rate a_(t-1), a_(-1) = 0 (the same recurrence as a Python loop, run by lfilter)."""
    spend = np.asarray(spend, dtype=float)
    if spend.shape[-1] == 0:
        return np.empty_like(spend)
    return lfilter([1.0 - rate], [1.0, -rate], spend, axis=-1)


def season_design(dates) -> np.ndarray:
    """Day-of-week (6 contrasts) and first two quarterly harmonics: the tenant's seasonality basis (no intercept)."""
    d = pd.DatetimeIndex(pd.to_datetime(dates))
    dow = d.dayofweek.to_numpy()
    weekly = (dow[:, None] == np.arange(1, 7)[None, :]).astype(float)
    days = d.to_numpy().astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    quarter_start = (months - months.astype(int) % 3).astype("datetime64[D]")  # month 0 = January 1970
    doq = (days - quarter_start).astype(int) / 91.0
    angle = 2 * np.pi * doq
    quarterly = np.column_stack([np.sin(angle), np.cos(angle), np.sin(2 * angle), np.cos(2 * angle)])
    return np.column_stack([weekly, quarterly])


def season_factor(coefficients, dates) -> np.ndarray:
    """The tenant's seasonal multiplier on each date (1 where no coefficients were fitted)."""
    x = season_design(dates)
    beta = (
        np.zeros(x.shape[1])
        if coefficients is None or len(coefficients) == 0
        else np.asarray(coefficients, float)
    )
    return np.exp(x @ beta)


def _fit_season(y_t: np.ndarray, mu_t: np.ndarray, x: np.ndarray, unit: float) -> np.ndarray:
    """Poisson regression of the tenant's daily revenue on the basis with log(fitted) as offset (ridge, IRLS).

    `unit` converts revenue to about one count per order (conversions per unit of revenue), so the Poisson
    weights carry roughly the information the orders do."""
    keep = mu_t > 0
    if keep.sum() < 14 or not unit > 0:
        return np.zeros(x.shape[1])
    y, off, xx = y_t[keep] * unit, np.log(mu_t[keep] * unit), np.column_stack([np.ones(keep.sum()), x[keep]])
    beta = np.zeros(xx.shape[1])
    beta[0] = np.log(y.sum() / np.exp(off).sum())
    penalty = np.diag([0.0] + [SEASON_RIDGE] * x.shape[1])
    for _ in range(8):
        mu = np.exp(off + xx @ beta)
        grad = xx.T @ (y - mu) - penalty @ beta
        hess = (xx * mu[:, None]).T @ xx + penalty
        beta = beta + np.linalg.solve(hess, grad)
    return beta[1:]


@dataclass
class _Tenant:
    ids: np.ndarray  # campaign ids (C,)
    spend: np.ndarray  # (C, T), 0 where no row
    revenue: np.ndarray  # (C, T)
    conversions: np.ndarray  # (C, T)
    active: np.ndarray  # (C, T) bool: the campaign has a row that day
    dates: pd.DatetimeIndex  # (T,)


def _median_spend(tenant: _Tenant) -> np.ndarray:
    """Each campaign's median daily spend on its days with spend (the unit of its half-saturation grid)."""
    return np.array(
        [
            np.median(s[a & (s > 0)]) if (a & (s > 0)).any() else np.nan
            for s, a in zip(tenant.spend, tenant.active)
        ]
    )


def _loglik(tenant: _Tenant, ref: np.ndarray, season: np.ndarray, weights: np.ndarray, carried=None):
    """Quasi-log-likelihood (up to a constant) and vmax of every campaign x grid cell: arrays (C, R, H, K).

    `carried`: the adstocked spend per rate (R, C, T), `_carried(tenant)`, when the caller already has it.
    The Hill value of a cell is 1 / (1 + K^h a^-h), its two powers computed apart - (C, K) and (C, T) - so the
    (C, K, T) work per cell is a product, a division and one log; sums over days are matrix products."""
    c, t = tenant.spend.shape
    carried = _carried(tenant) if carried is None else carried
    w = np.where(tenant.active & (tenant.spend >= 0), weights[None, :], 0.0)  # (C, T)
    y = tenant.revenue * w
    shape = (c, len(ADSTOCK_GRID), len(SHAPE_GRID), len(KAPPA_GRID))
    ll = np.full(shape, -np.inf)
    vmax = np.zeros_like(ll)
    state = carried[:, :, -1].T.copy() if t else np.zeros((c, len(ADSTOCK_GRID)))  # last day, per rate
    log_k = np.log(np.maximum(np.nan_to_num(ref)[:, None] * KAPPA_GRID[None, :], 1e-300))  # (C, K)
    sy = y.sum(axis=1)[:, None]
    den = np.empty((c, len(KAPPA_GRID), t))
    for i in range(len(ADSTOCK_GRID)):
        positive = carried[i] > 0
        log_a = np.log(np.maximum(carried[i], 1e-300))  # (C, T)
        for j, h in enumerate(SHAPE_GRID):
            with np.errstate(over="ignore", under="ignore", invalid="ignore"):
                k_h = np.exp(np.clip(h * log_k, -700.0, 700.0))  # (C, K)
                a_h = np.where(positive, np.exp(np.clip(-h * log_a, -700.0, 700.0)), np.inf)  # (C, T)
                np.multiply(k_h[:, :, None], a_h[:, None, :], out=den)
                den += 1.0
                x = np.divide(
                    season[None, None, :], den, out=den
                )  # hill x season; 0 where nothing is carried
            sx = np.matmul(x, w[:, :, None])[:, :, 0]  # (C, K)
            v = np.where(sx > 0, sy / np.maximum(sx, 1e-300), 0.0)
            np.maximum(x, 1e-12, out=x)
            ylogx = np.matmul(np.log(x, out=x), y[:, :, None])[:, :, 0]
            # quasi-Poisson: sum w (y log mu - mu) with mu = v x, at the closed-form v (sum w mu = sum w y)
            ll[:, i, j, :] = ylogx + sy * np.log(np.maximum(v, 1e-300)) - sy
            vmax[:, i, j, :] = v
    return ll, vmax, state


def _carried(tenant: _Tenant) -> np.ndarray:
    """The adstocked spend of every campaign at every rate of the grid: (R, C, T)."""
    return np.stack([adstock(tenant.spend, rate) for rate in ADSTOCK_GRID])


def _dispersion(tenant: _Tenant, mu: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson dispersion of each campaign's daily revenue around its fitted mean (quasi-Poisson phi)."""
    w = np.where(tenant.active, weights[None, :], 0.0)
    ok = w > 0
    resid = np.where(ok & (mu > 0), (tenant.revenue - mu) ** 2 / np.maximum(mu, 1e-9), 0.0)
    n = ok.sum(axis=1)
    phi = (resid * w).sum(axis=1) / np.maximum(
        (w * ok).sum(axis=1) - 3 * (w.sum(axis=1) / np.maximum(n, 1)), 1e-9
    )
    fallback = np.nanmedian(np.where(n >= MIN_FIT_DAYS, phi, np.nan)) if (n >= MIN_FIT_DAYS).any() else np.nan
    phi = np.where(n >= MIN_FIT_DAYS, phi, fallback)
    return np.where(np.isfinite(phi) & (phi > 0), phi, np.nan)


def _tenant_frame(rows: pd.DataFrame, as_of: date, window_days: int) -> _Tenant | None:
    end = pd.Timestamp(as_of)
    rows = rows[(rows["date"] <= end) & (rows["date"] > end - pd.Timedelta(days=window_days))]
    if rows.empty:
        return None
    dates = pd.date_range(rows["date"].min(), end, freq="D")
    ids = np.array(sorted(rows["campaign_id"].unique()), dtype=object)
    ci = pd.Index(ids).get_indexer(rows["campaign_id"])
    ti = (rows["date"] - dates[0]).dt.days.to_numpy()
    shape = (len(ids), len(dates))
    out = {}
    for col in ("spend", "revenue", "conversions"):
        grid = np.zeros(shape)
        np.add.at(grid, (ci, ti), np.nan_to_num(rows[col].to_numpy(dtype=float)).clip(min=0))
        out[col] = grid
    active = np.zeros(shape, dtype=bool)
    active[ci, ti] = True
    return _Tenant(ids, out["spend"], out["revenue"], out["conversions"], active, dates)


def _normalise(log_p: np.ndarray) -> np.ndarray:
    flat = log_p.reshape(log_p.shape[0], -1)
    flat = flat - flat.max(axis=1, keepdims=True)
    p = np.exp(flat)
    return (p / p.sum(axis=1, keepdims=True)).reshape(log_p.shape)


def fit_tenant_curves(
    tenant_id: str,
    rows: pd.DataFrame,
    as_of: date,
    *,
    window_days: int = WINDOW_DAYS,
    n_draws: int = N_DRAWS,
    seed: int = 0,
    prior: np.ndarray | None = None,
    learn_prior: bool = True,
) -> pd.DataFrame:
    """One row per campaign of `rows` (campaign_id, date, spend, revenue, conversions) seen up to `as_of`.

    `prior`: the base prior over the grid (ADSTOCK x SHAPE x KAPPA, sums to 1; default `base_prior()`), the
    EM's start and the floor it keeps; with `learn_prior=False` it is the prior as given (no pooling)."""
    missing = set(CURVE_INPUTS) - set(rows.columns)
    if missing:
        raise CurveInputError(f"response curves need the columns {sorted(missing)}")
    rows = rows.assign(date=pd.to_datetime(rows["date"]))
    tenant = _tenant_frame(rows, as_of, window_days)
    if tenant is None:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    c, t = tenant.spend.shape
    age = (len(tenant.dates) - 1 - np.arange(t)).astype(float)
    weights = 0.5 ** (age / HALF_LIFE_DAYS)
    ref = _median_spend(tenant)
    days_used = (tenant.active & (tenant.spend > 0)).sum(axis=1)
    has_level = np.isfinite(ref) & ((tenant.revenue * tenant.active).sum(axis=1) > 0)
    fitted = has_level & (days_used >= MIN_FIT_DAYS)
    pooled = has_level & ~fitted & fitted.any()

    season_beta = np.zeros(season_design(tenant.dates[:1]).shape[1])
    season = np.ones(t)
    carried = _carried(tenant)  # (R, C, T): used by both likelihood passes and the fitted means
    for _ in range(2):  # curves without season -> tenant season from their residuals -> curves with season
        ll, vmax, state = _loglik(tenant, ref, season, weights, carried)
        best = ll.reshape(c, -1).argmax(axis=1)
        if not fitted.any():
            break
        mu = _fitted_mean(tenant, ref, vmax, best, season, carried)
        x = season_design(tenant.dates)
        unit = (tenant.conversions * tenant.active)[fitted].sum() / max(
            (tenant.revenue * tenant.active)[fitted].sum(), 1e-9
        )
        season_beta = _fit_season(
            (tenant.revenue * tenant.active)[fitted].sum(axis=0),
            (mu * tenant.active)[fitted].sum(axis=0) / season,
            x,
            unit,
        )
        season = np.exp(x @ season_beta)
    mu = _fitted_mean(tenant, ref, vmax, best, season, carried)
    phi = _dispersion(tenant, mu, weights)
    phi_eff = np.where(np.isfinite(phi), phi, np.nanmedian(phi) if np.isfinite(phi).any() else 1.0)
    log_lik = (
        LIKELIHOOD_TEMPER
        * (ll - ll.reshape(c, -1).max(axis=1)[:, None, None, None])
        / phi_eff[:, None, None, None]
    )

    base = base_prior() if prior is None else _checked_prior(prior, ll.shape[1:])
    prior = base
    for _ in range(
        EM_STEPS if fitted.any() and learn_prior else 0
    ):  # empirical Bayes: the prior is the campaigns' mean posterior
        post = _normalise(log_lik[fitted] + np.log(prior)[None])
        prior = (1 - PRIOR_FLOOR) * post.mean(axis=0) + PRIOR_FLOOR * base
    log_post = np.where(fitted[:, None, None, None], log_lik, 0.0) + np.log(prior)[None]
    post = _normalise(log_post)

    rng = np.random.default_rng(seed)
    flat = post.reshape(c, -1)
    cells = (
        (flat.cumsum(axis=1)[:, None, :] < rng.random((c, n_draws, 1)))
        .sum(axis=2)
        .clip(max=flat.shape[1] - 1)
    )
    ri, hi, ki = np.unravel_index(cells, ll.shape[1:])  # (C, D) each
    v_hat = vmax.reshape(c, -1)[np.arange(c)[:, None], cells]
    total = (tenant.revenue * tenant.active * weights[None, :]).sum(axis=1)
    log_sd = np.sqrt(phi_eff / np.maximum(total, 1e-9)).clip(max=1.0)
    shift, level_sd = _level(tenant, mu, phi_eff, fitted)
    draws = np.stack(
        [
            np.exp(shift)[:, None]
            * v_hat
            * np.exp(rng.normal(0, 1, (c, n_draws)) * log_sd[:, None] - log_sd[:, None] ** 2 / 2),
            np.nan_to_num(ref)[:, None] * KAPPA_GRID[ki],
            SHAPE_GRID[hi],
            ADSTOCK_GRID[ri],
            state[np.arange(c)[:, None], ri],
        ],
        axis=2,
    )  # (C, D, 5)

    conv_per_revenue = np.where(
        total > 0,
        (tenant.conversions * tenant.active * weights[None, :]).sum(axis=1) / np.maximum(total, 1e-9),
        np.nan,
    )
    base_spend = tenant.spend[:, -1]
    recent = tenant.active[:, -7:] & (tenant.spend[:, -7:] > 0)
    base_spend = np.where(
        tenant.active[:, -1] & (base_spend > 0),
        base_spend,
        np.where(
            recent.any(axis=1),
            (tenant.spend[:, -7:] * recent).sum(axis=1) / np.maximum(recent.sum(axis=1), 1),
            np.nan,
        ),
    )
    # local elasticity d log R / d log s at the base spend (steady state), per draw
    x_base = hill(base_spend[:, None], draws[:, :, 1], draws[:, :, 2])
    elasticity = draws[:, :, 2] * (1.0 - x_base)
    null_dev = _deviance(
        tenant,
        np.where(
            tenant.active,
            ((tenant.revenue * tenant.active).sum(axis=1) / np.maximum(tenant.active.sum(axis=1), 1))[
                :, None
            ],
            0,
        ),
    )
    model_dev = _deviance(tenant, mu)
    source = np.where(fitted, "fitted", np.where(pooled, "pooled", "fallback"))
    reason = np.where(
        fitted,
        "",
        np.where(
            pooled,
            f"fewer than {MIN_FIT_DAYS} days with spend: the tenant's pooled shape",
            np.where(
                ~has_level, "no spend or revenue to fit", "no fitted campaign in the tenant to pool from"
            ),
        ),
    )
    best_cell = np.unravel_index(flat.argmax(axis=1), ll.shape[1:])
    out = pd.DataFrame(
        {
            "tenant_id": tenant_id,
            "campaign_id": tenant.ids,
            "as_of": pd.Timestamp(as_of).date(),
            "curve_source": source,
            "fallback_reason": reason,
            "days_used": days_used,
            "base_spend": base_spend,
            "vmax": np.median(draws[:, :, 0], axis=1),
            "half_saturation": np.nan_to_num(ref) * KAPPA_GRID[best_cell[2]],
            "hill_shape": SHAPE_GRID[best_cell[1]],
            "adstock_rate": ADSTOCK_GRID[best_cell[0]],
            "conversions_per_revenue": conv_per_revenue,
            "dispersion": phi_eff,
            "level_sd": level_sd,
            "elasticity": np.median(elasticity, axis=1),
            "elasticity_p5": np.percentile(elasticity, 5, axis=1),
            "elasticity_p95": np.percentile(elasticity, 95, axis=1),
            "deviance_explained": np.where(null_dev > 0, 1 - model_dev / np.maximum(null_dev, 1e-12), np.nan),
            "spend_range": np.array([_spread(s[a & (s > 0)]) for s, a in zip(tenant.spend, tenant.active)]),
            "season": json.dumps([round(float(b), 5) for b in season_beta]),
            "draws": [encode_draws(d) for d in draws],
        }
    )
    fallback = out["curve_source"] == "fallback"
    out.loc[
        fallback,
        [
            "vmax",
            "half_saturation",
            "hill_shape",
            "adstock_rate",
            "elasticity",
            "elasticity_p5",
            "elasticity_p95",
        ],
    ] = np.nan
    out.loc[fallback, "draws"] = None
    return out


def base_prior() -> np.ndarray:
    """The prior over the grid before any campaign is seen: uniform over the adstock rate and the Hill
    exponent, the half-saturation lognormal around the campaign's median spend (log-sd KAPPA_PRIOR_SD), as
    Meridian's default prior puts it near the median spend: advertisers rarely run a campaign far past or far
    below where its returns start to bend. It matters where a campaign's own days say little (a short
    history, a budget that hardly moved); the tenant's prior learns away from it where they say more."""
    k = np.exp(-0.5 * (np.log(KAPPA_GRID) / KAPPA_PRIOR_SD) ** 2)
    p = np.ones((len(ADSTOCK_GRID), len(SHAPE_GRID), 1)) * k[None, None, :]
    return p / p.sum()


def _checked_prior(prior, shape) -> np.ndarray:
    p = np.asarray(prior, dtype=float)
    if p.shape != shape or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise CurveInputError(f"prior must be a non-negative {shape} grid with positive mass")
    return np.maximum(p / p.sum(), 1e-12)


def _level(
    tenant: _Tenant, mu: np.ndarray, phi: np.ndarray, fitted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where the campaign's level is now, and how far it may drift over the coming month (log scale).

    Accounts drift around their curve (creatives tire and are replaced, audiences move): the ratio of
    actual to fitted revenue over LEVEL_BLOCK-day blocks varies more than the daily noise explains. The
    excess variance is pooled over the tenant's fitted campaigns (mean: a few drift far); the last block's ratio is
    shrunk towards 1 by credibility (its noise variance against the drift's); the level's sd is the
    drift's plus what the last block leaves unknown."""
    c, t = tenant.spend.shape
    ratios, noise = [], []
    for b in range(min(LEVEL_BLOCKS, t // LEVEL_BLOCK)):
        cols = slice(t - (b + 1) * LEVEL_BLOCK, t - b * LEVEL_BLOCK)
        y = (tenant.revenue[:, cols] * tenant.active[:, cols]).sum(axis=1)
        m = (mu[:, cols] * tenant.active[:, cols]).sum(axis=1)
        ok = (y > 0) & (m > 0)
        ratios.append(np.where(ok, np.log(np.maximum(y, 1e-12) / np.maximum(m, 1e-12)), np.nan))
        noise.append(np.where(m > 0, phi / np.maximum(m, 1e-12), np.nan))
    if not ratios:
        return np.zeros(c), np.full(c, np.sqrt(MIN_DRIFT_VAR))
    r, v = np.array(ratios), np.array(noise)  # (B, C)
    excess = np.nanmean(r**2 - v, axis=0) if np.isfinite(r).any() else np.full(c, np.nan)
    pool = excess[fitted & np.isfinite(excess)]
    drift = max(float(np.mean(pool)) if len(pool) else MIN_DRIFT_VAR, MIN_DRIFT_VAR)
    last, last_var = np.nan_to_num(r[0]), np.where(np.isfinite(v[0]), v[0], np.inf)
    weight = drift / (drift + last_var)
    shift = np.where(fitted, weight * last, 0.0)
    known = np.isfinite(last_var)
    level_sd = np.sqrt(
        drift
        + np.where(
            known, drift * np.where(known, last_var, 0) / (drift + np.where(known, last_var, 0)), drift
        )
    )
    return shift, level_sd


def _spread(s: np.ndarray) -> float:
    return (
        float(np.percentile(s, 90) / np.percentile(s, 10))
        if len(s) >= 5 and np.percentile(s, 10) > 0
        else np.nan
    )


def _fitted_mean(tenant: _Tenant, ref, vmax, best, season, carried=None) -> np.ndarray:
    ri, hi, ki = np.unravel_index(best, vmax.shape[1:])
    c = len(best)
    out = np.zeros_like(tenant.spend)
    for i in np.unique(ri):
        rows = ri == i
        spent = adstock(tenant.spend[rows], ADSTOCK_GRID[i]) if carried is None else carried[i][rows]
        k = np.nan_to_num(ref[rows]) * KAPPA_GRID[ki[rows]]
        out[rows] = (
            vmax[np.arange(c)[rows], ri[rows], hi[rows], ki[rows]][:, None]
            * hill(spent, k[:, None], SHAPE_GRID[hi[rows]][:, None])
            * season[None, :]
        )
    return out


def _deviance(tenant: _Tenant, mu: np.ndarray) -> np.ndarray:
    y = tenant.revenue
    ok = tenant.active & (mu > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / np.maximum(mu, 1e-12)), 0.0) - (y - mu)
    return 2 * np.where(ok, term, 0.0).sum(axis=1)


def fit_response_curves(daily: pd.DataFrame, as_of: date, **kwargs) -> pd.DataFrame:
    """Curves for every tenant of `daily` (tenant_id, campaign_id, date, spend, revenue, conversions), each
    tenant pooled on its own, from rows dated up to `as_of` only. (The assets call `fit_tenant_curves` tenant by
    tenant, so that one tenant's failure stays its own.)"""
    if "tenant_id" not in daily.columns:
        raise CurveInputError("response curves need a tenant_id column")
    parts = [
        fit_tenant_curves(tenant, rows, as_of, **kwargs)
        for tenant, rows in daily.groupby("tenant_id", sort=True)
    ]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=CURVE_COLUMNS)


CURVE_COLUMNS = [
    "tenant_id",
    "campaign_id",
    "as_of",
    "curve_source",
    "fallback_reason",
    "days_used",
    "base_spend",
    "vmax",
    "half_saturation",
    "hill_shape",
    "adstock_rate",
    "conversions_per_revenue",
    "dispersion",
    "level_sd",
    "elasticity",
    "elasticity_p5",
    "elasticity_p95",
    "deviance_explained",
    "spend_range",
    "season",
    "draws",
]


DRAWS_PREFIX = "f4:"


def encode_draws(draws: np.ndarray) -> str:
    """(n_draws, 5) draws as text: "f4:" + base64 of little-endian float32 (1.7 kB for 64 draws; decodes in
    microseconds, where JSON took ~50 us a campaign - too slow for a partition of 100,000)."""
    return DRAWS_PREFIX + base64.b64encode(np.asarray(draws, dtype="<f4").tobytes()).decode("ascii")


def decode_draws(raw) -> np.ndarray | None:
    """Draws from their text (encode_draws, or a JSON list of [vmax, K, h, rate, state] rows) or an array."""
    if raw is None or (isinstance(raw, float) and np.isnan(raw)):
        return None
    try:
        if isinstance(raw, str) and raw.startswith(DRAWS_PREFIX):
            arr = np.frombuffer(base64.b64decode(raw[len(DRAWS_PREFIX) :]), dtype="<f4").astype(float)
            arr = arr.reshape(-1, len(DRAW_FIELDS)) if arr.size % len(DRAW_FIELDS) == 0 else arr
        else:
            arr = np.asarray(json.loads(raw) if isinstance(raw, str) else raw, dtype=float)
    except (ValueError, TypeError):
        return None
    return arr if arr.ndim == 2 and arr.shape[1] == len(DRAW_FIELDS) and len(arr) else None


def curve_draws(row) -> np.ndarray | None:
    """The (n_draws, 5) parameter draws of a curve row (DRAW_FIELDS order), or None for a fallback."""
    return decode_draws(row.get("draws") if isinstance(row, dict) else getattr(row, "draws", None))
