"""Serving from ML_MODELS_PATH, as the seed backend's `InferenceService._get_model` does.

`{model_type}_t{tenant}.joblib`, else `{model_type}_default.joblib` (the files the model-file assets
publish, see `stratum_pipeline.modelops.publishing`). A file is loaded once per change: the cache is keyed by its
path, modification time and size, so a republished model serves from the next lookup on (the service
looks a tenant's model up again every `champion_refresh_seconds`). The version the service reports is
the registered version from the file's manifest, if there is one, and the file's modification time.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import joblib

from stratum_pipeline.modelops.publishing import model_filename, read_manifest
from stratum_pipeline.modelops.registry import NoModelError, ServingModel
from stratum_pipeline.settings import Env, SettingsError
from stratum_pipeline.tenancy import DEFAULT_MODEL_OWNER

log = logging.getLogger(__name__)


def check_readable_models_path(path: str | os.PathLike, variable: str = Env.MODELS_PATH) -> Path:
    """The models folder for serving: it must exist and be a readable folder (it need not be writable)."""
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise SettingsError(f"{variable}={str(path)!r} is not an existing folder")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise SettingsError(f"{variable}={str(path)!r} is not readable by this process")
    return folder


@functools.lru_cache(maxsize=64)
def _load(path: str, mtime_ns: int, size: int):
    return joblib.load(path)


class ModelFileStore:
    """The registry interface `InferenceService` needs (`serving_model`), over the seed's .joblib files."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def serving_model(self, model_type: str, tenant: str) -> ServingModel:
        """The tenant's file, else the default file; NoModelError if neither exists (or the default is stale)."""
        for owner in (tenant, DEFAULT_MODEL_OWNER):
            path = self.directory / model_filename(model_type, owner)
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            predictor = _load(str(path), stat.st_mtime_ns, stat.st_size)
            if getattr(predictor, "format_", None) != getattr(type(predictor), "FORMAT", None):
                message = f"{path.name} was written by an incompatible version of this code: republish it"
                if owner == DEFAULT_MODEL_OWNER:
                    raise NoModelError(message)
                log.warning(
                    f"{message}; serving tenant {tenant!r} from {model_filename(model_type, DEFAULT_MODEL_OWNER)}"
                )
                continue
            manifest = read_manifest(path) or {}
            version = f"{manifest.get('version', 'file')}@{stat.st_mtime_ns}"
            return ServingModel(path.name, version, predictor, owner)
        raise NoModelError(
            f"no {model_type} model serves tenant {tenant!r}: neither {model_filename(model_type, tenant)} "
            f"nor {model_filename(model_type, DEFAULT_MODEL_OWNER)} is in {self.directory}"
        )
