"""Per-tenant models (ROAS, conversion) and the global default models, registered in MLflow.

Each materialisation trains a challenger on the tenant's own rows, registers it, and runs the
promotion gate (the blocking `promotion_gate` check): only a challenger that meets the targets
and is not worse than the champion on the same holdout becomes `champion`. Tenants under the
data minimum are served by the default model, trained on all tenants.
"""

from datetime import timedelta

import dagster as dg

from stratum_pipeline.assets.common import alert, model_code_version, readable, table_metadata
from stratum_pipeline.modelops.leaderboard import leaderboard
from stratum_pipeline.modelops.training import DataMinimum, TrainingOutcome, train_conversion, train_roas
from stratum_pipeline.partitions import tenant_partitions
from stratum_pipeline.resources import ModelRegistry, Warehouse
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.tenancy import DEFAULT_MODEL_OWNER, validate_tenant_id


class TrainingConfig(dg.Config):
    """Training settings; the minimums are the seed's."""

    min_campaigns: int = 100
    min_campaign_days: int = 30
    min_sessions: int = 10_000
    holdout_days: int = 14
    training_window_days: int = 180
    # The day a change began (ISO date; "" = none), set by the retraining sensor's requests: the retrain weights the
    # rows from that day on and is judged on the later half of them (modelops.training `recent_from`).
    recent_from: str = ""
    # The default ROAS model trains on at most this many tenants: above it, a sample stratified by the tenants'
    # campaign-days (ml.sampling; 0 = every tenant). Its training time then stops growing with the tenants.
    default_sample_tenants: int = 30

    def minimum(self) -> DataMinimum:
        return DataMinimum(self.min_campaigns, self.min_campaign_days, self.min_sessions)


GATE_DESCRIPTION = (
    "Promotion gate: the challenger must meet the absolute targets and must not be worse than the current "
    "champion on the same recent holdout; only then does the 'champion' alias move. A refusal is a decision, not a "
    "failure: the check fails with WARN severity and the whole reason, the run succeeds, the champion stays and the "
    "refused version is tagged archived in MLflow. Tenants below the data minimum pass (the default model serves them)."
)
# The Celery executor (deploy/celery) sends the training steps to the workers of the `training` queue; other
# executors ignore the tag.
TRAINING_QUEUE = {"dagster-celery/queue": "training"}
MODEL_ASSET = dict(
    group_name="models",
    kinds={"xgboost", "mlflow", "pandas"},
    owners=["team:ml-engineering"],
    op_tags=TRAINING_QUEUE,
)


def _all_days(asset: str) -> dg.AssetDep:
    return dg.AssetDep(asset, partition_mapping=dg.AllPartitionMapping())


def _since(warehouse: Warehouse, table, config: TrainingConfig):
    latest = warehouse.latest_date(table)
    return latest - timedelta(days=config.training_window_days) if latest else None


def run_tags(context, tenant: str, model_type: str, partition: str | None = None) -> dict:
    """The MLflow run's tags: the Dagster run and the partition it materialises (a batch run names the tenant)."""
    if partition is None:
        partition = context.partition_key if context.has_partition_key else ""
    return {
        "dagster_run_id": context.run_id,
        "dagster_partition": partition,
        "tenant": tenant,
        "model_type": model_type,
    }


def training_result(asset: str, outcome: TrainingOutcome) -> dg.MaterializeResult:
    metadata = readable(dict(outcome.metadata))
    if "mlflow_run" in metadata:
        link = metadata["mlflow_run"]
        metadata["mlflow_run"] = (
            dg.MetadataValue.url(link) if link.startswith("http") else dg.MetadataValue.text(link)
        )
    if (
        "holdout_plot" in metadata
    ):  # the picture of the holdout, served by the MLflow UI, shown on the asset's page
        url = metadata["holdout_plot"]
        metadata["holdout_plot"] = dg.MetadataValue.md(
            f"![holdout of {metadata.get('model')} v{metadata.get('version')}]({url})"
        )
    if outcome.decision is None:
        check = dg.AssetCheckResult(
            check_name="promotion_gate",
            asset_key=asset,
            passed=True,
            metadata={"decision": f"not trained: {metadata.get('reason')}"},
        )
    else:
        check = dg.AssetCheckResult(
            check_name="promotion_gate",
            asset_key=asset,
            passed=outcome.decision.promote,
            severity=dg.AssetCheckSeverity.WARN,  # a refusal keeps the champion; it does not fail the run
            metadata={
                "decision": outcome.decision.summary,
                "version": metadata["version"],
                "champion_version": str(metadata["champion_version"]),
            },
        )
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


# What each model type trains on, and its training function.
TRAINING = {"roas": (wh.campaign_features, train_roas), "conversion": (wh.session_features, train_conversion)}


def train_and_gate(
    context,
    asset: str,
    model_type: str,
    tenant: str,
    config: TrainingConfig,
    warehouse: Warehouse,
    registry: ModelRegistry,
    partition: str | None = None,
) -> dg.MaterializeResult:
    """Train `model_type` for `tenant` (DEFAULT_MODEL_OWNER: on every tenant's rows), register it and run the gate.
    `partition`: the tenant partition materialised, when the run is not one partition's (a batch run)."""
    table, train = TRAINING[model_type]
    registry.check_reachable()  # fail in seconds, not after training, when MLflow is down
    owner = None if tenant == DEFAULT_MODEL_OWNER else tenant
    since = _since(warehouse, table, config)
    rows = warehouse.read_tenant(table, owner, since)
    # ROAS learns from normal days: the campaign-days flagged by campaign_anomalies are left out of training.
    extra = (
        {
            "anomalies": warehouse.read_tenant(wh.campaign_anomalies, owner, since),
            "max_default_tenants": config.default_sample_tenants,
        }
        if model_type == "roas"
        else {}
    )
    outcome = train(
        tenant,
        rows,
        registry,
        run_tags(context, tenant, model_type, partition),
        config.minimum(),
        config.holdout_days,
        recent_from=config.recent_from or None,
        **extra,
    )
    if outcome.decision is not None and not outcome.decision.promote:
        # a decision, said in one line (no stack trace): the log, the alerts table and the check carry the reason
        context.log.info(
            f"{asset} [{tenant}] v{outcome.metadata['version']} not promoted: {outcome.decision.summary}"
        )
        alert(
            context,
            warehouse,
            "gate_refusal",
            tenant,
            f"{asset} v{outcome.metadata['version']} not promoted, champion v{outcome.metadata['champion_version']} "
            f"stays: {'; '.join(outcome.decision.reasons)}",
        )
    return training_result(asset, outcome)


def gate_spec(asset: str) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec("promotion_gate", asset=asset, blocking=True, description=GATE_DESCRIPTION)]


@dg.asset(
    partitions_def=tenant_partitions,
    deps=[_all_days("campaign_features"), _all_days("campaign_anomalies")],
    check_specs=gate_spec("roas_model"),
    code_version=model_code_version("roas"),
    **MODEL_ASSET,
)
def roas_model(
    context: dg.AssetExecutionContext, config: TrainingConfig, warehouse: Warehouse, registry: ModelRegistry
):
    """The tenant's next-day ROAS model (XGBoost with calibrated 10-90% intervals) in MLflow as
    `stratum-roas-<tenant>`; its 'champion' version serves the tenant's ROAS forecasts and budget advice.
    Trained only on the tenant's own campaigns, without the days campaign_anomalies flagged; below 100 campaigns
    with 30+ days the default model serves."""
    return train_and_gate(
        context, "roas_model", "roas", validate_tenant_id(context.partition_key), config, warehouse, registry
    )


@dg.asset(
    partitions_def=tenant_partitions,
    deps=[_all_days("session_features")],
    check_specs=gate_spec("conversion_model"),
    code_version=model_code_version("conversion"),
    **MODEL_ASSET,
)
def conversion_model(
    context: dg.AssetExecutionContext, config: TrainingConfig, warehouse: Warehouse, registry: ModelRegistry
):
    """The tenant's session-conversion model (calibrated XGBoost with per-prediction factors) in MLflow as
    `stratum-conversion-<tenant>`; its 'champion' scores live sessions. Below 10,000 sessions the default serves."""
    return train_and_gate(
        context,
        "conversion_model",
        "conversion",
        validate_tenant_id(context.partition_key),
        config,
        warehouse,
        registry,
    )


@dg.asset(
    deps=[_all_days("campaign_features"), _all_days("campaign_anomalies")],
    check_specs=gate_spec("roas_default_model"),
    code_version=model_code_version("roas"),
    **MODEL_ASSET,
)
def roas_default_model(
    context: dg.AssetExecutionContext, config: TrainingConfig, warehouse: Warehouse, registry: ModelRegistry
):
    """The global ROAS model (stratum-roas-default), trained on every tenant's campaigns: it serves the tenants
    that have too little data for a model of their own."""
    return train_and_gate(
        context, "roas_default_model", "roas", DEFAULT_MODEL_OWNER, config, warehouse, registry
    )


@dg.asset(
    deps=[_all_days("session_features")],
    check_specs=gate_spec("conversion_default_model"),
    code_version=model_code_version("conversion"),
    **MODEL_ASSET,
)
def conversion_default_model(
    context: dg.AssetExecutionContext, config: TrainingConfig, warehouse: Warehouse, registry: ModelRegistry
):
    """The global conversion model (stratum-conversion-default), trained on every tenant's sessions: it serves
    the tenants with fewer than 10,000 sessions."""
    return train_and_gate(
        context, "conversion_default_model", "conversion", DEFAULT_MODEL_OWNER, config, warehouse, registry
    )


@dg.asset(
    deps=[
        _all_days("roas_model"),
        _all_days("conversion_model"),
        _all_days("anomaly_detector_model"),
        "roas_default_model",
        "conversion_default_model",
        "anomaly_detector_default_model",
    ],
    group_name="models",
    kinds={"mlflow", "pandas"},
    owners=["team:ml-engineering"],
    metadata=table_metadata(wh.model_leaderboard),
    # refreshed by the automation sensor after any training, once (a tenant never trained does not hold it back,
    # and nothing is requested before a first training: `stratum ui` on a fresh folder starts no run)
    automation_condition=dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.in_progress(),
)
def model_leaderboard(context: dg.AssetExecutionContext, warehouse: Warehouse, registry: ModelRegistry):
    """Every tenant's models at a glance: for each tenant (and the default) and model type - ROAS, conversion,
    anomaly detector - the champion that serves it (its own, or the default model's), when it was trained, its
    holdout metrics against the promotion gate's targets, and its MLflow run. What an engineer reads first to
    see which tenants run on the default model and which champions miss their targets."""
    tenants = context.instance.get_dynamic_partitions(tenant_partitions.name)
    frame = leaderboard(registry, tenants)
    rows = warehouse.replace_table(wh.model_leaderboard, frame)
    # a blank where nothing is known (no champion: no version, no training time), not pandas' NaT / None
    shown = frame.drop(columns=["targets", "updated_at", "mlflow_run"]).astype(object)
    shown = shown.where(shown.notna(), "")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "tenants": len(tenants),
            "served_by_default": int((frame["served_by"] == "default").sum()),
            "missing_targets": int((frame["meets_targets"] == False).sum()),  # noqa: E712 (None is unknown)
            "leaderboard": dg.MetadataValue.md(shown.to_markdown(index=False)),
        }
    )


tenant_model_assets = [roas_model, conversion_model]
# The tenant model assets by key, with the model type each trains (a batch run materialises these).
TENANT_MODEL_TYPES = {"roas_model": "roas", "conversion_model": "conversion"}
default_model_assets = [roas_default_model, conversion_default_model]
leaderboard_assets = [model_leaderboard]
