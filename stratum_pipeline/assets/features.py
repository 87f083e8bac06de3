"""Feature tables: the model inputs, one row per campaign, creative or session and day."""

from datetime import timedelta

import dagster as dg

from stratum_pipeline.assets.common import (
    feature_summary,
    partition_days,
    preview,
    rows_by_partition,
    table_metadata,
    window_metadata,
)
from stratum_pipeline.ml import features
from stratum_pipeline.partitions import daily_backfill_policy, daily_partitions
from stratum_pipeline.resources import Warehouse
from stratum_pipeline.storage import warehouse_schema as wh


def _window_dep(asset: str, days: int) -> dg.AssetDep:
    """Depend on the `days`-day window of an upstream daily asset ending on the same day."""
    return dg.AssetDep(
        asset,
        partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-(days - 1), allow_nonexistent_upstream_partitions=True
        ),
    )


def _result(context, frame, rows: int, first, last, names: list[str]) -> dg.MaterializeResult:
    """Row count (per partition too), a preview and the distribution of each feature in the materialised
    partition(s)."""
    rows_by_partition(context, frame, first, last)
    return dg.MaterializeResult(
        metadata={
            **window_metadata(first, last),
            "dagster/row_count": rows,
            "preview": preview(frame),
            "feature_distributions": feature_summary(frame, names),
        }
    )


def _of_run(context, warehouse: Warehouse, table, first, last):
    """The rows of [first, last] of `table`: as this run wrote them when it did so in this process (no re-read),
    else read from the warehouse."""
    rows = warehouse.written(context.run_id, table, first, last)
    return warehouse.read_range(table, first, last) if rows is None else rows


FEATURE_ASSET = dict(
    partitions_def=daily_partitions,
    backfill_policy=daily_backfill_policy,
    group_name="features",
    kinds={"pandas", "sql"},
    owners=["team:ml-engineering"],
)


@dg.asset(
    deps=[_window_dep("raw_creative_daily", features.CREATIVE_LOOKBACK_DAYS)],
    metadata=table_metadata(wh.creative_features),
    **FEATURE_ASSET,
)
def creative_features(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Fatigue features per creative and day: days active, cumulative frequency, current vs. launch CTR and
    engagement rate, and the resulting 0-100 fatigue score. Feeds the creative-fatigue scores the product
    shows and the ROAS model's creative-fatigue input."""
    first, last = partition_days(context)
    lookback = first - timedelta(days=features.CREATIVE_LOOKBACK_DAYS - 1)
    # only the creatives live in the run's days (the others' rows change no output row), only the columns used
    history = warehouse.read_histories(
        wh.raw_creative_daily, "creative_id", lookback, first, last, features.CREATIVE_INPUTS
    )
    frame = features.creative_features(history, first, last)
    rows = warehouse.replace_partitions(wh.creative_features, frame, first, last)
    warehouse.keep_written(context.run_id, wh.creative_features, first, last, frame)
    return _result(context, frame, rows, first, last, features.FATIGUE_FEATURES)


@dg.asset(
    deps=[_window_dep("raw_campaign_daily", features.CAMPAIGN_LOOKBACK_DAYS), dg.AssetDep(creative_features)],
    metadata=table_metadata(wh.campaign_features),
    **FEATURE_ASSET,
)
def campaign_features(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """The 11 ROAS features per campaign and day (7d/30d ROAS, spend velocity, CTR, conversion rate,
    impressions growth, platform, day of week and season of the next day, audience size, creative fatigue),
    with the day's spend and revenue. What the ROAS forecasts and budget scenarios are computed from."""
    first, last = partition_days(context)
    lookback = first - timedelta(days=features.CAMPAIGN_LOOKBACK_DAYS - 1)
    frame = features.campaign_features(
        warehouse.read_range(wh.raw_campaign_daily, lookback, last),
        _of_run(context, warehouse, wh.creative_features, first, last),
        first,
        last,
    )
    rows = warehouse.replace_partitions(wh.campaign_features, frame, first, last)
    warehouse.keep_written(context.run_id, wh.campaign_features, first, last, frame)
    return _result(context, frame, rows, first, last, features.ROAS_FEATURES)


@dg.asset(deps=["raw_sessions"], metadata=table_metadata(wh.session_features), **FEATURE_ASSET)
def session_features(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """The 9 conversion features per web session (duration, pages, cart value and items, hours since the
    last visit, previous purchases, device, traffic source, segment) and whether it converted: the training
    data of the conversion model and the input of live conversion predictions."""
    first, last = partition_days(context)
    frame = features.session_features(_of_run(context, warehouse, wh.raw_sessions, first, last))
    rows = warehouse.replace_partitions(wh.session_features, frame, first, last)
    warehouse.keep_written(context.run_id, wh.session_features, first, last, frame)
    return _result(context, frame, rows, first, last, features.CONVERSION_FEATURES)


feature_assets = [creative_features, campaign_features, session_features]
