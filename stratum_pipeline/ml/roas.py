"""Next-day ROAS forecasts per campaign, with 10-90% intervals, a trend and a budget recommendation.

What the forecast means: `predicted_roas` is the *expected* ROAS of the next day (a mean, what revenue
per unit of spend averages to), so the product can multiply it by spend. On a campaign with a few
conversions a day the realised ROAS scatters widely around it (zero-revenue days, a few large orders);
the interval says how widely.

Model: gradient-boosted trees (XGBoost) on the 11 ROAS features plus short-horizon context
(ml.features.ROAS_CONTEXT). The target is the next day's realised ROAS relative to the campaign's
30-day ROAS (the base), fitted with a Tweedie objective (log link): its loss is minimised by the
conditional *mean*, it takes zero-revenue days as they are, and a campaign's volume
(`conversions_30d`) tells the trees how far to trust a noisy base, i.e. how much to shrink it towards
what campaigns like it return. (A squared error on log ROAS would forecast a geometric mean: about 0.6x
the expected ROAS on low-volume accounts.) Shallow, strongly regularised trees: on daily ad data the
noise dwarfs the signal.

How much structure to fit depends on how noisy the tenant's data is: `fit` tries the regularised
trees and a more flexible set (FLEXIBLE_TREES, what a high-volume account can afford) on the older
part of the training data, keeps the one with the lower MAE on its most recent part, and refits it.

Intervals: a quantile model (reg:quantileerror, alpha 0.1 and 0.9) gives the raw band on the same
relative scale, then conformalised quantile regression (CQR) on the most recent part of the training
data widens or narrows it so that 80% of held-out *realised* outcomes fall inside: the bounds are
calibrated 10%/90% quantiles of the realised ROAS, not a spread of trees.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
from scipy.special import ndtr

from stratum_pipeline.ml.features import ROAS_CONTEXT, ROAS_FEATURES
from stratum_pipeline.ml.inputs import InputError, number, numeric_column, require_frame, require_mapping
from stratum_pipeline.ml.recency import check_weights
from stratum_pipeline.ml.response_curves import DRAWS_PREFIX, SHAPE_GRID, decode_draws, season_factor
from stratum_pipeline.ml.seed_names import roas_input

PLATFORMS = ("meta", "google", "tiktok", "linkedin")
TARGET = "next_day_roas"
MIN_BASE_ROAS = 0.05
BREAKEVEN_ROAS = 1.0
# The alternative to the default, regularised trees that `fit` tries: deeper, faster-learning trees for
# accounts whose daily ROAS is precise enough to follow closely.
FLEXIBLE_TREES = {"max_depth": 4, "learning_rate": 0.05, "min_child_weight": 5}
FLEXIBLE_MARGIN = 0.02  # ...chosen only if their recent MAE is at least 2% lower


def training_frame(features: pd.DataFrame) -> pd.DataFrame:
    """Each campaign-day's features with the next day's realised ROAS as `next_day_roas`.

    Rows whose campaign has no row on the next day (or no spend that day) are dropped: there is
    nothing to learn from them.
    """
    frame = features.copy()
    frame["date"] = pd.to_datetime(frame["date"])
    following = frame[["campaign_id", "date", "roas"]].rename(columns={"roas": TARGET})
    following["date"] = following["date"] - pd.Timedelta(days=1)
    out = frame.merge(following, on=["campaign_id", "date"], how="inner")
    return out[np.isfinite(out[TARGET])].reset_index(drop=True)


def _xgb():
    import xgboost

    return xgboost


class ROASPredictor:
    """XGBoost next-day ROAS forecaster with conformalised 10-90% intervals.

    Inputs are turned into a plain float matrix (numbers, their ratios to the base ROAS, a one-hot
    platform) and scored with the boosters' in-place prediction, so one campaign takes well under a
    millisecond and a batch of 100,000 about a second.
    """

    FORMAT = 4  # bump when a fitted object's layout or feature set changes; older pickles are refused
    feature_names = [*ROAS_FEATURES, *ROAS_CONTEXT]
    numeric_names = [f for f in feature_names if f != "platform"]
    relative_columns = ["roas_7d", "roas_30d", "roas", "roas_3d", "roas_14d"]
    base_columns = ["roas_30d", "roas_14d", "roas_7d", "roas"]  # first available is the base

    def __init__(
        self,
        n_estimators: int = 300,
        max_depth: int = 3,
        learning_rate: float = 0.03,
        min_child_weight: float = 20,
        tweedie_variance_power: float = 1.3,
        coverage: float = 0.8,
        calibration_share: float = 0.2,
        select_complexity: bool = True,
        random_state: int = 0,
        n_jobs: int = 2,
    ):
        self.params = dict(
            n_estimators=n_estimators,
            max_depth=max_depth,
            learning_rate=learning_rate,
            subsample=0.8,
            colsample_bytree=0.8,
            min_child_weight=min_child_weight,
            tree_method="hist",
            random_state=random_state,
            n_jobs=n_jobs,
        )
        self.tweedie_variance_power = tweedie_variance_power
        self.coverage = coverage
        self.calibration_share = calibration_share
        self.select_complexity = select_complexity
        self.complexity_: dict | None = None
        self.fallback_base_: float | None = None
        self.interval_adjustment_: float | None = None

    # --- design -------------------------------------------------------------------------

    def _assemble(self, numeric: np.ndarray, platform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = {name: i for i, name in enumerate(self.numeric_names)}
        base = np.full(len(numeric), np.nan)
        for column in self.base_columns:
            values = numeric[:, index[column]]
            base = np.where(np.isnan(base) & np.isfinite(values), values, base)
        fallback = self.fallback_base_ if self.fallback_base_ is not None else 1.0
        base = np.maximum(np.where(np.isnan(base), fallback, base), MIN_BASE_ROAS)
        relative = numeric[:, [index[c] for c in self.relative_columns]] / base[:, None]
        onehot = (platform[:, None] == np.array(PLATFORMS)[None, :]).astype(float)
        return np.hstack([numeric, relative, onehot]), base

    def _design(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        require_frame(features, "ROAS features", ("roas_7d", "roas_30d", "platform"))
        numeric = (
            np.column_stack(
                [
                    numeric_column(features[c], c) if c in features else np.full(len(features), np.nan)
                    for c in self.numeric_names
                ]
            )
            if len(features)
            else np.empty((0, len(self.numeric_names)))
        )
        platform = features["platform"].astype(str).str.strip().str.lower().to_numpy()
        return self._assemble(numeric, platform)

    def _clean_one(self, campaign: dict) -> dict:
        """The campaign's numeric features under the rules of ml.inputs (NaN when missing)."""
        clean = {c: number(campaign.get(c), c) for c in self.numeric_names}
        if all(np.isnan(clean[c]) for c in ("roas_7d", "roas_30d", "roas")):
            raise InputError("a campaign needs a finite number in at least one of roas_7d, roas_30d or roas")
        return clean

    def _design_one(self, clean: dict, platform) -> tuple[np.ndarray, np.ndarray]:
        numeric = np.array([[clean[c] for c in self.numeric_names]], dtype=float)
        return self._assemble(numeric, np.array([str(platform or "").strip().lower()]))

    # --- fit ----------------------------------------------------------------------------

    def fit(self, features: pd.DataFrame, target, sample_weight=None) -> "ROASPredictor":
        """Fit on campaign-day features and the realised next-day ROAS (same length).

        The most recent `calibration_share` of days chooses the trees' complexity (see the module's
        docstring) and calibrates the interval; the final models are then refitted on everything.
        `sample_weight` (one non-negative number per row, optional) weights the rows in every fit and in the
        complexity choice's recent MAE, e.g. to favour the days after a known change (`recent_weights`).
        """
        y = np.asarray(target, dtype=float)
        if len(y) != len(features):
            raise ValueError(f"features have {len(features)} rows but target has {len(y)}")
        weight = check_weights(sample_weight, len(y))
        keep = np.isfinite(y)
        if keep.sum() < 50:
            raise ValueError(f"need at least 50 rows with a finite target to fit, got {int(keep.sum())}")
        if (y[keep] < 0).any():
            raise ValueError(
                f"the target (realised ROAS) must not be negative; got {int((y[keep] < 0).sum())} negative values"
            )
        features = features.loc[keep].reset_index(drop=True)
        y = y[keep]
        weight = None if weight is None else weight[keep]
        typical = np.nanmedian(pd.to_numeric(features["roas_30d"], errors="coerce").to_numpy(dtype=float))
        self.fallback_base_ = float(typical) if np.isfinite(typical) and typical > 0 else 1.0
        X, base = self._design(features)
        y_rel = y / base  # realised ROAS relative to the base: >= 0, zero on a day without revenue

        order = (
            np.argsort(pd.to_datetime(features["date"]).to_numpy(), kind="stable")
            if "date" in features
            else np.arange(len(y))
        )
        n_cal = max(20, int(len(y) * self.calibration_share))
        train, cal = order[:-n_cal], order[-n_cal:]
        if self.select_complexity:
            self._choose_complexity(X, y_rel * base, base, train, cal, weight)
        _, band = self._fit_models(X[train], y_rel[train], None if weight is None else weight[train])
        lo, hi = self._raw_band(band, X[cal])
        conformity = np.maximum(lo - y_rel[cal], y_rel[cal] - hi)
        level = min(1.0, self.coverage * (1 + 1 / len(cal)))
        self.interval_adjustment_ = float(np.quantile(conformity, level))
        self.point_, self.band_ = self._fit_models(X, y_rel, weight)
        self.format_ = self.FORMAT
        return self

    def _choose_complexity(
        self,
        X: np.ndarray,
        y: np.ndarray,
        base: np.ndarray,
        train: np.ndarray,
        cal: np.ndarray,
        weight: np.ndarray | None = None,
    ) -> None:
        """Keep the default trees, or take FLEXIBLE_TREES if they forecast the held-out recent days clearly better (MAE)."""
        xgb = _xgb()
        scores = {}
        for name, overrides in (("regularised", {}), ("flexible", FLEXIBLE_TREES)):
            params = {**self.params, **overrides}
            point = (
                xgb.XGBRegressor(
                    objective="reg:tweedie", tweedie_variance_power=self.tweedie_variance_power, **params
                )
                .fit(
                    X[train], y[train] / base[train], sample_weight=None if weight is None else weight[train]
                )
                .get_booster()
            )
            forecast = base[cal] * np.asarray(point.inplace_predict(X[cal])).reshape(-1)
            errors = np.abs(forecast - y[cal])
            scores[name] = float(errors.mean() if weight is None else np.average(errors, weights=weight[cal]))
        # on noisy accounts the two scores differ by chance: the flexible trees must win clearly
        chosen = (
            "flexible"
            if scores["flexible"] < (1 - FLEXIBLE_MARGIN) * scores["regularised"]
            else "regularised"
        )
        if chosen == "flexible":
            self.params = {**self.params, **FLEXIBLE_TREES}
        self.complexity_ = {"chosen": chosen, **{f"recent_mae_{k}": round(v, 4) for k, v in scores.items()}}

    def _fit_models(self, X: np.ndarray, y_rel: np.ndarray, weight: np.ndarray | None = None):
        xgb = _xgb()
        point = (
            xgb.XGBRegressor(
                objective="reg:tweedie", tweedie_variance_power=self.tweedie_variance_power, **self.params
            )
            .fit(X, y_rel, sample_weight=weight)
            .get_booster()
        )
        alpha = np.array([(1 - self.coverage) / 2, 1 - (1 - self.coverage) / 2])
        band = (
            xgb.XGBRegressor(objective="reg:quantileerror", quantile_alpha=alpha, **self.params)
            .fit(X, y_rel, sample_weight=weight)
            .get_booster()
        )
        return point, band

    @staticmethod
    def _raw_band(band, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(band.inplace_predict(X)).reshape(len(X), -1)
        return np.minimum(q[:, 0], q[:, 1]), np.maximum(q[:, 0], q[:, 1])

    # --- predict ------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if self.interval_adjustment_ is None:
            raise RuntimeError("ROASPredictor is not fitted")
        if getattr(self, "format_", None) != self.FORMAT:
            raise RuntimeError(
                f"this ROASPredictor was fitted by an incompatible version of stratum-pipeline (format "
                f"{getattr(self, 'format_', None)}, this version reads {self.FORMAT}): retrain and republish it"
            )

    def _forecast(self, X: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rel = np.asarray(self.point_.inplace_predict(X)).reshape(
            -1
        )  # the Tweedie model's mean (inverse link applied)
        lo, hi = self._raw_band(self.band_, X)
        lo = np.clip(lo - self.interval_adjustment_, 0.0, rel)
        hi = np.maximum(hi + self.interval_adjustment_, rel)
        return base * rel, base * lo, base * hi

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """predicted_roas, confidence_lower (10%), confidence_upper (90%) for every row."""
        self._check_fitted()
        require_frame(features, "ROAS features")
        predicted, lower, upper = self._forecast(*self._design(features)) if len(features) else ([], [], [])
        return pd.DataFrame(
            {"predicted_roas": predicted, "confidence_lower": lower, "confidence_upper": upper},
            index=features.index,
        )

    def predict(self, campaign: dict) -> dict:
        """One campaign's forecast: predicted_roas, confidence_lower, confidence_upper, trend, recommendation
        (the seed's sentence, e.g. "Increase budget by 20%") and budget_recommendation (action,
        budget_change_percent, reason). The seed's feature names are accepted (see `ml.seed_names`)."""
        campaign = roas_input(require_mapping(campaign, "campaign"))
        self._check_fitted()
        clean = self._clean_one(campaign)
        design = self._design_one(clean, campaign.get("platform"))
        predicted, lower, upper = (round(float(v[0]), 4) for v in self._forecast(*design))
        trend = roas_trend(clean["roas_7d"], clean["roas_30d"])
        budget = budget_recommendation(
            predicted,
            lower,
            upper,
            clean["roas_7d"],
            clean["roas_30d"],
            clean["spend_velocity"],
            trend,
        )
        return {
            "predicted_roas": predicted,
            "confidence_lower": lower,
            "confidence_upper": upper,
            "trend": trend,
            "recommendation": recommendation_sentence(budget),
            "budget_recommendation": budget,
        }


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _array(values) -> np.ndarray:
    if isinstance(values, (pd.Series, pd.Index)):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    return np.array([_num(v) for v in np.atleast_1d(np.asarray(values, dtype=object))], dtype=float)


def trend_array(roas_7d, roas_30d, tolerance: float = 0.05) -> np.ndarray:
    """improving / stable / declining: the last week's ROAS against the last 30 days' (vectorised)."""
    recent, longer = _array(roas_7d), _array(roas_30d)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(longer > 0, recent / longer - 1, 0.0)
    change = np.nan_to_num(change, nan=0.0)
    return np.select([change > tolerance, change < -tolerance], ["improving", "declining"], default="stable")


def roas_trend(roas_7d, roas_30d, tolerance: float = 0.05) -> str:
    return str(trend_array([roas_7d], [roas_30d], tolerance)[0])


RECOMMENDATION_RULES = (
    (-30, "even the optimistic forecast is below the target ROAS"),
    (-15, "the forecast is below the target ROAS"),
    (0, "spend rose while ROAS fell: marginal returns are diminishing"),
    (20, "the pessimistic forecast is well above the target ROAS"),
    (10, "the pessimistic forecast is well above the target ROAS, but ROAS is declining"),
    (10, "the forecast is above target with an improving trend"),
    (0, "the forecast is above target"),
    (0, "the forecast interval straddles the target ROAS"),
)


def recommendation_arrays(
    predicted, lower, upper, roas_7d, roas_30d, spend_velocity, trend, target_roas: float = BREAKEVEN_ROAS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Budget change in % (and action, reason) from the forecast against the target ROAS and marginal returns.

    In order: the whole interval below target: -30%; the forecast below target: -15%; returns already
    diminishing (spend up >20% in the last week while ROAS fell): hold; the lower bound at 1.5x target:
    +20% (+10% while declining); the lower bound above target: +10% if improving, else hold; else hold.
    """
    predicted, lower, upper = _array(predicted), _array(lower), _array(upper)
    velocity, recent, longer = _array(spend_velocity), _array(roas_7d), _array(roas_30d)
    trend = np.atleast_1d(np.asarray(trend))
    diminishing = (velocity > 1.2) & (recent < longer)
    conditions = [
        upper < target_roas,
        predicted < target_roas,
        diminishing,
        (lower >= 1.5 * target_roas) & (trend != "declining"),
        lower >= 1.5 * target_roas,
        (lower >= target_roas) & (trend == "improving"),
        lower >= target_roas,
    ]
    rule = np.select(conditions, np.arange(len(conditions)), default=len(conditions))
    change = np.array([r[0] for r in RECOMMENDATION_RULES])[rule]
    reason = np.array([r[1] for r in RECOMMENDATION_RULES], dtype=object)[rule]
    action = np.select([change > 0, change < 0], ["increase", "decrease"], default="maintain")
    return change, action, reason


STEPS_UP = (0.2, 0.1)  # the budget increases tried, largest first
STEPS_DOWN = (0.3, 0.15)  # the budget cuts tried, largest first
CONFIDENCE = 0.9  # share of the curve's posterior draws that must agree before the budget moves
CURVE_DRAWS = 16  # the first posterior draws of each curve (a random sample of its 64), as the simulator's
# Model error of a curve's log marginal ROAS beyond the spread of its draws: on training decision days (28-56
# days before the generator's end, seed 7) the rms error beyond the draws' spread was 0.27 in the low-noise
# regime (none in the realistic one, whose draws are wider than their error). A draw counts as above the
# target with probability Phi(log(m / target) / MARGINAL_LOG_SD).
MARGINAL_LOG_SD = 0.25
# A curve whose point estimate sits at the top of the fit's Hill-shape grid ran out of room: on the training
# decision days (28-56 days before the generator's end, seed 7, low regime) most wrong decreases were such steep,
# already-saturated misfits (fitted elasticity 0.03-0.25 against a true 0.35-0.65). It does not move budgets.
EDGE_SHAPE = float(SHAPE_GRID[-1])
SEASON_DAYS = 30  # the marginal return is judged at the tenant's mean season of the next 30 days


def _season_means(curves: pd.DataFrame) -> np.ndarray:
    """The mean seasonal multiplier of each curve's next SEASON_DAYS days (1 without a season or date)."""
    out = np.ones(len(curves))
    if "season" not in curves or "as_of" not in curves:
        return out
    cache: dict = {}
    seasons, dates = curves["season"].to_numpy(object), curves["as_of"].to_numpy(object)
    for i, (text, as_of) in enumerate(zip(seasons, dates)):
        if text is None or (isinstance(text, float) and np.isnan(text)) or pd.isna(as_of):
            continue
        key = (text if isinstance(text, str) else json.dumps(list(text)), pd.Timestamp(as_of).normalize())
        if key not in cache:
            coefficients = json.loads(key[0])
            future = pd.date_range(key[1] + pd.Timedelta(days=1), periods=SEASON_DAYS, freq="D")
            cache[key] = float(season_factor(coefficients, future).mean())
        out[i] = cache[key]
    return out


def curve_draw_array(curves: pd.DataFrame, max_draws: int = CURVE_DRAWS) -> tuple[np.ndarray, np.ndarray]:
    """(draws (N, max_draws, 5) float32 with NaN rows for unusable curves, usable (N,) bool) of
    campaign_response_curves rows. Only the first `max_draws` draws of the stored text are decoded."""
    n = len(curves)
    source = curves["curve_source"].to_numpy(object) if "curve_source" in curves else np.full(n, "fitted")
    raws = curves["draws"].to_numpy(object) if "draws" in curves else np.full(n, None)
    nbytes = max_draws * 5 * 4
    chars = -(-nbytes // 3) * 4  # base64 characters that hold the first `max_draws` draws
    out = np.full((n, max_draws, 5), np.nan, dtype=np.float32)
    packed = np.array(
        [
            isinstance(r, str)
            and r.startswith(DRAWS_PREFIX)
            and len(r) >= len(DRAWS_PREFIX) + chars
            and src != "fallback"
            for r, src in zip(raws, source)
        ]
    )
    if packed.any():  # the stored form: decode the prefix of every text in one buffer
        start = len(DRAWS_PREFIX)
        buffer = b"".join(base64.b64decode(r[start : start + chars])[:nbytes] for r in raws[packed])
        out[packed] = np.frombuffer(buffer, dtype="<f4").reshape(-1, max_draws, 5)
    for i in np.flatnonzero(~packed):  # other forms (JSON lists, arrays): one by one
        draws = decode_draws(raws[i]) if source[i] != "fallback" else None
        if draws is not None and len(draws) >= max_draws:
            out[i] = draws[:max_draws]
    usable = np.isfinite(out).all(axis=(1, 2)) & (out[:, :, 1] > 0).all(axis=1)
    return out, usable


def step_roas(draws: np.ndarray, spend, season_mean, changes) -> np.ndarray:
    """Incremental ROAS of each budget change per posterior draw, at the settled (adstocked) spend:
    (revenue(s (1 + c)) - revenue(s)) / (c s) for c > 0, the same of the removed spend for c < 0.
    (N, K, D) float32 (the hot loop of 100,000 forecasts)."""
    d = np.asarray(draws, dtype=np.float32)
    vmax, k, h = d[:, None, :, 0], d[:, None, :, 1], d[:, None, :, 2]
    s = np.asarray(spend, dtype=np.float32)[:, None, None]
    c = np.asarray(changes, dtype=np.float32)[None, :, None]
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        gap = np.log(np.maximum(k, 1e-30)) - np.log(np.maximum(s, 1e-30))  # log K - log s: (N, 1, D)
        base = 1.0 / (1.0 + np.exp(h * gap))
        moved = 1.0 / (1.0 + np.exp(h * (gap - np.log1p(c))))
        season = np.asarray(season_mean, dtype=np.float32)[:, None, None]
        return vmax * season * (moved - base) / (c * s)


def marginal_recommendation_arrays(
    draws: np.ndarray,
    spend,
    season_mean,
    target_roas=BREAKEVEN_ROAS,
    confidence: float = CONFIDENCE,
    log_sd: float = MARGINAL_LOG_SD,
    edge_shape: float | None = EDGE_SHAPE,
    shape=None,
):
    """Budget change in % (and action, reason) from each campaign's response curve.

    Increase by the largest of STEPS_UP whose added spend returns above the target ROAS in at least
    `confidence` of the curve's posterior draws; decrease by the largest of STEPS_DOWN whose removed part of
    today's spend returned below the target in at least `confidence` of them; otherwise (or if both hold, on
    the rising part of an S-curve) maintain. draws (N, D, 5) as curve_draw_array; spend (N,) today's spend;
    target_roas one value or one per campaign; `log_sd` the model error beyond the draws (MARGINAL_LOG_SD);
    a curve whose Hill shape (`shape`, the curve's point estimate; default the median draw's) is >= `edge_shape`
    (EDGE_SHAPE; None: no such check) maintains."""
    n = len(draws)
    target = np.broadcast_to(np.asarray(target_roas, dtype=float), (n,))
    steps = np.array([*STEPS_UP, *(-c for c in STEPS_DOWN)])
    roas = step_roas(draws, spend, season_mean, steps)  # (N, K, D)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log(np.maximum(roas, 0.0) / target[:, None, None]) / log_sd
    above = ndtr(np.where(np.isnan(z), -np.inf, z)).mean(axis=2)
    mean = roas.mean(axis=2)
    up = len(STEPS_UP)
    up_ok = above[:, :up] >= confidence
    down_ok = (1.0 - above[:, up:]) >= confidence
    up_pick = np.argmax(up_ok, axis=1)
    down_pick = np.argmax(down_ok, axis=1)
    shape = np.median(np.asarray(draws, dtype=float)[:, :, 2], axis=1) if shape is None else _array(shape)
    edge = shape >= edge_shape - 1e-6 if edge_shape is not None else np.zeros(n, dtype=bool)
    increase = up_ok.any(axis=1) & ~down_ok.any(axis=1) & ~edge
    decrease = down_ok.any(axis=1) & ~up_ok.any(axis=1) & ~edge
    change = np.where(increase, np.array(STEPS_UP)[up_pick] * 100, 0.0)
    change = np.where(decrease, -np.array(STEPS_DOWN)[down_pick] * 100, change).round().astype(int)
    action = np.select([change > 0, change < 0], ["increase", "decrease"], default="maintain")
    rows = np.arange(n)
    m_up, p_up = mean[rows, up_pick], above[rows, up_pick]
    m_down, p_down = mean[rows, up + down_pick], 1.0 - above[rows, up + down_pick]
    m_next, m_last = mean[:, up - 1], mean[:, -1]  # the smallest steps: the nearest marginal returns
    reason = np.empty(n, dtype=object)
    for i in range(n):
        if increase[i]:
            reason[i] = (
                f"marginal ROAS of the next {STEPS_UP[up_pick[i]]:.0%}: {m_up[i]:.2f} > target "
                f"{target[i]:.2f} ({p_up[i]:.0%} of the curve's draws)"
            )
        elif decrease[i]:
            reason[i] = (
                f"marginal ROAS of the last {STEPS_DOWN[down_pick[i]]:.0%} of today's spend: "
                f"{m_down[i]:.2f} < target {target[i]:.2f} ({p_down[i]:.0%} of the curve's draws)"
            )
        elif edge[i]:
            reason[i] = (
                f"response curve at the edge of its fit (Hill shape {shape[i]:.1f}): marginal ROAS of "
                f"the next {STEPS_UP[-1]:.0%} {m_next[i]:.2f} not trusted against target {target[i]:.2f}"
            )
        else:
            reason[i] = (
                f"marginal ROAS of the next {STEPS_UP[-1]:.0%}: {m_next[i]:.2f}, of the last "
                f"{STEPS_DOWN[-1]:.0%}: {m_last[i]:.2f}, target {target[i]:.2f}: "
                "not clear enough to move"
            )
    return change, action, reason


def budget_recommendation(
    predicted, lower, upper, roas_7d, roas_30d, spend_velocity, trend, target_roas: float = BREAKEVEN_ROAS
) -> dict:
    change, action, reason = recommendation_arrays(
        predicted, lower, upper, roas_7d, roas_30d, spend_velocity, [trend], target_roas
    )
    return {"action": str(action[0]), "budget_change_percent": int(change[0]), "reason": str(reason[0])}


def recommendation_sentence(budget: dict) -> str:
    """The seed's recommendation text for a budget recommendation: "Increase budget by 20%",
    "Decrease budget by 15%" or "Maintain current budget"."""
    change = int(budget["budget_change_percent"])
    if change > 0:
        return f"Increase budget by {change}%"
    if change < 0:
        return f"Decrease budget by {-change}%"
    return "Maintain current budget"


def curve_recommendations(
    change, action, reason, curves: pd.DataFrame | None, spend, target_roas=BREAKEVEN_ROAS, **rule
):
    """The average-ROAS rule's (change, action, reason) replaced by the marginal rule wherever a campaign has
    a usable response curve (`curves`: campaign_response_curves rows aligned with the others, NaN rows where
    none) and spent today; elsewhere the reason says the average-ROAS rule was used. `rule`: the keyword
    arguments of marginal_recommendation_arrays (confidence, log_sd, edge_shape)."""
    change = np.array(change, dtype=int)
    action, reason = np.array(action, dtype=object), np.array(reason, dtype=object)
    spend = np.broadcast_to(_array(spend), change.shape)
    usable = np.zeros(len(change), dtype=bool)
    if curves is not None and "draws" in curves and len(curves):
        draws, usable = curve_draw_array(curves)
        usable &= np.isfinite(spend) & (spend > 0)
    if usable.any():
        target = np.broadcast_to(np.asarray(target_roas, dtype=float), (len(change),))[usable]
        season = _season_means(curves[usable])
        shape = _array(curves["hill_shape"])[usable] if "hill_shape" in curves else None
        c, a, r = marginal_recommendation_arrays(
            draws[usable], spend[usable], season, target, shape=shape, **rule
        )
        change[usable], action[usable], reason[usable] = c, a, r
    reason[~usable] = ["no response curve, average-ROAS rule: " + str(r) for r in reason[~usable]]
    return change, action, reason


def forecast_table(
    predictor: ROASPredictor,
    features: pd.DataFrame,
    curves: pd.DataFrame | None = None,
    target_roas: float = BREAKEVEN_ROAS,
) -> pd.DataFrame:
    """Forecasts with trend and budget recommendation for every campaign-day row (vectorised).

    With `curves` (campaign_response_curves rows aligned with `features`), the recommendation comes from the
    campaign's marginal returns (marginal_recommendation_arrays) against `target_roas`; a campaign without a
    usable curve keeps the average-ROAS rule, and its reason says so."""
    forecast = predictor.predict_frame(features)
    trend = trend_array(features["roas_7d"], features["roas_30d"])
    change, action, reason = recommendation_arrays(
        forecast["predicted_roas"],
        forecast["confidence_lower"],
        forecast["confidence_upper"],
        features["roas_7d"],
        features["roas_30d"],
        features.get("spend_velocity", np.nan),
        trend,
        target_roas,
    )
    if curves is not None:
        change, action, reason = curve_recommendations(
            change, action, reason, curves, features.get("spend", np.nan), target_roas
        )
    return forecast.assign(
        trend=trend, recommendation_action=action, budget_change_percent=change, recommendation_reason=reason
    )
