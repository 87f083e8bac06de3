"""The Celery deployment's configuration (deploy/celery/), without a broker: every job of the code location runs on
the Celery executor, the workers' app has the executor's broker, backend and late acknowledgement, and the model
steps go to the `training` queue. The engine itself runs in test_celery_engine.py."""

import pytest
import yaml
from dagster_celery.executor import CeleryExecutor

from stratum_pipeline import celery_definitions as celery_location

from .celery_cluster import PROJECT_ROOT

MODEL_STEPS = {
    "roas_model",
    "conversion_model",
    "roas_default_model",
    "conversion_default_model",
    "anomaly_detector_model",
    "anomaly_detector_default_model",
    "train_tenant_batch",  # a batch of tenants' ROAS and conversion models (train_tenant_batch_job)
}


def test_every_job_runs_on_the_celery_executor():
    jobs = [j for j in celery_location.defs.resolve_all_job_defs() if not j.name.startswith("__")]
    assert len(jobs) >= 12
    assert {j.name: j.executor_def.name for j in jobs} == {j.name: "celery" for j in jobs}


def test_the_model_steps_go_to_the_training_queue_and_the_rest_to_the_default_queue():
    queues = {}
    for job in celery_location.defs.resolve_all_job_defs():
        for node in job.graph.node_defs:
            queues[node.name] = node.tags.get("dagster-celery/queue", "dagster")
    assert {name for name, queue in queues.items() if queue == "training"} == MODEL_STEPS
    assert set(queues.values()) <= set(celery_location.QUEUES)


def test_the_workers_app_matches_the_executor_and_acknowledges_late():
    executor_app = CeleryExecutor.for_cli(**celery_location.SETTINGS).app_args()
    conf = celery_location.app.conf
    assert (conf.broker_url, conf.result_backend) == (executor_app["broker"], executor_app["backend"])
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert "execute_plan" in celery_location.app.tasks


def test_the_settings_come_from_the_environment():
    settings = celery_location.celery_settings(
        {
            "STRATUM_CELERY_BROKER_URL": "amqp://u:p@mq:5672/stratum",
            "STRATUM_CELERY_BACKEND_URL": "redis://cache:6379/3",
        }
    )
    assert (settings["broker"], settings["backend"]) == ("amqp://u:p@mq:5672/stratum", "redis://cache:6379/3")
    assert celery_location.celery_settings({})["broker"] == "amqp://guest:guest@127.0.0.1:5672//"
    assert celery_location.celery_settings({})["backend"] == "rpc://"


def test_a_broker_url_of_the_wrong_kind_is_one_line():
    with pytest.raises(
        ValueError, match=r"^STRATUM_CELERY_BROKER_URL must be an amqp:// or redis:// URL, got 'http'$"
    ):
        celery_location.celery_settings({"STRATUM_CELERY_BROKER_URL": "http://mq:5672"})


def test_the_workspace_file_loads_the_celery_location():
    workspace = yaml.safe_load((PROJECT_ROOT / "deploy" / "celery" / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == celery_location.__name__
