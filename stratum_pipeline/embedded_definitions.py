"""The code location of plain `dagster dev` in the repository root (pyproject's [tool.dagster], and the root's
workspace.yaml for `-w workspace.yaml`): the project's definitions
on the embedded default's files under the current folder - ./.stratum (source, warehouse, model files) and
./mlruns (MLflow) - the same ones `stratum demo` and `stratum ui` use with the default `--home`.

Its resources are fixed to those files; it reads no environment variable except the daily partitions' start
(STRATUM_PARTITIONS_START, which `stratum demo` records in ./.stratum). A deployment loads
`stratum_pipeline.definitions` (deploy/workspace.yaml), whose resources come from the environment.
"""

import os
import warnings
from pathlib import Path

from stratum_pipeline.cli.embedded import DEFAULT_HOME, embedded_environment
from stratum_pipeline.settings import Env

EMBEDDED = embedded_environment(Path(DEFAULT_HOME))

# The daily partitions start at the demo's first day once `stratum demo` recorded it in ./.stratum. Dagster fixes
# partitions when the definitions load, so the value is put in place before they are imported (a value the
# caller set wins).
if Env.PARTITIONS_START in EMBEDDED:
    os.environ.setdefault(Env.PARTITIONS_START, EMBEDDED[Env.PARTITIONS_START])

from stratum_pipeline.definitions import build_definitions  # noqa: E402  (after the partitions' start is set)
from stratum_pipeline.resources import ModelFiles, ModelRegistry, SourceDatabase, Warehouse  # noqa: E402

# Not a switch: a variable set for another database is said, not silently ignored.
_elsewhere = [
    k
    for k in (Env.SOURCE_URL, Env.WAREHOUSE_URL, Env.MLFLOW_TRACKING_URI, Env.MODELS_PATH)
    if os.environ.get(k) and os.environ[k] != EMBEDDED[k]
]
if _elsewhere:
    warnings.warn(
        f"{', '.join(_elsewhere)} set, but this code location is the embedded default (./.stratum): "
        "for the environment's databases load `-m stratum_pipeline.definitions`",
        stacklevel=1,
    )

defs = build_definitions(
    {
        "source": SourceDatabase(url=EMBEDDED[Env.SOURCE_URL]),
        "warehouse": Warehouse(url=EMBEDDED[Env.WAREHOUSE_URL]),
        "registry": ModelRegistry(tracking_uri=EMBEDDED[Env.MLFLOW_TRACKING_URI]),
        "model_files": ModelFiles(path=EMBEDDED[Env.MODELS_PATH]),
    }
)
