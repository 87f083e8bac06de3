"""The seed's InferenceService: `await service.get_prediction(model_type, input_data, tenant_id)`, with a cache.

- `InferenceService()` with no arguments builds itself from the environment, like the seed's:
  ML_PROVIDER, ML_MODELS_PATH, REDIS_URL (or STRATUM_REDIS_URL) and STRATUM_MLFLOW_TRACKING_URI. With
  the MLflow URI set, models come from the registry; with only ML_MODELS_PATH, from the seed's
  `{model_type}_t{tenant}.joblib` files, else `{model_type}_default.joblib` (`serving/model_files.py`).
  `InferenceService(registry, cache, ...)` is the explicit form the pipeline and its tests use.
- `get_prediction` returns the answer as a dict that can also be awaited: `await
  service.get_prediction(...)` (the seed's call) and `service.get_prediction(...)` both give the same
  dict. Awaiting it does not hand the event loop to other tasks while the prediction runs (a local
  prediction takes about a millisecond); `await service.get_prediction_async(...)` runs it in a worker
  thread instead, for a cold MLflow load or a Vertex AI call inside a busy event loop.
- Tenant ids may be integers (the seed's): 123 and "123" are the same tenant, model and cache entry.
- Models come from the MLflow registry: the tenant's champion, else the default model's; each
  version is loaded once per process. Which version is champion is looked up at most every
  `champion_refresh_seconds`.
- Results are cached with the seed's TTLs (ROAS 30 min, real-time conversion 15 min, fatigue 24 h).
  The key holds the model name and version and the tenant's data version, so a new champion or new
  data for the tenant (`notify_new_data`) makes old entries unreachable.
- Fatigue scoring needs no trained model; it is cached the same way.
- With a `remote` predictor (ML_PROVIDER=vertex: `serving/vertex.py`) ROAS and conversion
  predictions come from the Vertex AI endpoint instead; a Vertex failure is an error, or, with
  `remote_fallback=True` (ML_VERTEX_FALLBACK=local), a warning and the local model's answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping

from stratum_pipeline.ml.fatigue import FatigueScorer
from stratum_pipeline.modelops.registry import NoModelError
from stratum_pipeline.serving.vertex import VertexError
from stratum_pipeline.settings import Env, Settings, SettingsError, check_url
from stratum_pipeline.tenancy import validate_tenant_id

log = logging.getLogger(__name__)

TTL_SECONDS = {"roas": 30 * 60, "conversion": 15 * 60, "fatigue": 24 * 3600}
MODEL_TYPES = tuple(TTL_SECONDS)


class PredictionError(ValueError):
    """Bad input or an unknown tenant: a one-line message for the caller."""


class Prediction(dict):
    """A prediction: a plain dict that can also be awaited (`await` gives the dict itself)."""

    __slots__ = ()

    def __await__(self):
        return _ready(self).__await__()


async def _ready(value):
    return value


class _NoLocalModels:
    """ML_PROVIDER=vertex without local models: every local lookup is a NoModelError."""

    def serving_model(self, model_type: str, tenant: str):
        raise NoModelError(
            f"no local {model_type} model for tenant {tenant!r}: set ML_MODELS_PATH or "
            "STRATUM_MLFLOW_TRACKING_URI to serve local models"
        )


def service_parts_from_env(env: Mapping[str, str] | None = None) -> dict:
    """registry, cache, remote and remote_fallback for `InferenceService()`, from the environment.

    Models: the MLflow registry when STRATUM_MLFLOW_TRACKING_URI is set, else the .joblib files in
    ML_MODELS_PATH (read-only is fine), else none (only with ML_PROVIDER=vertex). Cache: Redis at
    STRATUM_REDIS_URL or the seed's REDIS_URL, else in-process. A bad setting is a one-line SettingsError."""
    from stratum_pipeline.modelops.registry import MlflowRegistry
    from stratum_pipeline.serving.cache import cache_from_url
    from stratum_pipeline.serving.model_files import ModelFileStore, check_readable_models_path
    from stratum_pipeline.serving.vertex import remote_from_settings

    env = os.environ if env is None else env
    models_path = (env.get(Env.MODELS_PATH) or "").strip() or None
    # The models folder is checked here for serving (readable); Settings checks it for publishing (writable).
    settings = Settings.from_env({k: v for k, v in env.items() if k != Env.MODELS_PATH})
    redis_url = settings.redis_url
    if redis_url is None and (env.get(Env.SEED_REDIS_URL) or "").strip():
        redis_url = check_url(
            Env.SEED_REDIS_URL, env[Env.SEED_REDIS_URL].strip(), ("redis", "rediss", "unix")
        )
    if settings.mlflow_tracking_uri:
        registry = MlflowRegistry(tracking_uri=settings.mlflow_tracking_uri)
    elif models_path:
        registry = ModelFileStore(check_readable_models_path(models_path))
    elif settings.ml_provider == "vertex":
        registry = _NoLocalModels()
    else:
        raise SettingsError(
            "InferenceService() needs ML_MODELS_PATH (the .joblib model files) or "
            "STRATUM_MLFLOW_TRACKING_URI (the MLflow registry)"
        )
    return {
        "registry": registry,
        "cache": cache_from_url(redis_url),
        "remote": remote_from_settings(settings),
        "remote_fallback": settings.vertex_fallback == "local",
    }


class InferenceService:
    def __init__(
        self,
        registry=None,
        cache=None,
        tenant_exists: Callable[[str], bool] | None = None,
        champion_refresh_seconds: float = 30.0,
        remote=None,
        remote_fallback: bool = False,
        curves=None,
        warehouse_url: str | None = None,
    ):
        """`InferenceService()`: everything from the environment (see `service_parts_from_env`).
        `InferenceService(registry, cache, ...)`: explicit parts (a missing cache is the in-process one)."""
        if registry is None:
            parts = service_parts_from_env()
            registry = parts["registry"]
            cache = parts["cache"] if cache is None else cache
            remote = parts["remote"] if remote is None else remote
            remote_fallback = remote_fallback or parts["remote_fallback"]
        elif cache is None:
            from stratum_pipeline.serving.cache import MemoryCache

            cache = MemoryCache()
        self.registry = registry
        self.remote = remote
        self.remote_fallback = remote_fallback
        self.cache = cache
        self.tenant_exists = tenant_exists
        self.champion_refresh_seconds = champion_refresh_seconds
        self._champions: dict[tuple[str, str], tuple[float, object]] = {}
        self._fatigue = FatigueScorer()
        self._curves = (
            curves  # serving.budget.WarehouseCurves; None: from STRATUM_WAREHOUSE_URL when first needed
        )
        self.warehouse_url = warehouse_url
        self._warehouse_engine = None

    def allocate(
        self,
        tenant_id: str | int,
        total_daily_budget=None,
        bounds=(0.5, 2.0),
        target_marginal_roas=None,
        caution=None,
    ) -> dict:
        """Re-split the tenant's daily budget across its campaigns on their latest response curves (ml.allocator):
        per campaign the current and proposed budget, expected daily revenue and marginal ROAS at each, and the
        tenant's expected daily uplift with a 5-95% interval. `caution` (default off) charges each move the
        spread of its gain over the curve's draws, so uncertain curves move less. Bad input or an unknown tenant:
        PredictionError."""
        from stratum_pipeline.ml.allocator import AllocationInputError, allocate

        tenant = self._known_tenant(tenant_id)
        curves = self._curve_store().tenant(tenant)
        if curves.empty:
            raise PredictionError(
                f"unknown tenant {tenant!r}: no response curves (campaign_response_curves) for it"
            )
        try:
            out = allocate(
                curves.assign(current_budget=curves["base_spend"]),
                total_daily_budget,
                bounds,
                target_marginal_roas,
                caution=caution,
            )
        except AllocationInputError as exc:
            raise PredictionError(str(exc)) from None
        table = out["campaigns"].astype(object).where(out["campaigns"].notna(), None)
        return {
            "tenant_id": tenant,
            "date": str(curves["date"].iloc[0]),
            **out["tenant"],
            "campaigns": table.to_dict("records"),
        }

    def _known_tenant(self, tenant_id: str | int) -> str:
        """The validated tenant id; a malformed or unknown tenant is a one-line PredictionError."""
        try:
            tenant = validate_tenant_id(tenant_id)
        except ValueError as exc:
            raise PredictionError(str(exc)) from None
        if self.tenant_exists is not None and not self.tenant_exists(tenant):
            raise PredictionError(f"unknown tenant {tenant!r}")
        return tenant

    def _warehouse(self, missing: str):
        """The warehouse engine (`warehouse_url`, else STRATUM_WAREHOUSE_URL), made once; `missing` when neither is set."""
        if self._warehouse_engine is None:
            import sqlalchemy as sa

            url = self.warehouse_url or (os.environ.get(Env.WAREHOUSE_URL) or "").strip()
            if not url:
                raise PredictionError(missing)
            self._warehouse_engine = sa.create_engine(url)
        return self._warehouse_engine

    def _curve_store(self):
        if self._curves is None:
            from stratum_pipeline.serving.budget import WarehouseCurves

            self._curves = WarehouseCurves(
                self._warehouse("budget advice needs the warehouse: set STRATUM_WAREHOUSE_URL")
            )
        return self._curves

    def anomalies(self, tenant: str | int, campaign_id: str | None = None, days: int = 7) -> dict:
        """The tenant's campaign anomalies of the last `days` days (up to the latest judged day, `as_of`), from
        the warehouse `campaign_anomalies` table (`warehouse_url`, else STRATUM_WAREHOUSE_URL); one campaign's
        with `campaign_id`. Bad arguments, an unknown tenant or campaign: a one-line PredictionError."""
        from stratum_pipeline.serving.anomalies import AnomalyQueryError, recent_anomalies

        tenant = self._known_tenant(tenant)
        engine = self._warehouse("anomalies are read from the warehouse: set STRATUM_WAREHOUSE_URL")
        try:
            return recent_anomalies(engine, tenant, campaign_id, days)
        except AnomalyQueryError as exc:
            raise PredictionError(str(exc)) from None

    def _serving(self, model_type: str, tenant: str):
        key = (model_type, tenant)
        cached = self._champions.get(key)
        if cached and time.monotonic() - cached[0] < self.champion_refresh_seconds:
            return cached[1]
        model = self.registry.serving_model(model_type, tenant)
        self._champions[key] = (time.monotonic(), model)
        return model

    def data_version(self, tenant: str) -> int:
        return self.cache.get_counter(f"stratum:data-version:{tenant}")

    def notify_new_data(self, tenant: str) -> int:
        """Invalidate the tenant's cached predictions (new data landed)."""
        return self.cache.incr(f"stratum:data-version:{validate_tenant_id(tenant)}")

    def get_prediction(self, model_type: str, input_data: dict, tenant_id: str | int) -> Prediction:
        """The prediction as a dict that can also be awaited (the seed's `await service.get_prediction(...)`).

        `tenant_id` is the tenant's id as text or a non-negative integer (123 is "123")."""
        return Prediction(self._predict(model_type, input_data, tenant_id))

    async def get_prediction_async(self, model_type: str, input_data: dict, tenant_id: str | int) -> dict:
        """Like `get_prediction`, run in a worker thread so that the event loop stays free meanwhile."""
        return await asyncio.to_thread(self.get_prediction, model_type, input_data, tenant_id)

    def _predict(self, model_type: str, input_data: dict, tenant_id: str | int) -> dict:
        if model_type not in MODEL_TYPES:
            raise PredictionError(f"unknown model type {model_type!r}: use one of {', '.join(MODEL_TYPES)}")
        if not isinstance(input_data, dict) or not input_data:
            raise PredictionError("input must be a non-empty JSON object")
        tenant = self._known_tenant(tenant_id)
        digest = hashlib.sha256(json.dumps(input_data, sort_keys=True, default=str).encode()).hexdigest()[:32]
        if model_type == "fatigue":
            return self._cached(
                model_type, tenant, "fatigue-scorer", digest, self._fatigue.calculate_score, input_data
            )
        if self.remote is not None:
            try:
                return self._cached(
                    model_type,
                    tenant,
                    self.remote.model_id,
                    digest,
                    lambda x: {**self.remote.predict(model_type, tenant, x), "served_by": "vertex"},
                    input_data,
                )
            except VertexError as exc:
                if not self.remote_fallback:
                    raise
                log.warning(
                    "Vertex AI failed, serving the local %s model for %s: %s", model_type, tenant, exc
                )
        try:
            model = self._serving(model_type, tenant)
        except NoModelError as exc:
            raise PredictionError(str(exc)) from None
        model_id = f"{model.name}:{model.version}"
        return self._cached(
            model_type,
            tenant,
            model_id,
            digest,
            lambda x: {**model.predictor.predict(x), "model": model_id, "served_by": model.served_by},
            input_data,
        )

    def _cached(self, model_type: str, tenant: str, model_id: str, digest: str, predict, input: dict) -> dict:  # noqa: A002
        key = f"stratum:pred:{model_type}:{tenant}:{model_id}:{self.data_version(tenant)}:{digest}"
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        try:
            result = predict(input)
        except (TypeError, ValueError) as exc:
            raise PredictionError(f"bad {model_type} input: {exc}") from None
        self.cache.set(key, result, TTL_SECONDS[model_type])
        return result
