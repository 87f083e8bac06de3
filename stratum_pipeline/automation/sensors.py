"""Sensors."""

import dagster as dg
import sqlalchemy as sa

from stratum_pipeline import source_schema
from stratum_pipeline.automation.jobs import train_tenant_models_job
from stratum_pipeline.partitions import tenant_partitions
from stratum_pipeline.resources import SourceDatabase
from stratum_pipeline.tenancy import InvalidTenantId, validate_tenant_id


@dg.sensor(job=train_tenant_models_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING)
def tenant_sync_sensor(context: dg.SensorEvaluationContext, source: SourceDatabase) -> dg.SensorResult:
    """Keep the `tenants` partitions in step with the source `tenants` table: a new tenant becomes a partition
    and gets a first training run of its models. Ids outside the safe character set are skipped and logged."""
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
        run_requests=[dg.RunRequest(partition_key=t, run_key=f"first-training-{t}") for t in new],
        dynamic_partitions_requests=[tenant_partitions.build_add_request(new)] if new else [],
        skip_reason=None if new else f"{len(valid)} tenants, none new",
    )
