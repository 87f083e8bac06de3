"""The code location of plain `dagster dev` in the repository root (./workspace.yaml): the project's definitions
on the embedded default's files under the current folder - ./.stratum (source, warehouse, model files) and
./mlruns (MLflow) - the same ones `stratum demo` and `stratum ui` use with the default `--home`.

It reads no environment variable: its resources are fixed to those files. A deployment loads
`stratum_pipeline.definitions` (deploy/workspace.yaml), whose resources come from the environment.
"""

from pathlib import Path

from stratum_pipeline.cli.embedded import DEFAULT_HOME, embedded_environment
from stratum_pipeline.definitions import build_definitions
from stratum_pipeline.resources import ModelFiles, ModelRegistry, SourceDatabase, Warehouse
from stratum_pipeline.settings import Env

EMBEDDED = embedded_environment(Path(DEFAULT_HOME))

defs = build_definitions(
    {
        "source": SourceDatabase(url=EMBEDDED[Env.SOURCE_URL]),
        "warehouse": Warehouse(url=EMBEDDED[Env.WAREHOUSE_URL]),
        "registry": ModelRegistry(tracking_uri=EMBEDDED[Env.MLFLOW_TRACKING_URI]),
        "model_files": ModelFiles(path=EMBEDDED[Env.MODELS_PATH]),
    }
)
