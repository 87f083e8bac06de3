"""A small project state and a `dagster-webserver` on loopback serving it, for the UI and GraphQL tests.

`prepare_project` lays the state out as the embedded default under `root` (./.stratum and ./mlruns, so plain
`dagster dev` started in `root` opens it too): the model-test tenants of `model_data` (ending yesterday, so the
newest daily partition has data; the smaller conftest set is below what the promotion gate accepts) in the SQLite
source, raw extracts -> features -> models -> the day's product tables materialised into the SQLite Dagster
instance, the model leaderboard and the tenants' ROAS model files. Trainings log their holdout plot with a link to
an MLflow UI on `project.mlflow_ui_port` (started by the tests that look at it). `DagsterWebserver` runs
`dagster-webserver -m stratum_pipeline.definitions` with the environment that names those stores, in its own
process group, and stops the group.
"""

from __future__ import annotations

import contextlib
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

from stratum_pipeline.automation.local_runs import execute_daily_range, execute_tenant_job
from stratum_pipeline.cli.embedded import (
    DEFAULT_HOME,
    PARTITIONS_START_FILE,
    embedded_environment,
    embedded_instance_yaml,
)
from stratum_pipeline.definitions import build_definitions
from stratum_pipeline.demo.generator import generate
from stratum_pipeline.demo.writer import write_source
from stratum_pipeline.resources import ModelFiles, ModelRegistry, SourceDatabase, Warehouse
from stratum_pipeline.settings import Env
from stratum_pipeline.storage.database import engine_for

from .helpers import train
from .model_data import MODEL_CONFIG
from .services import free_port

# Runs submitted through GraphQL start at once (no dagster-daemon beside dagster-webserver in the tests).
DEFAULT_RUN_COORDINATOR = """run_coordinator:
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
    mlflow_ui_port: int | None = None  # the MLflow UI the trainings' plot links point at

    @property
    def warehouse_url(self) -> str:
        return self.env["STRATUM_WAREHOUSE_URL"]


@contextlib.contextmanager
def _environment(env: dict[str, str]):
    """`env` in os.environ for the in-process runs (the registry reads the MLflow UI's URL from it)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def prepare_project(root: Path) -> ProjectState:
    """Source data, an instance with materialisations, MLflow models and model files under `root` (~1.5 min)."""
    embedded = embedded_environment(root / DEFAULT_HOME)
    home = Path(embedded[Env.DAGSTER_HOME])
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(embedded_instance_yaml(str(home)) + DEFAULT_RUN_COORDINATOR)
    (root / "mlruns").mkdir()
    Path(embedded[Env.MODELS_PATH]).mkdir()
    mlflow_ui_port = free_port()
    env = {
        k: embedded[k]
        for k in (
            Env.DAGSTER_HOME,
            Env.SOURCE_URL,
            Env.WAREHOUSE_URL,
            Env.MLFLOW_TRACKING_URI,
            Env.MODELS_PATH,
        )
    }
    env[Env.MLFLOW_UI_URL] = f"http://127.0.0.1:{mlflow_ui_port}"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    day = yesterday_utc()
    config = dataclasses.replace(MODEL_CONFIG, end_date=day)
    write_source(engine_for(env[Env.SOURCE_URL]), generate(config))
    # As `stratum demo` does: the daily partitions start at the data's first day, for the webserver (through the
    # environment) and for plain `dagster dev` in `root` (through the file in ./.stratum). This process keeps
    # its own start (an earlier day): the runs below only need their days to be partitions.
    (root / DEFAULT_HOME / PARTITIONS_START_FILE).write_text(config.start_date.isoformat())
    env[Env.PARTITIONS_START] = config.start_date.isoformat()

    defs = build_definitions(
        {
            "source": SourceDatabase(url=env[Env.SOURCE_URL]),
            "warehouse": Warehouse(url=env[Env.WAREHOUSE_URL]),
            "registry": ModelRegistry(tracking_uri=env[Env.MLFLOW_TRACKING_URI]),
            "model_files": ModelFiles(path=env[Env.MODELS_PATH]),
        }
    )
    instance = dg.DagsterInstance.from_config(str(home))
    tenants = [t.tenant_id for t in config.tenants]
    instance.add_dynamic_partitions("tenants", tenants)
    with _environment(env):
        steps = [
            (
                "daily_ingest_job",
                execute_daily_range(defs, config.start_date.isoformat(), day.isoformat(), instance),
            )
        ]
        # Lowered minimums (as in test_model_assets): "big" gets models of its own, "small" is served by the default.
        steps.append(("train_default_models_job", train(defs, instance, "train_default_models_job")[0]))
        for tenant in tenants:
            steps.append(
                (
                    f"train_tenant_models_job[{tenant}]",
                    train(defs, instance, "train_tenant_models_job", tenant)[0],
                )
            )
        for job in ("daily_forecasts_job", "fatigue_scores_job"):
            steps.append(
                (job, execute_daily_range(defs, day.isoformat(), day.isoformat(), instance, job_name=job))
            )
        steps.append(
            ("model_leaderboard_job", execute_tenant_job(defs, "model_leaderboard_job", None, instance))
        )
        for tenant in tenants:
            steps.append(
                (
                    f"publish_tenant_model_files_job[{tenant}]",
                    execute_tenant_job(defs, "publish_tenant_model_files_job", tenant, instance),
                )
            )
    failed = [name for name, result in steps if not result.success]
    if failed:
        raise RuntimeError(f"preparing the webserver's project state failed in {failed}")
    return ProjectState(root, env, day, instance, mlflow_ui_port)


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    """The data of one GraphQL request to the Dagster webserver at `url` (its errors raised)."""
    response = requests.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


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
        return graphql(self.url, query, variables)

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
