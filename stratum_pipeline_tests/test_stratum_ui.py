"""`stratum ui`: dagster dev and the MLflow UI on the embedded default, and a clean stop on a signal even when
started from a script that ignores SIGINT (a background job)."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from stratum_pipeline.cli.embedded import lock_home

from .helpers import CLEARED_PREFIXES
from .services import free_port, wait_for_http

pytestmark = pytest.mark.slow  # dagster dev and mlflow ui started and stopped (~1 min)


def _closed(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    except OSError:
        return True
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stratum_ui_serves_dagster_and_mlflow_and_stops_on_a_signal(tmp_path, sig):
    home = tmp_path / "stratum"
    dagster_port, mlflow_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED_PREFIXES)}
    log = (tmp_path / "ui.log").open("w")
    # started the way a script's background job is: SIGINT ignored
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stratum_pipeline.cli",
            "--home",
            str(home),
            "ui",
            "--port",
            str(dagster_port),
            "--mlflow-port",
            str(mlflow_port),
        ],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )

    def describe():
        return (tmp_path / "ui.log").read_text()[-3000:]

    try:
        wait_for_http(f"http://127.0.0.1:{mlflow_port}/health", process, 240, describe)
        wait_for_http(f"http://127.0.0.1:{dagster_port}/server_info", process, 240, describe)
        assert f"MLflow UI at http://127.0.0.1:{mlflow_port}" in (tmp_path / "ui.log").read_text()
        process.send_signal(sig)
        code = process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, describe()
    deadline = time.monotonic() + 30
    while not (_closed(dagster_port) and _closed(mlflow_port)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _closed(dagster_port) and _closed(mlflow_port), describe()
    lock_home(home, "test")  # the state folder is free again
    # No error of ours on the way: no sensor or schedule failing on a fresh folder, no frame of this package in a
    # stack trace. (A run of Dagster's freshness-check sensor interrupted by the stop logs Dagster's own trace.)
    text = (tmp_path / "ui.log").read_text()
    assert "SensorExecutionError" not in text and "ScheduleExecutionError" not in text, describe()
    ours = [
        line
        for line in text.splitlines()
        if line.lstrip().startswith('File "') and "/stratum_pipeline/" in line
    ]
    assert not ours, ours
