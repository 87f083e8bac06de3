"""The tenant model assets for a batch of tenants in one run: start-up paid once, each tenant's outcome its own.

A run process pays ~13 s of imports and start-up here, a tenant's training 1-8 s of work, so the schedules and the
tenant sensor launch `train_tenant_batch_job` once per batch of tenants (`tenancy.training_batches`). For each
tenant and model the op trains, registers and gates exactly as the `roas_model` / `conversion_model` assets do
(the same function, the tenant's own MLflow run and registered version), then reports that tenant's partition of
the asset as materialised, with the promotion gate's verdict on that partition. A tenant whose training raises is
logged in one line and the others go on; at the end the run fails naming every failed tenant, so the failure
alert reports them and their partitions stay unmaterialised.
"""

import dagster as dg
from dagster._core.definitions.data_version import CODE_VERSION_TAG

from stratum_pipeline.assets.common import model_code_version
from stratum_pipeline.assets.models import (
    TENANT_MODEL_TYPES,
    TRAINING_QUEUE,
    TrainingConfig,
    train_and_gate,
)
from stratum_pipeline.checks.partitioned import latest_materializations
from stratum_pipeline.resources import ModelRegistry, Warehouse
from stratum_pipeline.tenancy import validate_tenant_id


class TenantBatchConfig(TrainingConfig):
    """The tenants of the batch (partition keys of `tenants`) and the model assets to materialise for each."""

    tenants: list[str] = []  # empty: a one-line failure (a launch that names no tenant trains nothing)
    models: list[str] = list(TENANT_MODEL_TYPES)


def partition_events(context, asset: str, tenant: str, result: dg.MaterializeResult):
    """The asset run's result for one tenant as the events of that tenant's partition: its materialisation (with
    the asset's code version, as Dagster tags its own) and then the promotion gate's evaluation of it."""
    yield dg.AssetMaterialization(
        asset_key=asset,
        partition=tenant,
        metadata=result.metadata,
        tags={CODE_VERSION_TAG: model_code_version(TENANT_MODEL_TYPES[asset])},
    )
    # the evaluation targets the materialisation just reported (Dagster shows a partition's check status only then)
    target = latest_materializations(context, dg.AssetKey(asset), [tenant]).get(tenant)
    for check in result.check_results:
        yield dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(asset),
            check_name=check.check_name,
            passed=check.passed,
            severity=check.severity,
            blocking=True,
            partition=tenant,
            description=check.description,
            metadata=check.metadata,
            target_materialization_data=target,
        )


def _one_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"


@dg.op(out={}, tags=TRAINING_QUEUE)
def train_tenant_batch(
    context: dg.OpExecutionContext, config: TenantBatchConfig, warehouse: Warehouse, registry: ModelRegistry
):
    """Train, register and gate each tenant's models of the batch, one tenant after another in this process."""
    unknown = sorted(set(config.models) - set(TENANT_MODEL_TYPES))
    if unknown:
        raise dg.Failure(f"unknown model assets {unknown}: use {sorted(TENANT_MODEL_TYPES)}")
    if not config.tenants:
        raise dg.Failure("the batch names no tenants: set ops.train_tenant_batch.config.tenants")
    failed: dict[str, str] = {}
    done = 0
    for key in config.tenants:
        for asset in config.models:
            try:
                tenant = validate_tenant_id(key)
                result = train_and_gate(
                    context, asset, TENANT_MODEL_TYPES[asset], tenant, config, warehouse, registry, tenant
                )
            except Exception as exc:  # the tenant's failure is its own: reported below, the batch goes on
                failed[f"{key}/{asset}"] = _one_line(exc)
                context.log.error(f"{asset} [{key}] failed: {failed[f'{key}/{asset}']}")
                continue
            yield from partition_events(context, asset, tenant, result)
            done += 1
    context.log.info(
        f"batch of {len(config.tenants)} tenants: {done} model(s) materialised, {len(failed)} failed"
    )
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} of {len(config.tenants) * len(config.models)} tenant model trainings failed: "
            + "; ".join(f"{k}: {v}" for k, v in failed.items())[:2000],
            metadata={"failed": failed, "materialised": done},
        )
