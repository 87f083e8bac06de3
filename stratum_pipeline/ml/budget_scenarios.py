"""The `budget_scenarios` table for one tenant: every campaign-day at today's budget and the standard changes.

A campaign with a usable response curve is simulated on it (all of a day's campaigns in one array operation,
`simulator.simulate_frame`); one without gets the constant-elasticity fallback on its ROAS forecast
(`BudgetSimulator.simulate`), labelled `curve_source = fallback`. A paused campaign (no spend) has no scenario.
"""

from __future__ import annotations

import zlib

import pandas as pd

from stratum_pipeline.ml.simulator import STANDARD_SCENARIOS, BudgetSimulator, simulate_frame

SIMULATION_DAYS = 30
# The partition path: 250 iterations over the first 16 of each curve's 64 posterior draws keeps 100,000
# campaigns near 10 s here (benchmarks/budget_advice.py --speed); the fallback and the single `simulate`
# keep the seed's 1,000.
SIMULATION_ITERATIONS, SIMULATION_DRAWS, FALLBACK_ITERATIONS = 250, 16, 1000
COLUMNS = [
    "tenant_id",
    "campaign_id",
    "date",
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


def tenant_scenarios(tenant: str, rows: pd.DataFrame, columns: list[str] = COLUMNS) -> pd.DataFrame | None:
    """Scenario rows of one tenant's campaign-days. `rows`: the day's forecasts (predicted_roas and its
    interval) merged with spend, avg_order_value and the day's response-curve columns. Seeded per tenant-day
    (curves) and per campaign-day (fallback), so a one-tenant rerun reproduces the full run's figures."""
    simulator = BudgetSimulator()
    parts = []
    for day, day_rows in rows.groupby("date"):
        day_rows = day_rows[day_rows["spend"].fillna(0) > 0]
        on_curve = simulate_frame(
            day_rows.assign(as_of=day_rows["date"]),
            STANDARD_SCENARIOS,
            SIMULATION_DAYS,
            SIMULATION_ITERATIONS,
            seed=zlib.crc32(f"{tenant}/{day}".encode()),
            max_draws=SIMULATION_DRAWS,
        )
        parts.append(on_curve.assign(tenant_id=tenant, date=day))
        rest = day_rows[~day_rows["campaign_id"].isin(on_curve["campaign_id"])]
        parts.append(pd.DataFrame(fallback_rows(simulator, rest), columns=columns))
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True)[columns] if parts else None


def fallback_rows(simulator: BudgetSimulator, rows: pd.DataFrame) -> list[dict]:
    """Constant-elasticity scenarios on the ROAS forecast, for campaigns without a usable response curve."""
    out = []
    for row in rows.itertuples(index=False):
        result = simulator.simulate(
            {
                "daily_spend": row.spend,
                "roas": row.predicted_roas,
                "confidence_lower": row.confidence_lower,
                "confidence_upper": row.confidence_upper,
                "avg_order_value": row.avg_order_value if pd.notna(row.avg_order_value) else None,
            },
            STANDARD_SCENARIOS,
            SIMULATION_DAYS,
            FALLBACK_ITERATIONS,
            # the campaign-day's own seed: a one-tenant rerun reproduces the full run's figures exactly
            seed=zlib.crc32(f"{row.tenant_id}/{row.campaign_id}/{row.date}".encode()),
        )
        for name, change, part in [("baseline", 0.0, result["baseline"])] + [
            (s["name"], s["budget_change"], s) for s in result["scenarios"]
        ]:
            out.append(
                {
                    "tenant_id": row.tenant_id,
                    "campaign_id": row.campaign_id,
                    "date": row.date,
                    "scenario": name,
                    "budget_change": change,
                    "days": SIMULATION_DAYS,
                    "spend": part["spend"],
                    "revenue": part["revenue"],
                    "roas": part["roas"],
                    "conversions": part["conversions"],
                    "marginal_roas": part.get("marginal_roas"),
                    "revenue_p5": part["confidence_interval"][0],
                    "revenue_p95": part["confidence_interval"][1],
                    "curve_source": "fallback",
                }
            )
    return out
