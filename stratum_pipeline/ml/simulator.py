"""Monte Carlo budget scenarios: what a budget change does to revenue, ROAS and conversions.

With the campaign's response curve (ml.response_curves: adstock + Hill, fitted per campaign with pooling):
revenue over the horizon at a daily spend s is the curve's, day by day, from today's carried-over spend
(adstock) and the tenant's seasonality of the coming days. Uncertainty, drawn per iteration: the curve's
parameters (one of its posterior draws) and the noise of the days (the horizon's summed daily noise, with
the variance the campaign's daily revenue showed around its curve). `marginal_roas` is the curve's marginal
return at the scenario's budget (d revenue / d spend, steady state).

Without a curve (`curve_source` "fallback", labelled in the answer), the constant-elasticity model:
    R(s) = R0 * (s / s0) ** elasticity
where s0 is today's daily spend and R0 = s0 * ROAS today, with the ROAS level (lognormal, from its 10-90%
forecast interval when given), the elasticity (normal around the estimate, clipped to 0.1-1.0) and
day-to-day noise drawn per iteration.

Every scenario uses the same random draws (common random numbers), so differences between scenarios are
not drowned by noise. All scenarios x iterations are one numpy array operation; `simulate_frame` does a whole
partition's campaigns in one.

The seed's request is accepted verbatim: {"campaign_id", "base_budget", "scenarios": [{"name",
"budget_change_percent"}], "time_horizon_days", "simulations"}; `base_budget` is the budget of the whole
horizon (the seed's sample answers a base_budget of 10,000 with a baseline spend of 10,000).
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd

from stratum_pipeline.ml.inputs import InputError, number, require_mapping, strict_number, whole_number
from stratum_pipeline.ml.response_curves import curve_draws, decode_draws, season_factor

STANDARD_SCENARIOS = (-0.2, 0.2, 0.5)
DEFAULT_ELASTICITY = 0.6  # revenue grows ~0.6% per 1% more spend around today's level
ELASTICITY_SD = 0.1
DAILY_NOISE_SD = 0.1
Z90 = 1.2816  # the 90% quantile of the standard normal


MAX_BUDGET_CHANGE = 100.0  # +10,000%
# Work limits (the arrays are scenarios x iterations and iterations x days floats): at most 100 scenarios and
# 20 million iterations x days x (scenarios + baseline), about 160 MB per array. The seed's defaults (1,000
# iterations x 30 days x 4) are 120,000.
MAX_SCENARIOS = 100
MAX_SIMULATION_CELLS = 20_000_000
MAX_ROAS_SD = 3.0  # a 10-90% ROAS interval wider than ~2,000x says nothing more


class SimulationInputError(InputError):
    pass


def _checked(check, *args, **kwargs):
    """Run an ml.inputs check, re-raising its InputError as a SimulationInputError (same message)."""
    try:
        return check(*args, **kwargs)
    except InputError as exc:
        raise SimulationInputError(str(exc)) from None


def _positive(campaign: dict, *keys) -> float:
    for key in keys:
        value = campaign.get(key)
        if value is not None:
            return _checked(strict_number, value, key, above=0.0)
    raise SimulationInputError(f"campaign needs one of: {', '.join(keys)}")


def _optional(campaign: dict, key: str) -> float:
    """An optional number: NaN when missing, infinite or not positive."""
    value = _checked(number, campaign.get(key), key)
    return value if value > 0 else np.nan


def _scenario_changes(scenarios) -> list[tuple[str, float]]:
    if scenarios is not None and not isinstance(scenarios, (list, tuple)):
        raise SimulationInputError(
            f"scenarios must be a list of budget changes, got {type(scenarios).__name__}"
        )
    if scenarios is not None and len(scenarios) > MAX_SCENARIOS:
        raise SimulationInputError(f"{len(scenarios):,} scenarios is more than the limit of {MAX_SCENARIOS}")
    out = []
    for item in scenarios if scenarios is not None else STANDARD_SCENARIOS:
        percent = item.get("budget_change_percent") if isinstance(item, dict) else None
        if percent is not None and item.get("budget_change") is None:  # the seed's form: percent, 20 = +20%
            if isinstance(percent, (dict, list)):
                raise SimulationInputError(
                    f"budget_change_percent must be a number (e.g. 20 for +20%), got {percent!r:.60}"
                )
            change = (
                _checked(strict_number, percent, "budget_change_percent", maximum=MAX_BUDGET_CHANGE * 100)
                / 100
            )
        else:
            change = item.get("budget_change") if isinstance(item, dict) else item
        if isinstance(change, (dict, list)) or change is None:
            raise SimulationInputError(
                f"a scenario's budget change must be a number (e.g. 0.2 for +20%), got {item!r:.60}"
            )
        change = _checked(strict_number, change, "budget_change", maximum=MAX_BUDGET_CHANGE)
        if change <= -1:
            raise SimulationInputError(f"a budget change must be above -100%, got {change:+.0%}")
        name = str(item.get("name")) if isinstance(item, dict) and item.get("name") else f"{change:+.0%}"
        out.append((name, change))
    return out


class BudgetSimulator:
    """Vectorised Monte Carlo simulator of budget scenarios."""

    def simulate(
        self, campaign: dict, scenarios=None, days: int = 30, iterations: int = 1000, seed=None
    ) -> dict:
        """Baseline and scenarios over `days`: spend, revenue, roas, conversions, marginal_roas, 5-95% interval.

        campaign: daily_spend (or spend), and `response_curve` (a row of campaign_response_curves) or, for the
        constant-elasticity fallback, roas (or predicted_roas) with optionally confidence_lower /
        confidence_upper (the ROAS forecast's 10-90% interval), elasticity; avg_order_value.
        Or the seed's request verbatim: campaign_id, base_budget (the horizon's budget), scenarios with
        budget_change_percent, time_horizon_days, simulations (+ response_curve or roas).
        scenarios: budget changes as fractions (0.2 = +20%), dicts {name, budget_change} or
        {name, budget_change_percent}; default -20%, +20%, +50%.
        """
        require_mapping(campaign, "campaign")
        if "base_budget" in campaign or "time_horizon_days" in campaign or "simulations" in campaign:
            campaign, scenarios, days, iterations = _seed_request(campaign, scenarios, days, iterations)
        days = _checked(whole_number, days, "days", 1, 366)
        iterations = _checked(whole_number, iterations, "iterations", 10, 100_000)
        if seed is not None:
            seed = _checked(whole_number, seed, "seed", 0, 2**63 - 1)
        spend0 = _positive(campaign, "daily_spend", "spend")
        curve = campaign.get("response_curve")
        if curve is not None:
            result = _simulate_curve(
                campaign, curve, spend0, _scenario_changes(scenarios), days, iterations, seed
            )
            if result is not None:
                return result
        if all(campaign.get(k) is None for k in ("roas", "predicted_roas", "roas_7d")):
            raise SimulationInputError(
                "campaign needs a usable response_curve (campaign_response_curves) or its roas"
            )
        roas0 = _positive(campaign, "roas", "predicted_roas", "roas_7d")
        aov = _optional(campaign, "avg_order_value")
        aov = None if np.isnan(aov) else aov
        elasticity = _checked(number, campaign.get("elasticity"), "elasticity")
        elasticity = DEFAULT_ELASTICITY if np.isnan(elasticity) or elasticity == 0 else elasticity
        lower, upper = _optional(campaign, "confidence_lower"), _optional(campaign, "confidence_upper")
        if upper > lower:  # both known (NaN compares False)
            roas_sd = min(np.log(upper / lower) / (2 * Z90), MAX_ROAS_SD)
        else:
            roas_sd = 0.15
        changes = _scenario_changes(scenarios)
        cells = iterations * days * (len(changes) + 1)
        if cells > MAX_SIMULATION_CELLS:
            raise SimulationInputError(
                f"iterations x days x (scenarios + baseline) = {iterations:,} x {days} x {len(changes) + 1} = {cells:,} "
                f"is more than the limit of {MAX_SIMULATION_CELLS:,}: use fewer iterations, days or scenarios"
            )

        rng = np.random.default_rng(seed)
        multipliers = np.array([1.0] + [1.0 + c for _, c in changes])  # (k,)
        level = roas0 * np.exp(rng.normal(-(roas_sd**2) / 2, roas_sd, iterations))  # (n,)
        beta = np.clip(rng.normal(elasticity, ELASTICITY_SD, iterations), 0.1, 1.0)  # (n,)
        noise = np.exp(rng.normal(-(DAILY_NOISE_SD**2) / 2, DAILY_NOISE_SD, (iterations, days)))  # (n, d)
        # revenue[k, n] = sum over days of spend0 * level * multiplier ** beta * noise
        response = multipliers[:, None] ** beta[None, :]  # (k, n)
        revenue = spend0 * level[None, :] * response * noise.sum(axis=1)[None, :]  # (k, n)
        spend = spend0 * days * multipliers  # (k,)

        mean_revenue = revenue.mean(axis=1)
        low, high = np.percentile(revenue, [5, 95], axis=1)
        base_aov = aov if aov else None

        def conversions(
            k: int,
        ) -> float | None:  # None where the order value is unknown or too small to divide by
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                value = mean_revenue[k] / base_aov if base_aov else np.nan
            return round(float(value), 1) if np.isfinite(value) else None

        def summary(k: int) -> dict:
            out = {
                "spend": round(float(spend[k]), 2),
                "revenue": round(float(mean_revenue[k]), 2),
                "roas": round(float(mean_revenue[k] / spend[k]), 4) if spend[k] > 0 else None,
                "conversions": conversions(k),
                "confidence_interval": [round(float(low[k]), 2), round(float(high[k]), 2)],
            }
            if k > 0:
                extra_spend = spend[k] - spend[0]
                out["marginal_roas"] = (
                    round(float((revenue[k] - revenue[0]).mean() / extra_spend), 4)
                    if extra_spend and np.isfinite(1 / extra_spend)
                    else None
                )
            return out

        return {
            "baseline": summary(0),
            "scenarios": [
                {
                    "name": name,
                    "budget_change": change,
                    "budget_change_percent": round(change * 100, 4),
                    **summary(i + 1),
                }
                for i, (name, change) in enumerate(changes)
            ],
            "days": int(days),
            "iterations": int(iterations),
            "curve_source": "fallback",
            "response": "constant elasticity (no usable response curve)",
        }


# --- the campaign's response curve ------------------------------------------------------------------------

EXACT_DAYS = (
    12  # days over which carried-over spend moves to the new level (0.7^12 < 1.5% of the gap is left)
)


def _seed_request(request: dict, scenarios, days, iterations):
    """The seed's request -> (campaign, scenarios, days, iterations); base_budget is the horizon's budget."""
    days = request.get("time_horizon_days", days)
    days = _checked(whole_number, days, "time_horizon_days", 1, 366)
    iterations = request.get("simulations", iterations)
    budget = _checked(strict_number, request.get("base_budget"), "base_budget", above=0.0)
    campaign = {
        k: v
        for k, v in request.items()
        if k not in ("base_budget", "scenarios", "time_horizon_days", "simulations")
    }
    campaign["daily_spend"] = budget / days
    return campaign, request.get("scenarios", scenarios), days, iterations


MC_BLOCK_VALUES = 1 << 19  # Monte Carlo values per block of campaigns (x 4 bytes: 2 MiB per array)


def _hill32(carried, log_k, h):
    """hill() in float32 from log K (the partition path's hot loop)."""
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(
            carried > 0, 1.0 / (1.0 + np.exp(h * (log_k - np.log(np.maximum(carried, 1e-30))))), 0.0
        )


def horizon_revenue(draws: np.ndarray, spend: np.ndarray, season: np.ndarray) -> np.ndarray:
    """Expected revenue over the horizon per campaign x scenario x draw.

    draws (N, D, 5) in response_curves.DRAW_FIELDS order; spend (N, K) daily spend of each scenario from
    tomorrow on; season (N, H) the seasonal multiplier of each horizon day. Carried-over spend moves from
    today's adstock state to the new spend geometrically: days 1-4 are evaluated one by one, days 5-12 at their
    mean carry-over (what is left of the gap is below 17% there), later days at the settled spend."""
    vmax, k, h, rate, state = (draws[:, None, :, i].astype(np.float32) for i in range(5))  # (N, 1, D)
    log_k = np.log(np.maximum(k, 1e-30))
    s = spend[:, :, None].astype(np.float32)  # (N, K, 1)
    season = season.astype(np.float32)
    horizon = season.shape[1]
    total = np.zeros(np.broadcast_shapes(s.shape, vmax.shape), dtype=np.float32)
    gap = state - s
    for t in range(1, min(horizon, 4) + 1):
        total += _hill32(s + gap * rate**t, log_k, h) * season[:, t - 1, None, None]
    if horizon > 4:
        last = min(horizon, EXACT_DAYS)
        mean_decay = sum(rate**t for t in range(5, last + 1)) / (last - 4)
        total += _hill32(s + gap * mean_decay, log_k, h) * season[:, 4:last].sum(axis=1)[:, None, None]
    if horizon > EXACT_DAYS:
        total += _hill32(s, log_k, h) * season[:, EXACT_DAYS:].sum(axis=1)[:, None, None]
    return (vmax * total).astype(float)


def marginal_return(draws: np.ndarray, spend: np.ndarray, season_mean: np.ndarray) -> np.ndarray:
    """d revenue / d spend at each scenario's daily spend, steady state, per draw: (N, K, D)."""
    vmax, k, h = (draws[:, None, :, i].astype(np.float32) for i in range(3))
    s = spend[:, :, None].astype(np.float32)
    x = _hill32(s, np.log(np.maximum(k, 1e-30)), h)
    return (vmax * h * x * (1 - x) / np.maximum(s, 1e-12)).astype(float) * season_mean[:, None, None]


def _curve_inputs(curve) -> tuple | None:
    """(draws, season coefficients, as_of, dispersion, conversions per revenue) of a curve row, or None."""
    curve = curve._asdict() if hasattr(curve, "_asdict") else dict(curve)
    if curve.get("curve_source") == "fallback":
        return None
    draws = curve_draws(curve)
    if draws is None or not np.isfinite(draws).all() or (draws[:, 1] <= 0).any():
        return None
    season = curve.get("season")
    season = json.loads(season) if isinstance(season, str) else season
    as_of = pd.Timestamp(curve.get("as_of")) if curve.get("as_of") is not None else None
    phi = number(curve.get("dispersion"), "dispersion")
    cpr = number(curve.get("conversions_per_revenue"), "conversions_per_revenue")
    level_sd = number(curve.get("level_sd"), "level_sd")
    return (
        draws,
        season,
        as_of,
        phi if phi > 0 else np.nan,
        cpr if cpr > 0 else np.nan,
        level_sd if level_sd >= 0 else np.nan,
    )


def _horizon_season(season, as_of, days: int) -> np.ndarray:
    if as_of is None or pd.isna(as_of):
        return np.ones(days)
    return _season_cached(tuple(season or ()), pd.Timestamp(as_of).normalize(), int(days))


@functools.lru_cache(maxsize=4096)
def _season_cached(season: tuple, as_of: pd.Timestamp, days: int) -> np.ndarray:
    out = season_factor(list(season), pd.date_range(as_of + pd.Timedelta(days=1), periods=days, freq="D"))
    out.setflags(write=False)
    return out


def _simulate_curve(
    campaign: dict, curve, spend0: float, changes, days: int, iterations: int, seed
) -> dict | None:
    inputs = _curve_inputs(curve)
    if inputs is None:
        return None
    draws, season, as_of, phi, cpr, level_sd = inputs
    aov = _optional(campaign, "avg_order_value")
    result = simulate_arrays(
        draws[None],
        np.array([[spend0]]),
        np.array([c for _, c in changes]),
        _horizon_season(season, as_of, days)[None],
        np.array([phi]),
        iterations,
        np.random.default_rng(seed),
        np.array([level_sd]),
    )
    conversions_per_revenue = cpr if np.isfinite(cpr) else (1 / aov if np.isfinite(aov) else np.nan)
    names = ["baseline"] + [n for n, _ in changes]
    summaries = []
    for i in range(len(names)):
        revenue = float(result["revenue"][0, i])
        spend = float(result["spend"][0, i])
        conversions = revenue * conversions_per_revenue
        out = {
            "spend": round(spend, 2),
            "revenue": round(revenue, 2),
            "roas": round(revenue / spend, 4) if spend > 0 else None,
            "conversions": round(float(conversions), 1) if np.isfinite(conversions) else None,
            "marginal_roas": round(float(result["marginal_roas"][0, i]), 4),
            "confidence_interval": [
                round(float(result["p5"][0, i]), 2),
                round(float(result["p95"][0, i]), 2),
            ],
        }
        summaries.append(out)
    source = str(
        (curve._asdict() if hasattr(curve, "_asdict") else dict(curve)).get("curve_source") or "fitted"
    )
    return {
        "baseline": summaries[0],
        "scenarios": [
            {
                "name": name,
                "budget_change": change,
                "budget_change_percent": round(change * 100, 4),
                **summaries[i + 1],
            }
            for i, (name, change) in enumerate(changes)
        ],
        "days": int(days),
        "iterations": int(iterations),
        "curve_source": source,
        "response": "the campaign's response curve (adstock + Hill)",
    }


def simulate_arrays(
    draws: np.ndarray,
    spend0: np.ndarray,
    changes: np.ndarray,
    season: np.ndarray,
    dispersion: np.ndarray,
    iterations: int,
    rng: np.random.Generator,
    level_sd: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Monte Carlo on curves for N campaigns at once: baseline + K scenarios, (N, K + 1) arrays of
    spend, mean revenue, 5% and 95% revenue quantiles and marginal ROAS over the horizon.

    draws (N, D, 5); spend0 (N, 1) today's daily spend; changes (K,) fractions; season (N, H);
    dispersion (N,) quasi-Poisson phi of daily revenue (NaN: 0); level_sd (N,) the log-sd of the campaign's
    level drift over the horizon (NaN or None: 0). Iteration n uses curve draw idx[n], level drift u[n] and
    noise z[n] in every scenario (common random numbers)."""
    n_campaigns, n_draws = draws.shape[:2]
    spend = spend0 * np.concatenate([[1.0], 1.0 + changes])[None, :]  # (N, K+1)
    mean_by_draw = horizon_revenue(draws, spend, season).astype(np.float32)  # (N, K+1, D)
    marginal = marginal_return(draws, spend, season.mean(axis=1)).mean(axis=2)  # (N, K+1)
    drift_sd = (
        np.zeros(n_campaigns) if level_sd is None else np.nan_to_num(np.asarray(level_sd, float), nan=0.0)
    )
    drift_sd = drift_sd[:, None].astype(np.float32)
    phi = np.nan_to_num(np.asarray(dispersion, float), nan=0.0)[:, None].astype(np.float32)
    p5 = np.empty(spend.shape)
    p95 = np.empty(spend.shape)
    mean = np.empty(spend.shape)
    lo, hi = int(round(0.05 * (iterations - 1))), int(round(0.95 * (iterations - 1)))
    # Campaigns in blocks whose (block, iterations) arrays stay in the CPU cache: a partition's 100,000 x 250
    # float32 arrays (100 MB each) made every elementwise step a trip to memory. A block draws its own random
    # numbers, shared by all its scenarios (common random numbers); one block is the whole call up to MC_BLOCK.
    block = max(1, MC_BLOCK_VALUES // max(iterations, 1))
    for start in range(0, n_campaigns, block):
        rows = slice(start, min(start + block, n_campaigns))
        n = rows.stop - rows.start
        idx = rng.integers(0, n_draws, (n, iterations))
        z = rng.standard_normal((n, iterations), dtype=np.float32)
        sd_drift = drift_sd[rows]
        drift = np.exp(rng.standard_normal((n, iterations), dtype=np.float32) * sd_drift - sd_drift**2 / 2)
        for k in range(spend.shape[1]):
            m = np.take_along_axis(mean_by_draw[rows, k, :], idx, axis=1)  # (n, iterations) float32
            sd = np.minimum(
                np.sqrt(phi[rows] / np.maximum(m, np.float32(1e-9))), np.float32(2.0)
            )  # CV of the noise
            revenue = m * drift * np.exp(z * sd - sd * sd * np.float32(0.5))
            mean[rows, k] = revenue.mean(axis=1, dtype=np.float64)
            part = np.partition(revenue, (lo, hi), axis=1)
            p5[rows, k], p95[rows, k] = part[:, lo], part[:, hi]
    return {
        "spend": spend * season.shape[1],
        "revenue": mean,
        "p5": p5,
        "p95": p95,
        "marginal_roas": marginal,
    }


def simulate_frame(
    rows: pd.DataFrame,
    changes=STANDARD_SCENARIOS,
    days: int = 30,
    iterations: int = 1000,
    seed: int = 0,
    max_draws: int | None = None,
) -> pd.DataFrame:
    """Baseline + scenarios for many campaigns in one array operation: one row per campaign x scenario.

    rows: campaign_id, spend (today's daily spend) and the columns of campaign_response_curves (as_of,
    curve_source, draws, season, dispersion, level_sd, conversions_per_revenue). Campaigns without
    a usable curve or without spend are left out (the caller decides their fallback). Columns: campaign_id,
    scenario, budget_change, days, spend, revenue, roas, conversions, marginal_roas, revenue_p5,
    revenue_p95, curve_source. `max_draws` uses only the first posterior draws of each curve (they are a random
    sample): the curve's cost is per draw, the noise's per iteration."""
    columns = [
        "campaign_id",
        "scenario",
        "budget_change",
        "days",
        "spend",
        "revenue",
        "roas",
        "conversions",
        "marginal_roas",
        "revenue_p5",
        "revenue_p95",
        "curve_source",
    ]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    spend = pd.to_numeric(rows["spend"], errors="coerce").to_numpy(float)
    source = (
        rows["curve_source"].to_numpy(object)
        if "curve_source" in rows
        else np.full(len(rows), "fitted", object)
    )
    decoded = [
        decode_draws(d) if s != "fallback" else None for d, s in zip(rows["draws"].to_numpy(object), source)
    ]
    n_draws = max((len(d) for d in decoded if d is not None), default=0)
    keep = (
        np.array(
            [
                d is not None and len(d) == n_draws and np.isfinite(d).all() and (d[:, 1] > 0).all()
                for d in decoded
            ]
        )
        & np.isfinite(spend)
        & (spend > 0)
    )
    if not keep.any():
        return pd.DataFrame(columns=columns)
    idx = np.flatnonzero(keep)
    draws = np.stack([decoded[i] for i in idx])[:, :max_draws]
    seasons, as_of = rows["season"].to_numpy(object)[idx], rows["as_of"].to_numpy(object)[idx]
    parsed = {}  # a tenant's campaigns share one season: parse each text once

    def parse(text):
        if text not in parsed:
            parsed[text] = json.loads(text) if isinstance(text, str) else text
        return parsed[text]

    season = np.stack(
        [_horizon_season(parse(s) if isinstance(s, str) else s, a, days) for s, a in zip(seasons, as_of)]
    )

    def column(name):
        if name not in rows:
            return np.full(len(idx), np.nan)
        values = pd.to_numeric(rows[name], errors="coerce").to_numpy(float)[idx]
        return np.where(np.isfinite(values) & (values >= 0), values, np.nan)

    cpr = column("conversions_per_revenue")
    changes = np.asarray(changes, dtype=float)
    out = simulate_arrays(
        draws,
        spend[idx, None],
        changes,
        season,
        column("dispersion"),
        iterations,
        np.random.default_rng(seed),
        column("level_sd"),
    )
    k = len(changes) + 1
    names = ["baseline"] + [f"{c:+.0%}" for c in changes]
    revenue = out["revenue"].reshape(-1)
    spend_k = out["spend"].reshape(-1)
    return pd.DataFrame(
        {
            "campaign_id": np.repeat(rows["campaign_id"].to_numpy()[idx], k),
            "scenario": np.tile(names, len(idx)),
            "budget_change": np.tile(np.concatenate([[0.0], changes]), len(idx)),
            "days": days,
            "spend": np.round(spend_k, 2),
            "revenue": np.round(revenue, 2),
            "roas": np.round(revenue / spend_k, 4),
            "conversions": np.round(revenue * np.repeat(cpr, k), 1),
            "marginal_roas": np.round(out["marginal_roas"].reshape(-1), 4),
            "revenue_p5": np.round(out["p5"].reshape(-1), 2),
            "revenue_p95": np.round(out["p95"].reshape(-1), 2),
            "curve_source": np.repeat(source[idx], k),
        }
    )[columns]


def horizon_forecast(
    curves: pd.DataFrame, horizons=(7, 30), iterations: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Expected revenue over each horizon at the campaign's base spend, with its 5-95% interval, and the ROAS over
    the longest: columns revenue_{h}d, revenue_{h}d_p5, revenue_{h}d_p95, roas_{H}d (NaN without a usable curve)."""
    out = pd.DataFrame(index=curves.index)
    rows = curves.assign(spend=curves["base_spend"])
    for h in horizons:
        sim = simulate_frame(rows.assign(campaign_id=np.arange(len(rows))), (), h, iterations, seed)
        sim = sim.set_index("campaign_id")
        position = pd.Series(np.arange(len(rows)), index=curves.index)
        for target, source in (
            (f"revenue_{h}d", "revenue"),
            (f"revenue_{h}d_p5", "revenue_p5"),
            (f"revenue_{h}d_p95", "revenue_p95"),
        ):
            out[target] = position.map(sim[source]).to_numpy(dtype=float)
        if h == max(horizons):
            out[f"roas_{h}d"] = position.map(sim["roas"]).to_numpy(dtype=float)
    return out
