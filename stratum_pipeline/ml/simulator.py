"""Monte Carlo budget scenarios: what a budget change does to revenue, ROAS and conversions.

Response model with diminishing returns: daily revenue at spend s is
    R(s) = R0 * (s / s0) ** elasticity
where s0 is today's daily spend and R0 = s0 * ROAS today. Uncertainty, drawn per iteration:
the campaign's ROAS level (lognormal, from its 10-90% forecast interval when given), the
elasticity (normal around the estimate, clipped to 0.1-1.0), and day-to-day noise. Every
scenario uses the same random draws (common random numbers), so differences between scenarios
are not drowned by noise. All scenarios x iterations x days are one numpy array operation.
"""

from __future__ import annotations

import numpy as np

from stratum_pipeline.ml.inputs import InputError, number, require_mapping, strict_number, whole_number

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
        raise SimulationInputError(f"scenarios must be a list of budget changes, got {type(scenarios).__name__}")
    if scenarios is not None and len(scenarios) > MAX_SCENARIOS:
        raise SimulationInputError(f"{len(scenarios):,} scenarios is more than the limit of {MAX_SCENARIOS}")
    out = []
    for item in scenarios if scenarios is not None else STANDARD_SCENARIOS:
        change = item.get("budget_change") if isinstance(item, dict) else item
        if isinstance(change, (dict, list)) or change is None:
            raise SimulationInputError(f"a scenario's budget change must be a number (e.g. 0.2 for +20%), got {item!r:.60}")
        change = _checked(strict_number, change, "budget_change", maximum=MAX_BUDGET_CHANGE)
        if change <= -1:
            raise SimulationInputError(f"a budget change must be above -100%, got {change:+.0%}")
        name = str(item.get("name")) if isinstance(item, dict) and item.get("name") else f"{change:+.0%}"
        out.append((name, change))
    return out


class BudgetSimulator:
    """Vectorised Monte Carlo simulator of budget scenarios."""

    def simulate(self, campaign: dict, scenarios=None, days: int = 30, iterations: int = 1000, seed=None) -> dict:
        """Baseline and scenarios over `days`: spend, revenue, roas, conversions, marginal_roas, 5-95% interval.

        campaign: daily_spend (or spend), roas (or predicted_roas), optionally confidence_lower /
        confidence_upper (the ROAS forecast's 10-90% interval), elasticity, avg_order_value.
        scenarios: budget changes as fractions (0.2 = +20%) or dicts {name, budget_change};
        default -20%, +20%, +50%.
        """
        require_mapping(campaign, "campaign")
        days = _checked(whole_number, days, "days", 1, 366)
        iterations = _checked(whole_number, iterations, "iterations", 10, 100_000)
        if seed is not None:
            seed = _checked(whole_number, seed, "seed", 0, 2**63 - 1)
        spend0 = _positive(campaign, "daily_spend", "spend")
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
                f"is more than the limit of {MAX_SIMULATION_CELLS:,}: use fewer iterations, days or scenarios")

        rng = np.random.default_rng(seed)
        multipliers = np.array([1.0] + [1.0 + c for _, c in changes])  # (k,)
        level = roas0 * np.exp(rng.normal(-roas_sd**2 / 2, roas_sd, iterations))  # (n,)
        beta = np.clip(rng.normal(elasticity, ELASTICITY_SD, iterations), 0.1, 1.0)  # (n,)
        noise = np.exp(rng.normal(-DAILY_NOISE_SD**2 / 2, DAILY_NOISE_SD, (iterations, days)))  # (n, d)
        # revenue[k, n] = sum over days of spend0 * level * multiplier ** beta * noise
        response = multipliers[:, None] ** beta[None, :]  # (k, n)
        revenue = spend0 * level[None, :] * response * noise.sum(axis=1)[None, :]  # (k, n)
        spend = spend0 * days * multipliers  # (k,)

        mean_revenue = revenue.mean(axis=1)
        low, high = np.percentile(revenue, [5, 95], axis=1)
        base_aov = aov if aov else None

        def conversions(k: int) -> float | None:  # None where the order value is unknown or too small to divide by
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
                out["marginal_roas"] = round(float((revenue[k] - revenue[0]).mean() / extra_spend), 4) \
                    if extra_spend and np.isfinite(1 / extra_spend) else None
            return out

        return {
            "baseline": summary(0),
            "scenarios": [{"name": name, "budget_change": change, **summary(i + 1)} for i, (name, change) in enumerate(changes)],
            "days": int(days),
            "iterations": int(iterations),
        }
