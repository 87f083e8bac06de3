"""Budget advice: each campaign's learned response curve (with its 7- and 30-day revenue forecast) and each
tenant's budget re-split on those curves. budget_scenarios (products.py) reads the curves too."""

import zlib
from datetime import timedelta

import dagster as dg
import pandas as pd

from stratum_pipeline.assets.common import (
    each_tenant,
    partition_days,
    preview,
    rows_by_partition,
    table_metadata,
    tenant_scope,
    window_metadata,
)
from stratum_pipeline.checks.freshness import product_freshness_policy
from stratum_pipeline.ml.allocator import allocate
from stratum_pipeline.ml.response_curves import CURVE_INPUTS, WINDOW_DAYS, fit_tenant_curves
from stratum_pipeline.ml.simulator import horizon_forecast
from stratum_pipeline.partitions import daily_backfill_policy, daily_partitions
from stratum_pipeline.resources import Warehouse
from stratum_pipeline.settings import fit_workers
from stratum_pipeline.storage import warehouse_schema as wh

CURVE_ASSET = dict(
    # stale after 26 hours, like every daily product table (checks/freshness.py)
    freshness_policy=product_freshness_policy(),
    partitions_def=daily_partitions,
    backfill_policy=daily_backfill_policy,
    group_name="products",
    owners=["team:ml-engineering"],
)


@dg.asset(
    deps=[
        dg.AssetDep(
            "raw_campaign_daily",
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-(WINDOW_DAYS - 1), allow_nonexistent_upstream_partitions=True
            ),
        )
    ],
    kinds={"numpy", "pandas"},
    metadata=table_metadata(wh.campaign_response_curves),
    **CURVE_ASSET,
)
def campaign_response_curves(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """How each campaign's revenue responds to its daily spend, learned from its own history up to the day
    (geometric adstock + Hill saturation, pooled across the tenant's campaigns, with posterior draws),
    and its expected revenue over the next 7 and 30 days at today's spend with 5-95% intervals.
    `curve_source` says whether the curve is the campaign's own (fitted), borrowed from its tenant (pooled:
    too little history) or missing (fallback). The budget simulator and allocator read it."""
    first, last = partition_days(context)
    tenant_only = tenant_scope(context)
    daily = warehouse.read_range(
        wh.raw_campaign_daily,
        first - timedelta(days=WINDOW_DAYS - 1),
        last,
        tenant_id=tenant_only,
        columns=["tenant_id", *CURVE_INPUTS],  # a year of rows: only what the fit reads
    )
    daily = daily.assign(date=pd.to_datetime(daily["date"]))

    def fit(tenant, rows):
        parts = []
        for day in pd.date_range(first, last, freq="D"):
            if not (rows["date"] == day).any():
                continue  # the tenant has no campaign-day on the decision day: nothing to advise
            curves = fit_tenant_curves(
                tenant, rows, day.date(), seed=zlib.crc32(f"{tenant}/{day.date()}".encode())
            )
            forecast = horizon_forecast(curves, seed=zlib.crc32(f"{tenant}/{day.date()}/h".encode()))
            parts.append(pd.concat([curves.rename(columns={"as_of": "date"}), forecast], axis=1))
        return pd.concat(parts, ignore_index=True) if parts else None

    parts, failed = each_tenant(context, warehouse, daily, fit, workers=fit_workers())
    frame = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=[c.name for c in wh.campaign_response_curves.columns])
    )
    frame = frame[[c.name for c in wh.campaign_response_curves.columns]]
    rows = warehouse.replace_partitions(
        wh.campaign_response_curves, frame, first, last, tenant_id=tenant_only
    )
    rows_by_partition(context, frame, first, last)
    sources = frame["curve_source"].value_counts().to_dict() if rows else {}
    return dg.MaterializeResult(
        metadata={
            **window_metadata(first, last),
            "dagster/row_count": rows,
            "preview": preview(frame.drop(columns=["draws"])),
            "curve_sources": dg.MetadataValue.json(sources),
            "failed_tenants": dg.MetadataValue.json(failed),
            "median_elasticity": float(frame["elasticity"].median())
            if rows and frame["elasticity"].notna().any()
            else None,
        }
    )


@dg.asset(
    deps=[campaign_response_curves],
    kinds={"numpy", "pandas"},
    metadata=table_metadata(wh.budget_allocations),
    **CURVE_ASSET,
)
def budget_allocations(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """Where each tenant's daily budget would earn most: the same total re-split across its campaigns on their
    response curves, each campaign within 0.5x-2x of today's spend; per campaign the current and proposed
    budget, expected daily revenue and marginal ROAS at each, and the tenant's expected uplift with a 5-95%
    interval. A campaign without a usable curve keeps its budget. The product's budget planner reads it."""
    first, last = partition_days(context)
    tenant_only = tenant_scope(context)
    curves = warehouse.read_range(wh.campaign_response_curves, first, last, tenant_id=tenant_only)
    columns = [c.name for c in wh.budget_allocations.columns]

    def plan(tenant, rows):
        parts = []
        for day, day_rows in rows.groupby("date"):
            day_rows = day_rows[day_rows["base_spend"].fillna(0) > 0]  # campaigns that spent on the day
            if day_rows.empty or (day_rows["curve_source"] == "fallback").all():
                continue
            out = allocate(day_rows.assign(current_budget=day_rows["base_spend"]))
            summary = out["tenant"]
            parts.append(
                out["campaigns"].assign(
                    tenant_id=tenant,
                    date=day,
                    tenant_expected_uplift=summary["expected_daily_uplift"],
                    tenant_uplift_p5=summary["uplift_interval"][0],
                    tenant_uplift_p95=summary["uplift_interval"][1],
                )
            )
        return pd.concat(parts, ignore_index=True)[columns] if parts else None

    parts, failed = each_tenant(context, warehouse, curves, plan)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    rows = warehouse.replace_partitions(wh.budget_allocations, frame, first, last, tenant_id=tenant_only)
    rows_by_partition(context, frame, first, last)
    uplift = frame.drop_duplicates(["tenant_id", "date"]) if rows else frame
    return dg.MaterializeResult(
        metadata={
            **window_metadata(first, last),
            "dagster/row_count": rows,
            "preview": preview(frame),
            "tenant_days": len(uplift),
            "failed_tenants": dg.MetadataValue.json(failed),
            "expected_daily_uplift": float(uplift["tenant_expected_uplift"].sum()) if rows else 0.0,
        }
    )


budget_assets = [campaign_response_curves, budget_allocations]
