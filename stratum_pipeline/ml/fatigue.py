"""Creative fatigue: how worn out an ad creative is, as a 0-100 score, a level and a forecast.

What the scorer predicts (`FatigueScorer`) is the creative's CTR retention today: its CTR relative to its
fresh CTR. Levels are bands on retention: low >= 0.85 > medium >= 0.70 > high >= 0.50 > critical
(RETENTION_BANDS), and `days_until_critical` forecasts the day retention falls below 0.5.

The model: a creative wears out with the exposure of its audience, retention = exp(-rate x frequency)
(frequency: cumulative impressions per audience member). Each creative's decay rate is estimated from its
observed decline, the CTR of its last 7 days against its first 3 (and the engagement rate's, which decays
`engagement_ratio` times as fast), over the frequency it gained in between, and shrunk towards the
population's rate in proportion to the noise of those rates (binomial: few clicks, little weight). A fresh or
low-volume creative therefore keeps close to the population's curve until its own evidence is strong.
The days until critical follow from the rate and the creative's average delivery so far (frequency per day),
times `days_scale`. The population's rate, its spread, the engagement ratio and the days scale are
calibrated (`calibrate`) on the generator's training period; DEFAULT_CALIBRATION holds the figures.

The 0-100 score maps retention piecewise linearly onto the seed's thresholds (medium 50, high 70,
critical 85): 1.0 -> 0, 0.85 -> 50, 0.70 -> 70, 0.50 -> 85, 0 -> 100. The four component scores of the
seed (age, frequency, CTR decay, engagement decay; `component_scores`, `fatigue_score`) stay as the
explanation of the suggested actions; `fatigue_score`/`score_frame` (the weighted sum of the components)
remain the creative_fatigue feature of the ROAS model.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stratum_pipeline.ml.inputs import InputError, numeric_column, require_frame
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
        "engagement_decay": 100.0
        * _unit(np.nan_to_num(np.asarray(engagement_decay, dtype=float)) / DECAY_FULL),
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


FEATURES = (
    "days_active",
    "frequency",
    "ctr_current",
    "ctr_baseline",
    "engagement_rate_current",
    "engagement_rate_baseline",
)


def _columns(features: pd.DataFrame) -> dict[str, np.ndarray]:
    """The six fatigue features of a frame as floats (ml.inputs rules); a missing column is an InputError."""
    require_frame(features, "creative features", FEATURES)
    return {c: numeric_column(features[c], c) for c in FEATURES}


def _decays(x: dict) -> tuple[np.ndarray, np.ndarray]:
    return (
        relative_decay(x["ctr_current"], x["ctr_baseline"]),
        relative_decay(x["engagement_rate_current"], x["engagement_rate_baseline"]),
    )


def score_frame(features: pd.DataFrame) -> pd.Series:
    """Fatigue score for every row of a creative-features frame (see ml.features.creative_features)."""
    x = _columns(features)
    return pd.Series(
        fatigue_score(x["days_active"], x["frequency"], *_decays(x)),
        index=features.index,
        name="fatigue_score",
    )


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
    """Days until the weighted component score reaches the critical threshold at its average growth so far
    (0 if already critical, NaN if it is not growing): the rule of thumb for the weighted score alone;
    FatigueScorer forecasts from the retention model instead."""
    score = np.asarray(score, dtype=float)
    days = np.maximum(np.nan_to_num(np.asarray(days_active, dtype=float), nan=1.0), 1.0)
    rate = score / days
    with np.errstate(divide="ignore", invalid="ignore"):
        remaining = np.where(rate > 0, np.ceil((THRESHOLDS["critical"] - score) / rate), np.nan)
    remaining = np.where(np.isfinite(remaining), remaining, np.nan)  # a vanishing growth rate: not growing
    return np.where(score >= THRESHOLDS["critical"], 0.0, remaining)


RETENTION_BANDS = {
    "medium": 0.85,
    "high": 0.70,
    "critical": 0.50,
}  # retention below the value: this level or worse
_RETENTION_POINTS = np.array(
    [0.0, RETENTION_BANDS["critical"], RETENTION_BANDS["high"], RETENTION_BANDS["medium"], 1.0]
)
_SCORE_POINTS = np.array([100.0, THRESHOLDS["critical"], THRESHOLDS["high"], THRESHOLDS["medium"], 0.0])
BASELINE_DAYS = 3  # ml.features: the launch CTR is the first 3 days'
WINDOW_DAYS = 7  # ...the current CTR the last 7 days'
RECENT_PACE_MIN_DAYS = 10  # from this age on, the frequency of 7 days ago (if given) sets the delivery pace
MODEL_VARIANCE = (
    1e-4  # variance of a log rate ratio beyond the binomial noise (delivery mix, window averaging)
)
MAX_FORECAST_DAYS = 365
OPTIONAL = ("impressions_7d", "frequency_7d_ago")  # volume (weighs the evidence) and the recent delivery pace


@dataclass(frozen=True)
class FatigueCalibration:
    """The scorer's learned constants (see `calibrate`)."""

    rate_mean: float  # the population's decay rate of CTR per unit of frequency
    rate_sd: float  # its spread across creatives
    engagement_ratio: float  # the engagement rate's decay rate over the CTR's
    days_scale: float  # multiplies the frequency-growth forecast of the days until critical


# calibrate() on the generator's training period (its first 60 days; seed 7, both regimes pooled, with the
# frequency of 7 days before), rounded: benchmarks/advice.py --calibrate prints these figures.
DEFAULT_CALIBRATION = FatigueCalibration(
    rate_mean=0.156, rate_sd=0.0476, engagement_ratio=1.293, days_scale=0.89
)


def retention_score(retention) -> np.ndarray:
    """0-100 score of a retention: 1 -> 0, 0.85 -> 50, 0.70 -> 70, 0.50 -> 85, 0 -> 100 (piecewise linear)."""
    return np.interp(np.clip(np.asarray(retention, dtype=float), 0.0, 1.0), _RETENTION_POINTS, _SCORE_POINTS)


def exposure(x: dict):
    """(delivery pace: frequency per day, frequency before today, frequency gained between the baseline days
    and the 7-day window, the window's days) of arrays of the features (+ OPTIONAL, NaN where unknown).

    Without the frequency of 7 days ago, delivery is taken as steady: the days of the baseline saw on average
    one day's frequency before them, the window's days (d - 1) - (window - 1)/2 days'. With it (creatives of
    RECENT_PACE_MIN_DAYS or more), the last 7 days' pace sets the window's exposure and the forecast."""
    d = np.maximum(np.nan_to_num(np.asarray(x["days_active"], dtype=float), nan=1.0), 1.0)
    f = np.asarray(x["frequency"], dtype=float)
    life = np.where(np.isfinite(f) & (f > 0), f, 0.0) / d
    window = np.minimum(d, WINDOW_DAYS)
    gained = life * np.maximum(d - 2.0 - (window - 1.0) / 2.0, 0.0)
    earlier = np.asarray(x.get("frequency_7d_ago", np.nan), dtype=float)
    recent = np.isfinite(earlier) & (earlier >= 0) & (f >= earlier) & (d >= RECENT_PACE_MIN_DAYS)
    pace = np.where(recent, (f - np.where(recent, earlier, 0.0)) / WINDOW_DAYS, life)
    gained = np.where(recent, earlier + 3.0 * pace - life, gained)
    return pace, np.maximum(f - pace, 0.0), np.maximum(gained, 0.0), window


def _log_ratio(current, baseline, impressions_7d, window):
    """log(current / baseline) and its binomial variance (clicks ~ rate x impressions; the baseline's
    impressions from the window's pace); variance NaN where the ratio is unusable."""
    current, baseline = np.asarray(current, dtype=float), np.asarray(baseline, dtype=float)
    n = np.asarray(impressions_7d, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(current / baseline)
        sampling = 1.0 / (current * n) + window / (BASELINE_DAYS * baseline * n)
    sampling = np.where(np.isfinite(n) & (n > 0), sampling, 0.0)  # volume unknown: the model's variance alone
    var = sampling + MODEL_VARIANCE
    usable = np.isfinite(y) & np.isfinite(var) & (current > 0) & (baseline > 0)
    return np.where(usable, y, 0.0), np.where(usable, var, np.nan)


def decay_rates(x: dict, cal: FatigueCalibration = DEFAULT_CALIBRATION):
    """Each creative's posterior decay rate (normal prior x the CTR's and engagement's observed declines),
    and its exposure (delivery pace, frequency before today, frequency gained: see `exposure`)."""
    per_day, before, gained, window = exposure(x)
    precision = np.full(per_day.shape, 1.0 / cal.rate_sd**2)
    total = precision * cal.rate_mean
    for current, baseline, k in (
        ("ctr_current", "ctr_baseline", 1.0),
        ("engagement_rate_current", "engagement_rate_baseline", cal.engagement_ratio),
    ):
        y, var = _log_ratio(x[current], x[baseline], x["impressions_7d"], window)
        scale = k * gained
        ok = np.isfinite(var) & (scale > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(ok, scale**2 / var, 0.0)  # the precision of -y / scale as an estimate of the rate
            total = total + np.where(ok, w * (-y / np.where(ok, scale, 1.0)), 0.0)
        precision = precision + w
    return np.maximum(total / precision, 0.0), per_day, before, gained


def _observed_retention(x: dict, cal: FatigueCalibration) -> np.ndarray:
    """Retention read directly from the CTR pair and the engagement pair (the geometric mean of those known;
    1 without either): where the exposure model has nothing to work with (frequency unknown, or no frequency
    gained since the baseline days, as in the seed's one-off inputs)."""
    logs = []
    for current, baseline, k in (
        ("ctr_current", "ctr_baseline", 1.0),
        ("engagement_rate_current", "engagement_rate_baseline", cal.engagement_ratio),
    ):
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.log(np.clip(x[current] / x[baseline], 1e-6, 1.0)) / k
        logs.append(np.where(np.isfinite(value) & (x[baseline] > 0), value, np.nan))
    stacked = np.stack(logs)
    known = np.isfinite(stacked).sum(axis=0)
    mean = np.where(known > 0, np.nansum(stacked, axis=0) / np.maximum(known, 1), 0.0)
    return np.exp(mean)


def _forecast(x: dict, cal: FatigueCalibration):
    """(today's estimated CTR retention, unscaled and unrounded days until it falls below 0.5; NaN: none)."""
    rate, per_day, before, gained = decay_rates(x, cal)
    known = np.isfinite(np.asarray(x["frequency"], dtype=float)) & (
        np.asarray(x["frequency"], dtype=float) > 0
    )
    retention = np.where(known & (gained > 0), np.exp(-rate * before), _observed_retention(x, cal))
    retention = np.clip(
        np.where(np.isfinite(retention), retention, 1.0), 0.0, 1.0
    )  # no usable input: no evidence
    with np.errstate(divide="ignore", invalid="ignore"):
        remaining = np.maximum((np.log(2.0) / rate - before) / per_day, 0.0)
    return retention, np.where(known & np.isfinite(remaining) & (rate > 0), remaining, np.nan)


def retention_forecast(x: dict, cal: FatigueCalibration = DEFAULT_CALIBRATION):
    """(today's estimated CTR retention, days until it falls below 0.5) for arrays of the six features and
    OPTIONAL: 0 once it is below, NaN without a forecast (frequency unknown, no decay, or beyond a year)."""
    retention, remaining = _forecast(x, cal)
    days = np.ceil(cal.days_scale * remaining)
    days = np.where(days > MAX_FORECAST_DAYS, np.nan, days)
    return retention, np.where(retention < RETENTION_BANDS["critical"], 0.0, days)


def _scored(x: dict, ctr_decay, engagement_decay, cal: FatigueCalibration):
    """Score, level, component scores, days until critical and the two dominant components' actions."""
    retention, days = retention_forecast(x, cal)
    score = retention_score(retention)
    level = fatigue_level(score)
    days = np.where(level == "critical", 0.0, days)
    parts = component_scores(x["days_active"], x["frequency"], ctr_decay, engagement_decay)
    weighted = np.column_stack([WEIGHTS[name] * np.atleast_1d(parts[name]) for name in WEIGHTS])
    top = np.array(list(WEIGHTS))[np.argsort(-weighted, axis=1, kind="stable")[:, :2]]
    actions = [
        [] if lvl == "low" else [COMPONENT_ACTIONS[a] for a in pair]
        for lvl, pair in zip(np.atleast_1d(level), top)
    ]
    return score, level, parts, days, actions


def model_inputs(features: pd.DataFrame) -> dict[str, np.ndarray]:
    """The six features and OPTIONAL (NaN where a column is absent) of a frame, as floats."""
    x = _columns(features)
    for name in OPTIONAL:
        x[name] = numeric_column(features[name], name) if name in features else np.full(len(features), np.nan)
    return x


def with_recent_frequency(features: pd.DataFrame) -> pd.DataFrame:
    """`features` (creative_features rows, including the 7 days before the rows to score) with
    `frequency_7d_ago`: the same creative's frequency 7 days earlier (NaN where that row is absent)."""
    require_frame(features, "creative features", ("creative_id", "date", "frequency"))
    dates = pd.to_datetime(features["date"])
    earlier = pd.DataFrame(
        {
            "creative_id": features["creative_id"].to_numpy(),
            "date": (dates + pd.Timedelta(days=WINDOW_DAYS)).to_numpy(),
            "frequency_7d_ago": features["frequency"].to_numpy(),
        }
    )
    keys = pd.DataFrame({"creative_id": features["creative_id"].to_numpy(), "date": dates.to_numpy()})
    found = keys.merge(
        earlier.drop_duplicates(["creative_id", "date"]), on=["creative_id", "date"], how="left"
    )
    return features.assign(frequency_7d_ago=found["frequency_7d_ago"].to_numpy())


class FatigueScorer:
    """The seed's creative-fatigue scorer: one creative (`calculate_score`) or a whole frame (`score_frame`).

    `calibration` holds the learned constants (DEFAULT_CALIBRATION, or `calibrate` on a training period)."""

    def __init__(self, calibration: FatigueCalibration = DEFAULT_CALIBRATION):
        self.calibration = calibration

    def score_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """Score, level, component scores, days until critical, recommendation and actions for every row
        (an `impressions_7d` column, as in creative_features, weighs each creative's evidence by its
        volume; a `frequency_7d_ago` column, see `with_recent_frequency`, sets its recent delivery pace)."""
        x = model_inputs(features)
        score, level, parts, days, actions = _scored(x, *_decays(x), self.calibration)
        out = pd.DataFrame(
            {
                "fatigue_score": np.round(score, 2),
                "fatigue_level": level,
                **{f"{name}_score": np.round(parts[name], 2) for name in WEIGHTS},
                "days_until_critical": days,
                "recommendation": pd.Series(level).map(RECOMMENDATIONS).to_numpy(),
            },
            index=features.index,
        )
        out["suggested_actions"] = actions
        return out

    def calculate_score(self, asset) -> dict:
        """One creative: fatigue_score, fatigue_level, component_scores, days_until_critical,
        recommendation, suggested_actions. Missing metrics count as no evidence of fatigue.

        `asset` is a mapping or any object with the attributes (the seed's `CreativeAsset`); the seed's
        names (`days_in_rotation`, `avg_frequency`, `initial_ctr`/`current_ctr`, `ctr_trend_30d`,
        `engagement_decay_rate`, ...) are aliases of this project's (see `ml.seed_names`); OPTIONAL inputs
        as in `score_frame`."""
        x, ctr_override, engagement_override = fatigue_inputs(asset, (*FEATURES, *OPTIONAL))
        ctr_decay, engagement_decay = _decays(x)
        if not np.isnan(ctr_override):  # the seed's trend: retention 1 - decay against a baseline of 1
            ctr_decay, x["ctr_current"], x["ctr_baseline"] = ctr_override, 1.0 - ctr_override, 1.0
        if not np.isnan(engagement_override):
            engagement_decay = engagement_override
            x["engagement_rate_current"], x["engagement_rate_baseline"] = 1.0 - engagement_override, 1.0
        x = {k: np.array([v], dtype=float) for k, v in x.items()}
        score, level, parts, days, actions = _scored(
            x, np.atleast_1d(ctr_decay), np.atleast_1d(engagement_decay), self.calibration
        )
        level, days = str(level[0]), float(days[0])
        return {
            "fatigue_score": round(float(score[0]), 2),
            "fatigue_level": level,
            "component_scores": {name: round(float(value[0]), 2) for name, value in parts.items()},
            "days_until_critical": None if np.isnan(days) else int(days),
            "recommendation": RECOMMENDATIONS[level],
            "suggested_actions": actions[0],
        }


def calibrate(features: pd.DataFrame, true_days=None, min_clicks: float = 200.0) -> FatigueCalibration:
    """The scorer's constants from a training period's creative features (with impressions_7d and, if the
    scorer will get it, frequency_7d_ago).

    Label-free: the population's decay rate and its spread (empirical Bayes: the mean and the variance,
    net of the binomial noise, of the rates of creatives with >= `min_clicks` clicks in 7 days), and the
    engagement ratio (median ratio of the two log declines where CTR fell by 10% or more). With `true_days`
    (the true days until retention falls below 0.5, aligned with `features`; NaN where unknown or beyond 30),
    the days scale that minimises their mean absolute error; otherwise the default's."""
    x = model_inputs(features)
    n = x["impressions_7d"]
    _, _, gained, window = exposure(x)
    y, var = _log_ratio(x["ctr_current"], x["ctr_baseline"], n, window)
    ye, _ = _log_ratio(x["engagement_rate_current"], x["engagement_rate_baseline"], n, window)
    busy = np.isfinite(var) & (gained > 0.5) & (x["ctr_current"] * n >= min_clicks)
    if busy.sum() < 30:
        raise InputError(
            f"calibration needs >= 30 creative-days with {min_clicks:.0f}+ clicks in 7 days and "
            f"some exposure, got {int(busy.sum())}"
        )
    rates = -y[busy] / gained[busy]
    noise = np.mean(var[busy] / gained[busy] ** 2)
    falling = busy & (y < np.log(0.9)) & np.isfinite(ye) & (ye < 0)
    ratio = (
        float(np.median(ye[falling] / y[falling]))
        if falling.sum() >= 30
        else DEFAULT_CALIBRATION.engagement_ratio
    )
    cal = FatigueCalibration(
        rate_mean=float(np.mean(rates)),
        rate_sd=float(np.sqrt(max(np.var(rates) - noise, (0.05 * np.mean(rates)) ** 2))),
        engagement_ratio=ratio,
        days_scale=1.0,
    )
    if true_days is None:
        return FatigueCalibration(
            cal.rate_mean, cal.rate_sd, cal.engagement_ratio, DEFAULT_CALIBRATION.days_scale
        )
    truth = np.asarray(true_days, dtype=float)
    retention, raw = _forecast(x, cal)
    rows = np.isfinite(truth) & np.isfinite(raw) & (retention >= RETENTION_BANDS["critical"])
    if rows.sum() < 30:
        raise InputError(
            f"calibration needs >= 30 creative-days with a known crossing day, got {int(rows.sum())}"
        )
    grid = np.round(np.arange(0.5, 1.51, 0.01), 2)
    errors = [np.mean(np.abs(np.ceil(s * raw[rows]) - truth[rows])) for s in grid]
    return FatigueCalibration(cal.rate_mean, cal.rate_sd, ratio, float(grid[int(np.argmin(errors))]))
