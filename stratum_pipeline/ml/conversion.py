"""Conversion probability of a web session, with the factors behind each prediction.

Model: XGBoost (binary:logistic) on the 9 session signals. Numbers go in as they are (missing
values are routed by the trees, so a column that is entirely missing is harmless); each
categorical signal is one-hot encoded over the categories seen in training, so an unseen or
missing category is simply "none of the known ones". Probabilities are calibrated with isotonic
regression cross-fitted on out-of-fold scores (as sklearn's CalibratedClassifierCV with ensemble=False):
every training row is scored by a booster that did not see it, the calibration is learnt on those scores,
and the served booster is trained on all rows, so no rows are withheld from it. A tiny strictly increasing
term keeps the booster's ranking inside the isotonic steps, so calibration costs no AUC.
`will_convert` is set at the operating threshold: the lowest one (highest recall) whose out-of-fold
precision reaches the seed's precision target (TARGET_PRECISION, with a small safety margin). `top_factors` are per-prediction
contributions (TreeSHAP values from the booster, in log-odds, summed over a signal's one-hot
columns), not global importances.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stratum_pipeline.ml.features import CONVERSION_CATEGORICAL, CONVERSION_FEATURES, CONVERSION_NUMERIC
from stratum_pipeline.ml.inputs import number, numeric_column, require_mapping
from stratum_pipeline.ml.recency import apply_shift, check_weights, logit_shift

TARGET_PRECISION = 0.8  # the seed's target: will_convert is set at the highest recall with this precision...
PRECISION_MARGIN = 0.03  # ...plus this margin on the out-of-fold rows, so that new sessions still reach it
CALIBRATION_FOLDS = 4
MIN_FLAGGED = 20  # the operating threshold flags at least this many out-of-fold sessions
TIE_BREAK = 1e-6  # weight of the raw score added to the isotonic map: keeps the booster's ranking


class ConversionPredictor:
    """Calibrated gradient-boosting conversion classifier with per-prediction explanations."""

    FORMAT = 2  # bump when a fitted object's layout changes; older pickles are refused
    feature_names = list(CONVERSION_FEATURES)

    def __init__(
        self,
        n_estimators: int = 100,
        max_depth: int = 3,
        learning_rate: float = 0.15,
        calibration_folds: int = CALIBRATION_FOLDS,
        random_state: int = 0,
        n_jobs: int = 2,
    ):
        self.params = dict(
            n_estimators=n_estimators,
            max_depth=max_depth,
            learning_rate=learning_rate,
            subsample=0.8,
            colsample_bytree=0.9,
            min_child_weight=2,
            tree_method="hist",
            random_state=random_state,
            n_jobs=n_jobs,
            objective="binary:logistic",
            eval_metric="logloss",
        )
        self.calibration_folds = calibration_folds
        self.categories_: dict[str, list[str]] | None = None

    # --- design -------------------------------------------------------------------------

    def _frame(self, X) -> pd.DataFrame:
        if isinstance(X, dict):
            X = pd.DataFrame([X])
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X must be a DataFrame (or a dict for one session), got {type(X).__name__}")
        return X.reindex(columns=self.feature_names)

    def _inputs(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(numeric signals as floats, NaN = missing; categorical signals as trimmed lower-case text, '' = missing)."""
        frame = self._frame(X)
        numeric = np.column_stack([numeric_column(frame[c], c) for c in CONVERSION_NUMERIC]).reshape(
            len(frame), len(CONVERSION_NUMERIC)
        )
        categorical = np.column_stack(
            [
                frame[c].astype("string").str.strip().str.lower().fillna("").to_numpy(dtype=object)
                for c in CONVERSION_CATEGORICAL
            ]
        ).reshape(len(frame), len(CONVERSION_CATEGORICAL))
        return numeric, categorical

    def _learn_categories(self, X: pd.DataFrame) -> None:
        self.categories_ = {}
        for c in CONVERSION_CATEGORICAL:
            values = X[c].astype("string").str.strip().str.lower().dropna()
            self.categories_[c] = sorted(v for v in values.unique() if v)
        # design column -> signal index, to sum contributions back per signal
        owners = list(range(len(CONVERSION_NUMERIC)))
        for i, c in enumerate(CONVERSION_CATEGORICAL):
            owners += [len(CONVERSION_NUMERIC) + i] * len(self.categories_[c])
        self.owner_matrix_ = np.zeros((len(owners), len(self.feature_names)))
        self.owner_matrix_[np.arange(len(owners)), owners] = 1.0

    def _onehot(self, categorical: np.ndarray) -> np.ndarray:
        blocks = [
            (categorical[:, i : i + 1] == np.array(self.categories_[c], dtype=object)[None, :]).astype(float)
            for i, c in enumerate(CONVERSION_CATEGORICAL)
        ]
        return np.hstack(blocks) if blocks else np.empty((len(categorical), 0))

    def _design(self, X) -> np.ndarray:
        """Float matrix: the numeric signals as they are (NaN = missing), then one-hot categories."""
        if isinstance(X, dict):
            return self._design_one(self._clean_one(X))
        numeric, categorical = self._inputs(X)
        return np.hstack([numeric, self._onehot(categorical)])

    @staticmethod
    def _clean_one(user: dict) -> list:
        """One session's signals: numbers under the rules of ml.inputs, categories as text (None when missing)."""
        numbers = [number(user.get(c), c) for c in CONVERSION_NUMERIC]
        categories = [None if user.get(c) is None else str(user.get(c)) for c in CONVERSION_CATEGORICAL]
        return [None if np.isnan(v) else v for v in numbers] + categories

    def _design_one(self, clean: list) -> np.ndarray:
        n = len(CONVERSION_NUMERIC)
        numeric = np.array([[np.nan if v is None else v for v in clean[:n]]], dtype=float)
        categorical = np.array([[(v or "").strip().lower() for v in clean[n:]]], dtype=object)
        return np.hstack([numeric, self._onehot(categorical)])

    # --- fit ----------------------------------------------------------------------------

    def fit(self, X: pd.DataFrame, y, sample_weight=None) -> "ConversionPredictor":
        """Fit on session signals and whether each session converted (rows in time order if X has started_at).
        `sample_weight` (optional, one per row) weights the rows in the boosters and the isotonic calibration,
        e.g. to favour the sessions after a known change (`ml.recency.recent_weights`)."""
        import xgboost
        from sklearn.isotonic import IsotonicRegression

        X = X.reset_index(drop=True)
        y = np.asarray(y, dtype=float)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        weight = check_weights(sample_weight, len(y))
        self.logit_shift_ = 0.0  # set by `recalibrated` only
        if np.isnan(y).any():
            raise ValueError("y has missing labels")
        if len(np.unique(y)) < 2:
            raise ValueError("y needs both converted and non-converted sessions")
        self._learn_categories(self._frame(X))
        design = self._design(X)
        order = (
            np.argsort(pd.to_datetime(X["started_at"]).to_numpy(), kind="stable")
            if "started_at" in X
            else np.arange(len(y))
        )
        out_of_fold = np.full(len(y), np.nan)
        for fold in np.array_split(order, self.calibration_folds):  # contiguous blocks of time
            rest = np.setdiff1d(order, fold, assume_unique=True)
            if len(np.unique(y[rest])) < 2:
                continue
            booster = (
                xgboost.XGBClassifier(**self.params)
                .fit(design[rest], y[rest], sample_weight=None if weight is None else weight[rest])
                .get_booster()
            )
            out_of_fold[fold] = np.asarray(booster.inplace_predict(design[fold])).reshape(-1)
        scored = np.isfinite(out_of_fold)
        if len(np.unique(y[scored])) < 2:
            raise ValueError("y needs converted and non-converted sessions spread over time to calibrate")
        self.booster_ = (
            xgboost.XGBClassifier(**self.params).fit(design, y, sample_weight=weight).get_booster()
        )
        calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
            out_of_fold[scored], y[scored], sample_weight=None if weight is None else weight[scored]
        )
        self.calibration_x_, self.calibration_y_ = calibrator.X_thresholds_, calibrator.y_thresholds_
        self.threshold_ = operating_threshold(
            self._calibrate(out_of_fold[scored]), y[scored], precision=TARGET_PRECISION + PRECISION_MARGIN
        )
        self.format_ = self.FORMAT
        return self

    def recalibrated(self, X: pd.DataFrame, y) -> "ConversionPredictor":
        """A copy whose probabilities are shifted in log-odds to fit the labelled sessions (X, y), the recent ones
        after a change (`ml.recency.logit_shift`; the booster, its ranking and AUC are unchanged). The operating
        threshold is chosen again on these sessions (1.0, flag nothing, when they cannot reach the precision)."""
        import copy

        self._check_fitted()
        y = np.asarray(y, dtype=float)
        base = self.predict_proba(X)
        shift = logit_shift(base, y)
        fresh = copy.deepcopy(self)
        fresh.logit_shift_ = getattr(self, "logit_shift_", 0.0) + shift
        fresh.threshold_ = operating_threshold(
            apply_shift(base, shift), y, precision=TARGET_PRECISION + PRECISION_MARGIN
        )
        return fresh

    def _raw(self, design: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster_.inplace_predict(design)).reshape(-1)

    def _calibrate(self, raw: np.ndarray) -> np.ndarray:
        mapped = np.interp(raw, self.calibration_x_, self.calibration_y_) + TIE_BREAK * (raw - 0.5)
        return apply_shift(np.clip(mapped, 0.0, 1.0), getattr(self, "logit_shift_", 0.0))

    # --- predict ------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if self.categories_ is None:
            raise RuntimeError("ConversionPredictor is not fitted")

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated probability of conversion per row (1-D)."""
        self._check_fitted()
        design = self._design(X)
        return self._calibrate(self._raw(design)) if len(design) else np.empty(0)

    def _signal_contributions(self, design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row: contributions to the log-odds per signal (TreeSHAP), and the bias."""
        import xgboost

        shap = self.booster_.predict(xgboost.DMatrix(design, nthread=1), pred_contribs=True)
        return shap[:, :-1] @ self.owner_matrix_, shap[:, -1]

    def contributions(self, X) -> pd.DataFrame:
        """Per-row, per-signal contributions to the log-odds (TreeSHAP), plus a `bias` column."""
        self._check_fitted()
        per_signal, bias = self._signal_contributions(self._design(X))
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame(per_signal, columns=self.feature_names, index=index).assign(bias=bias)

    def _factors(self, values: np.ndarray, raw_inputs, top: int) -> list[list[dict]]:
        order = np.argsort(-np.abs(values), axis=1)[:, :top]
        return [
            [
                {
                    "feature": self.feature_names[j],
                    "value": _plain(raw_inputs[i][j]),
                    "impact": round(float(values[i, j]), 4),
                    "direction": "increases" if values[i, j] > 0 else "decreases",
                }
                for j in order[i]
            ]
            for i in range(len(values))
        ]

    def top_factors(self, X, top: int = 3) -> list[list[dict]]:
        """Per row: the `top` signals with the largest contribution to this prediction (feature, value, impact, direction)."""
        self._check_fitted()
        numeric, categorical = self._inputs(X)
        if not len(numeric):
            return []
        per_signal, _ = self._signal_contributions(np.hstack([numeric, self._onehot(categorical)]))
        values = np.hstack(
            [
                np.where(np.isnan(numeric), None, numeric).astype(object),
                self._frame(X)[CONVERSION_CATEGORICAL].to_numpy(dtype=object),
            ]
        )
        return self._factors(per_signal, values, top)

    def predict(self, user: dict, top: int = 3) -> dict:
        """conversion_probability, confidence, top_factors (and will_convert at the operating threshold)."""
        require_mapping(user, "user")
        self._check_fitted()
        values = self._clean_one(user)
        per_signal, bias = self._signal_contributions(self._design_one(values))
        margin = per_signal.sum(axis=1) + bias  # TreeSHAP adds up to the booster's log-odds
        probability = float(self._calibrate(1.0 / (1.0 + np.exp(-margin)))[0])
        known = sum(v is not None for v in values) / len(values)
        return {
            "conversion_probability": round(probability, 4),
            "confidence": round(float(abs(probability - 0.5) * 2 * (0.5 + 0.5 * known)), 4),
            "top_factors": self._factors(per_signal, [values], top)[0],
            "will_convert": bool(probability >= self.threshold_),
        }


def operating_threshold(p, y, precision: float = TARGET_PRECISION, min_flagged: int = MIN_FLAGGED) -> float:
    """The lowest probability threshold (so the highest recall) at which the sessions flagged, p >= threshold,
    convert with at least `precision`, counting only thresholds that flag `min_flagged` sessions or more.
    1.0 (flag nothing) when no threshold reaches it."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    order = np.argsort(-p, kind="stable")
    p_sorted, hits = p[order], np.cumsum(y[order])
    flagged = np.arange(1, len(p) + 1)
    last_of_value = np.r_[p_sorted[1:] != p_sorted[:-1], True]  # a threshold flags every session at its value
    ok = last_of_value & (flagged >= min_flagged) & (hits >= precision * flagged)
    return float(p_sorted[np.nonzero(ok)[0][-1]]) if ok.any() else 1.0


def _plain(value):
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value
