"""The daily tables the product reads: ROAS forecasts, budget scenarios, creative fatigue, event-match quality,
and the live conversion predictions refreshed every 30 minutes."""

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import pandas as pd

from stratum_pipeline.assets.budget import budget_allocations, campaign_response_curves
from stratum_pipeline.assets.common import (
    alert,
    each_tenant,
    partition_days,
    preview,
    rows_by_partition,
    table_metadata,
    tenant_scope,
    window_metadata,
)
from stratum_pipeline.checks.freshness import product_freshness_policy
from stratum_pipeline.ml.budget_scenarios import tenant_scenarios
from stratum_pipeline.ml.emq import DataQualityAnalyzer
from stratum_pipeline.ml.fatigue import FatigueScorer, with_recent_frequency
from stratum_pipeline.ml.roas import forecast_table
from stratum_pipeline.modelops.registry import NoModelError
from stratum_pipeline.partitions import daily_backfill_policy, daily_partitions
from stratum_pipeline.resources import ModelRegistry, SourceDatabase, Warehouse
from stratum_pipeline.serving.live import live_predictions
from stratum_pipeline.settings import target_roas_for
from stratum_pipeline.storage import warehouse_schema as wh

# A daily product table is stale if not updated within 26 hours (checks/freshness.py).
PRODUCT_ASSET = dict(
    freshness_policy=product_freshness_policy(),
    partitions_def=daily_partitions,
    backfill_policy=daily_backfill_policy,
    group_name="products",
    owners=["team:ml-engineering"],
)


def _from_features(*columns: str) -> list[dg.TableColumnDep]:
    return [dg.TableColumnDep(dg.AssetKey("campaign_features"), c) for c in columns]


# Which feature columns each forecast column is computed from (the UI's column lineage).
_MODEL_INPUTS = (
    "roas_7d",
    "roas_30d",
    "roas_3d",
    "roas_14d",
    "roas",
    "spend_velocity",
    "ctr",
    "conversion_rate",
    "impressions_growth",
    "platform",
    "day_of_week",
    "season",
    "day_of_quarter",
    "audience_size",
    "creative_fatigue",
    "spend",
    "spend_vs_3d",
    "spend_vs_7d",
    "spend_vs_30d",
    "conversions_30d",
)
FORECAST_LINEAGE = dg.TableColumnLineage(
    {
        "tenant_id": _from_features("tenant_id"),
        "campaign_id": _from_features("campaign_id"),
        "date": _from_features("date"),
        "forecast_date": _from_features("date"),
        **{
            c: _from_features(*_MODEL_INPUTS)
            for c in ("predicted_roas", "confidence_lower", "confidence_upper")
        },
        "trend": _from_features("roas_7d", "roas_30d"),
    }
)


def _written(context, frame: pd.DataFrame, rows: int, first, last, **extra) -> dg.MaterializeResult:
    rows_by_partition(context, frame, first, last)
    return dg.MaterializeResult(
        metadata={
            **window_metadata(first, last),
            "dagster/row_count": rows,
            "preview": preview(frame),
            **extra,
        }
    )


@dg.asset(
    deps=[
        "campaign_features",
        dg.AssetDep("roas_model", partition_mapping=dg.AllPartitionMapping()),
        "roas_default_model",
        campaign_response_curves,
    ],
    kinds={"xgboost", "mlflow", "pandas"},
    metadata=table_metadata(wh.daily_roas_forecasts),
    **PRODUCT_ASSET,
)
def daily_roas_forecasts(context: dg.AssetExecutionContext, warehouse: Warehouse, registry: ModelRegistry):
    """Tomorrow's ROAS for every campaign active on the day, with its 10-90% interval, trend and budget
    recommendation, from the tenant's champion model (or the default model); each row records the model
    name and version that served it. The recommendation comes from the marginal return of the campaign's
    response curve (campaign_response_curves) against the tenant's target ROAS (STRATUM_TARGET_ROAS, default
    1.0); a campaign without a usable curve gets the average-ROAS rule, and its reason says so. What the
    product's forecast screen and budget advice show."""
    first, last = partition_days(context)
    tenant_only = tenant_scope(context)
    features = warehouse.read_range(wh.campaign_features, first, last, tenant_id=tenant_only)
    curves = warehouse.read_range(wh.campaign_response_curves, first, last, tenant_id=tenant_only).drop(
        columns=["tenant_id"]
    )
    served, unserved, fallbacks = {}, {}, {}

    def forecast(tenant, rows):
        try:
            model = registry.serving_model("roas", tenant)
        except NoModelError as exc:  # no model at all can serve it: its rows are skipped and named
            context.log.warning(str(exc))
            unserved[tenant] = len(rows)
            return None
        if model.fallback_reason:  # its own champion is broken: the default model serves it, and we say so
            fallbacks[tenant] = model.fallback_reason
            context.log.warning(
                f"tenant {tenant}: {model.fallback_reason}; forecast by {model.name} v{model.version}"
            )
            alert(
                context,
                warehouse,
                "model_fallback",
                tenant,
                f"tenant {tenant}: champion {model.failed_model} could not be loaded, its forecasts come from "
                f"{model.name} v{model.version} ({model.fallback_reason})",
            )
        served[tenant] = f"{model.name} v{model.version}"
        table = forecast_table(model.predictor, rows, _aligned_curves(rows, curves), target_roas_for(tenant))
        return pd.concat([rows[["tenant_id", "campaign_id", "date"]], table], axis=1).assign(
            forecast_date=pd.to_datetime(rows["date"]) + pd.Timedelta(days=1),
            model_name=model.name,
            model_version=model.version,
            served_by=model.served_by,
        )

    parts, failed = each_tenant(context, warehouse, features, forecast)
    frame = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=[c.name for c in wh.daily_roas_forecasts.columns])
    )
    rows = warehouse.replace_partitions(wh.daily_roas_forecasts, frame, first, last, tenant_id=tenant_only)
    return _written(
        context,
        frame,
        rows,
        first,
        last,
        served_by=dg.MetadataValue.json(served),
        unserved_campaign_days=dg.MetadataValue.json(unserved),
        model_fallbacks=dg.MetadataValue.json(fallbacks),
        failed_tenants=dg.MetadataValue.json(failed),
        **{"dagster/column_lineage": FORECAST_LINEAGE},
    )


def _aligned_curves(rows: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """The response curve of each forecast row's campaign-day (no columns when there are no curves)."""
    if curves.empty:
        return pd.DataFrame(index=rows.index)
    keys = rows[["campaign_id", "date"]].assign(date=pd.to_datetime(rows["date"]))
    curves = curves.assign(date=pd.to_datetime(curves["date"]))
    aligned = keys.merge(curves, on=["campaign_id", "date"], how="left")
    return aligned.set_index(rows.index).assign(as_of=lambda t: t["date"])


@dg.asset(
    deps=[daily_roas_forecasts, "campaign_features", "raw_campaign_daily", "campaign_response_curves"],
    kinds={"numpy", "pandas"},
    metadata=table_metadata(wh.budget_scenarios),
    **PRODUCT_ASSET,
)
def budget_scenarios(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """For every forecast campaign: 30 days at today's budget and at -20%, +20% and +50%, from the Monte Carlo
    simulator on the campaign's own response curve (campaign_response_curves; all of a
    tenant's campaigns of a day in one array operation): spend, revenue, ROAS, conversions, marginal ROAS and a
    5-95% revenue interval. A campaign without a usable curve gets the constant-elasticity fallback, labelled
    in `curve_source`. The product's budget planner reads it."""
    first, last = partition_days(context)
    tenant_only = tenant_scope(context)
    forecasts = warehouse.read_range(wh.daily_roas_forecasts, first, last, tenant_id=tenant_only)
    spend = warehouse.read_range(wh.campaign_features, first, last, tenant_id=tenant_only)[
        ["campaign_id", "date", "spend"]
    ]
    order_value = warehouse.read_range(wh.raw_campaign_daily, first, last, tenant_id=tenant_only)[
        ["campaign_id", "date", "avg_order_value"]
    ]
    curves = warehouse.read_range(wh.campaign_response_curves, first, last, tenant_id=tenant_only).drop(
        columns=["tenant_id", "base_spend"]
    )
    inputs = (
        forecasts.merge(spend, on=["campaign_id", "date"], how="left")
        .merge(order_value, on=["campaign_id", "date"], how="left")
        .merge(curves, on=["campaign_id", "date"], how="left")
    )
    columns = [c.name for c in wh.budget_scenarios.columns]
    parts, failed = each_tenant(
        context, warehouse, inputs, lambda tenant, rows: tenant_scenarios(tenant, rows, columns)
    )
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    rows = warehouse.replace_partitions(wh.budget_scenarios, frame, first, last, tenant_id=tenant_only)
    return _written(
        context,
        frame,
        rows,
        first,
        last,
        campaigns=int(frame["campaign_id"].nunique()) if rows else 0,
        curve_sources=dg.MetadataValue.json(
            frame.loc[frame["scenario"] == "baseline", "curve_source"].value_counts().to_dict()
            if rows
            else {}
        ),
        failed_tenants=dg.MetadataValue.json(failed),
    )


@dg.asset(
    deps=[
        dg.AssetDep(
            "creative_features",
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-7, allow_nonexistent_upstream_partitions=True
            ),
        )
    ],
    kinds={"pandas"},
    metadata=table_metadata(wh.creative_fatigue_scores),
    **PRODUCT_ASSET,
)
def creative_fatigue_scores(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """Fatigue of every creative live on the day: its CTR retention estimated from its decline against the
    exposure of its audience (ml.fatigue), as a 0-100 score and a level (low/medium/high/critical); days until
    its retention falls below 0.5 (at its delivery pace of the last 7 days); component scores, recommendation
    and suggested actions. The product's creative-health view and rotation alerts read it."""
    first, last = partition_days(context)
    tenant_only = tenant_scope(context)
    features = warehouse.read_range(
        wh.creative_features, first - timedelta(days=7), last, tenant_id=tenant_only
    )
    features = with_recent_frequency(features)
    features = features[pd.to_datetime(features["date"]) >= pd.Timestamp(first)].reset_index(drop=True)
    scorer = FatigueScorer()

    def score(tenant, rows):
        scored = pd.concat(
            [rows[["tenant_id", "campaign_id", "creative_id", "date"]], scorer.score_frame(rows)], axis=1
        )
        scored["suggested_actions"] = scored["suggested_actions"].map(json.dumps)
        return scored

    parts, failed = each_tenant(context, warehouse, features, score)
    frame = (
        pd.concat(parts) if parts else features[["tenant_id", "campaign_id", "creative_id", "date"]].iloc[:0]
    )
    rows = warehouse.replace_partitions(wh.creative_fatigue_scores, frame, first, last, tenant_id=tenant_only)
    levels = frame["fatigue_level"].value_counts().to_dict() if rows else {}
    return _written(
        context,
        frame,
        rows,
        first,
        last,
        levels=dg.MetadataValue.json(levels),
        failed_tenants=dg.MetadataValue.json(failed),
    )


@dg.asset(
    deps=["raw_capi_events"],
    kinds={"pandas"},
    metadata=table_metadata(wh.event_match_quality),
    **PRODUCT_ASSET,
)
def event_match_quality(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """Match quality of the conversion events each tenant sent to each ad platform per day: score distribution
    (0-10), events per quality level, the most-missing customer keys, an attribution-accuracy estimate and
    what to fix first. The product's conversion-API health page reads it."""
    first, last = partition_days(context)
    tenant_only = tenant_scope(context)
    events = warehouse.read_range(wh.raw_capi_events, first, last, tenant_id=tenant_only)
    analyzer = DataQualityAnalyzer()
    parts, failed = each_tenant(context, warehouse, events, analyzer.daily_summaries)
    frame = pd.DataFrame(
        [r for part in parts for r in part], columns=[c.name for c in wh.event_match_quality.columns]
    )
    rows = warehouse.replace_partitions(wh.event_match_quality, frame, first, last, tenant_id=tenant_only)
    return _written(context, frame, rows, first, last, failed_tenants=dg.MetadataValue.json(failed))


class LiveWindowConfig(dg.Config):
    window_minutes: int = 30
    as_of: str | None = None  # ISO timestamp (UTC); default now


@dg.asset(
    deps=["conversion_model", "conversion_default_model"],
    group_name="products",
    kinds={"xgboost", "pandas"},
    owners=["team:ml-engineering"],
    metadata=table_metadata(wh.live_conversion_predictions),
)
def live_conversion_predictions(
    context: dg.AssetExecutionContext,
    config: LiveWindowConfig,
    source: SourceDatabase,
    warehouse: Warehouse,
    registry: ModelRegistry,
):
    """Conversion probability and its top factors for every session that started in the last 30 minutes,
    from the tenant's champion conversion model (or the default). Replaced at every refresh (not partitioned
    by time: a partition per half hour would swamp the UI). The product's live-visitor view reads it."""
    as_of = datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(timezone.utc)
    as_of = as_of.astimezone(timezone.utc).replace(tzinfo=None) if as_of.tzinfo else as_of
    frame, unserved = live_predictions(
        source, registry, as_of - timedelta(minutes=config.window_minutes), as_of
    )
    for tenant, count in unserved.items():
        context.log.warning(f"no conversion model serves tenant {tenant}: {count} sessions not scored")
    rows = warehouse.replace_table(wh.live_conversion_predictions, frame)  # exactly the latest window
    return dg.MaterializeResult(
        metadata={
            "window_start": str(as_of - timedelta(minutes=config.window_minutes)),
            "window_end": str(as_of),
            "dagster/row_count": rows,
            "preview": preview(frame),
            "unserved_sessions": dg.MetadataValue.json(unserved),
        }
    )


product_assets = [
    daily_roas_forecasts,
    campaign_response_curves,
    budget_scenarios,
    budget_allocations,
    creative_fatigue_scores,
    event_match_quality,
]
live_assets = [live_conversion_predictions]
