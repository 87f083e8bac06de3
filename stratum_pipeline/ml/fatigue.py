"""Creative fatigue: how worn out an ad creative is, as a 0-100 score and a level.

The score is a weighted sum of four component scores, each 0-100:

- age: days the creative has been live (60 days -> 100);
- frequency: average exposures per audience member so far (1 -> 0, 8 -> 100);
- CTR decay: decline of the current CTR from the creative's launch CTR (50% -> 100);
- engagement decay: the same for the engagement rate.

Levels use the thresholds low 30 / medium 50 / high 70 / critical 85: a score
under 50 is "low" (30 is where a creative starts to be worth watching), 50+ is
"medium", 70+ "high" and 85+ "critical".
"""

import numpy as np
import pandas as pd

from stratum_pipeline.ml.inputs import numeric_column, require_frame
from stratum_pipeline.ml.seed_names import fatigue_inputs

WEIGHTS = {"age": 0.15, "frequency": 0.25, "ctr_decay": 0.35, "engagement_decay": 0.25}
THRESHOLDS = {"low": 30.0, "medium": 50.0, "high": 70.0, "critical": 85.0}
LEVELS = ("low", "medium", "high", "critical")

AGE_FULL_DAYS = 60.0
FREQUENCY_START, FREQUENCY_FULL = 1.0, 8.0
DECAY_FULL = 0.5


def _unit(x) -> np.ndarray:
    return np.clip(np.asarray(x, dtype=float), 0.0, 1.0)


def relative_decay(current, baseline) -> np.ndarray:
    """1 - current/baseline, floored at 0; 0 where the baseline is unknown or zero."""
    current = np.asarray(current, dtype=float)
    baseline = np.asarray(baseline, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        decay = 1.0 - current / baseline
    decay = np.where(np.isfinite(decay), decay, 0.0)
    return np.clip(decay, 0.0, 1.0)


def component_scores(days_active, frequency, ctr_decay, engagement_decay) -> dict[str, np.ndarray]:
    """The four 0-100 component scores; missing inputs count as 0 (no evidence of fatigue)."""
    days_active = np.nan_to_num(np.asarray(days_active, dtype=float), nan=0.0)
    frequency = np.nan_to_num(np.asarray(frequency, dtype=float), nan=FREQUENCY_START)
    return {
        "age": 100.0 * _unit(days_active / AGE_FULL_DAYS),
        "frequency": 100.0 * _unit((frequency - FREQUENCY_START) / (FREQUENCY_FULL - FREQUENCY_START)),
        "ctr_decay": 100.0 * _unit(np.nan_to_num(np.asarray(ctr_decay, dtype=float)) / DECAY_FULL),
        "engagement_decay": 100.0 * _unit(np.nan_to_num(np.asarray(engagement_decay, dtype=float)) / DECAY_FULL),
    }


def fatigue_score(days_active, frequency, ctr_decay, engagement_decay) -> np.ndarray:
    """Weighted 0-100 fatigue score, vectorised over arrays."""
    parts = component_scores(days_active, frequency, ctr_decay, engagement_decay)
    return sum(WEIGHTS[name] * parts[name] for name in WEIGHTS)


def fatigue_level(score) -> np.ndarray:
    """Level per score: low < 50 <= medium < 70 <= high < 85 <= critical."""
    score = np.asarray(score, dtype=float)
    return np.select(
        [score >= THRESHOLDS["critical"], score >= THRESHOLDS["high"], score >= THRESHOLDS["medium"]],
        ["critical", "high", "medium"],
        default="low",
    )


FEATURES = ("days_active", "frequency", "ctr_current", "ctr_baseline", "engagement_rate_current",
            "engagement_rate_baseline")


def _columns(features: pd.DataFrame) -> dict[str, np.ndarray]:
    """The six fatigue features of a frame as floats (ml.inputs rules); a missing column is an InputError."""
    require_frame(features, "creative features", FEATURES)
    return {c: numeric_column(features[c], c) for c in FEATURES}


def _decays(x: dict) -> tuple[np.ndarray, np.ndarray]:
    return (relative_decay(x["ctr_current"], x["ctr_baseline"]),
            relative_decay(x["engagement_rate_current"], x["engagement_rate_baseline"]))


def score_frame(features: pd.DataFrame) -> pd.Series:
    """Fatigue score for every row of a creative-features frame (see ml.features.creative_features)."""
    x = _columns(features)
    return pd.Series(fatigue_score(x["days_active"], x["frequency"], *_decays(x)), index=features.index,
                     name="fatigue_score")


RECOMMENDATIONS = {
    "low": "healthy: keep running",
    "medium": "monitor: prepare a refreshed variant",
    "high": "refresh soon: rotate in new variants this week",
    "critical": "replace now: pause the creative or swap in a fresh one",
}
COMPONENT_ACTIONS = {
    "frequency": "cap frequency or widen the audience",
    "ctr_decay": "test a new headline and visual",
    "engagement_decay": "try another format (video or carousel)",
    "age": "schedule the next creative refresh",
}


def days_until_critical(score, days_active) -> np.ndarray:
    """Days until the score reaches the critical threshold at its average growth so far (0 if already
    critical, NaN if it is not growing)."""
    score = np.asarray(score, dtype=float)
    days = np.maximum(np.nan_to_num(np.asarray(days_active, dtype=float), nan=1.0), 1.0)
    rate = score / days
    with np.errstate(divide="ignore", invalid="ignore"):
        remaining = np.where(rate > 0, np.ceil((THRESHOLDS["critical"] - score) / rate), np.nan)
    remaining = np.where(np.isfinite(remaining), remaining, np.nan)  # a vanishing growth rate: not growing
    return np.where(score >= THRESHOLDS["critical"], 0.0, remaining)


class FatigueScorer:
    """The seed's creative-fatigue scorer: one creative (`calculate_score`) or a whole frame (`score_frame`)."""

    def score_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """Score, level, component scores, days until critical, recommendation and actions for every row."""
        x = _columns(features)
        parts = component_scores(x["days_active"], x["frequency"], *_decays(x))
        score = sum(WEIGHTS[name] * parts[name] for name in WEIGHTS)
        level = fatigue_level(score)
        weighted = np.column_stack([WEIGHTS[name] * parts[name] for name in WEIGHTS])
        names = np.array(list(WEIGHTS))
        order = np.argsort(-weighted, axis=1)
        out = pd.DataFrame(
            {
                "fatigue_score": np.round(score, 2),
                "fatigue_level": level,
                **{f"{name}_score": np.round(parts[name], 2) for name in WEIGHTS},
                "days_until_critical": days_until_critical(score, x["days_active"]),
                "recommendation": pd.Series(level).map(RECOMMENDATIONS).to_numpy(),
            },
            index=features.index,
        )
        top = names[order[:, :2]]
        out["suggested_actions"] = [
            [] if lvl == "low" else [COMPONENT_ACTIONS[a] for a in pair]
            for lvl, pair in zip(level, top)
        ]
        return out

    def calculate_score(self, asset) -> dict:
        """One creative: fatigue_score, fatigue_level, component_scores, days_until_critical,
        recommendation, suggested_actions. Missing metrics count as no evidence of fatigue.

        `asset` is a mapping or any object with the attributes (the seed's `CreativeAsset`); the seed's
        names (`days_in_rotation`, `avg_frequency`, `initial_ctr`/`current_ctr`, `ctr_trend_30d`,
        `engagement_decay_rate`, ...) are aliases of this project's (see `ml.seed_names`)."""
        x, ctr_override, engagement_override = fatigue_inputs(asset, FEATURES)
        ctr_decay, engagement_decay = _decays(x)
        if not np.isnan(ctr_override):
            ctr_decay = ctr_override
        if not np.isnan(engagement_override):
            engagement_decay = engagement_override
        parts = {k: float(v) for k, v in component_scores(x["days_active"], x["frequency"], ctr_decay, engagement_decay).items()}
        score = sum(WEIGHTS[name] * parts[name] for name in WEIGHTS)
        level = str(fatigue_level(score))
        days = float(days_until_critical(score, x["days_active"]))
        dominant = sorted(WEIGHTS, key=lambda name: -WEIGHTS[name] * parts[name])[:2]
        return {
            "fatigue_score": round(score, 2),
            "fatigue_level": level,
            "component_scores": {name: round(value, 2) for name, value in parts.items()},
            "days_until_critical": None if np.isnan(days) else int(days),
            "recommendation": RECOMMENDATIONS[level],
            "suggested_actions": [] if level == "low" else [COMPONENT_ACTIONS[a] for a in dominant],
        }
