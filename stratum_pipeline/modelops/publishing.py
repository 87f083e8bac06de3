"""Publishing champions as the seed backend's model files: `{model_type}_t{tenant}.joblib` and `{model_type}_default.joblib`.

The seed's `InferenceService._get_model` does `joblib.load(ML_MODELS_PATH/{model_type}_t{tenant_id}.joblib)`
and falls back to `{model_type}_default.joblib`. Each file holds the predictor object itself
(`ROASPredictor` / `ConversionPredictor`), so `.predict(campaign)` / `.predict(user)` work straight
after loading. Files are written atomically: a temporary file in the same folder, flushed and
fsynced, then `os.replace`d over the old one, so a reader sees the old model or the new one, never
half a file. Beside each model, `{file stem}.manifest.json` records which registered version it
holds; publishing the same version again is a no-op. No Dagster or MLflow here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import joblib

from stratum_pipeline.tenancy import DEFAULT_MODEL_OWNER, validate_tenant_id


def model_filename(model_type: str, owner: str) -> str:
    """The seed's file name: roas_t<tenant>.joblib, or roas_default.joblib for the global model."""
    if owner == DEFAULT_MODEL_OWNER:
        return f"{model_type}_default.joblib"
    return f"{model_type}_t{validate_tenant_id(owner)}.joblib"


def manifest_path(model_file: Path) -> Path:
    return model_file.with_name(model_file.stem + ".manifest.json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, write: Callable[[object], None]) -> None:
    """Call `write(file object)` on a temporary file beside `path`, fsync it and rename it over `path`.

    On any error the temporary file is removed and `path` keeps its previous content.
    """
    path = Path(path)
    handle = tempfile.NamedTemporaryFile(
        "wb", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:  # the rename itself survives a crash once the folder is synced
        os.fsync(directory)
    finally:
        os.close(directory)


def read_manifest(model_file: Path) -> dict | None:
    try:
        return json.loads(manifest_path(model_file).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@dataclass(frozen=True)
class Publication:
    file: Path
    model: str  # registered model name
    version: str
    published: bool  # False: the file already held this version
    sha256: str

    def metadata(self) -> dict:
        return {
            "file": str(self.file),
            "model": self.model,
            "version": self.version,
            "published": self.published,
            "sha256": self.sha256,
        }


def is_current(model_file: Path, model: str, version: str) -> bool:
    """The file exists, is intact and holds `model` version `version` per its manifest."""
    manifest = read_manifest(model_file)
    return (
        manifest is not None
        and model_file.exists()
        and manifest.get("model") == model
        and str(manifest.get("version")) == str(version)
        and manifest.get("sha256") == _sha256(model_file)
    )


def publish(
    directory: Path,
    model_type: str,
    owner: str,
    model: str,
    version: str,
    load_predictor: Callable[[], object],
) -> Publication:
    """Write `model` `version` (loaded only when needed) as the seed's file for `owner`, unless it is there already."""
    target = Path(directory) / model_filename(model_type, owner)
    if is_current(target, model, version):
        return Publication(target, model, str(version), False, read_manifest(target)["sha256"])
    predictor = load_predictor()
    atomic_write(target, lambda handle: joblib.dump(predictor, handle))
    sha = _sha256(target)
    manifest = {
        "model": model,
        "version": str(version),
        "model_type": model_type,
        "owner": owner,
        "file": target.name,
        "sha256": sha,
        "class": f"{type(predictor).__module__}.{type(predictor).__qualname__}",
        "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write(manifest_path(target), lambda handle: handle.write(json.dumps(manifest, indent=2).encode()))
    return Publication(target, model, str(version), True, sha)
