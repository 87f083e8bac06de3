"""Learning a change quickly: weights that favour the days after a known change, and a calibration shift.

A retrain requested because a tenant's world changed on a known day (the retraining policy dates it) cannot wait
for a window full of post-change days: with plain rows the old regime outvotes the new one for weeks. Two tools:

- `recent_weights`: per-row sample weights such that the rows dated on or after `since` carry `post_share` of
  the total weight (uniform within each side), normalised to a mean of 1 so weight-sensitive settings
  (XGBoost's min_child_weight) keep their meaning. `ROASPredictor.fit` and `ConversionPredictor.fit` accept
  them as `sample_weight`.
- `logit_shift`: the maximum-likelihood shift of a model's log-odds on recent labelled rows (logistic
  regression with the model's log-odds as offset and one free intercept). A change in how often sessions
  convert with the same inputs (a checkout change) multiplies the odds: exactly such a shift. Fitted by Newton's
  method; `shrink` pulls it towards 0 by a pseudo-count prior so a few rows cannot swing it far.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

POST_SHARE = 0.8  # the post-change rows' share of the total weight
SHIFT_PRIOR_ROWS = 200  # pseudo-rows at shift 0 (the ridge prior of logit_shift)
MAX_SHIFT = 4.0  # log-odds; odds x55 either way is not a calibration change


def check_weights(sample_weight, rows: int) -> np.ndarray | None:
    """None, or the weights as floats with a mean of 1; a clear error if they cannot be weights."""
    if sample_weight is None:
        return None
    weight = np.asarray(sample_weight, dtype=float).reshape(-1)
    if len(weight) != rows:
        raise ValueError(f"sample_weight has {len(weight)} values for {rows} rows")
    if not np.isfinite(weight).all() or (weight < 0).any() or weight.sum() <= 0:
        raise ValueError("sample_weight must be finite, non-negative and not all zero")
    return weight / weight.mean()


def recent_weights(dates, since, post_share: float = POST_SHARE) -> np.ndarray:
    """Weights giving the rows dated on or after `since` `post_share` of the total weight (mean 1). All rows on
    one side: uniform weights."""
    if not 0 < post_share < 1:
        raise ValueError(f"post_share must be between 0 and 1, not {post_share}")
    day = pd.to_datetime(pd.Series(dates)).dt.normalize().to_numpy()
    post = day >= np.datetime64(pd.Timestamp(since).normalize())
    n_post, n_pre = int(post.sum()), int((~post).sum())
    if n_post == 0 or n_pre == 0:
        return np.ones(len(day))
    weight = np.where(post, post_share / n_post, (1 - post_share) / n_pre)
    return weight / weight.mean()


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def logit_shift(probability, observed, prior_rows: float = SHIFT_PRIOR_ROWS) -> float:
    """The log-odds shift d maximising sum log-likelihood(sigmoid(logit(p) + d), y) - prior_rows/2 * d^2 / 4
    (a Gaussian prior worth `prior_rows` rows at p = 0.5), clipped to +-MAX_SHIFT."""
    offset = _logit(np.asarray(probability, dtype=float))
    y = np.asarray(observed, dtype=float)
    if len(y) == 0:
        return 0.0
    shift = 0.0
    for _ in range(50):
        q = 1 / (1 + np.exp(-(offset + shift)))
        gradient = float((y - q).sum()) - prior_rows / 4 * shift
        curvature = float((q * (1 - q)).sum()) + prior_rows / 4
        step = gradient / curvature
        shift = float(np.clip(shift + step, -MAX_SHIFT, MAX_SHIFT))
        if abs(step) < 1e-8:
            break
    return shift


def apply_shift(probability, shift: float) -> np.ndarray:
    """Probabilities with their log-odds moved by `shift` (unchanged, bit for bit, when shift is 0)."""
    p = np.asarray(probability, dtype=float)
    if shift == 0:
        return p
    return 1 / (1 + np.exp(-(_logit(p) + shift)))
