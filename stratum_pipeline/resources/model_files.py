"""The folder the seed backend loads its .joblib models from (ML_MODELS_PATH)."""

from pathlib import Path

import dagster as dg

from stratum_pipeline.settings import check_models_path


class ModelFiles(dg.ConfigurableResource):
    """ML_MODELS_PATH: where champions are published as {model_type}_t{tenant}.joblib / {model_type}_default.joblib."""

    path: str

    def directory(self) -> Path:
        """The validated folder (exists, writable); a one-line SettingsError otherwise."""
        return check_models_path(self.path)
