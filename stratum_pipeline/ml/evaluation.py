"""Model quality metrics (the seed's metrics) for ROAS forecasts and conversion probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd

# The forecasts a marketer already has without a model: today's ROAS and trailing averages (feature columns).
NAIVE_ROAS_FORECASTS = {
    "today": "roas",
    "trailing_7d": "roas_7d",
    "trailing_14d": "roas_14d",
    "trailing_30d": "roas_30d",
}


def relative_bias(actual, predicted) -> float:
    """Mean forecast over mean actual, minus 1: +0.05 forecasts 5% too high on average (what a mean must avoid)."""
    y = np.asarray(actual, dtype=float)
    p = np.asarray(predicted, dtype=float)
    return float(p.mean() / y.mean() - 1) if len(y) and y.mean() > 0 else float("nan")


def roas_metrics(actual, forecast: pd.DataFrame) -> dict[str, float]:
    """MAE, RMSE, R², MAPE (on days with ROAS >= 0.5), mean bias and 10-90% interval coverage."""
    y = np.asarray(actual, dtype=float)
    p = forecast["predicted_roas"].to_numpy(dtype=float)
    err = p - y
    ss_tot = float(((y - y.mean()) ** 2).sum())
    sizeable = y >= 0.5
    inside = (y >= forecast["confidence_lower"].to_numpy()) & (y <= forecast["confidence_upper"].to_numpy())
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "r2": float(1 - (err**2).sum() / ss_tot) if ss_tot > 0 else float("nan"),
        "mape": float(np.abs(err[sizeable] / y[sizeable]).mean()) if sizeable.any() else float("nan"),
        "bias": relative_bias(y, p),
        "coverage_80": float(inside.mean()),
        "rows": int(len(y)),
    }


def naive_roas_forecasts(features: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each naive forecast of NAIVE_ROAS_FORECASTS for the rows of `features`; where a window has no spend
    it falls back to the next longer one, then to the rows' median, so every row has a forecast."""
    longest = pd.to_numeric(features["roas_30d"], errors="coerce").to_numpy(dtype=float)
    out = {}
    for name, column in NAIVE_ROAS_FORECASTS.items():
        values = pd.to_numeric(features[column], errors="coerce").to_numpy(dtype=float)
        values = np.where(np.isfinite(values), values, longest)
        out[name] = np.where(
            np.isfinite(values), values, np.nanmedian(values) if np.isfinite(values).any() else 1.0
        )
    return out


def best_naive_roas(actual, features: pd.DataFrame) -> dict[str, float | str]:
    """The naive forecast with the lowest MAE against `actual` on these rows: its name and MAE."""
    y = np.asarray(actual, dtype=float)
    scored = {name: float(np.abs(p - y).mean()) for name, p in naive_roas_forecasts(features).items()}
    name = min(scored, key=scored.get)
    return {"naive": name, "naive_mae": scored[name]}


def point_metrics(actual, predicted) -> dict[str, float]:
    """MAE, RMSE and R² of a point forecast (used for the ground-truth oracle)."""
    frame = pd.DataFrame(
        {"predicted_roas": predicted, "confidence_lower": predicted, "confidence_upper": predicted}
    )
    out = roas_metrics(actual, frame)
    out.pop("coverage_80")
    return out


def conversion_metrics(actual, probability, threshold: float) -> dict[str, float]:
    """AUC, Brier score, log loss, the mean probability beside the base rate, and precision / recall at the
    operating threshold."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(actual, dtype=bool)
    p = np.clip(np.asarray(probability, dtype=float), 1e-6, 1 - 1e-6)
    chosen = p >= threshold
    both = len(np.unique(y)) == 2
    return {
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[False, True])),
        "precision": float(y[chosen].mean()) if chosen.any() else float("nan"),
        "recall": float(chosen[y].mean()) if y.any() else float("nan"),
        "threshold": float(threshold),
        "base_rate": float(y.mean()),
        "mean_probability": float(p.mean()),  # against base_rate: the calibration in the large
        "rows": int(len(y)),
    }
