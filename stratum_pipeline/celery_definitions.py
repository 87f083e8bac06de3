"""The code location for a Celery deployment (deploy/celery/): the project's definitions with each step of a run
sent as a Celery task to workers (`celery worker` processes on this or other machines) through a RabbitMQ broker.

Needs the `celery` extra (`pip install .[celery]`). The broker and the result backend come from the environment
(`STRATUM_CELERY_BROKER_URL`, default `amqp://guest:guest@127.0.0.1:5672//`; `STRATUM_CELERY_BACKEND_URL`,
default `rpc://`), read when this module is imported, by the run processes and by the workers alike: both sides
build their Celery app from `celery_settings()`, so they cannot disagree. Start a worker with

    celery -A stratum_pipeline.celery_definitions:app worker -Q dagster,training -n w1@%h -c 1

(see deploy/celery/README.md). The model steps carry the op tag `dagster-celery/queue: training`
(`TRAINING_QUEUE` in assets/models.py), every other step goes to the `dagster` queue.
"""

import os

import dagster as dg
from dagster_celery import celery_executor
from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from stratum_pipeline import definitions as project  # one Definitions object at module scope: `defs`
from stratum_pipeline.settings import Env

BROKER_URL = Env.CELERY_BROKER_URL
BACKEND_URL = Env.CELERY_BACKEND_URL
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_BACKEND = "rpc://"
QUEUES = ("dagster", "training")  # the default queue (every step without a queue tag) and the model steps'

# A step's task is acknowledged when it has finished, not when a worker takes it: a worker that dies mid-step
# (killed, out of memory, its machine lost) leaves the task unacknowledged, and the broker hands it to another
# worker. One task at a time per worker process, none prefetched: a long training never holds a second step back.
CELERY_CONFIG_SOURCE = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
}


def celery_settings(environ=os.environ) -> dict:
    """The Celery executor's config: broker and result backend from the environment, plus CELERY_CONFIG_SOURCE."""
    broker = environ.get(BROKER_URL) or DEFAULT_BROKER
    backend = environ.get(BACKEND_URL) or DEFAULT_BACKEND
    if not broker.startswith(("amqp://", "pyamqp://", "amqps://", "redis://", "rediss://")):
        raise ValueError(f"{BROKER_URL} must be an amqp:// or redis:// URL, got {broker.split('://')[0]!r}")
    return {"broker": broker, "backend": backend, "config_source": dict(CELERY_CONFIG_SOURCE)}


SETTINGS = celery_settings()

defs = dg.Definitions.merge(project.defs, dg.Definitions(executor=celery_executor.configured(SETTINGS)))

# The workers' Celery app: the one the executor builds from the same settings, with dagster-celery's step task.
app = make_app(CeleryExecutor.for_cli(**SETTINGS).app_args())
execute_plan = create_task(app)
