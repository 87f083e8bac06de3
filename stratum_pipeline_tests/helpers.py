"""Helpers the test modules share (fixtures live in conftest.py): running the `stratum` command, training models."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from stratum_pipeline import cli

# Variables a test's `stratum` process must not inherit from the developer's or CI's shell.
CLEARED_PREFIXES = ("STRATUM_", "DAGSTER_", "ML_", "GOOGLE_", "VERTEX_")


def stratum_cli(
    home, *args, stdin: str | None = None, timeout: float = 180, **env
) -> subprocess.CompletedProcess:
    """`stratum --home HOME ARGS` in a subprocess with a clean environment plus `env`, run beside `home`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED_PREFIXES)}
    return subprocess.run(
        [sys.executable, "-m", "stratum_pipeline.cli", "--home", str(home), *args],
        input=stdin,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(Path(home).parent),
    )


def cli_in_process(*args) -> tuple[int, str, str]:
    """`stratum ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


def train(defs, instance, job: str, tenant: str | None = None):
    """Run a training job (a tenant's, or the default models' with `tenant=None`) with the test dataset's
    minimums: (result, metadata by asset, check passed by asset)."""
    from stratum_pipeline.automation.local_runs import check_evaluations, execute_tenant_job, materialized

    from .model_data import RUN_CONFIG

    assets = (
        ("roas_model", "conversion_model") if tenant else ("roas_default_model", "conversion_default_model")
    )
    result = execute_tenant_job(
        defs, job, tenant, instance, {"ops": {name: {"config": RUN_CONFIG} for name in assets}}
    )
    checks = {e.asset_key.to_user_string(): e.passed for e in check_evaluations(result)}
    return result, materialized(result), checks


def defs_for(urls):
    """The project's definitions on (source, warehouse) URLs; the registry is unused by the daily jobs."""
    import tempfile

    from stratum_pipeline.definitions import build_definitions
    from stratum_pipeline.resources import ModelRegistry, SourceDatabase, Warehouse

    registry = ModelRegistry(
        tracking_uri=f"sqlite:///{tempfile.gettempdir()}/stratum-unused-mlruns/mlflow.db"
    )
    return build_definitions(
        {"source": SourceDatabase(url=urls[0]), "warehouse": Warehouse(url=urls[1]), "registry": registry}
    )


def seed_get_model(models_path, model_type: str, tenant_id: str):
    """The seed backend's InferenceService._get_model, verbatim in behaviour: tenant file, else the default file."""
    import joblib

    path = os.path.join(models_path, f"{model_type}_t{tenant_id}.joblib")
    if not os.path.exists(path):
        path = os.path.join(models_path, f"{model_type}_default.joblib")
    return joblib.load(path)


def checks_of(result) -> dict[str, bool]:
    """Whether each `asset:check` evaluated in the run passed."""
    from stratum_pipeline.automation.local_runs import checks_by_name

    return {name: evaluation.passed for name, evaluation in checks_by_name(result).items()}


def forecast_rows(tenant: str, campaigns: list[str], day) -> pd.DataFrame:
    """daily_roas_forecasts rows of one tenant's campaigns for one day (fixed figures)."""
    row = {
        "date": day,
        "forecast_date": day,
        "predicted_roas": 1.0,
        "confidence_lower": 0.5,
        "confidence_upper": 1.5,
        "trend": "stable",
        "recommendation_action": "maintain",
        "budget_change_percent": 0,
        "recommendation_reason": "-",
        "model_name": "m",
        "model_version": "1",
        "served_by": "default",
    }
    return pd.DataFrame([{**row, "tenant_id": tenant, "campaign_id": c} for c in campaigns])


def monitoring_resources(tmp) -> dict:
    """SQLite source and warehouse and an MLflow store under `tmp`: what the monitoring scenarios run on."""
    from stratum_pipeline.resources import ModelRegistry, SourceDatabase, Warehouse

    return {
        "source": SourceDatabase(url=f"sqlite:///{Path(tmp) / 'source.db'}"),
        "warehouse": Warehouse(url=f"sqlite:///{Path(tmp) / 'warehouse.db'}"),
        "registry": ModelRegistry(tracking_uri=f"sqlite:///{Path(tmp) / 'mlruns' / 'mlflow.db'}"),
    }


def write_features(warehouse, frames, until) -> None:
    """Land generated campaign, session and creative features (demo.features.feature_frames) up to `until`."""
    from stratum_pipeline.storage import warehouse_schema as wh

    for table, frame in zip((wh.campaign_features, wh.session_features, wh.creative_features), frames):
        part = frame[pd.to_datetime(frame["date"]).dt.date <= until]
        dates = pd.to_datetime(part["date"])
        warehouse.replace_partitions(table, part, dates.min().date(), dates.max().date())
