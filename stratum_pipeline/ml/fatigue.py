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


def score_frame(features: pd.DataFrame) -> pd.Series:
    """Fatigue score for every row of a creative-features frame (see ml.features.creative_features)."""
    return pd.Series(
        fatigue_score(
            features["days_active"],
            features["frequency"],
            relative_decay(features["ctr_current"], features["ctr_baseline"]),
            relative_decay(features["engagement_rate_current"], features["engagement_rate_baseline"]),
        ),
        index=features.index,
        name="fatigue_score",
    )
