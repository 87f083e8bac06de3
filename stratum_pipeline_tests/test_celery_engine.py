"""The Celery engine end to end (deploy/celery/): RabbitMQ as broker (a vhost of its own), two `celery worker`
processes, tenant trainings as run processes whose steps the Celery executor sends to the workers' `training` queue,
a Dagster instance, warehouse and MLflow store on PostgreSQL shared by all of them.

Outside CI the tests skip when RabbitMQ is down; in CI (`.ci/run` starts it) they fail.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import dagster as dg
import pytest

from stratum_pipeline.modelops.registry import model_name

from .celery_cluster import CeleryCluster, Vhost, rabbitmq_up

pytestmark = [pytest.mark.services, pytest.mark.slow]  # RabbitMQ, PostgreSQL, worker processes

TENANTS = (
    "big",
    "big-b",
    "big-c",
)  # three copies of the model dataset's big tenant: each trains its own models


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, pg_databases):
    """Two workers, w1 and w2, consuming the `dagster` and `training` queues of a fresh vhost."""
    if not rabbitmq_up():
        message = "RabbitMQ is not running at 127.0.0.1:5672 (.ci/run starts it: rabbitmq-server -detached)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with Vhost() as broker_url:
        cluster = CeleryCluster(tmp_path_factory.mktemp("celery"), pg_databases.create, broker_url, TENANTS)
        try:
            for name in ("w1", "w2"):
                cluster.start_worker(name)
            cluster.wait_ready(["w1", "w2"])
            yield cluster
        finally:
            cluster.close()


def test_tenant_trainings_run_their_steps_on_both_workers_and_register_champions(cluster):
    launches = [cluster.launch(tenant) for tenant in TENANTS]
    runs = cluster.wait_runs(launches, timeout=600)
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * len(TENANTS), [r.status for r in runs]

    executions = [(step, worker) for run in runs for step, worker in cluster.step_workers(run.run_id)]
    print("\nsteps per worker:", Counter(worker for _, worker in executions))
    # every step ran on a worker (6 steps, once each), and both workers took steps
    assert sorted(step for step, _ in executions) == sorted(["roas_model", "conversion_model"] * len(TENANTS))
    assert {worker.split("@")[0] for _, worker in executions} == {"w1", "w2"}, executions
    for run in runs:  # the model steps went to the training queue (their op tag), the one the workers consume
        submitted = [
            e.message
            for e in cluster.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if e.message.startswith("Submitting celery task")
        ]
        assert len(submitted) == 2 and all('to queue "training"' in m for m in submitted), submitted

    for tenant in TENANTS:
        champions = cluster.champion_runs(tenant)
        assert champions == {"roas": ("1", "FINISHED"), "conversion": ("1", "FINISHED")}, (tenant, champions)


def test_a_worker_killed_mid_step_never_leaves_a_wrong_champion(cluster):
    tenant = TENANTS[0]
    roas = model_name("roas", tenant)
    client, experiment = cluster.registry.client(), cluster.registry.experiment_id()
    before = cluster.champion_runs(tenant)
    launch = cluster.launch(tenant)
    run_id = cluster.run_of(launch).run_id

    # Wait until a worker is inside the ROAS step's MLflow run (trained, logging the model), then kill that
    # worker's process group (the worker and its pool process) with SIGKILL, as when its machine dies.
    deadline, victim, killed_run = time.monotonic() + 300, None, None
    while victim is None and time.monotonic() < deadline:
        assert "roas_model" not in cluster.step_events(run_id, dg.DagsterEventType.STEP_SUCCESS), (
            "the ROAS step finished before its MLflow run was seen RUNNING"
        )
        running = client.search_runs(
            [experiment],
            filter_string=(
                f"attributes.status = 'RUNNING' and tags.stratum_model = '{roas}' and tags.dagster_run_id = '{run_id}'"
            ),
        )
        workers = [w for step, w in cluster.step_workers(run_id) if step == "roas_model"]
        if running and workers:
            victim, killed_run = workers[0].split("@")[0], running[0].info.run_id
        else:
            time.sleep(0.1)
    assert victim is not None, "the ROAS step's MLflow run was not seen RUNNING on a worker within 300 s"
    os.killpg(cluster.worker_process(victim).pid, signal.SIGKILL)
    killed_at = time.monotonic()

    run = cluster.wait_runs([launch], timeout=400)[0]
    executions = cluster.step_workers(run_id)
    print(
        f"\nkilled {victim} mid-step; run {run.status.value} after {time.monotonic() - killed_at:.0f} s; {executions}"
    )
    if run.status == dg.DagsterRunStatus.SUCCESS:
        # the broker handed the unacknowledged step to the surviving worker, which ran it to the end
        hosts = [w.split("@")[0] for step, w in executions if step == "roas_model"]
        assert hosts[0] == victim and hosts[-1] != victim, hosts
        assert "roas_model" in cluster.step_events(run_id, dg.DagsterEventType.STEP_SUCCESS)
    else:
        assert run.status == dg.DagsterRunStatus.FAILURE

    after = cluster.champion_runs(tenant)
    for model_type, champion in after.items():
        # the champion is the one before, or a version whose training run finished: never the killed one's
        assert champion == before[model_type] or (champion is not None and champion[1] == "FINISHED"), (
            model_type,
            before,
            after,
        )
    champion = cluster.registry.champion_run(roas)
    assert champion is None or champion[1] != killed_run
    # the MLflow run the killed worker left RUNNING was closed as FAILED by the retried step's training
    if run.status == dg.DagsterRunStatus.SUCCESS:
        assert client.get_run(killed_run).info.status == "FAILED"
    stale = client.search_runs(
        [experiment], filter_string=f"attributes.status = 'RUNNING' and tags.tenant = '{tenant}'"
    )
    assert stale == [], [(r.info.run_id, r.data.tags.get("stratum_model")) for r in stale]
