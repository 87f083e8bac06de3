"""Budget allocator: re-split a tenant's daily budget across its campaigns on their response curves.

Two questions, one optimiser:
- a total daily budget (default: today's total): maximise the expected revenue of the coming days,
  each campaign within `bounds` x its current budget (default 0.5x-2x);
- a target marginal ROAS: how far each campaign can scale (within its bounds) before the next unit of
  spend returns less than the target.

The optimiser is Lagrangian on a fine grid of each campaign's budget range: for a price of spend lambda each
campaign takes the budget that maximises its expected revenue minus lambda x spend (exact for S-shaped as
well as concave curves, campaign by campaign), and lambda is bisected until the budgets add up to the total
(the last step interpolates between the two bracketing plans, so the total is met exactly). Expected revenue
is the mean over the curve's posterior draws; the uplift's 5-95% interval pairs the draws across campaigns.
With `caution` > 0 the optimiser maximises that mean minus caution x the sd over the draws of each move's
gain, so a campaign with an uncertain curve moves less (off by default; see CAUTION). A campaign without a
usable curve keeps its budget.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from stratum_pipeline.ml.inputs import InputError
from stratum_pipeline.ml.response_curves import hill
from stratum_pipeline.ml.simulator import _curve_inputs, _horizon_season, horizon_revenue, marginal_return

GRID_POINTS = 256
BISECTION_STEPS = 60
HORIZON_DAYS = 30
# sds of a move's gain over the curve's draws charged against its expected gain. Off by default: measured on
# the truth benchmark (benchmarks/budget_advice.py), 0.5 and 1 lowered the true uplift's share of the optimum in
# both regimes, the short-history tenant's most (its budgets are far from the optimum, and the moves the
# expectation proposes mostly point the right way)
CAUTION = 0.0


def _cautious(by_draw: np.ndarray, multiples: np.ndarray, caution: float) -> np.ndarray:
    """What the optimiser maximises per campaign and grid budget (C, G): the expected revenue over the curve's
    draws minus `caution` x the sd over the draws of the gain against today's budget. A campaign whose curve
    is uncertain (short history, pooled shape, spend that never moved) pays for moving away from today's
    budget in proportion to that uncertainty, so it moves less; a well-known curve moves almost as far as its
    expected revenue says. Without today's budget on the grid (bounds excluding 1x) there is no move to
    charge: the expectation alone."""
    expected = by_draw.mean(axis=2)
    if caution <= 0 or not (multiples == 1.0).any():
        return expected
    today = by_draw[:, [int(np.flatnonzero(multiples == 1.0)[0])], :]
    return expected - caution * (by_draw - today).std(axis=2)


class AllocationInputError(InputError):
    """Bad input to the allocator: a one-line message."""


def check_bounds(bounds) -> tuple[float, float]:
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise AllocationInputError(
            f"bounds must be two numbers (low, high) as multiples of today's budget, got {bounds!r:.60}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or high <= 0:
        raise AllocationInputError(f"bounds must be finite, low >= 0 and high > 0, got ({low}, {high})")
    if low > high:
        raise AllocationInputError(f"bounds are reversed: low {low:g} is above high {high:g}")
    if high > 100:
        raise AllocationInputError(f"bounds high {high:g} is above the limit of 100x today's budget")
    return low, high


def _check_total(total) -> float | None:
    if total is None:
        return None
    if isinstance(total, bool) or not isinstance(total, (int, float, np.integer, np.floating)):
        raise AllocationInputError(f"total_daily_budget must be a number, got {total!r:.40}")
    total = float(total)
    if not math.isfinite(total) or total <= 0:
        raise AllocationInputError(f"total_daily_budget must be a positive finite number, got {total}")
    return total


def _check_caution(caution) -> float:
    if caution is None:
        return CAUTION
    if isinstance(caution, bool) or not isinstance(caution, (int, float, np.integer, np.floating)):
        raise AllocationInputError(f"caution must be a number, got {caution!r:.40}")
    if not math.isfinite(float(caution)) or float(caution) < 0:
        raise AllocationInputError(f"caution must be a finite number >= 0, got {caution}")
    return float(caution)


def _check_target(target) -> float | None:
    if target is None:
        return None
    if (
        isinstance(target, bool)
        or not isinstance(target, (int, float, np.integer, np.floating))
        or not math.isfinite(float(target))
        or float(target) <= 0
    ):
        raise AllocationInputError(
            f"target_marginal_roas must be a positive finite number, got {target!r:.40}"
        )
    return float(target)


def _plan(revenue: np.ndarray, grid: np.ndarray, price: float) -> np.ndarray:
    """Each campaign's grid budget maximising revenue - price x spend: (C,) indices."""
    return np.argmax(revenue - price * grid, axis=1)


def optimise(revenue: np.ndarray, grid: np.ndarray, total: float | None, target: float | None) -> np.ndarray:
    """Budgets (C,) from revenue (C, G) on grid (C, G): at the total (exactly), or at marginal return >= target."""
    rows = np.arange(len(grid))
    if target is not None:
        return grid[rows, _plan(revenue, grid, target)]
    if total <= grid[:, 0].sum():
        return grid[:, 0].copy()
    if total >= grid[:, -1].sum():
        return grid[:, -1].copy()
    slope = np.diff(revenue, axis=1) / np.maximum(np.diff(grid, axis=1), 1e-12)
    low, high = 0.0, max(float(np.nanmax(np.abs(slope))) * 2, 1e-9)  # price: high -> least spend
    for _ in range(BISECTION_STEPS):
        mid = (low + high) / 2
        if grid[rows, _plan(revenue, grid, mid)].sum() > total:
            low = mid
        else:
            high = mid
    more, less = grid[rows, _plan(revenue, grid, low)], grid[rows, _plan(revenue, grid, high)]
    gap = more.sum() - less.sum()
    theta = 0.0 if gap <= 0 else (total - less.sum()) / gap
    return less + theta * (more - less)


def allocate(
    campaigns: pd.DataFrame,
    total_daily_budget=None,
    bounds=(0.5, 2.0),
    target_marginal_roas=None,
    horizon_days: int = HORIZON_DAYS,
    caution: float | None = None,
) -> dict:
    """campaigns: one row per campaign with campaign_id, current_budget (today's daily spend) and the columns of
    campaign_response_curves. Returns {"campaigns": DataFrame, "tenant": dict}; see the module docstring."""
    low, high = check_bounds(bounds)
    total = _check_total(total_daily_budget)
    target = _check_target(target_marginal_roas)
    caution = _check_caution(caution)
    if total is not None and target is not None:
        raise AllocationInputError("give either total_daily_budget or target_marginal_roas, not both")
    if (
        not isinstance(campaigns, pd.DataFrame)
        or "campaign_id" not in campaigns
        or "current_budget" not in campaigns
    ):
        raise AllocationInputError(
            "campaigns must be a DataFrame with campaign_id, current_budget and the curve columns"
        )
    campaigns = campaigns.reset_index(drop=True)
    current = pd.to_numeric(campaigns["current_budget"], errors="coerce").to_numpy(float)
    parsed = [_curve_inputs(r) for r in campaigns.to_dict("records")]
    usable = np.array([p is not None for p in parsed]) & np.isfinite(current) & (current > 0)
    current = np.where(np.isfinite(current) & (current > 0), current, 0.0)
    if not usable.any():
        raise AllocationInputError(
            "no campaign has a usable response curve and a budget today: nothing to allocate"
        )
    fixed = current[~usable].sum()
    if total is None and target is None:
        total = current.sum()
    movable_total = None if total is None else total - fixed
    idx = np.flatnonzero(usable)
    lo_b, hi_b = current[idx] * low, current[idx] * high
    if movable_total is not None and not (lo_b.sum() - 1e-6 <= movable_total <= hi_b.sum() + 1e-6):
        raise AllocationInputError(
            f"total_daily_budget {total:,.2f} cannot be split within the bounds ({low:g}x-{high:g}x): "
            f"it must be between {lo_b.sum() + fixed:,.2f} and {hi_b.sum() + fixed:,.2f}"
        )
    n_draws = min(len(parsed[i][0]) for i in idx)
    draws = np.stack([parsed[i][0][:n_draws] for i in idx])  # (C, D, 5)
    season = np.stack([_horizon_season(parsed[i][1], parsed[i][2], horizon_days) for i in idx])  # (C, H)
    multiples = np.linspace(low, high, GRID_POINTS)
    if low <= 1 <= high:
        multiples[np.argmin(np.abs(multiples - 1.0))] = 1.0  # today's budget is a grid point
    grid = current[idx, None] * multiples[None, :]
    # steady-state daily revenue at each grid budget, per draw, x the horizon's mean season: (C, G, D)
    by_draw = draws[:, None, :, 0] * hill(grid[:, :, None], draws[:, None, :, 1], draws[:, None, :, 2])
    by_draw = by_draw * season.mean(axis=1)[:, None, None]
    steady = by_draw.mean(axis=2)
    proposed = optimise(_cautious(by_draw, multiples, caution), grid, movable_total, target)
    if (
        target is None
        and low <= 1 <= high
        and abs(movable_total - current[idx].sum()) < 1e-6 * max(movable_total, 1)
    ):
        now = steady[:, np.argmin(np.abs(multiples - 1.0))].sum()
        new = sum(np.interp(p, g, r) for p, g, r in zip(proposed, grid, steady))
        if (
            new < now
        ):  # never propose a plan the curves expect to earn less than today's (interpolation guard)
            proposed = current[idx].copy()
    spend = np.stack([current[idx], proposed], axis=1)  # (C, 2)
    horizon = horizon_revenue(draws, spend, season)  # (C, 2, D)
    marginal = marginal_return(draws, spend, season.mean(axis=1)).mean(axis=2)
    uplift_draws = (horizon[:, 1, :] - horizon[:, 0, :]).sum(axis=0)  # (D,) paired across campaigns
    per_day = 1.0 / horizon_days
    table = pd.DataFrame(
        {
            "campaign_id": campaigns["campaign_id"].to_numpy(),
            "curve_source": [
                (campaigns["curve_source"].iloc[i] if "curve_source" in campaigns else None)
                if usable[i]
                else "fallback"
                for i in range(len(campaigns))
            ],
            "current_budget": np.round(current, 2),
            "proposed_budget": np.round(current, 2),
            "expected_revenue_current": np.nan,
            "expected_revenue_proposed": np.nan,
            "marginal_roas_current": np.nan,
            "marginal_roas_proposed": np.nan,
            "note": np.where(usable, "", "no usable response curve: keeps its budget"),
        }
    )
    table.loc[idx, "proposed_budget"] = np.round(proposed, 2)
    table.loc[idx, "expected_revenue_current"] = np.round(horizon[:, 0, :].mean(axis=1) * per_day, 2)
    table.loc[idx, "expected_revenue_proposed"] = np.round(horizon[:, 1, :].mean(axis=1) * per_day, 2)
    table.loc[idx, "marginal_roas_current"] = np.round(marginal[:, 0], 4)
    table.loc[idx, "marginal_roas_proposed"] = np.round(marginal[:, 1], 4)
    revenue_now = float(horizon[:, 0, :].mean(axis=1).sum() * per_day)
    uplift = float(uplift_draws.mean() * per_day)
    p5, p95 = (float(x) * per_day for x in np.percentile(uplift_draws, [5, 95]))
    tenant = {
        "total_current_budget": round(float(current.sum()), 2),
        "total_proposed_budget": round(float(table["proposed_budget"].sum()), 2),
        "expected_daily_revenue_current": round(revenue_now, 2),
        "expected_daily_revenue_proposed": round(revenue_now + uplift, 2),
        "expected_daily_uplift": round(uplift, 2),
        "uplift_interval": [round(p5, 2), round(p95, 2)],
        "uplift_percent": round(100 * uplift / revenue_now, 3) if revenue_now > 0 else None,
        "campaigns_kept": int((~usable).sum()),
        "horizon_days": int(horizon_days),
        "mode": "target_marginal_roas" if target is not None else "total_daily_budget",
        "caution": caution,
    }
    return {"campaigns": table, "tenant": tenant}
