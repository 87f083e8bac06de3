"""Sensors: tenant sync, retraining on degradation, alerts on failed runs (freshness: checks/freshness.py)."""

import json
from datetime import datetime, timezone

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.tags import RUN_KEY_TAG

from stratum_pipeline.alerts import Alert, notifiers, send
from stratum_pipeline.automation.jobs import (
    train_default_models_job,
    train_tenant_batch_job,
    train_tenant_models_job,
    training_batch_requests,
)
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.modelops.retraining import RETRAIN, episode_key, step
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

# Which monitoring asset's metadata names tenants to retrain, how to read it, and the signal's name.
RETRAIN_SIGNALS = {"forecast_accuracy": "degraded", "feature_drift": "retrain"}
SIGNAL_NAMES = {"forecast_accuracy": "accuracy", "feature_drift": "drift"}
FAILED_RUN = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


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


def _monitoring_day(record) -> str:
    """The monitoring day a signal materialisation is about: its partition, else the day it was recorded."""
    partition = record.asset_materialization.partition
    if partition:
        return str(partition)[:10]
    return datetime.fromtimestamp(record.timestamp, timezone.utc).date().isoformat()


def _new_signals(context, cursor: dict, known: set[str]) -> dict[str, dict]:
    """{day: {"named": {key: {signal}}, "returning": {key: reason}, "after": storage id}} from the signal assets'
    materialisations newer than the cursor. Tenants that are not registered are skipped with a warning."""
    days: dict[str, dict] = {}
    for asset, field in RETRAIN_SIGNALS.items():
        records = context.instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
        if not records or records[0].storage_id <= cursor.get(asset, 0):
            continue
        record = records[0]
        cursor[asset] = record.storage_id
        metadata = record.asset_materialization.metadata
        day = days.setdefault(_monitoring_day(record), {"named": {}, "returning": {}, "after": 0})
        day["after"] = max(day["after"], record.storage_id)
        entry = metadata.get(field)
        for tenant, models in _models_to_retrain(asset, entry.value if entry else {}).items():
            if tenant != DEFAULT_MODEL_OWNER and tenant not in known:
                context.log.warning(
                    f"{asset} names tenant {tenant!r}, which is not a registered tenant: skipped"
                )
                continue
            for model in models:
                day["named"].setdefault(episode_key(tenant, model), set()).add(SIGNAL_NAMES[asset])
        if "returning" in metadata:
            for tenant, reason in metadata["returning"].value.items():
                day["returning"][episode_key(tenant, "roas_model")] = reason
    return days


def _outcomes(context, episodes: dict) -> dict[str, str]:
    """{key: 'promoted' | 'refused' | 'failed'} of the retrains requested and not yet decided: the model's
    first materialisation after the request (its `gate` metadata), or a failed or cancelled run of the request."""
    out = {}
    for key, episode in episodes.items():
        if episode.get("phase") != "requested":
            continue
        tenant, model = key.split("/", 1)
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(model),
                asset_partitions=None if tenant == DEFAULT_MODEL_OWNER else [tenant],
                after_storage_id=episode.get("after", 0),
            ),
            limit=1,
            ascending=True,
        ).records
        if records:
            gate = records[0].asset_materialization.metadata.get("gate")
            text = str(gate.value) if gate else ""
            out[key] = "promoted" if text.startswith("promoted") else "refused" if gate else "failed"
            continue
        runs = context.instance.get_runs(
            dg.RunsFilter(tags={RUN_KEY_TAG: episode.get("run_key", "")}), limit=1
        )
        if runs and runs[0].status in FAILED_RUN:
            out[key] = "failed"
    return out


@dg.sensor(
    jobs=[train_tenant_models_job, train_default_models_job],
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def retraining_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse) -> dg.SensorResult:
    """Act on `forecast_accuracy` (degraded accuracy) and `feature_drift` (broad drift or a calibration failure)
    by the retraining policy (modelops/retraining.py): one episode per tenant-model whatever signal opened it;
    at most one retrain request at a time (a cooldown until its outcome is known); no retrain while the error is
    already returning by itself ("self-correcting, no action"); a wait until the retrain's window can hold
    enough post-change days; after a refusal, another request only once enough new post-change days arrived.
    A request retrains exactly that tenant's `roas_model` (on the last DEGRADATION_RETRAIN_WINDOW_DAYS days)
    and/or `conversion_model`; the promotion gate still decides whether the new version serves. A tenant served
    by the default model has no model of its own: its signal retrains the default ROAS model. Each change of
    action is an alert (kind `retraining`) with its one-line reason. The cursor holds the last monitoring
    materialisation acted on and the open episodes."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    episodes = cursor.get("episodes", {})
    if not all(isinstance(v, dict) and ("opened" in v or "closed" in v) for v in episodes.values()):
        episodes = {}  # a cursor of the earlier per-signal format: its episodes start afresh
    known = set(context.instance.get_dynamic_partitions(tenant_partitions.name))
    requests, alerts = [], []
    for day, signals in sorted(_new_signals(context, cursor, known).items()):
        episodes, decisions = step(
            episodes, day, signals["named"], signals["returning"], _outcomes(context, episodes)
        )
        wanted: dict[str, dict[str, str | None]] = {}
        for decision in decisions:
            if decision.changed:
                alerts.append(decision)
            if decision.action == RETRAIN:
                wanted.setdefault(decision.tenant, {})[decision.model] = decision.recent_from
        for tenant, models in sorted(wanted.items()):
            request = _retrain_request(tenant, models, day)
            for model in models:
                episodes[episode_key(tenant, model)].update(after=signals["after"], run_key=request.run_key)
            requests.append(request)
    for decision in alerts:
        context.log.info(decision.text)
        send(
            Alert(kind="retraining", summary=decision.text, partition_key=decision.tenant),
            notifiers(warehouse),
        )
    cursor["episodes"] = episodes
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps(cursor),
        skip_reason=None
        if requests
        else "no retrain due: " + (alerts[-1].text if alerts else "no new signal"),
    )


def _retrain_request(tenant: str, models: dict[str, str | None], day: str) -> dg.RunRequest:
    """One run retraining `models` ({model asset: the change date it should learn from}) of `tenant`."""
    key = f"retrain-{tenant}-{'-'.join(sorted(models))}-{day}"
    tags = {"stratum/trigger": f"monitoring {day}"}
    if tenant == DEFAULT_MODEL_OWNER:
        return dg.RunRequest(
            job_name=train_default_models_job.name,
            asset_selection=[dg.AssetKey(m) for m in sorted(models)],
            run_key=key,
            tags=tags,
        )
    ops = {}
    for model, since in sorted(models.items()):
        config = {"training_window_days": DEGRADATION_RETRAIN_WINDOW_DAYS} if model == "roas_model" else {}
        if since:
            config["recent_from"] = since
        if config:
            ops[model] = {"config": config}
    return dg.RunRequest(
        job_name=train_tenant_models_job.name,
        partition_key=tenant,
        asset_selection=[dg.AssetKey(m) for m in sorted(models)],
        run_config={"ops": ops} if ops else None,
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
