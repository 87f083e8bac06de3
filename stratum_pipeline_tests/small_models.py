"""Small fitted predictors on synthetic rows (seconds to fit), for tests that need a model but not its quality."""

import functools

import numpy as np
import pandas as pd

from stratum_pipeline.ml.conversion import ConversionPredictor
from stratum_pipeline.ml.features import CONVERSION_FEATURES, ROAS_CONTEXT, ROAS_FEATURES
from stratum_pipeline.ml.roas import ROASPredictor


def roas_rows(n: int = 300, seed: int = 0, level: float = 2.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Campaign-day features and a next-day ROAS around `level` times the 7-day ROAS."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.uniform(0.5, 4.0, n) for name in [*ROAS_FEATURES, *ROAS_CONTEXT]})
    frame["platform"] = rng.choice(["meta", "google", "tiktok"], n)
    frame["date"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n) % 90, unit="D")
    target = frame["roas_7d"].to_numpy() * level * rng.lognormal(0, 0.1, n)
    return frame, target


@functools.lru_cache(maxsize=4)
def roas_predictor(level: float = 2.0) -> ROASPredictor:
    frame, target = roas_rows(level=level)
    return ROASPredictor(n_estimators=30, n_jobs=1).fit(frame, target)


@functools.lru_cache(maxsize=1)
def conversion_predictor() -> ConversionPredictor:
    rng = np.random.default_rng(1)
    n = 600
    frame = pd.DataFrame({c: rng.uniform(0, 10, n) for c in CONVERSION_FEATURES[:6]})
    frame["device_type"] = rng.choice(["desktop", "mobile"], n)
    frame["traffic_source"] = rng.choice(["search", "social"], n)
    frame["user_segment"] = rng.choice(["new", "returning"], n)
    frame["started_at"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n), unit="min")
    converted = rng.uniform(size=n) < 1 / (1 + np.exp(-(frame["pages_viewed"] - 5)))
    return ConversionPredictor(n_estimators=20, n_jobs=1).fit(frame, converted)
