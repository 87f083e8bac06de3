"""MLflow model registry: one run per training, one registered model per tenant and model type.

The `champion` alias marks the version that serves; only the promotion gate moves it.
The embedded default stores runs and the registry in SQLite (`sqlite:///mlruns/mlflow.db`)
with artifacts in `mlruns/artifacts`; a deployment points `tracking_uri` at an MLflow server.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import numbers
import os
import socket
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd

from stratum_pipeline.settings import Env, mask_url
from stratum_pipeline.tenancy import DEFAULT_MODEL_OWNER

CHAMPION = "champion"


def _mlflow():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    # quiet logs: no "Downloading artifacts" progress bar on stderr for every profile or model a run reads
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    return mlflow


def _python_model_class():
    mlflow = _mlflow()

    class StratumModel(mlflow.pyfunc.PythonModel):
        """Pyfunc wrapper: ROAS models return the forecast frame, conversion models the probability."""

        def __init__(self, predictor):
            self.predictor = predictor

        def predict(self, context, model_input: pd.DataFrame, params=None):
            if hasattr(self.predictor, "predict_frame"):
                return self.predictor.predict_frame(model_input)
            return pd.DataFrame({"conversion_probability": self.predictor.predict_proba(model_input)})

    return StratumModel


def model_name(model_type: str, tenant: str) -> str:
    """Registered-model name, e.g. stratum-roas-acme_outdoor or stratum-conversion-default."""
    return f"stratum-{model_type}-{tenant}"


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    run_url: str


@dataclass(frozen=True)
class ServingModel:
    name: str
    version: str
    predictor: object
    served_by: str  # the tenant, or "default"
    # why the tenant's own champion could not serve (it exists but failed to load), None when it served or has none
    fallback_reason: str | None = None
    failed_model: str | None = None  # that champion, "name vN"


class NoModelError(LookupError):
    pass


class RegistryUnavailableError(RuntimeError):
    """The MLflow tracking server could not be reached: nothing was promoted, the champion is unchanged."""


def _is_connection_failure(exc: BaseException) -> bool:
    text = str(exc)
    return "API request to" in text and any(
        marker in text
        for marker in (
            "Max retries exceeded",
            "Connection refused",
            "timed out",
            "Connection aborted",
            "RemoteDisconnected",
            "NewConnectionError",
        )
    )


def _process_alive(pid: int) -> bool:
    """Whether `pid` is a live process on this host. A zombie (killed, not yet reaped by its parent - e.g. a
    SIGKILLed worker's pool process reparented to an init that does not reap) is dead: it runs nothing."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no procfs (not Linux) or gone meanwhile: the signal answered, trust it
        return True
    state = stat.rsplit(")", 1)[-1].split()[:1]  # the field after "(comm)", which may itself hold spaces
    return state != ["Z"]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _is_missing(exc: BaseException) -> bool:
    """MLflow's answer for a registered model or alias that does not exist."""
    return getattr(exc, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


EXPERIMENT_NAME = "stratum"
# Against a server: retries and per-request timeout, so an outage fails a run in about a minute, not the ~15
# minutes of MLflow's defaults (7 retries, 120 s). MLFLOW_HTTP_REQUEST_* variables, if set, win.
HTTP_MAX_RETRIES = 3
HTTP_TIMEOUT_SECONDS = 20


class RegistryClient:
    """MLflow tracking and model registry, for any object with `tracking_uri`, `experiment_name`,
    `http_max_retries` and `http_timeout_seconds`: `MlflowRegistry` below (serving, scripts) and the Dagster
    resource `resources.ModelRegistry` share these methods."""

    tracking_uri: str
    experiment_name: str
    http_max_retries: int
    http_timeout_seconds: int

    @contextlib.contextmanager
    def _reachable(self):
        """Turn 'server unreachable' failures into one clear RegistryUnavailableError."""
        try:
            yield
        except RegistryUnavailableError:
            raise
        except Exception as exc:
            if not _is_connection_failure(exc):
                raise
            raise RegistryUnavailableError(
                f"MLflow tracking server {mask_url(self.tracking_uri)} is unreachable ({type(exc).__name__}: connection failed "
                f"after {os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES')} retries); no model was promoted, the "
                "champion is unchanged"
            ) from None

    def _artifact_location(self) -> str | None:
        if self.tracking_uri.startswith("sqlite:///"):
            db = Path(self.tracking_uri[len("sqlite:///") :])
            return (db.parent / "artifacts").resolve().as_uri()
        return None  # an MLflow server decides

    def client(self):
        mlflow = _mlflow()
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(self.http_max_retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(self.http_timeout_seconds))
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        if self.tracking_uri.startswith("sqlite:///"):
            _create_sqlite_store_once(self.tracking_uri)
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def check_reachable(self) -> None:
        """Fail now, with RegistryUnavailableError, if the tracking server cannot be reached (before training)."""
        with self._reachable():
            self.client().search_experiments(max_results=1)

    def experiment_id(self) -> str:
        client = self.client()
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(self.experiment_name, artifact_location=self._artifact_location())
        except Exception:  # created by a concurrent run in the meantime
            return client.get_experiment_by_name(self.experiment_name).experiment_id

    def artifact_url(self, run_id: str, path: str) -> str | None:
        """A URL that serves one artifact of a run (the MLflow UI's or the tracking server's), None without one."""
        base = (
            self.tracking_uri
            if self.tracking_uri.startswith(("http://", "https://"))
            else (os.environ.get(Env.MLFLOW_UI_URL) or "").strip()
        )
        if not base.startswith(("http://", "https://")):
            return None
        return f"{mask_url(base).rstrip('/')}/get-artifact?path={path}&run_uuid={run_id}"

    def run_url(self, run_id: str) -> str:
        experiment = self.experiment_id()
        if self.tracking_uri.startswith(("http://", "https://")):
            return f"{mask_url(self.tracking_uri).rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"
        # a local store: the MLflow UI that serves it (`stratum ui` starts one and sets the variable)
        ui = (os.environ.get(Env.MLFLOW_UI_URL) or "").strip()
        if ui.startswith(("http://", "https://")):
            return f"{ui.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"
        return f"mlflow ui --backend-store-uri {mask_url(self.tracking_uri)}  ->  #/experiments/{experiment}/runs/{run_id}"

    def log_and_register(
        self,
        name: str,
        predictor,
        input_example: pd.DataFrame,
        params: dict,
        metrics: dict,
        tags: dict,
        artifacts: dict[str, dict] | None = None,
        files: dict[str, bytes] | None = None,
    ) -> RegisteredVersion:
        """One MLflow run with params, metrics, tags, JSON artifacts (e.g. the training feature profile), files
        (e.g. PNG plots of the holdout) and the model (signature + input example), registered as `name`."""
        with self._reachable():
            return self._log_and_register(
                name, predictor, input_example, params, metrics, tags, artifacts, files
            )

    def _log_and_register(
        self, name, predictor, input_example, params, metrics, tags, artifacts, files=None
    ) -> RegisteredVersion:
        mlflow = _mlflow()
        self.client()
        experiment_id = self.experiment_id()
        example = input_example.head(5).reset_index(drop=True)
        # Integers as floats in the signature: a missing value at inference must not break schema enforcement.
        example = example.astype(
            {c: float for c in example.columns if pd.api.types.is_integer_dtype(example[c])}
        )
        output = _python_model_class()(predictor).predict(None, example)
        signature = mlflow.models.infer_signature(example, output)
        self.close_stale_runs(name)
        owner = {"stratum_model": name, "stratum_host": socket.gethostname(), "stratum_pid": str(os.getpid())}
        with mlflow.start_run(
            experiment_id=experiment_id, tags={**{k: str(v) for k, v in tags.items()}, **owner}
        ) as run:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            mlflow.log_metrics(
                {
                    k: float(v)
                    for k, v in metrics.items()  # numbers only (e.g. not the naive's name)
                    if isinstance(v, numbers.Real) and pd.notna(v)
                }
            )
            for path, content in (artifacts or {}).items():
                mlflow.log_dict(content, path)
            for path, content in (files or {}).items():
                with tempfile.TemporaryDirectory() as folder:
                    (Path(folder) / path).write_bytes(content)
                    mlflow.log_artifact(str(Path(folder) / path))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=_python_model_class()(predictor),
                signature=signature,
                input_example=example,
                pip_requirements=["xgboost-cpu", "scikit-learn", "pandas<3", "numpy"],
            )
            version = self._new_version(name, info, run.info.run_id)
        return RegisteredVersion(name, version, run.info.run_id, self.run_url(run.info.run_id))

    def _new_version(self, name: str, info, run_id: str) -> str:
        """Register the logged model as a new version of `name` (the registered model created on first use)
        with the client, not `log_model(registered_model_name=...)`, whose progress lines MLflow prints to
        stderr in the middle of the demo's and the runs' output; one log line of ours says it instead."""
        client = self.client()
        try:
            client.create_registered_model(name)
        except Exception as exc:
            if getattr(exc, "error_code", None) not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        created = client.create_model_version(
            name, source=info.model_uri, run_id=run_id, model_id=info.model_id
        )
        logging.getLogger(__name__).info(f"registered {name} version {created.version} (MLflow run {run_id})")
        return str(created.version)

    def close_stale_runs(self, name: str) -> list[str]:
        """End as FAILED the RUNNING training runs of `name` whose process (on this host) is gone - e.g. killed
        inside `log_model` - so they do not stay RUNNING forever; returns their run ids."""
        client = self.client()
        closed = []
        try:
            runs = client.search_runs(
                [self.experiment_id()],
                max_results=100,
                filter_string=(
                    f"attributes.status = 'RUNNING' and tags.stratum_model = '{name}' "
                    f"and tags.stratum_host = '{socket.gethostname()}'"
                ),
            )
        except Exception as exc:  # best effort: never a reason not to train
            logging.getLogger(__name__).warning(
                f"could not look for stale MLflow runs of {name}: {type(exc).__name__}"
            )
            return closed
        for run in runs:
            pid = run.data.tags.get("stratum_pid", "")
            if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
                client.set_terminated(run.info.run_id, status="FAILED")
                closed.append(run.info.run_id)
        return closed

    def champion_version(self, name: str) -> str | None:
        """The champion's version, None if the model or alias does not exist; an unreachable server is an
        error (never mistaken for 'no champion')."""
        client = self.client()
        with self._reachable():
            try:
                return str(client.get_model_version_by_alias(name, CHAMPION).version)
            except Exception as exc:
                if _is_missing(exc):
                    return None
                raise

    def champion_summary(self, name: str) -> dict | None:
        """The champion of `name`: version, run id, training start (UTC) and holdout metrics; None if none."""
        found = self.champion_run(name)
        if found is None:
            return None
        version, run_id = found
        run = self.client().get_run(run_id)
        started = datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc).replace(tzinfo=None)
        return {
            "version": version,
            "run_id": run_id,
            "trained_at": started,
            "metrics": dict(run.data.metrics),
        }

    def champion_run(self, name: str) -> tuple[str, str] | None:
        """(version, MLflow run id) of the champion of `name`, None if there is none (an outage is an error)."""
        client = self.client()
        with self._reachable():
            try:
                mv = client.get_model_version_by_alias(name, CHAMPION)
            except Exception as exc:
                if _is_missing(exc):
                    return None
                raise
        return str(mv.version), mv.run_id

    def run_dict(self, run_id: str, path: str) -> dict | None:
        """A JSON artifact of a run (cached per process), or None if the run has none."""
        self.client()
        return _run_dict(self.tracking_uri, run_id, path)

    def version_metrics(self, name: str, version: str) -> dict[str, float]:
        """The holdout metrics a registered version was trained with ({} if unknown)."""
        client = self.client()
        try:
            return dict(client.get_run(client.get_model_version(name, str(version)).run_id).data.metrics)
        except Exception:
            return {}

    def log_monitoring(self, name: str, version: str, tenant: str, daily: list[tuple[date, dict]]) -> str:
        """Log live accuracy of a model version to its monitoring run (one per version, tagged with it), one metric
        point per day (step = the day's ordinal, so MLflow charts them over time); returns the run id."""
        client = self.client()
        experiment_id = self.experiment_id()
        found = client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.monitoring = 'accuracy' and tags.model_name = '{name}' and tags.model_version = '{version}'"
            ),
            max_results=1,
        )
        run_id = (
            found[0].info.run_id
            if found
            else client.create_run(
                experiment_id,
                run_name=f"monitoring {name} v{version}",
                tags={
                    "monitoring": "accuracy",
                    "model_name": name,
                    "model_version": str(version),
                    "tenant": tenant,
                },
            ).info.run_id
        )
        mlflow = _mlflow()
        metrics = [
            mlflow.entities.Metric(
                key,
                float(value),
                int(datetime(day.year, day.month, day.day).timestamp() * 1000),
                day.toordinal(),
            )
            for day, values in daily
            for key, value in values.items()
            if value is not None and pd.notna(value)
        ]
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start : start + 1000])
        return run_id

    def load(self, name: str, version: str):
        """The predictor object of a registered version (cached per process)."""
        return _load(self.tracking_uri, name, str(version))

    def load_compatible(self, name: str, version: str):
        """Like `load`, but NoModelError if the version was pickled by an incompatible version of this code."""
        predictor = self.load(name, version)
        if getattr(predictor, "format_", None) != getattr(type(predictor), "FORMAT", None):
            raise NoModelError(
                f"{name} v{version} was trained by an incompatible version of this code: "
                "retrain it (the promotion gate replaces it)"
            )
        return predictor

    def serving_model(self, model_type: str, tenant: str) -> ServingModel:
        """The tenant's champion, else the default model's champion; NoModelError if neither can serve.

        A tenant champion that cannot be loaded - a corrupted or missing artifact, or one pickled by an
        incompatible version of this code - is skipped with a warning naming the tenant and the version: the
        tenant is served by the default model (`fallback_reason` says why) until it is retrained. An
        unreachable tracking server is not a tenant's problem and stays an error."""
        reason = failed = None
        for owner in (tenant, DEFAULT_MODEL_OWNER):
            name = model_name(model_type, owner)
            version = self.champion_version(name)
            if version is None:
                continue
            try:
                with self._reachable():
                    predictor = self.load_compatible(name, version)
                return ServingModel(name, version, predictor, owner, reason, failed)
            except RegistryUnavailableError:
                raise
            except Exception as exc:
                problem = (
                    str(exc)
                    if isinstance(exc, NoModelError)
                    else f"{name} v{version} could not be loaded: {type(exc).__name__}: {_first_line(exc)}"
                )
                if owner == DEFAULT_MODEL_OWNER:
                    raise NoModelError(
                        f"no {model_type} model serves tenant {tenant!r}: "
                        f"{reason + '; ' if reason else ''}{problem}"
                    ) from None
                reason, failed = problem, f"{name} v{version}"
                logging.getLogger(__name__).warning(
                    f"{problem}; serving tenant {tenant!r} from the default model"
                )
        raise NoModelError(
            f"no {model_type} model serves tenant {tenant!r}: "
            + (
                f"{reason}, and {model_name(model_type, DEFAULT_MODEL_OWNER)} has no champion"
                if reason
                else f"neither {model_name(model_type, tenant)} nor {model_name(model_type, DEFAULT_MODEL_OWNER)} has a "
                "champion (train the models first)"
            )
        )

    def set_champion(self, name: str, version: str) -> None:
        with self._reachable():
            self.client().set_registered_model_alias(name, CHAMPION, str(version))

    def version_tags(self, name: str, version: str) -> dict:
        return dict(self.client().get_model_version(name, str(version)).tags)

    def tag_version(self, name: str, version: str, tags: dict) -> None:
        client = self.client()
        with self._reachable():
            for key, value in tags.items():
                client.set_model_version_tag(name, str(version), key, str(value))


@dataclass(frozen=True)
class MlflowRegistry(RegistryClient):
    """The registry without Dagster: what the product backend's `InferenceService` and scripts use."""

    tracking_uri: str
    experiment_name: str = EXPERIMENT_NAME
    http_max_retries: int = HTTP_MAX_RETRIES
    http_timeout_seconds: int = HTTP_TIMEOUT_SECONDS


@functools.lru_cache(maxsize=None)
def _create_sqlite_store_once(tracking_uri: str) -> None:
    """Create (and migrate) a SQLite MLflow store once per process, one process at a time.

    MLflow creates its tables on a store's first use; processes doing that at once - the step processes of a
    run on a fresh store - race its alembic migration and fail ("CommandError: Online migration expected to
    match one row ... 0 found"). An exclusive lock on a file beside the database serialises the first use."""
    import fcntl

    db = Path(tracking_uri[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.parent / f".{db.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = _mlflow().MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        client.search_experiments(max_results=1)  # the tracking store's tables
        client.search_registered_models(max_results=1)  # the registry's


@functools.lru_cache(maxsize=256)
def _run_dict(tracking_uri: str, run_id: str, path: str) -> dict | None:
    mlflow = _mlflow()
    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}")
    except Exception:  # trained before profiles were recorded
        return None


@functools.lru_cache(maxsize=64)
def _load(tracking_uri: str, name: str, version: str):
    mlflow = _mlflow()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    # suppress_warnings: skip MLflow's comparison of the model's pip requirements with every installed
    # distribution (0.6 s CPU, 2 s wall per process here, before the daily forecasts serve a single tenant); what
    # decides whether a pickled model can serve is its format, checked by `load_compatible`
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}", suppress_warnings=True)
    return model.unwrap_python_model().predictor
