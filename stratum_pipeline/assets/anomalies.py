"""Campaign anomalies: each day's outages, spend spikes, conversion-rate drops and CPC jumps, per campaign."""

from datetime import timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from stratum_pipeline.assets.common import (
    alert,
    each_tenant,
    model_code_version,
    partition_days,
    preview,
    rows_by_partition,
    table_metadata,
    tenant_scope,
    window_metadata,
)
from stratum_pipeline.assets.model_files import default_file_asset, tenant_file_asset
from stratum_pipeline.assets.models import TRAINING_QUEUE, gate_spec, run_tags, training_result
from stratum_pipeline.ml.anomalies import CRITICAL_KINDS, KINDS, MIN_FIT_CAMPAIGN_DAYS, AnomalyDetector
from stratum_pipeline.modelops.anomaly_training import MODEL_TYPE, train_anomaly_detector
from stratum_pipeline.modelops.registry import NoModelError
from stratum_pipeline.partitions import daily_backfill_policy, daily_partitions, tenant_partitions
from stratum_pipeline.resources import ModelRegistry, Warehouse
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.tenancy import DEFAULT_MODEL_OWNER, validate_tenant_id

HISTORY_DAYS = (
    90  # a tenant's detector is fitted on the 90 days before the partition (its window: the last 28)
)
COLUMNS = [c.name for c in wh.campaign_anomalies.columns]


def anomaly_alert_summary(tenant: str, row) -> str:
    """The one-line alert of a critical anomaly."""
    what = {
        "tracking_outage": "conversions collapsed while spend and clicks went on (tracking outage?)",
        "spend_spike": "spend spiked (budget or pacing error?)",
    }.get(row.kind, row.kind)
    return (
        f"tenant {tenant}, campaign {row.campaign_id}, {row.date}: {what}: {row.metric} {row.observed:,.2f} "
        f"against {row.expected:,.2f} expected (probability {row.probability:.1e})"
    )


def _history(warehouse: Warehouse, tenant: str | None):
    latest = warehouse.latest_date(wh.raw_campaign_daily)
    since = latest - timedelta(days=HISTORY_DAYS) if latest else None
    return warehouse.read_tenant(wh.raw_campaign_daily, tenant, since)


def _train(
    context, asset: str, tenant: str, warehouse: Warehouse, registry: ModelRegistry
) -> dg.MaterializeResult:
    registry.check_reachable()
    rows = _history(warehouse, None if tenant == DEFAULT_MODEL_OWNER else tenant)
    return training_result(
        asset, train_anomaly_detector(tenant, rows, registry, run_tags(context, tenant, MODEL_TYPE))
    )


MODEL_ASSET = dict(
    group_name="models",
    kinds={"scipy", "mlflow", "pandas"},
    owners=["team:ml-engineering"],
    code_version=model_code_version("anomaly_detector"),
    op_tags=TRAINING_QUEUE,
)
ALL_DAYS = dg.AssetDep("raw_campaign_daily", partition_mapping=dg.AllPartitionMapping())


@dg.asset(
    partitions_def=tenant_partitions,
    deps=[ALL_DAYS],
    check_specs=gate_spec("anomaly_detector_model"),
    **MODEL_ASSET,
)
def anomaly_detector_model(context: dg.AssetExecutionContext, warehouse: Warehouse, registry: ModelRegistry):
    """The tenant's campaign anomaly detector (weekday factors, overdispersion of conversions and clicks, the
    spend and budget noise of its accounts), fitted on its last 90 days and registered in MLflow as
    `stratum-anomaly_detector-<tenant>`; below 600 campaign-days the default detector serves the tenant."""
    return _train(
        context, "anomaly_detector_model", validate_tenant_id(context.partition_key), warehouse, registry
    )


@dg.asset(deps=[ALL_DAYS], check_specs=gate_spec("anomaly_detector_default_model"), **MODEL_ASSET)
def anomaly_detector_default_model(
    context: dg.AssetExecutionContext, warehouse: Warehouse, registry: ModelRegistry
):
    """The default campaign anomaly detector (stratum-anomaly_detector-default), fitted on every tenant's last 90
    days: it judges the campaigns of tenants with too little history for a detector of their own."""
    return _train(context, "anomaly_detector_default_model", DEFAULT_MODEL_OWNER, warehouse, registry)


def _detector(
    registry: ModelRegistry | None, tenant: str, history: pd.DataFrame
) -> tuple[AnomalyDetector, str]:
    """The tenant's champion detector (or the default's) from the registry; without one, fitted here on the
    tenant's history when it is long enough, else the built-in default."""
    if registry is not None:
        try:
            model = registry.serving_model(MODEL_TYPE, tenant)
            return model.predictor, f"{model.name} v{model.version}"
        except NoModelError:
            pass
    if len(history) >= MIN_FIT_CAMPAIGN_DAYS:
        return AnomalyDetector().fit(history), "fitted in this run"
    return AnomalyDetector(), "built-in default"


def _already_alerted(warehouse: Warehouse, summaries: list[str]) -> set[str]:
    if not summaries:
        return set()
    with warehouse.engine.connect() as conn:
        rows = conn.execute(
            sa.select(wh.alerts.c.summary).where(
                wh.alerts.c.kind == "campaign_anomaly", wh.alerts.c.summary.in_(summaries)
            )
        )
        return {r[0] for r in rows}


@dg.asset(
    deps=["raw_campaign_daily"],
    kinds={"scipy", "pandas"},
    metadata=table_metadata(wh.campaign_anomalies),
    partitions_def=daily_partitions,
    backfill_policy=daily_backfill_policy,
    group_name="products",
    owners=["team:ml-engineering"],
)
def campaign_anomalies(context: dg.AssetExecutionContext, warehouse: Warehouse, registry: ModelRegistry):
    """The campaign-days that broke from their campaign's own expected level: tracking outages (conversions ~0
    while clicks go on), spend spikes, conversion-rate drops and CPC jumps, each with its severity, metric,
    expected and observed value and probability (ml/anomalies.py). What the product's anomaly feed shows;
    critical ones (outages, spend spikes) go to the alerts table the same day, one line each."""
    first, last = partition_days(context)
    tenant_only = tenant_scope(context)
    raw = warehouse.read_range(
        wh.raw_campaign_daily, first - timedelta(days=HISTORY_DAYS), last, tenant_id=tenant_only
    )
    raw["date"] = pd.to_datetime(raw["date"])
    raw = raw.drop_duplicates(["campaign_id", "date"], keep="last")
    fitted: dict[str, str] = {}

    def detect(tenant, rows):
        if not (rows["date"] >= pd.Timestamp(first)).any():
            return None
        detector, fitted[tenant] = _detector(registry, tenant, rows[rows["date"] < pd.Timestamp(first)])
        found = detector.detect(rows, since=first)
        found = found[pd.to_datetime(found["date"]) <= pd.Timestamp(last)]
        return found.assign(tenant_id=tenant, detector="default" if detector.is_default else "tenant")

    parts, failed = each_tenant(context, warehouse, raw, detect) if len(raw) else ([], {})
    frame = pd.concat(parts, ignore_index=True)[COLUMNS] if parts else pd.DataFrame(columns=COLUMNS)
    rows = warehouse.replace_partitions(wh.campaign_anomalies, frame, first, last, tenant_id=tenant_only)
    rows_by_partition(context, frame, first, last)
    critical = frame[frame["kind"].isin(CRITICAL_KINDS)]
    summaries = [anomaly_alert_summary(r.tenant_id, r) for r in critical.itertuples()]
    sent = _already_alerted(warehouse, summaries)
    for row, summary in zip(critical.itertuples(), summaries):
        if summary not in sent:  # a re-materialised day does not alert twice
            alert(context, warehouse, "campaign_anomaly", row.tenant_id, summary)
    counts = {kind: int((frame["kind"] == kind).sum()) for kind in KINDS if kind != "capi_match_key_outage"}
    return dg.MaterializeResult(
        metadata={
            **window_metadata(first, last),
            "dagster/row_count": rows,
            "preview": preview(frame),
            "anomalies_by_kind": dg.MetadataValue.json(counts),
            **{f"anomalies_{kind}": dg.MetadataValue.int(n) for kind, n in counts.items()},
            "critical_alerts": dg.MetadataValue.int(len(summaries) - len(sent)),
            "detectors": dg.MetadataValue.json(fitted),
            "failed_tenants": dg.MetadataValue.json(failed),
        }
    )


anomaly_detector_file = tenant_file_asset(MODEL_TYPE)
anomaly_detector_default_file = default_file_asset(MODEL_TYPE)
anomaly_assets = [
    campaign_anomalies,
    anomaly_detector_model,
    anomaly_detector_default_model,
    anomaly_detector_file,
    anomaly_detector_default_file,
]
