"""The multi-machine configuration (deploy/multi-machine/): a Kubernetes run launcher and step executor.

No cluster runs here, so the test validates what Dagster would load: the instance file against
Dagster's instance schema and K8sRunLauncher's own schema, the instance itself (storage on a fresh
PostgreSQL database, the launcher built from a stand-in kubeconfig that is parsed, never contacted),
the workspace file against the workspace schema, and the code location's executor settings against
k8s_job_executor's schema.
"""

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.workspace.config_schema import process_workspace_config
from dagster_k8s import K8sRunLauncher, k8s_job_executor

from stratum_pipeline.k8s_definitions import STEP_EXECUTOR_CONFIG
from stratum_pipeline.k8s_definitions import defs as k8s_defs

MULTI_MACHINE = Path(__file__).resolve().parents[1] / "deploy" / "multi-machine"

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: stand-in, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: stand-in, user: {token: not-a-secret}}]
contexts: [{name: stand-in, context: {cluster: stand-in, user: stand-in}}]
current-context: stand-in
"""


@pytest.fixture
def connection_env(monkeypatch):
    """The variables the run pods get from the `stratum-connections` Secret (resolved when run config is)."""
    for name in ("STRATUM_SOURCE_URL", "STRATUM_WAREHOUSE_URL"):
        monkeypatch.setenv(name, "postgresql+psycopg2://stratum@db.example:5432/stratum")
    monkeypatch.setenv("STRATUM_MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    monkeypatch.setenv("ML_MODELS_PATH", "/var/lib/stratum/models")


@pytest.fixture
def instance_config(monkeypatch):
    monkeypatch.setenv("STRATUM_DAGSTER_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/unused")
    monkeypatch.setenv("STRATUM_IMAGE", "registry.example/stratum-pipeline:1")
    return yaml.safe_load((MULTI_MACHINE / "dagster.yaml").read_text())


def test_the_instance_file_matches_dagsters_and_the_k8s_launchers_schemas(tmp_path, instance_config):
    shutil.copy(MULTI_MACHINE / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert (
        config["run_launcher"]["module"] == "dagster_k8s"
        and config["run_launcher"]["class"] == "K8sRunLauncher"
    )
    launcher = process_config(K8sRunLauncher.config_type(), instance_config["run_launcher"]["config"])
    assert launcher.success, launcher.errors
    assert launcher.value["job_image"] == "registry.example/stratum-pipeline:1"
    coordinator = instance_config["run_coordinator"]["config"]
    assert {"key": "tenant", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in coordinator[
        "tag_concurrency_limits"
    ]

    # The same validation rejects a misspelt setting.
    wrong = process_config(
        K8sRunLauncher.config_type(), {**instance_config["run_launcher"]["config"], "job_namespaces": "x"}
    )
    assert not wrong.success


@pytest.mark.services
def test_the_instance_loads_with_postgres_storage_queued_runs_and_the_k8s_launcher(
    tmp_path, instance_config, pg_databases, monkeypatch
):
    monkeypatch.setenv("STRATUM_DAGSTER_PG_URL", pg_databases.create("dagster"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    launcher = instance_config["run_launcher"]["config"]
    launcher.update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))  # outside a cluster
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance_config))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert isinstance(instance.run_launcher, K8sRunLauncher)
        assert instance.run_launcher.job_namespace == "stratum"
        assert instance.run_launcher.instance_config_map == "stratum-dagster-instance"


def test_the_workspace_file_matches_dagsters_schema():
    result = process_workspace_config(yaml.safe_load((MULTI_MACHINE / "workspace.yaml").read_text()))
    assert result.success, result.errors
    assert result.value["load_from"][0]["grpc_server"]["location_name"] == "stratum_pipeline"


def test_every_job_of_the_k8s_code_location_runs_its_steps_in_kubernetes_jobs(connection_env):
    jobs = [job for job in k8s_defs.resolve_all_job_defs() if not job.name.startswith("__")]
    assert {job.name for job in jobs} >= {
        "daily_ingest_job",
        "train_tenant_models_job",
        "daily_forecasts_job",
    }
    for job in jobs:
        assert job.executor_def.name == "k8s"
        # The configured executor settings resolve against k8s_job_executor's schema (a run needs no executor config).
        assert dg.validate_run_config(job, {}) is not None
    assert k8s_defs.get_schedule_def("daily_ingest_job_schedule") is not None


def test_the_step_executor_settings_match_k8s_job_executors_schema():
    schema = k8s_job_executor.config_schema.config_type
    assert process_config(schema, STEP_EXECUTOR_CONFIG).success
    assert not process_config(schema, {**STEP_EXECUTOR_CONFIG, "max_concurrent": "four"}).success


def test_one_machine_instance_limits_runs_per_tenant_and_per_backfill(tmp_path, instance_config):
    shutil.copy(MULTI_MACHINE.parent / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # validated against Dagster's instance schema
    limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert {"key": "tenant", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    assert {"key": "dagster/backfill", "value": {"applyLimitPerUniqueValue": True}, "limit": 2} in limits
    # one training run per training bucket: a batch and a single tenant's run never train one tenant at once
    bucket = {"key": "stratum/training_bucket", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    assert bucket in limits
    assert config["run_coordinator"]["config"]["max_concurrent_runs"] == 4
