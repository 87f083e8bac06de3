"""The seed's Celery task names and signatures, starting the corresponding Dagster runs instead.

An existing caller migrates by changing one import::

    from stratum_pipeline.compat.celery_tasks import (
        calculate_all_fatigue_scores, generate_daily_forecasts, run_all_tenant_predictions)

    run_id = generate_daily_forecasts()                      # every tenant, yesterday (UTC)
    run_id = generate_daily_forecasts(tenant_id=123)         # one tenant (int or text id); other tenants' rows stay
    run_id = calculate_all_fatigue_scores.delay().id         # Celery-style call, same run
    run_id = run_all_tenant_predictions.delay().id           # live predictions of the last 30 minutes

The seed's three beat tasks map to jobs as in `BEAT_TASK_JOBS`; Dagster's schedules run them at the
seed's times (06:00 and 03:00 UTC, every 30 minutes), so the Celery beat is no longer needed.
Each daily call submits the job for yesterday's UTC partition to the Dagster webserver at
`STRATUM_DAGSTER_GRAPHQL_URL` (default http://127.0.0.1:3000) through `DagsterGraphQLClient` and returns
the run id at once; the run itself executes in Dagster (watch it in the UI or with `run_status`).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from stratum_pipeline.settings import Env
from stratum_pipeline.tenancy import TENANT_SCOPE_TAG, validate_tenant_id

GRAPHQL_URL_VARIABLE = Env.DAGSTER_GRAPHQL_URL
DEFAULT_GRAPHQL_URL = "http://127.0.0.1:3000"
# roas_model is partitioned by the dynamic "tenants" set: its partition keys are the registered tenants.
TENANTS_QUERY = (
    '{ assetNodeOrError(assetKey: {path: ["roas_model"]}) { __typename ... on AssetNode { partitionKeys } } }'
)
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
# The seed's beat tasks (app.workers.tasks.<name>) and the Dagster job each one starts.
BEAT_TASK_JOBS = {
    "generate_daily_forecasts": "daily_forecasts_job",
    "calculate_all_fatigue_scores": "fatigue_scores_job",
    "run_all_tenant_predictions": "live_predictions_job",
}


class DagsterUnavailable(RuntimeError):
    """The Dagster webserver could not be reached or refused the request."""


class UnknownTenant(ValueError):
    """The tenant id is well formed but not registered in the Dagster instance."""


@dataclass(frozen=True)
class LaunchedRun:
    """What `.delay()` returns: like Celery's AsyncResult, the id is in `.id`."""

    id: str


def graphql_client() -> DagsterGraphQLClient:
    """A client for the webserver at STRATUM_DAGSTER_GRAPHQL_URL (http(s)://host[:port][/prefix])."""
    url = os.environ.get(GRAPHQL_URL_VARIABLE, DEFAULT_GRAPHQL_URL)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{GRAPHQL_URL_VARIABLE}={url!r} is not an http(s)://host[:port] URL of the Dagster webserver"
        )
    return DagsterGraphQLClient(
        parts.hostname,
        port_number=parts.port,
        use_https=parts.scheme == "https",
        path_prefix=parts.path.rstrip("/"),
        timeout=60,
    )


def _call(action: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except DagsterGraphQLClientError as exc:
        url = os.environ.get(GRAPHQL_URL_VARIABLE, DEFAULT_GRAPHQL_URL)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DagsterUnavailable(
            f"could not {action} on the Dagster webserver at {url} ({GRAPHQL_URL_VARIABLE}): {first_line}"
        ) from exc


def registered_tenants(client: DagsterGraphQLClient) -> list[str]:
    result = _call("list the tenants", client._execute, TENANTS_QUERY)["assetNodeOrError"]
    if result["__typename"] != "AssetNode":
        raise DagsterUnavailable(
            f"the Dagster webserver does not serve stratum_pipeline's roas_model ({result['__typename']})"
        )
    return result["partitionKeys"]


def yesterday_partition() -> str:
    """The newest daily partition: yesterday in UTC (a day is processed once it is over)."""
    return (datetime.now(timezone.utc).date() - timedelta(days=1)).isoformat()


def launch(
    job_name: str, tenant_id: str | int | None = None, partition: str | None = None, partitioned: bool = True
) -> str:
    """Submit `job_name` for a daily partition (default yesterday; none if not `partitioned`), optionally
    restricted to one tenant (text or integer id); the run id."""
    tags = {"stratum/launched_by": "celery-compat"}
    if partitioned:
        tags["dagster/partition"] = partition or yesterday_partition()
    client = graphql_client()
    if tenant_id is not None:
        tenant = validate_tenant_id(tenant_id)
        tenants = registered_tenants(client)
        if tenant not in tenants:
            raise UnknownTenant(
                f"unknown tenant {tenant!r}: the Dagster instance has {len(tenants)} tenants "
                f"({', '.join(sorted(tenants)[:10])}{', ...' if len(tenants) > 10 else ''})"
            )
        tags[TENANT_SCOPE_TAG] = tenant
    return _call(f"start {job_name}", client.submit_job_execution, job_name, tags=tags)


def run_status(run_id: str) -> str:
    """The run's status name (QUEUED, STARTED, SUCCESS, FAILURE, ...)."""
    return _call("read the run status", graphql_client().get_run_status, run_id).value


def wait_for_run(run_id: str, timeout: float = 600.0, poll: float = 1.0) -> str:
    """Poll until the run finished; its final status name (raises TimeoutError after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while (status := run_status(run_id)) not in FINISHED:
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {status} after {timeout:.0f} s")
        time.sleep(poll)
    return status


def celery_compatible(task):
    """Give a task function Celery's `.delay(*args, **kwargs)`, returning an object whose `.id` is the run id."""

    @functools.wraps(task)
    def delay(*args, **kwargs) -> LaunchedRun:
        return LaunchedRun(task(*args, **kwargs))

    task.delay = delay
    return task


@celery_compatible
def generate_daily_forecasts(tenant_id: str | int | None = None) -> str:
    """Seed task: forecast every active campaign for yesterday (ROAS forecasts, budget scenarios, event-match
    quality) -> `daily_forecasts_job`. With `tenant_id`, only that tenant's rows of the day are replaced."""
    return launch(BEAT_TASK_JOBS["generate_daily_forecasts"], tenant_id)


@celery_compatible
def calculate_all_fatigue_scores() -> str:
    """Seed task: score the fatigue of every creative live yesterday -> `fatigue_scores_job`."""
    return launch(BEAT_TASK_JOBS["calculate_all_fatigue_scores"])


@celery_compatible
def run_all_tenant_predictions() -> str:
    """Seed task (beat: every 30 minutes): score every tenant's sessions of the last 30 minutes with its
    conversion model -> `live_predictions_job` (not partitioned: it replaces the live table)."""
    return launch(BEAT_TASK_JOBS["run_all_tenant_predictions"], partitioned=False)
