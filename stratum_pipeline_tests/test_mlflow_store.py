"""A fresh SQLite MLflow store used by several processes at once (the step processes of a run): MLflow's
schema migration used to race ("alembic CommandError ... 0 found") and fail the steps."""

import subprocess
import sys

import pytest

SCRIPT = """
import sys
from stratum_pipeline.modelops.registry import MlflowRegistry
registry = MlflowRegistry(sys.argv[1])
registry.experiment_id()
assert registry.champion_version("stratum-roas-nobody") is None
print("ok")
"""


@pytest.mark.slow  # four Python processes importing MLflow (~10 s)
def test_processes_starting_together_on_a_fresh_store_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=180), *p.communicate()) for p in processes]
    for code, out, err in results:
        assert code == 0 and out.strip() == "ok", err[-1500:]
