"""The seed backend's code runs unchanged (issue #20): its calls, field names and shapes, as the seed document
writes them, against a demo state whose tenants have integer ids.

The "backend" below is the seed's: its models (`Tenant.id` an int, `Campaign.to_dict()` with the seed's
ROAS feature names, `CreativeAsset` objects with attributes) over the demo source database, and its task
bodies copied from the seed document (`generate_daily_forecasts`' async loop awaiting
`inference_service.get_prediction('roas', campaign.to_dict(), tenant.id)`, `calculate_all_fatigue_scores`'
loop over asset objects). `inference_service` is `InferenceService()` configured as the seed's is: only
ML_MODELS_PATH (the .joblib files) and REDIS_URL (a real Redis). The Celery task names are imported from
`stratum_pipeline.compat.celery_tasks` and submit runs to a real dagster-webserver (runs stay queued: no
daemon, nothing executes; test_celery_compat runs them to completion).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import redis
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from stratum_pipeline.compat import celery_tasks
from stratum_pipeline.demo.generator import DemoConfig, TenantSpec, generate
from stratum_pipeline.demo.writer import write_source
from stratum_pipeline.ml.emq import DataQualityAnalyzer
from stratum_pipeline.ml.fatigue import FatigueScorer
from stratum_pipeline.ml.inputs import InputError
from stratum_pipeline.ml.roas import PLATFORMS
from stratum_pipeline.ml.seed_names import PLATFORM_ORDER
from stratum_pipeline.modelops import publishing
from stratum_pipeline.serving.inference import InferenceService, PredictionError
from stratum_pipeline.storage import source_schema as src
from stratum_pipeline.storage.database import engine_for

from .hostile import SETTINGS, finite, hostile_record, hostile_scalar, outcome, strict_json
from .small_models import conversion_predictor, roas_predictor

# Its own Redis database (test_serving and test_deployment flush 15); only this module's keys are removed.
REDIS_URL = os.environ.get("STRATUM_TEST_SEED_REDIS_URL", "redis://127.0.0.1:6379/14")
TENANT_IDS = (
    101,
    102,
)  # the seed's integer ids; 101 has a model file of its own, 102 is served by the default
AS_OF = date(2026, 3, 31)
SEED_RECOMMENDATION = r"^(Increase budget by \d+%|Decrease budget by \d+%|Maintain current budget)$"


# --- the seed backend's models and database helpers, over the demo source database -----------------------------


@dataclasses.dataclass
class Tenant:
    id: int
    name: str


@dataclasses.dataclass
class Campaign:
    id: str
    tenant_id: int
    name: str
    platform: str
    audience_size: int
    metrics: pd.DataFrame  # its campaign_daily_metrics rows up to AS_OF
    creative_fatigue_score: float | None = None

    def to_dict(self) -> dict:
        """The seed's ROAS input names (ROASOptimizer._extract_features reads these, platform and date)."""
        m = self.metrics.set_index("date").sort_index()
        last7, last30 = (
            m.loc[m.index > AS_OF - timedelta(days=7)],
            m.loc[m.index > AS_OF - timedelta(days=30)],
        )
        before7 = m.loc[(m.index > AS_OF - timedelta(days=14)) & (m.index <= AS_OF - timedelta(days=7))]

        def ratio(a, b):
            return float(a / b) if b else None

        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "platform": self.platform,
            "date": AS_OF + timedelta(days=1),
            "historical_roas_7d": ratio(last7.revenue.sum(), last7.spend.sum()),
            "historical_roas_30d": ratio(last30.revenue.sum(), last30.spend.sum()),
            "spend_velocity": ratio(last7.spend.mean(), last30.spend.mean()),
            "ctr": ratio(last7.clicks.sum(), last7.impressions.sum()),
            "conversion_rate": ratio(last7.conversions.sum(), last7.clicks.sum()),
            "impressions_growth": (ratio(last7.impressions.sum(), before7.impressions.sum()) or 1.0) - 1.0,
            "day_of_week": (AS_OF + timedelta(days=1)).weekday(),
            "audience_size": self.audience_size,
            "creative_fatigue_score": self.creative_fatigue_score,
        }


@dataclasses.dataclass
class CreativeAsset:
    """The seed's CreativeAsset: the attributes its FatigueScorer reads, and the column it writes."""

    id: str
    campaign_id: str
    days_in_rotation: int
    total_impressions: int
    avg_frequency: float
    initial_ctr: float
    current_ctr: float
    engagement_decay_rate: float
    fatigue_score: float | None = None


class AsyncSession:
    """What the seed's `get_db_session()` yields: `await db.get(Model, id)`, `await db.commit()`."""

    def __init__(self, backend):
        self.backend = backend
        self.commits = 0

    async def get(self, model, key):
        assert model is Tenant
        return next(t for t in self.backend.tenants if t.id == key)

    async def commit(self):
        self.commits += 1


class SeedBackend:
    """The backend's state: tenants, campaigns and assets read from the demo source; stored predictions."""

    def __init__(self, source_url: str):
        engine = engine_for(source_url)
        with engine.connect() as conn:
            tenants = pd.read_sql(sa.select(src.tenants), conn)
            campaigns = pd.read_sql(sa.select(src.campaigns), conn)
            daily = pd.read_sql(sa.select(src.campaign_daily_metrics), conn)
            creatives = pd.read_sql(sa.select(src.creatives), conn)
            creative_daily = pd.read_sql(sa.select(src.creative_daily_metrics), conn)
        engine.dispose()
        daily["date"] = pd.to_datetime(daily["date"]).dt.date
        creative_daily["date"] = pd.to_datetime(creative_daily["date"]).dt.date
        self.tenants = [Tenant(int(row.id), row.name) for row in tenants.itertuples()]
        active = campaigns[campaigns.status == "active"]
        self.campaigns = [
            Campaign(
                row.id,
                int(row.tenant_id),
                row.name,
                row.platform,
                int(row.audience_size),
                daily[(daily.campaign_id == row.id) & (daily.date <= AS_OF)],
            )
            for row in active.itertuples()
        ]
        audience = dict(zip(campaigns.id, campaigns.audience_size))
        self.assets = []
        for row in creatives[creatives.campaign_id.isin(active.id)].itertuples():
            rows = creative_daily[
                (creative_daily.creative_id == row.id) & (creative_daily.date <= AS_OF)
            ].sort_values("date")
            if rows.empty:
                continue
            launch = pd.Timestamp(row.launch_date).date()
            first, last = (
                rows[rows.date < launch + timedelta(days=3)],
                rows[rows.date > AS_OF - timedelta(days=7)],
            )
            if first.impressions.sum() == 0 or last.impressions.sum() == 0:
                continue
            self.assets.append(
                CreativeAsset(
                    id=row.id,
                    campaign_id=row.campaign_id,
                    days_in_rotation=(AS_OF - launch).days + 1,
                    total_impressions=int(rows.impressions.sum()),
                    avg_frequency=float(rows.impressions.sum() / audience[row.campaign_id]),
                    initial_ctr=float(first.clicks.sum() / first.impressions.sum()),
                    current_ctr=float(last.clicks.sum() / last.impressions.sum()),
                    engagement_decay_rate=float(
                        1
                        - (last.engagements.sum() / last.impressions.sum())
                        / max(first.engagements.sum() / first.impressions.sum(), 1e-9)
                    ),
                )
            )
        self.predictions: dict[str, dict] = {}
        self.errors: list[tuple[str, dict]] = []


class StructLogger:
    """The seed logs with structlog-style keywords: logger.error(message, error=...)."""

    def __init__(self, backend: SeedBackend):
        self.backend = backend

    def error(self, message, **fields):
        self.backend.errors.append((message, fields))


# --- the demo state --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_state(tmp_path_factory):
    root = tmp_path_factory.mktemp("seed_backend")
    config = DemoConfig(
        end_date=AS_OF,
        seed=21,
        bad_row_rate=0.0,
        tenants=tuple(
            TenantSpec(str(t), f"Tenant {t}", campaigns=5, history_days=40, sessions_per_day=5)
            for t in TENANT_IDS
        ),
    )
    source_url = f"sqlite:///{root / 'source.db'}"
    write_source(engine_for(source_url), generate(config))
    models = root / "models"
    models.mkdir()
    # The seed's files (published as the model-file assets do): roas_t101.joblib, roas_default.joblib, conversion_default.joblib.
    for model_type, owner, predictor in (
        ("roas", TENANT_IDS[0], roas_predictor(2.0)),
        ("roas", "default", roas_predictor(3.0)),
        ("conversion", "default", conversion_predictor()),
    ):
        publishing.publish(
            models, model_type, owner, f"stratum-{model_type}-{owner}", "1", lambda p=predictor: p
        )
    return SeedBackend(source_url), models, source_url


@pytest.fixture
def seed_env(seed_state, monkeypatch):
    """The seed's configuration: ML_PROVIDER=local, ML_MODELS_PATH, REDIS_URL; nothing of this project's."""
    _, models, _ = seed_state
    for name in (
        "STRATUM_MLFLOW_TRACKING_URI",
        "STRATUM_REDIS_URL",
        "ML_VERTEX_FALLBACK",
        "VERTEX_AI_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ML_PROVIDER", "local")
    monkeypatch.setenv("ML_MODELS_PATH", str(models))
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    client = redis.Redis.from_url(REDIS_URL)

    def clear():
        for pattern in (
            "stratum:pred:*:101:*",
            "stratum:pred:*:102:*",
            "stratum:data-version:101",
            "stratum:data-version:102",
        ):
            for key in client.scan_iter(pattern):
                client.delete(key)

    clear()
    yield client
    clear()


# --- the seed's task bodies, as the seed document writes them --------------------------------------------------


def seed_tasks(backend: SeedBackend, inference_service):
    logger = StructLogger(backend)

    @asynccontextmanager
    async def get_db_session():
        yield AsyncSession(backend)

    async def get_all_tenants(db):
        return list(backend.tenants)

    async def get_active_campaigns(db, tenant_id):
        return [c for c in backend.campaigns if c.tenant_id == tenant_id]

    async def store_prediction(db, campaign_id, prediction):
        backend.predictions[campaign_id] = prediction

    async def get_active_assets(db):
        return list(backend.assets)

    # backend/app/workers/tasks.py (the seed document), unchanged
    def generate_daily_forecasts(tenant_id: int = None):
        """Generate ROAS forecasts for all active campaigns."""

        async def _run():
            async with get_db_session() as db:
                if tenant_id:
                    tenants = [await db.get(Tenant, tenant_id)]
                else:
                    tenants = await get_all_tenants(db)

                for tenant in tenants:
                    campaigns = await get_active_campaigns(db, tenant.id)

                    for campaign in campaigns:
                        try:
                            prediction = await inference_service.get_prediction(
                                "roas", campaign.to_dict(), tenant.id
                            )

                            # Store prediction
                            await store_prediction(db, campaign.id, prediction)

                        except Exception as e:
                            logger.error(f"Prediction failed: {campaign.id}", error=str(e))

        asyncio.run(_run())

    def calculate_all_fatigue_scores():
        """Calculate creative fatigue scores for all assets."""

        async def _run():
            async with get_db_session() as db:
                assets = await get_active_assets(db)
                scorer = FatigueScorer()

                for asset in assets:
                    score_data = scorer.calculate_score(asset)
                    asset.fatigue_score = score_data["fatigue_score"]
                    await db.commit()

        asyncio.run(_run())

    return generate_daily_forecasts, calculate_all_fatigue_scores


# --- the acceptance tests ------------------------------------------------------------------------------------


def test_the_seeds_tasks_score_every_asset_and_forecast_every_campaign_through_redis(seed_state, seed_env):
    backend, _, _ = seed_state
    backend.predictions.clear()
    backend.errors.clear()
    inference_service = InferenceService()  # the seed's construction: settings from the environment
    generate_daily_forecasts, calculate_all_fatigue_scores = seed_tasks(backend, inference_service)

    # 03:00: fatigue over the asset objects; the seed writes the score back onto each asset.
    calculate_all_fatigue_scores()
    scores = [asset.fatigue_score for asset in backend.assets]
    assert len(backend.assets) >= 10 and all(0 <= s <= 100 for s in scores) and len(set(scores)) > 1
    for asset in backend.assets[:5]:  # the seed's attribute names mean what this project's names mean
        own = {
            "days_active": asset.days_in_rotation,
            "frequency": asset.avg_frequency,
            "ctr_current": asset.current_ctr,
            "ctr_baseline": asset.initial_ctr,
            "engagement_rate_current": 1 - asset.engagement_decay_rate,
            "engagement_rate_baseline": 1.0,
        }
        assert asset.fatigue_score == pytest.approx(
            FatigueScorer().calculate_score(own)["fatigue_score"], abs=0.01
        )
    for campaign in backend.campaigns:
        own = [a.fatigue_score for a in backend.assets if a.campaign_id == campaign.id]
        campaign.creative_fatigue_score = float(np.mean(own)) if own else None

    # 06:00: the async forecast loop, integer tenant ids, the seed's feature names.
    generate_daily_forecasts()
    assert backend.errors == []
    assert set(backend.predictions) == {c.id for c in backend.campaigns} and len(backend.predictions) >= 6
    for campaign in backend.campaigns:
        prediction = backend.predictions[campaign.id]
        assert (
            prediction["confidence_lower"] <= prediction["predicted_roas"] <= prediction["confidence_upper"]
        )
        assert prediction["trend"] in {"improving", "stable", "declining"}
        assert isinstance(prediction["recommendation"], str)
        assert pd.Series([prediction["recommendation"]]).str.fullmatch(SEED_RECOMMENDATION).all()
        owner = "101" if campaign.tenant_id == 101 else "default"  # tenant file, else the default file
        assert prediction["served_by"] == owner and prediction["model"].startswith(
            f"roas_{'t' if owner == '101' else ''}{owner}.joblib"
        )
    # The two model files differ (level 2 vs 3 x the 7-day ROAS): the answers show which one served.
    for campaign in backend.campaigns:
        level = backend.predictions[campaign.id]["predicted_roas"] / campaign.to_dict()["historical_roas_7d"]
        assert (1.5 < level < 2.6) if campaign.tenant_id == 101 else (2.4 < level < 3.8)

    keys = {int(k.decode().split(":")[3]) for k in seed_env.scan_iter("stratum:pred:roas:*")}
    assert keys == set(TENANT_IDS)  # cached in the real Redis, under the tenants' decimal ids
    first = dict(backend.predictions)
    generate_daily_forecasts(tenant_id=101)  # one tenant, by its integer id: answered from the cache
    assert backend.errors == [] and all(backend.predictions[c] == first[c] for c in first)
    assert len(list(seed_env.scan_iter("stratum:pred:roas:*"))) == len(backend.campaigns)


def test_integer_and_text_tenant_ids_reach_the_same_model_and_cache_entry(seed_state, seed_env):
    backend, _, _ = seed_state
    service = InferenceService()
    campaign = next(c for c in backend.campaigns if c.tenant_id == 101).to_dict()
    calls = []
    model = service._serving("roas", "101")
    original = model.predictor.predict
    model.predictor.predict = lambda x: calls.append(1) or original(x)
    try:
        by_int = asyncio.run(_await(service.get_prediction("roas", campaign, 101)))
        by_text = service.get_prediction("roas", input_data=campaign, tenant_id="101")
    finally:
        model.predictor.predict = original
    assert by_int == by_text and by_int["served_by"] == "101" and len(calls) == 1
    assert len(list(seed_env.scan_iter("stratum:pred:roas:101:*"))) == 1
    assert asyncio.run(service.get_prediction_async("roas", campaign, 101)) == by_int
    with pytest.raises(PredictionError, match="invalid tenant id -1"):
        service.get_prediction("roas", campaign, -1)
    with pytest.raises(PredictionError, match="invalid tenant id True"):
        service.get_prediction("roas", campaign, True)


async def _await(awaitable):
    return await awaitable


def test_only_ml_models_path_serves_the_files_and_a_missing_setting_is_one_line(
    seed_state, seed_env, monkeypatch, tmp_path
):
    backend, models, _ = seed_state
    service = InferenceService()
    assert (
        type(service.registry).__name__ == "ModelFileStore" and type(service.cache).__name__ == "RedisCache"
    )
    conversion = service.get_prediction("conversion", {"pages_viewed": 8, "device_type": "mobile"}, 101)
    assert conversion["served_by"] == "default" and 0 <= conversion["conversion_probability"] <= 1
    with pytest.raises(
        PredictionError, match=r"no roas model serves tenant '103'.*roas_t103.joblib nor roas_default.joblib"
    ):
        InferenceService(service.registry.__class__(tmp_path), service.cache).get_prediction(
            "roas", backend.campaigns[0].to_dict(), 103
        )
    monkeypatch.delenv("ML_MODELS_PATH")
    with pytest.raises(ValueError, match="^InferenceService\\(\\) needs ML_MODELS_PATH"):
        InferenceService()
    monkeypatch.setenv("ML_MODELS_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="ML_MODELS_PATH=.*is not an existing folder"):
        InferenceService()
    monkeypatch.setenv("ML_MODELS_PATH", str(models))
    monkeypatch.setenv("REDIS_URL", "http://127.0.0.1:6379")
    with pytest.raises(
        ValueError, match="REDIS_URL='http://127.0.0.1:6379' is not a redis or rediss or unix URL"
    ):
        InferenceService()


# --- the seed's beat schedule and Celery task names --------------------------------------------------------------

# backend/app/workers/celery_app.py (the seed document), with crontab/timedelta written as the cron they mean
BEAT_SCHEDULE = {
    "generate-daily-forecasts": {"task": "app.workers.tasks.generate_daily_forecasts", "cron": "0 6 * * *"},
    "calculate-fatigue-scores": {
        "task": "app.workers.tasks.calculate_all_fatigue_scores",
        "cron": "0 3 * * *",
    },
    "run-live-predictions": {"task": "app.workers.tasks.run_all_tenant_predictions", "cron": "*/30 * * * *"},
}


def test_every_beat_task_has_a_compat_function_and_a_dagster_schedule_at_the_seeds_time():
    from stratum_pipeline.definitions import defs

    schedules = [defs.resolve_schedule_def(s.name) for s in defs.schedules]
    for entry in BEAT_SCHEDULE.values():
        name = entry["task"].rsplit(".", 1)[1]
        task = getattr(celery_tasks, name)
        assert callable(task) and callable(task.delay)
        job = celery_tasks.BEAT_TASK_JOBS[name]
        defs.resolve_job_def(job)  # the job exists in the code location
        crons = {s.cron_schedule for s in schedules if s.job_name == job}
        assert entry["cron"] in crons, (name, job, crons)


@pytest.fixture(scope="module")
def queued_webserver(seed_state, tmp_path_factory):
    """dagster-webserver over an instance that knows tenants 101 and 102; runs are queued (no daemon), never run."""
    import dagster as dg

    from .webserver import DagsterWebserver, ProjectState

    _, _, source_url = seed_state
    root = tmp_path_factory.mktemp("seed_webserver")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_coordinator:\n"
        "  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
    )
    env = {
        "DAGSTER_HOME": str(home),
        "STRATUM_SOURCE_URL": source_url,
        "STRATUM_WAREHOUSE_URL": f"sqlite:///{root / 'warehouse.db'}",
        "STRATUM_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    instance = dg.DagsterInstance.from_config(str(home))
    instance.add_dynamic_partitions(
        "tenants", [str(t) for t in TENANT_IDS]
    )  # as the tenants sensor registers them
    server = DagsterWebserver(ProjectState(root, env, AS_OF, instance), root / "webserver.log")
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_the_seeds_celery_calls_submit_the_jobs(queued_webserver, monkeypatch):
    from stratum_pipeline.compat.celery_tasks import (
        UnknownTenant,
        calculate_all_fatigue_scores,
        generate_daily_forecasts,
        run_all_tenant_predictions,
    )

    monkeypatch.setenv(celery_tasks.GRAPHQL_URL_VARIABLE, queued_webserver.url)
    instance = queued_webserver.project.instance
    yesterday = (datetime.now(timezone.utc).date() - timedelta(days=1)).isoformat()
    submitted = {
        "all": generate_daily_forecasts(),
        "one": generate_daily_forecasts(tenant_id=101),
        "delay": generate_daily_forecasts.delay(102).id,
        "fatigue": calculate_all_fatigue_scores.delay().id,
        "live": run_all_tenant_predictions.delay().id,
    }
    runs = {k: instance.get_run_by_id(v) for k, v in submitted.items()}
    assert {k: r.job_name for k, r in runs.items()} == {
        "all": "daily_forecasts_job",
        "one": "daily_forecasts_job",
        "delay": "daily_forecasts_job",
        "fatigue": "fatigue_scores_job",
        "live": "live_predictions_job",
    }
    assert all(runs[k].tags["dagster/partition"] == yesterday for k in ("all", "one", "delay", "fatigue"))
    assert "dagster/partition" not in runs["live"].tags
    assert runs["one"].tags["stratum/tenant_id"] == "101" and runs["delay"].tags["stratum/tenant_id"] == "102"
    assert "stratum/tenant_id" not in runs["all"].tags
    assert all(r.status.value == "QUEUED" for r in runs.values())
    with pytest.raises(UnknownTenant, match="unknown tenant '999'.*101, 102"):
        generate_daily_forecasts(tenant_id=999)


# --- the seed's names in and out, unit by unit -------------------------------------------------------------------


def test_the_seeds_roas_names_and_encodings_mean_the_projects():
    predictor = roas_predictor(2.0)
    own = {
        "roas_7d": 2.1,
        "roas_30d": 1.9,
        "spend_velocity": 1.05,
        "ctr": 0.02,
        "platform": "google",
        "season": 2,
        "creative_fatigue": 35.0,
        "day_of_week": 3,
    }
    expected = predictor.predict(own)
    seed = {
        "historical_roas_7d": 2.1,
        "historical_roas_30d": 1.9,
        "spend_velocity": 1.05,
        "ctr": 0.02,
        "creative_fatigue_score": 35.0,
        "day_of_week": 3,
    }
    assert PLATFORM_ORDER == PLATFORMS
    for platform in ("google", " Google ", 1, 1.0, [0, 1, 0, 0]):
        for season in ("Q2", "q2", 2, "2"):
            assert (
                predictor.predict({**seed, "platform_encoded": platform, "season_encoded": season})
                == expected
            )
    assert (
        predictor.predict({**seed, "platform": "google", "date": "2026-05-04"}) == expected
    )  # the seed's _encode_season(date)
    assert predictor.predict({**seed, "platform": "google", "date": date(2026, 4, 1)}) == expected
    other = predictor.predict({**seed, "platform_encoded": 0, "season_encoded": "Q2"})
    assert other == predictor.predict({**own, "platform": "meta"})
    assert predictor.predict({**own, "historical_roas_7d": 9.0}) == expected  # the project's name wins
    for name, bad, message in (
        ("platform_encoded", 4, "one-hot position 0-3"),
        ("platform_encoded", [1, 1, 0, 0], "one-hot"),
        ("platform_encoded", True, "platform_encoded must be"),
        ("season_encoded", "Q5", "Q1-Q4 or 1-4"),
        ("season_encoded", 2.5, "Q1-Q4"),
        ("date", "not a date", "date must be a date"),
    ):
        given = {**seed, "season": 2} if name == "platform_encoded" else {**seed, "platform": "google"}
        with pytest.raises(InputError, match=message) as error:
            predictor.predict({**given, name: bad})
        assert "\n" not in str(error.value)
    assert expected["recommendation"] == {1: "Increase budget by {}%", -1: "Decrease budget by {}%"}.get(
        np.sign(expected["budget_recommendation"]["budget_change_percent"]), "Maintain current budget"
    ).format(abs(expected["budget_recommendation"]["budget_change_percent"]))


def test_the_seeds_fatigue_attributes_and_trends():
    scorer = FatigueScorer()

    class Asset:  # a plain object, attribute access only
        days_in_rotation = 45
        avg_frequency = 5.0
        initial_ctr = 0.02
        current_ctr = 0.012
        engagement_decay_rate = 0.3

    own = {
        "days_active": 45,
        "frequency": 5.0,
        "ctr_current": 0.012,
        "ctr_baseline": 0.02,
        "engagement_rate_current": 0.7,
        "engagement_rate_baseline": 1.0,
    }
    assert scorer.calculate_score(Asset()) == scorer.calculate_score(own)
    # The seed's feature list: total impressions over the audience, and the CTR trends in place of the CTR pair.
    by_trend = scorer.calculate_score(
        {
            "days_in_rotation": 45,
            "total_impressions": 50_000,
            "audience_size": 10_000,
            "ctr_trend_7d": -0.1,
            "ctr_trend_30d": -0.4,
            "engagement_decay_rate": 0.3,
        }
    )
    assert by_trend == scorer.calculate_score(own)  # 30-day trend -40% = CTR 0.012 from 0.02; frequency 5
    assert (
        scorer.calculate_score({"days_in_rotation": 45, "ctr_trend_7d": -0.4})["component_scores"][
            "ctr_decay"
        ]
        == 80
    )
    for bad in (None, "asset", 3, [1, 2]):
        with pytest.raises(TypeError, match="asset must be a dict or an object"):
            scorer.calculate_score(bad)
    with pytest.raises(TypeError, match="got a object with none of them"):
        scorer.calculate_score(object())


def test_the_seeds_emq_contract_beside_the_capi_view():
    analyzer = DataQualityAnalyzer()
    assert analyzer.FIELD_WEIGHTS == {
        "meta": {
            "email": 0.25,
            "phone": 0.20,
            "click_id": 0.20,
            "ip_address": 0.15,
            "user_agent": 0.10,
            "external_id": 0.10,
        },
        "google": {
            "email": 0.25,
            "phone": 0.20,
            "gclid": 0.25,
            "ip_address": 0.10,
            "user_agent": 0.10,
            "external_id": 0.10,
        },
    }
    event = {
        "email": "a@example.com",
        "phone": "+15550000",
        "click_id": "fb.1.abc",
        "ip_address": "203.0.113.9",
        "user_agent": "Mozilla/5.0",
        "external_id": "u1",
    }
    full = analyzer.analyze(event, "meta")
    assert {k: full[k] for k in ("score", "level", "missing_fields", "roas_impact_estimate")} == {
        "score": 100.0,
        "level": "excellent",
        "missing_fields": [],
        "roas_impact_estimate": "~95% attribution accuracy",
    }
    # The CAPI view beside it: the seed names count as Meta's (fbc, client_ip_address, ...); unhashed keys count half.
    assert full["present_fields"] == [
        "email",
        "phone",
        "fbc",
        "external_id",
        "client_ip_address",
        "client_user_agent",
    ]
    assert (
        full["emq_score"] == 6.5
        and full["unhashed_fields"] == ["email", "phone"]
        and full["capi_missing_fields"] == ["fbp"]
    )
    hashed = {
        **event,
        "email": hashlib.sha256(b"a@example.com").hexdigest(),
        "phone": hashlib.sha256(b"+1555").hexdigest(),
    }
    assert analyzer.analyze(hashed, "meta")["emq_score"] == 9.0
    cases = [  # (event, platform, score, level, missing, impact)
        (
            {k: v for k, v in event.items() if k not in ("phone", "ip_address")},
            "meta",
            65.0,
            "good",
            ["phone", "ip_address"],
            "~80% attribution accuracy",
        ),
        (
            {"email": "a", "phone": "b"},
            "meta",
            45.0,
            "fair",
            ["click_id", "ip_address", "user_agent", "external_id"],
            "~60% attribution accuracy",
        ),
        ({**event, "gclid": "g"}, "google", 100.0, "excellent", [], "~95% attribution accuracy"),
        (event, "google", 75.0, "good", ["gclid"], "~80% attribution accuracy"),
        (
            {"external_id": "u1"},
            "tiktok",
            10.0,
            "poor",
            ["email", "phone", "click_id", "ip_address", "user_agent"],
            "<40% attribution accuracy - significant loss",
        ),
        (
            {"fbc": "fb.1.x", "client_ip_address": "1.2.3.4", "client_user_agent": "M"},
            "meta",
            45.0,
            "fair",
            ["email", "phone", "external_id"],
            "~60% attribution accuracy",
        ),
    ]
    for payload, platform, score, level, missing, impact in cases:
        out = analyzer.analyze(payload, platform)
        assert (out["score"], out["level"], out["missing_fields"], out["roas_impact_estimate"]) == (
            score,
            level,
            missing,
            impact,
        )
        assert len(out["recommendations"]) >= len(missing)


def test_the_demo_states_events_score_on_both_scales(seed_state):
    _, _, source_url = seed_state
    with engine_for(source_url).connect() as conn:
        events = pd.read_sql(sa.select(src.capi_events).limit(200), conn)
    analyzer = DataQualityAnalyzer()
    for row in events.to_dict("records"):
        out = analyzer.analyze(
            {k: v for k, v in row.items() if v is not None and pd.notna(v)}, row["platform"]
        )
        assert 0 <= out["score"] <= 100 and 0 <= out["emq_score"] <= 10
        assert out["level"] == (
            "excellent"
            if out["score"] >= 80
            else "good"
            if out["score"] >= 60
            else "fair"
            if out["score"] >= 40
            else "poor"
        )


# --- hostile input under the seed's names: a valid answer or a one-line error, never a crash ---------------------

SEED_ROAS = [
    "historical_roas_7d",
    "historical_roas_30d",
    "spend_velocity",
    "ctr",
    "conversion_rate",
    "impressions_growth",
    "platform_encoded",
    "day_of_week",
    "season_encoded",
    "audience_size",
    "creative_fatigue_score",
    "date",
]
SEED_FATIGUE = [
    "days_in_rotation",
    "total_impressions",
    "frequency",
    "avg_frequency",
    "audience_size",
    "ctr_trend_7d",
    "ctr_trend_30d",
    "engagement_decay_rate",
    "initial_ctr",
    "current_ctr",
]
SEED_EMQ = ["email", "phone", "click_id", "gclid", "ip_address", "user_agent", "external_id"]


@SETTINGS
@given(
    hostile_record(SEED_ROAS, required=("historical_roas_7d",)),
    st.one_of(st.sampled_from(["meta", 2, "Q3", [0, 0, 1, 0], "2026-02-01"]), hostile_scalar),
)
def test_seed_roas_names_under_hostile_values(campaign, extra):
    campaign = {
        **campaign,
        "platform_encoded": campaign.get("platform_encoded", extra),
        "season_encoded": extra,
    }
    result = outcome(lambda: roas_predictor().predict(campaign))
    if result is not None:
        assert finite(result["predicted_roas"], result["confidence_lower"], result["confidence_upper"])
        assert isinstance(result["recommendation"], str)
        strict_json(result)


@SETTINGS
@given(hostile_record(SEED_FATIGUE), st.booleans())
def test_seed_fatigue_names_under_hostile_values(asset, as_object):
    subject = type("Asset", (), dict(asset))() if as_object and asset else asset
    result = outcome(lambda: FatigueScorer().calculate_score(subject))
    if result is not None:
        assert 0 <= result["fatigue_score"] <= 100
        strict_json(result)


@SETTINGS
@given(hostile_record(SEED_EMQ), st.one_of(st.sampled_from(["meta", "google", "tiktok"]), hostile_scalar))
def test_seed_emq_names_under_hostile_values(event, platform):
    result = outcome(lambda: DataQualityAnalyzer().analyze(event, platform))
    if result is not None:
        assert 0 <= result["score"] <= 100 and 0 <= result["emq_score"] <= 10
        assert result["level"] in {"excellent", "good", "fair", "poor"}
        strict_json(result)
