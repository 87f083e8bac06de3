"""A Celery deployment on this machine, for test_celery_engine.py and benchmarks/celery_training.py: a RabbitMQ
vhost of its own, a Dagster instance from deploy/dagster.yaml, a warehouse and an MLflow store on PostgreSQL,
`celery worker` processes, and tenant trainings as `dagster job execute` processes (one run process per run, as a
run launcher starts them) whose steps the Celery executor sends to the workers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd
import yaml

from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.resources import ModelRegistry, Warehouse
from stratum_pipeline.storage import warehouse_schema as wh

from .helpers import CLEARED_PREFIXES
from .model_data import RUN_CONFIG, model_features
from .services import VENV_BIN, Processes

PROJECT_ROOT = Path(__file__).resolve().parents[1]
AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672
WORKER_APP = "stratum_pipeline.celery_definitions:app"
LOCATION_MODULE = "stratum_pipeline.celery_definitions"
LAUNCH_TAG = "stratum/launch"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
MODEL_TYPES = ("roas", "conversion")


def rabbitmq_up(timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((AMQP_HOST, AMQP_PORT), timeout=timeout):
            return True
    except OSError:
        return False


class Vhost:
    """A RabbitMQ vhost of its own (queues of other runs never mix in), created and deleted with rabbitmqctl."""

    def __init__(self, label: str = "stratum-celery"):
        self.name = f"{label}-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> str:
        ctl = shutil.which("rabbitmqctl")
        if ctl is None:
            raise RuntimeError("rabbitmqctl not found: cannot create a RabbitMQ vhost for the Celery workers")
        for argv in (
            ["add_vhost", self.name],
            ["set_permissions", "-p", self.name, "guest", ".*", ".*", ".*"],
        ):
            done = subprocess.run([ctl, *argv], capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                raise RuntimeError(
                    f"rabbitmqctl {' '.join(argv)} failed: {done.stderr.strip().splitlines()[-1:]}"
                )
        return f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{self.name}"

    def __exit__(self, *exc) -> None:
        subprocess.run(["rabbitmqctl", "delete_vhost", self.name], capture_output=True, timeout=60)


def tenant_features(tenants: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The model dataset's `big` tenant (60 campaigns, its own models) copied under each of `tenants`."""
    campaign, sessions, _, _ = model_features()

    def copies(frame: pd.DataFrame) -> pd.DataFrame:
        own = frame[frame["tenant_id"] == "big"]
        return pd.concat([own.assign(tenant_id=tenant) for tenant in tenants], ignore_index=True)

    return copies(campaign), copies(sessions)


class CeleryCluster:
    """Instance, warehouse (with `tenants`' features) and MLflow store for Celery workers and run processes."""

    def __init__(self, root: Path, create_database, broker_url: str, tenants: tuple[str, ...]):
        self.root, self.tenants = root, tenants
        urls = {name: create_database(name) for name in ("dagster", "wh", "mlflow")}
        home = root / "home"
        home.mkdir(parents=True)
        # deploy/dagster.yaml with its database's URL written in (this process reads the instance too)
        config = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
        config["storage"]["postgres"]["postgres_url"] = urls["dagster"]
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
        (root / "models").mkdir()
        base = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED_PREFIXES)}
        self.env = {
            **base,
            "DAGSTER_HOME": str(home),
            "STRATUM_DAGSTER_PG_URL": urls["dagster"],
            "STRATUM_WAREHOUSE_URL": urls["wh"],
            "STRATUM_SOURCE_URL": f"sqlite:///{root / 'source.db'}",
            "STRATUM_MLFLOW_TRACKING_URI": urls["mlflow"],
            "ML_MODELS_PATH": str(root / "models"),
            "STRATUM_CELERY_BROKER_URL": broker_url,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PYTHONPATH": str(PROJECT_ROOT),
            "PYTHONUNBUFFERED": "1",
        }
        warehouse = Warehouse(url=urls["wh"])
        for table, frame in zip((wh.campaign_features, wh.session_features), tenant_features(tenants)):
            dates = pd.to_datetime(frame["date"])
            warehouse.replace_partitions(table, frame, dates.min().date(), dates.max().date())
        self.registry = ModelRegistry(tracking_uri=urls["mlflow"])
        # The MLflow schema and experiment exist before parallel steps start (no migration race); artifacts go to
        # the store's default root, <cwd>/mlruns, which every process here shares: the cluster's root.
        cwd = os.getcwd()
        os.chdir(root)
        try:
            self.registry.experiment_id()
        finally:
            os.chdir(cwd)
        self.instance = dg.DagsterInstance.from_config(str(home), config_filename="dagster.yaml")
        self.instance.add_dynamic_partitions("tenants", list(tenants))
        (root / "run_config.yaml").write_text(
            yaml.safe_dump(
                {"ops": {asset: {"config": RUN_CONFIG} for asset in ("roas_model", "conversion_model")}}
            )
        )
        self.processes = Processes(root)
        self.launched: dict[str, subprocess.Popen] = {}  # run processes by launch tag

    def close(self) -> None:
        self.processes.stop_all()
        self.instance.dispose()

    # Workers -----------------------------------------------------------------------------------------------------

    def start_worker(self, name: str, queues: str = "dagster,training") -> subprocess.Popen:
        """`celery worker` named `<name>@<host>`, one task at a time (prefork, concurrency 1)."""
        argv = [
            str(VENV_BIN / "celery"),
            "-A",
            WORKER_APP,
            "worker",
            "-Q",
            queues,
            "-n",
            f"{name}@%h",
            "-c",
            "1",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ]
        return self.processes.start(name, argv, self.env, cwd=self.root)

    def wait_ready(self, names: list[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(names)
        while waiting and time.monotonic() < deadline:
            waiting = [n for n in waiting if " ready." not in self.processes.log(n)]
            exited = [
                (n, p.returncode) for n, p in self.processes.started if n in waiting and p.poll() is not None
            ]
            if exited:
                raise RuntimeError(f"celery worker exited: {exited}\n{self.processes.log(exited[0][0])}")
            time.sleep(0.5)
        if waiting:
            raise TimeoutError(
                f"celery workers {waiting} not ready after {timeout:.0f} s:\n{self.processes.log(waiting[0])}"
            )

    def worker_process(self, name: str) -> subprocess.Popen:
        return next(p for n, p in self.processes.started if n == name)

    # Runs --------------------------------------------------------------------------------------------------------

    def launch(self, tenant: str) -> str:
        """Start a training run of `tenant` in a run process of its own; returns the run's launch tag value."""
        launch = uuid.uuid4().hex
        tags = {"dagster/partition": tenant, "tenant": tenant, LAUNCH_TAG: launch}
        argv = [
            str(VENV_BIN / "dagster"),
            "job",
            "execute",
            "-m",
            LOCATION_MODULE,
            "-j",
            "train_tenant_models_job",
            "-c",
            str(self.root / "run_config.yaml"),
            "--tags",
            json.dumps(tags),
        ]
        self.launched[launch] = self.processes.start(
            f"run-{tenant}-{launch[:6]}", argv, self.env, cwd=self.root
        )
        return launch

    def run_of(self, launch: str, timeout: float = 120) -> dg.DagsterRun:
        """The run of a launch, once its run process has created it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.instance.get_runs(filters=dg.RunsFilter(tags={LAUNCH_TAG: launch}))
            if runs:
                return runs[0]
            time.sleep(0.5)
        raise TimeoutError(f"no run for launch {launch} after {timeout:.0f} s:\n{self._run_logs(launch)}")

    def wait_runs(self, launches: list[str], timeout: float) -> list[dg.DagsterRun]:
        """The launches' runs once every one has finished (in launch order)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = [
                self.instance.get_runs(filters=dg.RunsFilter(tags={LAUNCH_TAG: launch}))
                for launch in launches
            ]
            if all(r and r[0].status in FINISHED for r in runs):
                return [r[0] for r in runs]
            lost = [
                launch
                for launch, r in zip(launches, runs)
                if self.launched[launch].poll() is not None and not (r and r[0].status in FINISHED)
            ]
            if lost:
                raise RuntimeError(
                    f"run process of launch {lost[0][:6]} exited, its run unfinished:\n"
                    f"{self._run_logs(lost[0])}"
                )
            time.sleep(1)
        states = [
            (
                launch[:6],
                [r.status.value for r in self.instance.get_runs(dg.RunsFilter(tags={LAUNCH_TAG: launch}))],
            )
            for launch in launches
        ]
        raise TimeoutError(
            f"runs not finished after {timeout:.0f} s: {states}\n{self._run_logs(launches[0])}"
        )

    def _run_logs(self, launch: str) -> str:
        return "\n".join(self.processes.log(n) for n, _ in self.processes.started if n.endswith(launch[:6]))

    def step_workers(self, run_id: str) -> list[tuple[str, str]]:
        """(step key, Celery worker hostname) of every step execution of the run, in order, from the engine
        events dagster-celery's task reports when a worker starts a step."""
        found = []
        for entry in self.instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            metadata = entry.dagster_event.engine_event_data.metadata or {}
            if "Celery worker" in metadata:
                found.append((entry.dagster_event.step_key, metadata["Celery worker"].value))
        return found

    def step_events(self, run_id: str, event_type: dg.DagsterEventType) -> list[str]:
        return [e.dagster_event.step_key for e in self.instance.all_logs(run_id, of_type=event_type)]

    # Models ------------------------------------------------------------------------------------------------------

    def champion_runs(self, tenant: str) -> dict[str, tuple[str, str] | None]:
        """(version, MLflow run status) of the tenant's champion of each model type, None without one."""
        client = self.registry.client()
        found = {}
        for model_type in MODEL_TYPES:
            champion = self.registry.champion_run(model_name(model_type, tenant))
            found[model_type] = (
                None if champion is None else (champion[0], client.get_run(champion[1]).info.status)
            )
        return found
