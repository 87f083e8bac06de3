"""Conversion probability of a web session, with the factors behind each prediction.

Model: XGBoost (binary:logistic) on the 9 session signals. Numbers go in as they are (missing
values are routed by the trees, so a column that is entirely missing is harmless); each
categorical signal is one-hot encoded over the categories seen in training, so an unseen or
missing category is simply "none of the known ones". Probabilities are calibrated with isotonic
regression on the most recent part of the training data. `top_factors` are per-prediction
contributions (TreeSHAP values from the booster, in log-odds, summed over a signal's one-hot
columns), not global importances.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stratum_pipeline.ml.features import CONVERSION_CATEGORICAL, CONVERSION_FEATURES, CONVERSION_NUMERIC

TARGET_PRECISION = 0.9  # the operating threshold is the lowest one reaching this precision on calibration data


class ConversionPredictor:
    """Calibrated gradient-boosting conversion classifier with per-prediction explanations."""

    feature_names = list(CONVERSION_FEATURES)

    def __init__(
        self,
        n_estimators: int = 300,
        max_depth: int = 4,
        learning_rate: float = 0.05,
        calibration_share: float = 0.2,
        random_state: int = 0,
        n_jobs: int = 2,
    ):
        self.params = dict(
            n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate, subsample=0.8,
            colsample_bytree=0.9, min_child_weight=2, tree_method="hist", random_state=random_state, n_jobs=n_jobs,
            objective="binary:logistic", eval_metric="logloss",
        )
        self.calibration_share = calibration_share
        self.categories_: dict[str, list[str]] | None = None

    # --- design -------------------------------------------------------------------------

    def _frame(self, X) -> pd.DataFrame:
        if isinstance(X, dict):
            X = pd.DataFrame([X])
        if not isinstance(X, pd.DataFrame):
            raise TypeError("X must be a DataFrame (or a dict for one session)")
        return X.reindex(columns=self.feature_names)

    def _design(self, X) -> pd.DataFrame:
        X = self._frame(X)
        columns = {c: pd.to_numeric(X[c], errors="coerce").astype(float).to_numpy() for c in CONVERSION_NUMERIC}
        for c in CONVERSION_CATEGORICAL:
            values = X[c].astype("string").str.strip().str.lower()
            for category in self.categories_[c]:
                columns[f"{c}={category}"] = (values == category).fillna(False).to_numpy(dtype=float)
        return pd.DataFrame(columns, index=X.index)

    def _learn_categories(self, X: pd.DataFrame) -> None:
        self.categories_ = {}
        for c in CONVERSION_CATEGORICAL:
            values = X[c].astype("string").str.strip().str.lower().dropna()
            self.categories_[c] = sorted(v for v in values.unique() if v)

    # --- fit ----------------------------------------------------------------------------

    def fit(self, X: pd.DataFrame, y) -> "ConversionPredictor":
        """Fit on session signals and whether each session converted (rows in time order if X has started_at)."""
        import xgboost
        from sklearn.isotonic import IsotonicRegression

        X = X.reset_index(drop=True)
        y = np.asarray(y, dtype=float)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        if np.isnan(y).any():
            raise ValueError("y has missing labels")
        if len(np.unique(y)) < 2:
            raise ValueError("y needs both converted and non-converted sessions")
        self._learn_categories(self._frame(X))
        design = self._design(X)
        order = np.argsort(pd.to_datetime(X["started_at"]).to_numpy(), kind="stable") if "started_at" in X else np.arange(len(y))
        n_cal = max(50, int(len(y) * self.calibration_share))
        train, cal = order[:-n_cal], order[-n_cal:]
        self.booster_ = xgboost.XGBClassifier(**self.params).fit(design.iloc[train], y[train])
        raw = self.booster_.predict_proba(design.iloc[cal])[:, 1]
        self.calibrator_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y[cal])
        self.threshold_ = self._operating_threshold(self.calibrator_.predict(raw), y[cal])
        return self

    @staticmethod
    def _operating_threshold(p: np.ndarray, y: np.ndarray) -> float:
        """Lowest probability threshold whose precision on (p, y) reaches TARGET_PRECISION (else 0.5)."""
        for threshold in np.unique(np.round(p, 4)):
            chosen = p >= threshold
            if chosen.sum() >= 20 and y[chosen].mean() >= TARGET_PRECISION:
                return float(threshold)
        return 0.5

    # --- predict ------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if self.categories_ is None:
            raise RuntimeError("ConversionPredictor is not fitted")

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated probability of conversion per row (1-D)."""
        self._check_fitted()
        raw = self.booster_.predict_proba(self._design(X))[:, 1]
        return np.clip(self.calibrator_.predict(raw), 0.0, 1.0)

    def contributions(self, X) -> pd.DataFrame:
        """Per-row, per-signal contributions to the log-odds (TreeSHAP), plus a `bias` column."""
        import xgboost

        self._check_fitted()
        design = self._design(X)
        shap = self.booster_.get_booster().predict(xgboost.DMatrix(design), pred_contribs=True)
        frame = pd.DataFrame(shap[:, :-1], columns=design.columns, index=design.index)
        out = pd.DataFrame(index=design.index)
        for feature in self.feature_names:
            cols = [c for c in frame.columns if c == feature or c.startswith(f"{feature}=")]
            out[feature] = frame[cols].sum(axis=1) if cols else 0.0
        out["bias"] = shap[:, -1]
        return out

    def top_factors(self, X, top: int = 3) -> list[list[dict]]:
        """Per row: the `top` signals with the largest contribution to this prediction (feature, value, impact, direction)."""
        frame = self._frame(X)
        values = self.contributions(frame).drop(columns="bias").to_numpy()
        order = np.argsort(-np.abs(values), axis=1)[:, :top]
        raw = frame.to_numpy(dtype=object)
        names = self.feature_names
        return [
            [
                {
                    "feature": names[j],
                    "value": _plain(raw[i, j]),
                    "impact": round(float(values[i, j]), 4),
                    "direction": "increases" if values[i, j] > 0 else "decreases",
                }
                for j in order[i]
            ]
            for i in range(len(frame))
        ]

    def predict(self, user: dict, top: int = 3) -> dict:
        """conversion_probability, confidence, top_factors (and will_convert at the operating threshold)."""
        if not isinstance(user, dict):
            raise TypeError("user must be a dict of session signals")
        frame = self._frame(user)
        probability = float(self.predict_proba(frame)[0])
        factors = self.top_factors(frame, top)[0]
        known = frame.iloc[0].notna().mean()
        return {
            "conversion_probability": round(probability, 4),
            "confidence": round(float(abs(probability - 0.5) * 2 * (0.5 + 0.5 * known)), 4),
            "top_factors": factors,
            "will_convert": bool(probability >= self.threshold_),
        }


def _plain(value):
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value
