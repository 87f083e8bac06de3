"""Sensors: tenant sync, retraining on degradation, alerts on failed runs (freshness: checks/freshness.py)."""

import json

import dagster as dg
import sqlalchemy as sa

from stratum_pipeline.alerts import Alert, notifiers, send
from stratum_pipeline.automation.jobs import (
    train_default_models_job,
    train_tenant_batch_job,
    train_tenant_models_job,
    training_batch_requests,
)
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.partitions import tenant_partitions
from stratum_pipeline.resources import SourceDatabase, Warehouse
from stratum_pipeline.storage import source_schema
from stratum_pipeline.storage.database import describe_url
from stratum_pipeline.tenancy import DEFAULT_MODEL_OWNER, InvalidTenantId, validate_tenant_id


@dg.sensor(
    job=train_tenant_batch_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING
)
def tenant_sync_sensor(context: dg.SensorEvaluationContext, source: SourceDatabase) -> dg.SensorResult:
    """Keep the `tenants` partitions in step with the source `tenants` table: new tenants become partitions and
    get a first training of their models, in batch runs (a first start with 100 tenants is a few runs, not 100).
    Ids outside the safe character set are skipped and logged.
    A source without a `tenants` table yet (e.g. `stratum ui` before `stratum demo`) is a skipped tick."""
    if not sa.inspect(source.engine).has_table(source_schema.tenants.name):
        return dg.SkipReason(
            f"the source database {describe_url(source.url)} has no tenants table yet "
            "(run `stratum demo`, or point STRATUM_SOURCE_URL at the backend's database)"
        )
    ids = source.read(sa.select(source_schema.tenants.c.id))["id"].tolist()
    valid, rejected = [], []
    for tenant_id in ids:
        try:
            valid.append(validate_tenant_id(tenant_id))
        except InvalidTenantId as exc:
            rejected.append(str(exc))
    for reason in rejected:
        context.log.warning(f"tenant skipped: {reason}")
    known = set(context.instance.get_dynamic_partitions(tenant_partitions.name))
    new = [t for t in valid if t not in known]
    return dg.SensorResult(
        run_requests=training_batch_requests(new, "first-training") if new else [],
        dynamic_partitions_requests=[tenant_partitions.build_add_request(new)] if new else [],
        skip_reason=None if new else f"{len(valid)} tenants, none new",
    )


# --- retraining on degradation -------------------------------------------------------------

# A ROAS retrain triggered by degradation trains on the recent weeks only: the old regime (before the shift that
# degraded the model) would otherwise dominate the training set and widen the intervals. Five weeks still give
# every running campaign the 30 days the ROAS data minimum asks for. (Conversion retrains keep the full window:
# five weeks of sessions would often fall below the 10,000-session minimum.)
DEGRADATION_RETRAIN_WINDOW_DAYS = 35

# An episode ends after this many monitoring results in a row that no longer name the model: a signal that comes
# and goes around its threshold (a noisy week) is one episode, not a retrain per return.
EPISODE_QUIET_RESULTS = 3

# Which monitoring asset's metadata names tenants to retrain, and how to read it.
RETRAIN_SIGNALS = {"forecast_accuracy": "degraded", "feature_drift": "retrain"}


def _models_to_retrain(asset: str, value) -> dict[str, set[str]]:
    """{tenant: {model asset}} from a monitoring materialisation's metadata value. A tenant whose degraded
    forecasts came from the default model (`stratum-roas-default vN: ...`) has no model of its own to retrain:
    its signal goes to the default model, under the default owner."""
    if asset == "forecast_accuracy":  # {tenant: "<model> v<version>: reason"}: the ROAS model
        default = f"{model_name('roas', DEFAULT_MODEL_OWNER)} v"
        return {
            (DEFAULT_MODEL_OWNER if str(reason).startswith(default) else tenant): {
                "roas_default_model" if str(reason).startswith(default) else "roas_model"
            }
            for tenant, reason in value.items()
        }
    return {
        tenant: {f"{kind}_model" for kind in kinds} for tenant, kinds in value.items()
    }  # {tenant: [roas, conversion]}


@dg.sensor(
    jobs=[train_tenant_models_job, train_default_models_job],
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def retraining_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Retrain exactly the affected tenant's model when `forecast_accuracy` reports its accuracy degraded or
    `feature_drift` reports a drift failure: one run of that tenant's partition of `roas_model` and/or
    `conversion_model` (ROAS trained on the last DEGRADATION_RETRAIN_WINDOW_DAYS days). The promotion gate still
    decides whether the new version serves.

    One request per episode: a signal that names a tenant's model day after day is one degradation episode, and
    only its first day requests a retrain; the episode ends after EPISODE_QUIET_RESULTS monitoring results in a
    row that no longer name it. A tenant served by the default model is not retrained (it has no model of its own): its degraded
    accuracy requests one retrain of the default ROAS model per episode. The cursor holds the last monitoring
    materialisation acted on and the open episodes, and run keys name the signal, so nothing is requested twice."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    episodes = cursor.setdefault("episodes", {})  # signal asset -> {"tenant/model": quiet results} still open
    known = set(context.instance.get_dynamic_partitions(tenant_partitions.name))
    wanted: dict[str, set[str]] = {}
    reasons: dict[str, list[str]] = {}
    for asset, key in RETRAIN_SIGNALS.items():
        records = context.instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
        if not records or records[0].storage_id <= cursor.get(asset, 0):
            continue
        event = records[0]
        cursor[asset] = event.storage_id
        entry = event.asset_materialization.metadata.get(key)
        named = _models_to_retrain(asset, entry.value if entry else {})
        episodes[asset], open_before = update_episodes(episodes.get(asset, {}), named)
        for tenant, models in named.items():
            if tenant != DEFAULT_MODEL_OWNER and tenant not in known:
                context.log.warning(
                    f"{asset} names tenant {tenant!r}, which is not a registered tenant: skipped"
                )
                continue
            new = {
                m for m in models if f"{tenant}/{m}" not in open_before
            }  # a continuing episode asks nothing
            if new:
                wanted.setdefault(tenant, set()).update(new)
                reasons.setdefault(tenant, []).append(f"{asset}@{event.storage_id}")
    requests = [
        _retrain_request(tenant, models, reasons[tenant]) for tenant, models in sorted(wanted.items())
    ]
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps(cursor),
        skip_reason=None if requests else "no new degradation episode since the last tick",
    )


def update_episodes(previous, named: dict[str, set[str]]) -> tuple[dict[str, int], set[str]]:
    """({"tenant/model": results since it was last named}, the keys open before this result). `previous` is
    the cursor's value (a list of keys in cursors written before EPISODE_QUIET_RESULTS)."""
    before = dict.fromkeys(previous, 0) if isinstance(previous, list) else dict(previous)
    now = {f"{tenant}/{model}" for tenant, models in named.items() for model in models}
    updated = {key: quiet + 1 for key, quiet in before.items() if key not in now}
    updated = {key: quiet for key, quiet in updated.items() if quiet < EPISODE_QUIET_RESULTS}
    updated.update(dict.fromkeys(now, 0))
    return dict(sorted(updated.items())), set(before)


def _retrain_request(tenant: str, models: set[str], reasons: list[str]) -> dg.RunRequest:
    key = f"retrain-{tenant}-{'-'.join(sorted(models))}-{'-'.join(reasons)}"
    tags = {"stratum/trigger": ", ".join(reasons)}
    if tenant == DEFAULT_MODEL_OWNER:
        return dg.RunRequest(
            job_name=train_default_models_job.name,
            asset_selection=[dg.AssetKey(m) for m in sorted(models)],
            run_key=key,
            tags=tags,
        )
    config = {"ops": {"roas_model": {"config": {"training_window_days": DEGRADATION_RETRAIN_WINDOW_DAYS}}}}
    return dg.RunRequest(
        job_name=train_tenant_models_job.name,
        partition_key=tenant,
        asset_selection=[dg.AssetKey(m) for m in sorted(models)],
        run_config=config if "roas_model" in models else None,
        run_key=key,
        tags=tags,
    )


# --- alerts on failed runs ---------------------------------------------------------------------


def _partition(run: dg.DagsterRun) -> str | None:
    tags = run.tags
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    start, end = (
        tags.get("dagster/asset_partition_range_start"),
        tags.get("dagster/asset_partition_range_end"),
    )
    return f"{start}..{end}" if start else None


def _root_cause(error) -> str:
    """The first line of the innermost cause (e.g. the database error, not Dagster's wrapper)."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip().splitlines()[0][:300]


def failure_summary(context: dg.RunFailureSensorContext) -> str:
    """The failed steps and their first error lines, or the run's failure message."""
    steps = [
        f"{e.step_key}: {_root_cause(e.event_specific_data.error)}"
        for e in context.get_step_failure_events()
        if e.event_specific_data and e.event_specific_data.error
    ]
    return "; ".join(steps) if steps else (context.failure_event.message or "run failed")


@dg.run_failure_sensor(name="run_failure_alerts", default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_alerts(context: dg.RunFailureSensorContext, warehouse: Warehouse) -> None:
    """Every failed run becomes an alert (run id, job, partition or tenant, error summary, time) sent to every
    configured notifier: today the warehouse `alerts` table; Slack or e-mail are one more `Notifier`."""
    run = context.dagster_run
    send(
        Alert(
            kind="run_failure",
            summary=failure_summary(context),
            run_id=run.run_id,
            job_name=run.job_name,
            partition_key=_partition(run),
        ),
        notifiers(warehouse),
    )


# The model-file assets and the model leaderboard are eager: this sensor is what evaluates their conditions. It
# starts RUNNING (Dagster's default automation sensor starts stopped), so a champion promoted by a scheduled or
# sensor-launched retrain reaches ML_MODELS_PATH and the leaderboard on the daemon's next tick without anyone
# switching it on.
model_automation = dg.AutomationConditionSensorDefinition(
    "model_automation",
    target=dg.AssetSelection.groups("model_files") | dg.AssetSelection.assets("model_leaderboard"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Republishes a model file after its model asset materialised (the file assets' eager condition; "
    "a run whose champion is unchanged writes nothing) and refreshes model_leaderboard after any training.",
)
