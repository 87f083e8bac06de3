"""Campaign anomalies: each day's outages, spend spikes, conversion-rate drops and CPC jumps, per campaign."""


from datetime import timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from stratum_pipeline import warehouse_schema as wh
from stratum_pipeline.assets.common import alert, each_tenant, partition_days, preview, table_metadata, tenant_scope, \
    window_metadata
from stratum_pipeline.ml.anomalies import CRITICAL_KINDS, KINDS, MIN_FIT_CAMPAIGN_DAYS, AnomalyDetector
from stratum_pipeline.partitions import daily_backfill_policy, daily_partitions
from stratum_pipeline.resources import Warehouse

HISTORY_DAYS = 90  # a tenant's detector is fitted on the 90 days before the partition (its window: the last 28)
COLUMNS = [c.name for c in wh.campaign_anomalies.columns]


def anomaly_alert_summary(tenant: str, row) -> str:
    """The one-line alert of a critical anomaly."""
    what = {"tracking_outage": "conversions collapsed while spend and clicks went on (tracking outage?)",
            "spend_spike": "spend spiked (budget or pacing error?)"}.get(row.kind, row.kind)
    return (f"tenant {tenant}, campaign {row.campaign_id}, {row.date}: {what}: {row.metric} {row.observed:,.2f} "
            f"against {row.expected:,.2f} expected (probability {row.probability:.1e})")


def _already_alerted(warehouse: Warehouse, summaries: list[str]) -> set[str]:
    if not summaries:
        return set()
    with warehouse.engine.connect() as conn:
        rows = conn.execute(sa.select(wh.alerts.c.summary).where(wh.alerts.c.kind == "campaign_anomaly",
                                                                 wh.alerts.c.summary.in_(summaries)))
        return {r[0] for r in rows}


@dg.asset(deps=["raw_campaign_daily"], kinds={"scipy", "pandas"}, metadata=table_metadata(wh.campaign_anomalies),
          partitions_def=daily_partitions, backfill_policy=daily_backfill_policy, group_name="products",
          owners=["team:ml-engineering"], code_version="1")
def campaign_anomalies(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """The campaign-days that broke from their campaign's own expected level: tracking outages (conversions ~0
    while clicks go on), spend spikes, conversion-rate drops and CPC jumps, each with its severity, metric,
    expected and observed value and probability (ml/anomalies.py). What the product's anomaly feed shows;
    critical ones (outages, spend spikes) go to the alerts table the same day, one line each."""
    first, last = partition_days(context)
    tenant_only = tenant_scope(context)
    raw = warehouse.read_range(wh.raw_campaign_daily, first - timedelta(days=HISTORY_DAYS), last, tenant_id=tenant_only)
    raw["date"] = pd.to_datetime(raw["date"])
    raw = raw.drop_duplicates(["campaign_id", "date"], keep="last")
    fitted: dict[str, str] = {}

    def detect(tenant, rows):
        history = rows[rows["date"] < pd.Timestamp(first)]
        detector = AnomalyDetector()
        if len(history) >= MIN_FIT_CAMPAIGN_DAYS:
            detector.fit(history)
        fitted[tenant] = "default" if detector.is_default else "tenant"
        if not (rows["date"] >= pd.Timestamp(first)).any():
            return None
        found = detector.detect(rows, since=first)
        found = found[pd.to_datetime(found["date"]) <= pd.Timestamp(last)]
        return found.assign(tenant_id=tenant, detector=fitted[tenant])

    parts, failed = each_tenant(context, warehouse, raw, detect) if len(raw) else ([], {})
    frame = pd.concat(parts, ignore_index=True)[COLUMNS] if parts else pd.DataFrame(columns=COLUMNS)
    rows = warehouse.replace_partitions(wh.campaign_anomalies, frame, first, last, tenant_id=tenant_only)
    critical = frame[frame["kind"].isin(CRITICAL_KINDS)]
    summaries = [anomaly_alert_summary(r.tenant_id, r) for r in critical.itertuples()]
    sent = _already_alerted(warehouse, summaries)
    for row, summary in zip(critical.itertuples(), summaries):
        if summary not in sent:  # a re-materialised day does not alert twice
            alert(context, warehouse, "campaign_anomaly", row.tenant_id, summary)
    counts = {kind: int((frame["kind"] == kind).sum()) for kind in KINDS if kind != "capi_match_key_outage"}
    return dg.MaterializeResult(metadata={
        **window_metadata(first, last), "dagster/row_count": rows, "preview": preview(frame),
        "anomalies_by_kind": dg.MetadataValue.json(counts),
        **{f"anomalies_{kind}": dg.MetadataValue.int(n) for kind, n in counts.items()},
        "critical_alerts": dg.MetadataValue.int(len(summaries) - len(sent)),
        "detectors": dg.MetadataValue.json(fitted), "failed_tenants": dg.MetadataValue.json(failed),
    })


anomaly_assets = [campaign_anomalies]
