"""Pictures of a challenger's holdout, logged as PNG files to its MLflow run (matplotlib, no display, no Dagster).

ROAS: the holdout's daily mean ROAS that happened against the forecast's daily mean and its mean 10-90% band.
Conversion: the calibration curve (predicted probability against the observed conversion rate, by decile) and
the precision-recall curve with the model's operating threshold.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

HOLDOUT_PLOT = "holdout.png"


def _figure(columns: int = 1):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, columns, figsize=(5.5 * columns, 3.6), dpi=100)
    return plt, figure, np.atleast_1d(axes)


def _png(plt, figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def roas_holdout_plot(dates, actual, forecast: pd.DataFrame, title: str) -> bytes:
    """Daily means over the holdout's campaigns: actual ROAS, the forecast and its 10-90% band."""
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(pd.Series(dates).to_numpy()),
            "actual": np.asarray(actual, float),
            "predicted": forecast["predicted_roas"].to_numpy(float),
            "lower": forecast["confidence_lower"].to_numpy(float),
            "upper": forecast["confidence_upper"].to_numpy(float),
        }
    )
    daily = frame.groupby("date").mean()
    plt, figure, (axis,) = _figure()
    axis.fill_between(daily.index, daily["lower"], daily["upper"], alpha=0.25, label="forecast 10-90%")
    axis.plot(daily.index, daily["predicted"], label="forecast (mean)")
    axis.plot(daily.index, daily["actual"], "o-", label="actual ROAS")
    axis.set_title(title, fontsize=10)
    axis.set_ylabel("mean ROAS of the day's campaigns")
    axis.legend(fontsize=8)
    figure.autofmt_xdate()
    return _png(plt, figure)


def conversion_holdout_plot(converted, probability, threshold: float, title: str) -> bytes:
    """Calibration by decile of the predicted probability, and precision-recall with the operating threshold."""
    from sklearn.metrics import precision_recall_curve

    y, p = np.asarray(converted, float), np.asarray(probability, float)
    bins = pd.qcut(p, 10, duplicates="drop")
    calibration = pd.DataFrame({"p": p, "y": y}).groupby(bins, observed=True).mean()
    precision, recall, thresholds = precision_recall_curve(y, p)
    at = int(np.clip(np.searchsorted(thresholds, threshold), 0, len(thresholds) - 1))
    plt, figure, (left, right) = _figure(2)
    left.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    left.plot(calibration["p"], calibration["y"], "o-", label="holdout deciles")
    left.set_xlabel("predicted conversion probability")
    left.set_ylabel("observed conversion rate")
    left.set_title(f"{title}: calibration", fontsize=10)
    left.legend(fontsize=8)
    right.plot(recall, precision)
    right.plot(recall[at], precision[at], "o", label=f"operating threshold {threshold:.2f}")
    right.set_xlabel("recall")
    right.set_ylabel("precision")
    right.set_title("precision-recall", fontsize=10)
    right.legend(fontsize=8)
    return _png(plt, figure)
