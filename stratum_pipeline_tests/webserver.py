"""A small project state and a `dagster-webserver` on loopback serving it, for the UI and GraphQL tests.

`prepare_project` writes the model-test tenants of `model_data` (ending yesterday, so the newest daily
partition has data; the smaller conftest set is below what the promotion gate accepts) to a SQLite source, materialises raw extracts -> features -> ROAS models -> the day's product tables into a
SQLite Dagster instance under a temporary DAGSTER_HOME (MLflow in a SQLite store beside it), and returns
the environment that points at those stores. `DagsterWebserver` runs `dagster-webserver -m
stratum_pipeline.definitions` with that environment in its own process group and stops the group.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import requests

from stratum_pipeline.automation.local_runs import execute_daily_range
from stratum_pipeline.definitions import build_definitions
from stratum_pipeline.demo.generator import generate
from stratum_pipeline.demo.writer import write_source
from stratum_pipeline.resources import ModelRegistry, SourceDatabase, Warehouse
from stratum_pipeline.storage.database import engine_for

from .helpers import train
from .model_data import MODEL_CONFIG
from .services import free_port

INSTANCE_YAML = """\
telemetry:
  enabled: false
# Runs submitted through GraphQL start at once (no dagster-daemon in the tests).
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
"""
LOCATION_QUERY = "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename } } } } }"


def yesterday_utc() -> date:
    return datetime.now(timezone.utc).date() - timedelta(days=1)


@dataclasses.dataclass
class ProjectState:
    root: Path
    env: dict[str, str]  # the variables that point the webserver (and its runs) at the stores below
    day: date  # the newest daily partition, materialised through the product tables
    instance: dg.DagsterInstance

    @property
    def warehouse_url(self) -> str:
        return self.env["STRATUM_WAREHOUSE_URL"]


def prepare_project(root: Path) -> ProjectState:
    """Source data, an instance with materialisations and MLflow models under `root` (takes ~1 minute)."""
    home = root / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    env = {
        "DAGSTER_HOME": str(home),
        "STRATUM_SOURCE_URL": f"sqlite:///{root / 'source.db'}",
        "STRATUM_WAREHOUSE_URL": f"sqlite:///{root / 'warehouse.db'}",
        "STRATUM_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    day = yesterday_utc()
    config = dataclasses.replace(MODEL_CONFIG, end_date=day)
    write_source(engine_for(env["STRATUM_SOURCE_URL"]), generate(config))

    defs = build_definitions(
        {
            "source": SourceDatabase(url=env["STRATUM_SOURCE_URL"]),
            "warehouse": Warehouse(url=env["STRATUM_WAREHOUSE_URL"]),
            "registry": ModelRegistry(tracking_uri=env["STRATUM_MLFLOW_TRACKING_URI"]),
        }
    )
    instance = dg.DagsterInstance.from_config(str(home))
    instance.add_dynamic_partitions("tenants", [t.tenant_id for t in config.tenants])
    steps = [
        (
            "daily_ingest_job",
            execute_daily_range(defs, config.start_date.isoformat(), day.isoformat(), instance),
        )
    ]
    # Lowered minimums (as in test_model_assets): "big" gets models of its own, "small" is served by the default.
    steps.append(("train_default_models_job", train(defs, instance, "train_default_models_job")[0]))
    for tenant in config.tenants:
        steps.append(
            (
                f"train_tenant_models_job[{tenant.tenant_id}]",
                train(defs, instance, "train_tenant_models_job", tenant.tenant_id)[0],
            )
        )
    for job in ("daily_forecasts_job", "fatigue_scores_job"):
        steps.append(
            (job, execute_daily_range(defs, day.isoformat(), day.isoformat(), instance, job_name=job))
        )
    failed = [name for name, result in steps if not result.success]
    if failed:
        raise RuntimeError(f"preparing the webserver's project state failed in {failed}")
    return ProjectState(root, env, day, instance)


class DagsterWebserver:
    """`dagster-webserver` on 127.0.0.1 and a free port, in its own process group; `stop()` ends the group."""

    def __init__(self, project: ProjectState, log_path: Path):
        self.project = project
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.log = open(log_path, "wb")
        executable = Path(sys.executable).with_name("dagster-webserver")
        self.process = subprocess.Popen(
            [str(executable), "-h", "127.0.0.1", "-p", str(self.port), "-m", "stratum_pipeline.definitions"],
            env={**os.environ, **project.env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_ready(self, timeout: float = 120.0) -> None:
        """Until /server_info answers and the code location has loaded (or raise with the server's log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"dagster-webserver exited with {self.process.returncode}:\n{self._log_tail()}"
                )
            try:
                if requests.get(f"{self.url}/server_info", timeout=2).ok:
                    entries = self.graphql(LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
                    states = [(e.get("locationOrLoadError") or {}).get("__typename") for e in entries]
                    if "PythonError" in states:
                        raise RuntimeError(f"the code location failed to load:\n{self._log_tail()}")
                    if states and all(s == "RepositoryLocation" for s in states):
                        return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(
            f"dagster-webserver at {self.url} not ready after {timeout:.0f} s:\n{self._log_tail()}"
        )

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def stop(self) -> None:
        """SIGTERM to the group (webserver, its code server, run processes), then SIGKILL to whatever is left."""
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        self.log.close()

    def _log_tail(self, chars: int = 4000) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]
