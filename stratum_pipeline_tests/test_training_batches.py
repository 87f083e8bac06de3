"""Tenant training in batch runs (#16): the batches, what the schedules and the sensor launch, and a batch run's
per-tenant outcomes (own MLflow run, gate verdict, partition materialisation) with one tenant failing."""

from datetime import datetime, timezone

import dagster as dg
import pytest

from stratum_pipeline.automation.jobs import training_run_tags
from stratum_pipeline.definitions import defs as project_defs
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.tenancy import (
    TENANT_CONCURRENCY_TAG,
    TRAINING_BUCKET_TAG,
    TRAINING_BUCKETS,
    training_batches,
    training_bucket,
)

from .model_data import RUN_CONFIG

TENANTS = [f"t{i:03d}" for i in range(230)]


def test_every_tenant_is_in_exactly_one_batch_of_its_bucket():
    batches = training_batches(reversed(TENANTS), max_per_run=50)
    seen = [t for _, batch in batches for t in batch]
    assert sorted(seen) == TENANTS and len(seen) == len(set(seen))
    assert all(1 <= len(batch) <= 50 for _, batch in batches)
    assert all(training_bucket(t) == bucket for bucket, batch in batches for t in batch)
    assert all(list(batch) == sorted(batch) for _, batch in batches)
    assert {bucket for bucket, _ in batches} == {str(b) for b in range(TRAINING_BUCKETS)}
    # the fewest runs: each bucket's tenants in ceil(n / 50) runs
    per_bucket = {
        b: sum(1 for t in TENANTS if training_bucket(t) == b) for b in map(str, range(TRAINING_BUCKETS))
    }
    assert len(batches) == sum(-(-n // 50) for n in per_bucket.values())
    # a tenant's bucket does not depend on the other tenants
    assert training_batches(["t007"]) == [(training_bucket("t007"), ("t007",))]
    with pytest.raises(ValueError, match="at least 1"):
        training_batches(TENANTS, max_per_run=0)


def test_a_single_tenant_run_carries_the_bucket_of_the_batches_that_hold_the_tenant():
    tags = training_run_tags("t042")
    assert tags == {TENANT_CONCURRENCY_TAG: "t042", TRAINING_BUCKET_TAG: training_bucket("t042")}
    snapshot_tags = project_defs.resolve_job_def(
        "train_tenant_models_job"
    ).partitioned_config.get_tags_for_partition_key("t042")
    assert snapshot_tags[TRAINING_BUCKET_TAG] == training_bucket("t042")


def test_the_monthly_schedule_launches_batch_runs_covering_every_tenant_once():
    when = datetime(2026, 12, 1, 4, 0, tzinfo=timezone.utc)
    schedule = project_defs.resolve_schedule_def("monthly_tenant_retraining")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", TENANTS)
        # closed here: a schedule context left to the garbage collector would point Dagster's defs-state storage at
        # this (then disposed) instance and break later definitions loads in the session
        with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=when, repository_def=project_defs.get_repository_def()
        ) as context:
            requests = list(schedule.evaluate_tick(context).run_requests)
    assert schedule.job_name == "train_tenant_batch_job"
    tenants = [t for r in requests for t in r.run_config["ops"]["train_tenant_batch"]["config"]["tenants"]]
    assert sorted(tenants) == TENANTS and len(tenants) == len(set(tenants))
    assert len(requests) == len(training_batches(TENANTS)) < len(TENANTS) / 10
    assert len({r.run_key for r in requests}) == len(requests)
    assert all(r.run_key.startswith("monthly-2026-12-b") for r in requests)
    for request in requests:
        batch = request.run_config["ops"]["train_tenant_batch"]["config"]["tenants"]
        assert {training_bucket(t) for t in batch} == {request.tags[TRAINING_BUCKET_TAG]}


@pytest.mark.slow  # trains two tenants' models with MLflow (~20 s)
def test_a_batch_run_materialises_each_tenant_on_its_own_and_a_failing_tenant_does_not_stop_the_others(stack):
    from stratum_pipeline.automation.local_runs import QUIET, check_evaluations

    defs, registry, instance = stack
    tenants = ["big", "Bad Tenant!", "small"]  # the middle one fails (not a valid tenant id)
    config = {**RUN_CONFIG, "tenants": tenants}
    result = defs.resolve_job_def("train_tenant_batch_job").execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={**QUIET, "ops": {"train_tenant_batch": {"config": config}}},
    )
    assert not result.success  # the run reports the failed tenant...
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    message = failure.event_specific_data.error.message
    assert "2 of 6 tenant model trainings failed" in message and "Bad Tenant!/roas_model" in message
    assert "big" not in message.replace("Bad Tenant!", "")

    # ...after every other tenant's partitions were materialised, each with its own metadata
    materialised = {
        (e.asset_key.to_user_string(), e.partition): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert set(materialised) == {(a, t) for a in ("roas_model", "conversion_model") for t in ("big", "small")}
    big_roas = materialised[("roas_model", "big")]
    assert big_roas["served_by"].value == "big" and big_roas["gate"].value.startswith("promote")
    assert materialised[("roas_model", "small")]["served_by"].value == "default"
    for asset in ("roas_model", "conversion_model"):
        status = instance.get_materialized_partitions(dg.AssetKey(asset))
        assert status == {"big", "small"}, asset

    # the gate's verdict per partition, targeting that partition's materialisation
    evaluations = {(e.asset_key.to_user_string(), e.partition): e for e in check_evaluations(result)}
    assert set(evaluations) == set(materialised)
    assert all(e.check_name == "promotion_gate" and e.passed for e in evaluations.values())
    for (asset, tenant), evaluation in evaluations.items():
        latest = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[tenant]), limit=1
        ).records[0]
        assert evaluation.target_materialization_data.storage_id == latest.storage_id

    # the tenant's own MLflow run and registered champion, tagged with its partition and this run
    for kind in ("roas", "conversion"):
        md = materialised[(f"{kind}_model", "big")]
        assert registry.champion_version(model_name(kind, "big")) == md["version"].value
        run = registry.client().get_run(md["mlflow_run_id"].value)
        assert (
            run.data.tags["dagster_partition"] == "big" and run.data.tags["dagster_run_id"] == result.run_id
        )
        assert run.info.status == "FINISHED"
    assert registry.champion_version(model_name("roas", "small")) is None  # below the minimum: default serves
