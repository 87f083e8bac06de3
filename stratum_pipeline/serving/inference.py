"""The seed's InferenceService: get_prediction(model_type, input, tenant_id), with a cache.

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

import hashlib
import json
import logging
import time
from collections.abc import Callable

from stratum_pipeline.ml.fatigue import FatigueScorer
from stratum_pipeline.resources.registry import NoModelError
from stratum_pipeline.serving.vertex import VertexError
from stratum_pipeline.tenancy import validate_tenant_id

log = logging.getLogger(__name__)

TTL_SECONDS = {"roas": 30 * 60, "conversion": 15 * 60, "fatigue": 24 * 3600}
MODEL_TYPES = tuple(TTL_SECONDS)


class PredictionError(ValueError):
    """Bad input or an unknown tenant: a one-line message for the caller."""


class InferenceService:
    def __init__(self, registry, cache, tenant_exists: Callable[[str], bool] | None = None,
                 champion_refresh_seconds: float = 30.0, remote=None, remote_fallback: bool = False):
        self.registry = registry
        self.remote = remote
        self.remote_fallback = remote_fallback
        self.cache = cache
        self.tenant_exists = tenant_exists
        self.champion_refresh_seconds = champion_refresh_seconds
        self._champions: dict[tuple[str, str], tuple[float, object]] = {}
        self._fatigue = FatigueScorer()

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

    def get_prediction(self, model_type: str, input: dict, tenant_id: str) -> dict:  # noqa: A002 - the seed's name
        if model_type not in MODEL_TYPES:
            raise PredictionError(f"unknown model type {model_type!r}: use one of {', '.join(MODEL_TYPES)}")
        if not isinstance(input, dict) or not input:
            raise PredictionError("input must be a non-empty JSON object")
        try:
            tenant = validate_tenant_id(tenant_id)
        except ValueError as exc:
            raise PredictionError(str(exc)) from None
        if self.tenant_exists is not None and not self.tenant_exists(tenant):
            raise PredictionError(f"unknown tenant {tenant!r}")
        digest = hashlib.sha256(json.dumps(input, sort_keys=True, default=str).encode()).hexdigest()[:32]
        if model_type == "fatigue":
            return self._cached(model_type, tenant, "fatigue-scorer", digest, self._fatigue.calculate_score, input)
        if self.remote is not None:
            try:
                return self._cached(model_type, tenant, self.remote.model_id, digest,
                                    lambda x: {**self.remote.predict(model_type, tenant, x), "served_by": "vertex"}, input)
            except VertexError as exc:
                if not self.remote_fallback:
                    raise
                log.warning("Vertex AI failed, serving the local %s model for %s: %s", model_type, tenant, exc)
        try:
            model = self._serving(model_type, tenant)
        except NoModelError as exc:
            raise PredictionError(str(exc)) from None
        model_id = f"{model.name}:{model.version}"
        return self._cached(model_type, tenant, model_id, digest,
                            lambda x: {**model.predictor.predict(x), "model": model_id, "served_by": model.served_by}, input)

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
