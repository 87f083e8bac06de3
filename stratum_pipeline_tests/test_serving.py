"""InferenceService with real models from MLflow and a real Redis (and the in-process cache)."""

import logging
import os
import subprocess
import time

import pytest
import redis

from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.modelops.training import DataMinimum, train_roas
from stratum_pipeline.serving.cache import MemoryCache, RedisCache
from stratum_pipeline.serving.inference import TTL_SECONDS, InferenceService, PredictionError

from .helpers import train
from .model_data import model_features
from .services import free_port

# slow: each test trains models in its fixture (5-8 s a test); the fast tier is -m "not slow"
pytestmark = pytest.mark.slow

REDIS_URL = os.environ.get("STRATUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def trained(stack):  # noqa: F811
    defs, registry, instance = stack
    assert train(defs, instance, "train_default_models_job")[0].success
    assert train(defs, instance, "train_tenant_models_job", "big")[0].success
    return registry


@pytest.fixture
def redis_cache():
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield RedisCache(REDIS_URL)
    client.flushdb()


def campaign_row():
    features = model_features()[0]
    row = features[features.tenant_id == "big"].iloc[-1].to_dict()
    return {
        k: (v.isoformat() if hasattr(v, "isoformat") else v.item() if hasattr(v, "item") else v)
        for k, v in row.items()
    }


class Counting:
    """Wraps a predictor and counts predictions (to tell cache hits from misses)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def predict(self, x):
        self.calls += 1
        return self.inner.predict(x)


def counted(service, model_type, tenant):
    model = service._serving(model_type, tenant)
    counter = Counting(model.predictor)
    service._champions[(model_type, tenant)] = (
        float("inf"),
        type(model)(model.name, model.version, counter, model.served_by),
    )
    return counter


@pytest.mark.parametrize("cache_kind", ["memory", "redis"])
def test_predictions_are_cached_with_the_seed_ttls(trained, redis_cache, cache_kind):
    cache = MemoryCache() if cache_kind == "memory" else redis_cache
    service = InferenceService(trained, cache)
    counter = counted(service, "roas", "big")
    first = service.get_prediction("roas", campaign_row(), "big")
    second = service.get_prediction("roas", campaign_row(), "big")
    assert first == second and counter.calls == 1
    assert (
        first["model"] == f"stratum-roas-big:{trained.champion_version('stratum-roas-big')}"
        and first["served_by"] == "big"
    )
    if cache_kind == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        keys = client.keys("stratum:pred:roas:big:*")
        assert len(keys) == 1 and TTL_SECONDS["roas"] - 5 <= client.ttl(keys[0]) <= TTL_SECONDS["roas"]
    fallback = service.get_prediction("roas", {**campaign_row(), "tenant_id": "small"}, "small")
    assert fallback["served_by"] == "default"
    conversion = service.get_prediction(
        "conversion", {"pages_viewed": 6, "items_in_cart": 1, "device_type": "desktop"}, "big"
    )
    assert 0 <= conversion["conversion_probability"] <= 1 and len(conversion["top_factors"]) == 3
    fatigue = service.get_prediction(
        "fatigue", {"days_active": 50, "frequency": 6.0, "ctr_current": 0.01, "ctr_baseline": 0.02}, "big"
    )
    assert fatigue["fatigue_level"] in {"low", "medium", "high", "critical"}


def test_new_champion_and_new_data_invalidate_redis_entries(trained, redis_cache):
    service = InferenceService(trained, redis_cache, champion_refresh_seconds=0)
    row = campaign_row()
    before = service.get_prediction("roas", row, "big")
    campaign = model_features()[0]
    outcome = train_roas(
        "big",
        campaign[campaign.tenant_id == "big"],
        trained,
        {"test": "new champion"},
        DataMinimum(40, 30, 5_000),
        7,
        n_estimators=150,
    )
    trained.set_champion(model_name("roas", "big"), outcome.metadata["version"])  # as the gate would
    after = service.get_prediction("roas", row, "big")
    assert after["model"] == f"stratum-roas-big:{outcome.metadata['version']}" != before["model"]

    service.champion_refresh_seconds = 3600
    counter = counted(service, "roas", "big")
    assert service.get_prediction("roas", row, "big") == after
    assert counter.calls == 0  # the new version's entry is cached now
    service.notify_new_data("big")
    assert service.get_prediction("roas", row, "big") == after
    assert counter.calls == 1  # new data for the tenant: recomputed


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own on a free port (so the test can kill it)."""
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline and server.poll() is None, "redis-server did not start"
            time.sleep(0.05)
    yield port, server
    server.kill()
    server.wait()


def test_redis_going_away_mid_service_serves_uncached_with_a_warning(trained, own_redis, caplog):
    port, server = own_redis
    service = InferenceService(trained, RedisCache(f"redis://127.0.0.1:{port}/0", timeout_seconds=0.2))
    counter = counted(service, "roas", "big")
    first = service.get_prediction("roas", campaign_row(), "big")
    assert (
        service.get_prediction("roas", campaign_row(), "big") == first and counter.calls == 1
    )  # cached in Redis
    server.kill()
    server.wait()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        answers = [service.get_prediction("roas", campaign_row(), "big") for _ in range(3)]
    assert answers == [first] * 3 and counter.calls == 4  # every call computed: uncached, same answer
    assert time.monotonic() - started < 5 and "serving uncached" in caplog.text
    never_up = InferenceService(trained, RedisCache("redis://127.0.0.1:1/0", timeout_seconds=0.1))
    assert never_up.get_prediction("roas", campaign_row(), "big") == first


def test_bad_input_and_unknown_tenants_are_clear_errors(trained):
    service = InferenceService(trained, MemoryCache(), tenant_exists=lambda t: t in {"big", "small"})
    with pytest.raises(PredictionError, match="unknown tenant 'nobody'"):
        service.get_prediction("roas", campaign_row(), "nobody")
    with pytest.raises(PredictionError, match="invalid tenant id"):
        service.get_prediction("roas", campaign_row(), "../etc")
    with pytest.raises(PredictionError, match="unknown model type"):
        service.get_prediction("ctr", campaign_row(), "big")
    with pytest.raises(PredictionError, match="roas_7d, roas_30d or roas"):
        service.get_prediction("roas", {"platform": "meta"}, "big")
    with pytest.raises(PredictionError, match="non-empty JSON object"):
        service.get_prediction("conversion", {}, "big")


def test_a_champion_from_an_older_version_is_skipped_for_the_default(trained, caplog):
    own = trained.serving_model("roas", "big")
    assert own.served_by == "big"
    own.predictor.format_ = own.predictor.FORMAT - 1  # as if pickled before the last feature change
    try:
        with pytest.raises(
            RuntimeError, match="incompatible version of stratum-pipeline .* retrain and republish"
        ):
            own.predictor.predict(campaign_row())
        with caplog.at_level(logging.WARNING):
            served = trained.serving_model("roas", "big")
        assert served.served_by == "default" and served.name == model_name("roas", "default")
        assert (
            "trained by an incompatible version" in caplog.text
            and "serving tenant 'big' from the default" in caplog.text
        )
        assert served.predictor.predict(campaign_row())["predicted_roas"] > 0
    finally:
        own.predictor.format_ = own.predictor.FORMAT
