"""Monitoring: how good yesterday's forecasts turned out, and whether the inputs drifted from what the models
learnt. Both are daily tables; their materialisation metadata names the tenants whose model should be retrained
(`retraining_sensor` acts on it)."""

from datetime import datetime, timedelta, timezone

import dagster as dg
import pandas as pd

from stratum_pipeline.assets.common import partition_days, preview, table_metadata, window_metadata
from stratum_pipeline.checks.drift import CALIBRATION, drift_check_results, drift_check_specs
from stratum_pipeline.ml import monitoring as M
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.partitions import daily_backfill_policy, daily_partitions
from stratum_pipeline.resources import ModelRegistry, Warehouse
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.tenancy import DEFAULT_MODEL_OWNER

ACCURACY_WINDOW_DAYS = 7  # late data: each run re-evaluates the last week of forecast days
DRIFT_WINDOW_DAYS = 7  # drift compares the last week of feature rows with the training profile
MIN_DRIFT_ROWS = 50  # fewer rows than this give PSI noise, not drift

MONITORING_ASSET = dict(
    partitions_def=daily_partitions,
    backfill_policy=daily_backfill_policy,
    group_name="monitoring",
    owners=["team:ml-engineering"],
)


def _window(asset: str, start_offset: int, end_offset: int = 0) -> dg.AssetDep:
    return dg.AssetDep(
        asset,
        partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=start_offset, end_offset=end_offset, allow_nonexistent_upstream_partitions=True
        ),
    )


def _md_table(frame: pd.DataFrame) -> dg.MarkdownMetadataValue:
    return dg.MetadataValue.md(frame.round(4).to_markdown(index=False) if len(frame) else "_no rows_")


@dg.asset(
    deps=[
        _window("daily_roas_forecasts", -ACCURACY_WINDOW_DAYS, -1),
        _window("campaign_features", -(ACCURACY_WINDOW_DAYS - 1)),
    ],
    kinds={"pandas", "mlflow", "sql"},
    metadata=table_metadata(wh.forecast_accuracy),
    **MONITORING_ASSET,
)
def forecast_accuracy(context: dg.AssetExecutionContext, warehouse: Warehouse, registry: ModelRegistry):
    """How right the ROAS forecasts were: per tenant, model version and forecast day, the mean absolute error
    between the forecast and the ROAS that actually happened, and the share of actuals inside the 10-90% interval.
    A partition is the day whose actuals landed; each run re-evaluates the last 7 forecast days, so late or
    corrected data updates the figures. The same figures are logged to each model version's MLflow monitoring run.
    Metadata `degraded` lists the tenants whose recent MAE is past the limit, or whose last two days' bias is
    beyond the day-to-day bias noise of the model's holdout (the retraining sensor acts on it); `returning` lists
    those of them whose daily error is already falling back toward its pre-change level (self-correcting)."""
    first, last = partition_days(context)
    start = first - timedelta(days=ACCURACY_WINDOW_DAYS - 1)
    forecasts = warehouse.read_range(wh.daily_roas_forecasts, start, last, "forecast_date")
    actuals = M.actual_next_day_roas(warehouse.read_range(wh.campaign_features, start, last))
    frame = M.forecast_accuracy(forecasts, actuals).assign(
        evaluated_at=datetime.now(timezone.utc).replace(tzinfo=None)
    )
    rows = warehouse.replace_partitions(wh.forecast_accuracy, frame, start, last)

    history = warehouse.read_range(
        wh.forecast_accuracy, last - timedelta(days=ACCURACY_WINDOW_DAYS - 1), last
    )
    recent = M.recent_accuracy(history, ACCURACY_WINDOW_DAYS)
    degraded, returning, status = {}, {}, []
    for model in recent.itertuples(index=False):
        version_metrics = registry.version_metrics(model.model_name, model.model_version)
        holdout = version_metrics.get("mae")
        is_degraded, reason = M.accuracy_degraded(model.mae, holdout)
        days = history[
            (history.tenant_id == model.tenant_id)
            & (history.model_name == model.model_name)
            & (history.model_version == model.model_version)
        ]
        if not is_degraded:  # all campaigns off the same way: a level shift the day's noise hides in the MAE
            is_degraded, bias_reason = M.bias_degraded(days, version_metrics.get("daily_bias_sd"))
            reason = bias_reason if is_degraded else reason
        served_by_default = model.model_name == model_name("roas", DEFAULT_MODEL_OWNER)
        if is_degraded:
            # A tenant served by the default model is retrained too: it may have crossed the data minimum.
            degraded[model.tenant_id] = f"{model.model_name} v{model.model_version}: {reason}"
            is_returning, trend = M.error_returning(days)
            if is_returning:  # the sensor answers "self-correcting, no action"
                returning[model.tenant_id] = trend
        status.append(
            {
                "tenant": model.tenant_id,
                "model": f"{model.model_name} v{model.model_version}",
                "mae_7d": model.mae,
                "coverage_7d": model.coverage_80,
                "holdout_mae": holdout,
                "degraded": is_degraded,
                "default_model": served_by_default,
            }
        )
        daily = frame[
            (frame.tenant_id == model.tenant_id)
            & (frame.model_name == model.model_name)
            & (frame.model_version == model.model_version)
        ]
        registry.log_monitoring(
            model.model_name,
            model.model_version,
            model.tenant_id,
            [
                (
                    pd.Timestamp(r.date).date(),
                    {"live_mae": r.mae, "live_coverage_80": r.coverage_80, "live_bias": r.bias},
                )
                for r in daily.itertuples(index=False)
            ],
        )
    if degraded:
        context.log.warning(f"forecast accuracy degraded: {degraded}")
    per_tenant = {f"mae_7d/{r['tenant']}": dg.MetadataValue.float(float(r["mae_7d"])) for r in status}
    return dg.MaterializeResult(
        metadata={
            **window_metadata(start, last),
            "dagster/row_count": rows,
            "preview": preview(frame),
            "tenants": _md_table(pd.DataFrame(status)),
            "degraded": dg.MetadataValue.json(degraded),
            "returning": dg.MetadataValue.json(returning),
            **per_tenant,
            "dagster/column_lineage": dg.TableColumnLineage(
                {
                    "mae": [
                        dg.TableColumnDep(dg.AssetKey("daily_roas_forecasts"), "predicted_roas"),
                        dg.TableColumnDep(dg.AssetKey("campaign_features"), "roas"),
                    ],
                    "coverage_80": [
                        dg.TableColumnDep(dg.AssetKey("daily_roas_forecasts"), "confidence_lower"),
                        dg.TableColumnDep(dg.AssetKey("daily_roas_forecasts"), "confidence_upper"),
                        dg.TableColumnDep(dg.AssetKey("campaign_features"), "roas"),
                    ],
                }
            ),
        }
    )


def _tenant_drift(
    registry: ModelRegistry, model_type: str, tenant: str, rows: pd.DataFrame, day
) -> list[dict]:
    """PSI rows (and for conversion the calibration row) of one tenant against its own champion, if it has one."""
    name = model_name(model_type, tenant)
    champion = registry.champion_run(name)
    if champion is None or len(rows) < MIN_DRIFT_ROWS:
        return []
    version, run_id = champion
    profile = registry.run_dict(run_id, M.PROFILE_ARTIFACT)
    base = {"tenant_id": tenant, "date": day, "model_name": name, "model_version": version}
    out = []
    if profile is not None:
        out = [{**base, **r} for r in M.feature_drift(profile, rows).to_dict("records")]
    if model_type == "conversion":
        calibration = M.calibration(
            registry.load(name, version).predict_proba(rows), rows["converted"].astype(float)
        )
        out.append(
            {
                **base,
                "feature": CALIBRATION,
                "rate_gap": calibration["rate_gap"],
                "ece": calibration["ece"],
                "rows": calibration["rows"],
                "status": M.calibration_status(calibration["rate_gap"]),
            }
        )
    return out


@dg.asset(
    deps=[
        _window("campaign_features", -(DRIFT_WINDOW_DAYS - 1)),
        _window("session_features", -(DRIFT_WINDOW_DAYS - 1)),
        dg.AssetDep("roas_model", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("conversion_model", partition_mapping=dg.AllPartitionMapping()),
    ],
    check_specs=drift_check_specs(),
    kinds={"pandas", "mlflow", "sql"},
    metadata=table_metadata(wh.feature_drift),
    **MONITORING_ASSET,
)
def feature_drift(context: dg.AssetExecutionContext, warehouse: Warehouse, registry: ModelRegistry):
    """Have the model inputs moved away from what each tenant's champion was trained on? Per tenant and watched
    feature: the population stability index between the champion's training distribution (recorded at training
    time) and the last 7 days of feature rows, judged against the tenant's own noise (the PSI its training weeks
    reach by chance, kept in the profile): above 1.5x that level is a warn, above it on 3 of the last 5 evaluated
    days a fail (models trained before noise levels keep the fixed PSI 0.1 / 0.25). For conversion models also
    the predicted vs observed conversion rate and calibration error of those sessions. Computed for the last day
    of the materialised range. Metadata `ranked` lists each tenant's features above its noise, most drifted
    first; `retrain` names the tenants and models to retrain (a third or more of the model's features failing,
    or its calibration failing)."""
    _, last = partition_days(context)
    start = last - timedelta(days=DRIFT_WINDOW_DAYS - 1)
    inputs = {
        "roas": warehouse.read_range(wh.campaign_features, start, last),
        "conversion": warehouse.read_range(wh.session_features, start, last),
    }
    records = []
    for model_type, frame in inputs.items():
        for tenant, rows in frame.groupby("tenant_id"):
            records += _tenant_drift(registry, model_type, tenant, rows.reset_index(drop=True), last)
    columns = [c.name for c in wh.feature_drift.columns]
    drift = pd.DataFrame(records).reindex(columns=columns) if records else pd.DataFrame(columns=columns)
    # Persistence (k of n days above the tenant's noise) needs the days before: they are in the table already.
    earlier = warehouse.read_range(
        wh.feature_drift, last - timedelta(days=M.PERSIST_WINDOW - 1), last - timedelta(days=1)
    )
    is_feature = (drift["feature"] != CALIBRATION).to_numpy()
    drift = pd.concat(
        [M.persistent_drift(drift[is_feature], earlier), drift[~is_feature]], ignore_index=True
    ).reindex(columns=columns)
    rows = warehouse.replace_partitions(wh.feature_drift, drift, last, last)
    retrain = {}
    for (tenant, name), group in drift.groupby(["tenant_id", "model_name"]):
        features = group[group["feature"] != CALIBRATION]
        calibration_failed = (group.loc[group["feature"] == CALIBRATION, "status"] == "fail").any()
        if M.drift_needs_retraining(features["status"]) or calibration_failed:
            retrain.setdefault(tenant, []).append(
                "conversion" if name.startswith("stratum-conversion-") else "roas"
            )
    if retrain:
        context.log.warning(f"broad feature drift or calibration failure, retraining requested: {retrain}")
    return dg.MaterializeResult(
        metadata={
            **window_metadata(start, last),
            "dagster/row_count": rows,
            "preview": preview(drift),
            "not_ok": _md_table(
                drift[drift["status"] != "ok"][
                    ["tenant_id", "model_name", "feature", "psi", "rate_gap", "status"]
                ]
            ),
            "retrain": dg.MetadataValue.json(retrain),
            "ranked": dg.MetadataValue.json(M.top_drift(drift)),
        },
        check_results=drift_check_results(drift),
    )


monitoring_assets = [forecast_accuracy, feature_drift]
