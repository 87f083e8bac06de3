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


def test_a_killed_training_process_counts_as_gone_even_before_it_is_reaped():
    """A SIGKILLed worker's step process can stay a zombie (its parent died too, and the container's init does
    not reap): its RUNNING MLflow run must still be closed by the next training, so a zombie is not alive."""
    import os
    import signal
    import time

    from stratum_pipeline.modelops.registry import _process_alive

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _process_alive(child.pid) and _process_alive(os.getpid())
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _process_alive(child.pid) and time.monotonic() < deadline:  # not reaped: a zombie
            time.sleep(0.05)
        assert not _process_alive(child.pid)
        assert child.poll() == -signal.SIGKILL  # it was a zombie until this wait, and is gone now
        assert not _process_alive(child.pid)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
