"""The embedded default: the state folder (--home), the environment it implies, its Dagster instance's
dagster.yaml, the folder's lock, and the runs a killed process left behind."""

from __future__ import annotations

import os
from pathlib import Path

from stratum_pipeline.settings import Env

DEFAULT_HOME = ".stratum"
# The demo's first day, written by `stratum demo` into the state folder: the embedded default's partitions start.
PARTITIONS_START_FILE = "partitions_start"


def embedded_environment(home: Path) -> dict[str, str]:
    """The embedded default: SQLite files and a SQLite Dagster instance under `home`."""
    home = home.resolve()
    return {
        Env.SOURCE_URL: f"sqlite:///{home / 'source.db'}",
        Env.WAREHOUSE_URL: f"sqlite:///{home / 'warehouse.db'}",
        Env.DAGSTER_HOME: str(home / "dagster_home"),
        # MLflow beside the home folder: ./mlruns for the default ./.stratum
        Env.MLFLOW_TRACKING_URI: f"sqlite:///{home.parent / 'mlruns' / 'mlflow.db'}",
        # the MLflow UI `stratum ui` starts on that store: the model assets' MLflow links point at it
        Env.MLFLOW_UI_URL: "http://127.0.0.1:5000",
        # where champions are published as the existing backend's {model_type}_t{tenant}.joblib files
        Env.MODELS_PATH: str(home / "models"),
        **_recorded_partitions_start(home),
    }


def _recorded_partitions_start(home: Path) -> dict[str, str]:
    """{STRATUM_PARTITIONS_START: the demo's first day} once `stratum demo` has written it into `home`."""
    recorded = home / PARTITIONS_START_FILE
    value = recorded.read_text().strip() if recorded.is_file() else ""
    return {Env.PARTITIONS_START: value} if value else {}


def record_partitions_start(home: Path, first_day) -> None:
    """The demo's data starts at `first_day`: the embedded default's daily partitions start there too (for this
    process, and for `stratum ui` and plain `dagster dev` later, through embedded_environment)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / PARTITIONS_START_FILE).write_text(f"{first_day.isoformat()}\n")
    os.environ[Env.PARTITIONS_START] = first_day.isoformat()


# Variables the commands read: set but empty is an error (never "the current folder" or an empty URL).
CHECKED_VARIABLES = (
    Env.SOURCE_URL,
    Env.WAREHOUSE_URL,
    Env.DAGSTER_HOME,
    Env.MLFLOW_TRACKING_URI,
    Env.MODELS_PATH,
    Env.REDIS_URL,
    Env.DAGSTER_PG_URL,
)


# The embedded Dagster instance: SQLite storage and local artifacts under the state folder's dagster_home,
# telemetry off. The daemon of `stratum ui` (dagster dev) fails runs stuck starting or cancelling; runs whose
# process was killed (kill -9) are failed by `fail_orphaned_runs` when `stratum demo` or `stratum ui` next
# takes the folder's lock. The repository's top-level dagster.yaml is this text for the default ./.stratum,
# so plain `dagster dev` in the repository root opens the same instance as `stratum ui`.
EMBEDDED_RUN_MONITORING = """run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
  poll_interval_seconds: 60
"""


def embedded_instance_yaml(dagster_home: str) -> str:
    """The embedded instance's dagster.yaml with everything under `dagster_home`."""
    return f"""storage:
  sqlite:
    base_dir: {dagster_home}
local_artifact_storage:
  module: dagster._core.storage.root
  class: LocalArtifactStorage
  config:
    base_dir: {dagster_home}
compute_logs:
  module: dagster._core.storage.local_compute_log_manager
  class: LocalComputeLogManager
  config:
    base_dir: {dagster_home}/storage
telemetry:
  enabled: false
{EMBEDDED_RUN_MONITORING}"""


def fail_orphaned_runs(home: Path) -> list[str]:
    """Mark FAILED the runs of the embedded instance still STARTING, STARTED or CANCELING: with the folder's lock
    held no other stratum process can be running them, so their process died (killed). Only for the embedded
    instance under `home` (a DAGSTER_HOME set elsewhere may be shared); returns the run ids."""
    if Path(os.environ[Env.DAGSTER_HOME]).resolve() != Path(embedded_environment(home)[Env.DAGSTER_HOME]):
        return []
    import dagster as dg

    instance = dg.DagsterInstance.get()
    orphaned = instance.get_runs(
        filters=dg.RunsFilter(
            statuses=[
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
                dg.DagsterRunStatus.CANCELING,
            ]
        )
    )
    for run in orphaned:
        instance.report_run_failed(
            run,
            "the process running it ended without finishing (killed); found by "
            "the next stratum demo or ui on this folder",
        )
    return [run.run_id for run in orphaned]


def apply_environment(home: Path) -> dict[str, str]:
    """Set the embedded defaults for variables that are not already set; return the effective values.

    The embedded models folder is created; a models folder set by the caller must exist already.
    A variable that is set but empty is a one-line error (unset it for the embedded default).
    """
    defaults = embedded_environment(home)
    for key in CHECKED_VARIABLES:
        if key in os.environ and not os.environ[key].strip():
            hint = f" (the embedded default is {defaults[key]})" if key in defaults else ""
            raise Fail(f"{key} is set but empty: unset it to use the default{hint}, or give it a value")
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    if os.environ[Env.MODELS_PATH] == defaults[Env.MODELS_PATH]:
        Path(defaults[Env.MODELS_PATH]).mkdir(parents=True, exist_ok=True)
    dagster_home = Path(os.environ[Env.DAGSTER_HOME])
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_config = dagster_home / "dagster.yaml"
    if not instance_config.exists():
        instance_config.write_text(embedded_instance_yaml(str(dagster_home.resolve())))
    if "run_monitoring" not in instance_config.read_text():
        with instance_config.open("a") as out:
            out.write(EMBEDDED_RUN_MONITORING)
    return {key: os.environ[key] for key in embedded_environment(home)}


class Fail(Exception):
    """A user-facing error: printed as one line, exit code 2."""


_held_locks: dict[Path, int] = {}


def lock_home(home: Path, command: str) -> int:
    """Hold an exclusive lock on the embedded state folder for this process's lifetime (and, via an inherited
    descriptor, for the process it execs). A second `stratum demo` or `stratum ui` on the same folder gets a
    one-line _Fail instead of racing the first one's SQLite files and MLflow schema migration."""
    import fcntl

    home = home.resolve()
    if home in _held_locks:
        return _held_locks[home]
    home.mkdir(parents=True, exist_ok=True)
    path = home / ".stratum.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise Fail(
            f"another stratum demo or ui is using {home} ({holder}): wait for it to finish or use another --home"
        )
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"stratum {command}, pid {os.getpid()}".encode(), 0)
    _held_locks[home] = fd
    return fd
