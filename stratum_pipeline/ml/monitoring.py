"""Model monitoring: forecast accuracy against actuals, feature drift (PSI) and calibration drift.

Pure pandas/numpy, no Dagster, SQL or MLflow: the monitoring assets read the tables, call these
functions and write what they return.

- `forecast_accuracy`: joins forecasts (made on day D for D+1) with the ROAS realised on D+1 and
  gives MAE and 10-90% interval coverage per tenant, model version and forecast day.
- `feature_profile` / `psi`: a training set is summarised once (quantile bin edges and the share
  of rows per bin for numbers, the share per category for categories, plus the share missing),
  so drift against any later window needs only the profile, never the training rows again.
- `noise_levels` / `persistent_drift`: drift above the tenant's own noise. At training time each feature's PSI is
  computed for every 7-day window of the five training weeks before the profile's reference weeks (data the
  profile has not seen, as a live window) against the profile: the high quantile of those
  values is the PSI the tenant reaches by chance (`noise_psi`, kept in the profile). A live window is above the
  noise when its PSI exceeds NOISE_MARGIN x that level (and the floor); it alarms (status 'fail') when it is
  above on PERSIST_DAYS of the last PERSIST_WINDOW days. Features rank by `drift_score` = PSI / threshold.
  A profile without noise levels (a model trained before them) keeps the fixed PSI thresholds.
- `calibration`: predicted vs observed conversion rate and expected calibration error (ECE).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stratum_pipeline.ml.features import CONVERSION_FEATURES, ROAS_FEATURES

# The features whose drift is watched, per model type. Calendar features (day of week, season) are left out:
# a day's partition holds one weekday, which is no drift.
DRIFT_FEATURES = {
    "roas": [f for f in ROAS_FEATURES if f not in ("day_of_week", "season")],
    "conversion": list(CONVERSION_FEATURES),
}
PROFILE_ARTIFACT = "feature_profile.json"  # where a model's training profile is kept beside the model

# Drift thresholds of the population stability index (the industry's rule of thumb).
PSI_WARN = 0.1
PSI_FAIL = 0.25
# Quintile bins: a tenant's week can hold as few as ~30 campaigns (x 7 strongly correlated days), and with B
# bins and n independent rows sampling noise alone gives a PSI of about (B - 1) / n.
PROFILE_BINS = 5
PROFILE_DAYS = 28  # the reference is the last four weeks of the training rows: the regime the model ended on
# Retrain on drift when at least this share of a model's watched features fail (PSI > 0.25); a single failing
# feature is an ERROR check to look at, not a retrain (a narrow feature such as spend velocity ~1.0 crosses
# 0.25 on small moves).
RETRAIN_DRIFT_SHARE = 1 / 3
PSI_EPSILON = 1e-4  # share given to an empty bin so the log stays finite
MISSING = "__missing__"
OTHER = "__other__"

# Noise-calibrated drift (see the module docstring).
NOISE_WINDOW_DAYS = 7  # as the live window the feature_drift asset compares
NOISE_HISTORY_DAYS = 35  # the training days before the reference whose 7-day windows sample the noise
NOISE_QUANTILE = 0.95
NOISE_MARGIN = 1.5  # a live PSI must exceed this multiple of the noise level...
PSI_NOISE_FLOOR = 0.05  # ...and this floor (a feature that never moved in training has a noise level of ~0)
MIN_NOISE_WINDOWS = 14  # two weeks of windows at least; fewer: no noise level (fixed thresholds)
PERSIST_DAYS = 3  # k of n: above the noise on 3 of the last 5 evaluated days is an alarm
PERSIST_WINDOW = 5
DRIFT_COLUMNS = ["feature", "psi", "status", "rows", "noise_psi", "drift_score", "days_above"]

# Accuracy degradation: the recent MAE is degraded if above both the absolute target and this multiple
# of the model's own holdout MAE.
DEGRADED_MAE_FACTOR = 1.5
ROAS_MAE_TARGET = 0.3
# ...or its recent bias is beyond the tenant's noise: the mean relative bias ((mean forecast - mean actual) / mean
# actual) of the last BIAS_DAYS forecast days beyond BIAS_Z standard errors of the day-to-day relative bias of
# the model's holdout (`daily_bias_sd`, a training metric). Where single-day noise hides a level shift in the MAE
# (realistic accounts), the bias of all campaigns moving together shows it.
BIAS_DAYS = 2
BIAS_Z = 4.0


# --- forecast accuracy --------------------------------------------------------------------


def actual_next_day_roas(features: pd.DataFrame) -> pd.DataFrame:
    """(campaign_id, forecast_date, actual_roas): each campaign-day's realised ROAS, keyed as the day a forecast targets."""
    frame = features[["campaign_id", "date", "roas"]].copy()
    frame = frame[np.isfinite(pd.to_numeric(frame["roas"], errors="coerce"))]
    return frame.rename(columns={"date": "forecast_date", "roas": "actual_roas"}).assign(
        forecast_date=lambda f: pd.to_datetime(f["forecast_date"])
    )


def forecast_accuracy(forecasts: pd.DataFrame, actuals: pd.DataFrame) -> pd.DataFrame:
    """Per tenant, model version and forecast day: campaigns evaluated, MAE, bias and 10-90% interval coverage.

    `forecasts` has the `daily_roas_forecasts` columns; `actuals` comes from `actual_next_day_roas`.
    Forecasts whose actual has not landed yet are left out (they are evaluated on a later run).
    """
    columns = [
        "tenant_id",
        "date",
        "model_name",
        "model_version",
        "campaigns",
        "mae",
        "bias",
        "coverage_80",
        "mean_actual_roas",
        "mean_predicted_roas",
    ]
    if forecasts.empty or actuals.empty:
        return pd.DataFrame(columns=columns)
    frame = forecasts.assign(forecast_date=pd.to_datetime(forecasts["forecast_date"])).merge(
        actuals, on=["campaign_id", "forecast_date"], how="inner"
    )
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame["error"] = frame["predicted_roas"] - frame["actual_roas"]
    frame["abs_error"] = frame["error"].abs()
    frame["inside"] = (frame["actual_roas"] >= frame["confidence_lower"]) & (
        frame["actual_roas"] <= frame["confidence_upper"]
    )
    out = frame.groupby(["tenant_id", "forecast_date", "model_name", "model_version"], as_index=False).agg(
        campaigns=("campaign_id", "nunique"),
        mae=("abs_error", "mean"),
        bias=("error", "mean"),
        coverage_80=("inside", "mean"),
        mean_actual_roas=("actual_roas", "mean"),
        mean_predicted_roas=("predicted_roas", "mean"),
    )
    return out.rename(columns={"forecast_date": "date"})[columns]


def recent_accuracy(accuracy: pd.DataFrame, days: int) -> pd.DataFrame:
    """Per tenant and model version: campaign-weighted MAE and coverage over its last `days` evaluated days."""
    if accuracy.empty:
        return pd.DataFrame(
            columns=[
                "tenant_id",
                "model_name",
                "model_version",
                "days",
                "campaigns",
                "mae",
                "coverage_80",
                "last_day",
            ]
        )
    frame = accuracy.assign(date=pd.to_datetime(accuracy["date"]))
    last = frame.groupby("tenant_id")["date"].transform("max")
    frame = frame[frame["date"] > last - pd.Timedelta(days=days)]
    weighted = frame.assign(
        _mae=frame["mae"] * frame["campaigns"], _cov=frame["coverage_80"] * frame["campaigns"]
    )
    out = weighted.groupby(["tenant_id", "model_name", "model_version"], as_index=False).agg(
        days=("date", "nunique"),
        campaigns=("campaigns", "sum"),
        _mae=("_mae", "sum"),
        _cov=("_cov", "sum"),
        last_day=("date", "max"),
    )
    out["mae"] = out["_mae"] / out["campaigns"]
    out["coverage_80"] = out["_cov"] / out["campaigns"]
    return out.drop(columns=["_mae", "_cov"])


def accuracy_degraded(recent_mae: float, holdout_mae: float | None) -> tuple[bool, str]:
    """Is a model's recent MAE degraded? Above the absolute target and `DEGRADED_MAE_FACTOR` x its holdout MAE."""
    limit = (
        ROAS_MAE_TARGET
        if holdout_mae is None or not np.isfinite(holdout_mae)
        else max(ROAS_MAE_TARGET, DEGRADED_MAE_FACTOR * holdout_mae)
    )
    if recent_mae > limit:
        return True, f"recent MAE {recent_mae:.3f} > limit {limit:.3f}"
    return False, f"recent MAE {recent_mae:.3f} <= limit {limit:.3f}"


def daily_bias_sd(dates, actual, predicted) -> float:
    """The standard deviation over days of the day's relative bias (mean forecast - mean actual) / mean actual:
    how much a tenant's forecast bias moves by chance from day to day (NaN with fewer than 3 days)."""
    frame = pd.DataFrame(
        {
            "d": pd.to_datetime(pd.Series(dates).to_numpy()),
            "a": np.asarray(actual, dtype=float),
            "p": np.asarray(predicted, dtype=float),
        }
    )
    daily = frame.groupby("d").agg(a=("a", "mean"), p=("p", "mean"))
    daily = daily[daily["a"] > 0]
    if len(daily) < 3:
        return float("nan")
    return float(((daily["p"] - daily["a"]) / daily["a"]).std(ddof=1))


def bias_degraded(days: pd.DataFrame, bias_sd: float | None) -> tuple[bool, str]:
    """Is a model version's recent bias beyond its noise? `days` are its forecast_accuracy rows (date, bias,
    mean_actual_roas); the last BIAS_DAYS days' mean relative bias against BIAS_Z x bias_sd / sqrt(days)."""
    if bias_sd is None or not np.isfinite(bias_sd) or bias_sd <= 0 or days.empty:
        return False, "no bias noise level"
    recent = days.assign(date=pd.to_datetime(days["date"])).sort_values("date").tail(BIAS_DAYS)
    recent = recent[recent["mean_actual_roas"] > 0]
    if len(recent) < BIAS_DAYS:
        return False, "too few days for the bias rule"
    relative = float((recent["bias"] / recent["mean_actual_roas"]).mean())
    limit = BIAS_Z * bias_sd / np.sqrt(len(recent))
    if abs(relative) > limit:
        return True, f"relative bias {relative:+.0%} over {len(recent)} days beyond +-{limit:.0%} (the noise)"
    return False, f"relative bias {relative:+.0%} within +-{limit:.0%}"


# Self-correcting error: a degraded model whose daily error is already falling back. The ROAS model forecasts
# relative to the trailing ROAS, so after a level shift its error peaks in the first days and fades within about a
# week; a retrain would learn mostly the old regime. The error is smoothed over RETURN_SMOOTH_DAYS; it is
# returning when its peak lies at least RETURN_SMOOTH_DAYS days back and the latest smoothed error is at most
# RETURN_SHARE of that peak.
RETURN_SMOOTH_DAYS = 2
RETURN_SHARE = 0.6


def _returning(series: pd.Series) -> tuple[bool, float, float]:
    smooth = series.rolling(RETURN_SMOOTH_DAYS).mean().dropna()
    if len(smooth) <= RETURN_SMOOTH_DAYS:
        return False, float("nan"), float("nan")
    earlier, latest = smooth.iloc[:-RETURN_SMOOTH_DAYS], float(smooth.iloc[-1])
    peak = float(earlier.max())
    return bool(peak > 0 and latest <= RETURN_SHARE * peak), peak, latest


def error_returning(days: pd.DataFrame) -> tuple[bool, str]:
    """Is a model version's forecast error already returning toward its pre-change level? `days` are its
    forecast_accuracy rows (date, mae, bias, mean_actual_roas) of the last week. Judged on the relative MAE and,
    for a shift all campaigns share, on the relative bias: either smoothed series RETURN_SHARE or less of its
    peak, the peak at least RETURN_SMOOTH_DAYS days back."""
    frame = days.assign(date=pd.to_datetime(days["date"])).sort_values("date")
    frame = frame[frame["mean_actual_roas"] > 0]
    if frame.empty:
        return False, "no days to judge the error's trend"
    scale = frame["mean_actual_roas"].to_numpy(dtype=float)
    series = {
        "relative MAE": pd.Series(frame["mae"].to_numpy(dtype=float) / scale),
        "relative bias": pd.Series(np.abs(frame["bias"].to_numpy(dtype=float)) / scale),
    }
    notes = []
    for name, values in series.items():
        returning, peak, latest = _returning(values)
        if returning:
            return True, f"{name} down from {peak:.0%} to {latest:.0%} over {len(frame)} days"
        if np.isfinite(peak):
            notes.append(f"{name} {latest:.0%} (peak {peak:.0%})")
    return False, "error not returning: " + (", ".join(notes) or "too few days")


# --- feature profiles and PSI ---------------------------------------------------------------


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def feature_profile(frame: pd.DataFrame, features: list[str], bins: int = PROFILE_BINS) -> dict:
    """A JSON-serialisable summary of each feature's training distribution.

    Numbers: inner quantile edges (up to `bins` bins) and the share of rows per bin, plus the share
    missing. Categories: the share per category and missing. Enough to compute PSI later.
    """
    profile = {"rows": int(len(frame)), "features": {}}
    for name in features:
        if name not in frame:
            continue
        series = frame[name]
        if _is_numeric(series):
            values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
            finite = values[np.isfinite(values)]
            edges = (
                np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
                if len(finite)
                else np.array([])
            )
            profile["features"][name] = {
                "kind": "numeric",
                "edges": [float(e) for e in edges],
                "shares": _numeric_shares(values, edges),
            }
        else:
            shares = _category_shares(series, None)
            profile["features"][name] = {
                "kind": "categorical",
                "categories": [c for c in shares if c != MISSING],
                "shares": shares,
            }
    return profile


def reference_rows(train: pd.DataFrame, days: int = PROFILE_DAYS, date_column: str = "date") -> pd.DataFrame:
    """The most recent `days` days of a training set: what its drift profile is computed from."""
    dates = pd.to_datetime(train[date_column])
    return train[dates > dates.max() - pd.Timedelta(days=days)]


def drift_needs_retraining(statuses: pd.Series) -> bool:
    """Broad drift: at least RETRAIN_DRIFT_SHARE of a model's watched features fail."""
    return len(statuses) > 0 and (statuses == "fail").mean() >= RETRAIN_DRIFT_SHARE - 1e-9


def _numeric_shares(values: np.ndarray, edges: np.ndarray) -> dict[str, float]:
    n = len(values)
    finite = np.isfinite(values)
    counts = np.bincount(np.searchsorted(edges, values[finite], side="right"), minlength=len(edges) + 1)
    shares = {str(i): float(c / n) if n else 0.0 for i, c in enumerate(counts)}
    shares[MISSING] = float((~finite).sum() / n) if n else 0.0
    return shares


def _category_shares(series: pd.Series, known: list[str] | None) -> dict[str, float]:
    values = series.astype(object).where(series.notna(), MISSING).astype(str)
    if known is not None:
        values = values.where(values.isin([*known, MISSING]), OTHER)
    shares = values.value_counts(normalize=True).to_dict()
    return {str(k): float(v) for k, v in shares.items()}


def distribution(profile_entry: dict, series: pd.Series) -> dict[str, float]:
    """The shares of `series` in the bins (or categories) of a profile entry."""
    if profile_entry["kind"] == "numeric":
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
        return _numeric_shares(values, np.asarray(profile_entry["edges"], dtype=float))
    return _category_shares(series, profile_entry["categories"])


def psi(expected: dict[str, float], actual: dict[str, float]) -> float:
    """Population stability index sum((a - e) * ln(a / e)) over the union of bins; empty bins get a small share."""
    keys = set(expected) | set(actual)
    e = np.array([max(expected.get(k, 0.0), PSI_EPSILON) for k in keys])
    a = np.array([max(actual.get(k, 0.0), PSI_EPSILON) for k in keys])
    return float(((a - e) * np.log(a / e)).sum())


def drift_status(value: float) -> str:
    """'ok', 'warn' (PSI above 0.1) or 'fail' (PSI above 0.25)."""
    if value > PSI_FAIL:
        return "fail"
    if value > PSI_WARN:
        return "warn"
    return "ok"


def noise_levels(
    train: pd.DataFrame, profile: dict, date_column: str = "date", reference_days: int = PROFILE_DAYS
) -> dict[str, float]:
    """Per profiled feature, the PSI the tenant's own variation gives: the NOISE_QUANTILE of the PSI against the
    profile of every NOISE_WINDOW_DAYS-day window in the NOISE_HISTORY_DAYS training days before the profile's
    reference weeks (the last `reference_days`); features with fewer than MIN_NOISE_WINDOWS windows get none."""
    if train.empty or not profile.get("features"):
        return {}
    dates = pd.to_datetime(train[date_column]).dt.normalize()
    # Windows before the reference weeks only: like a live window, each is data the profile has not seen.
    last = dates.max() - pd.Timedelta(days=reference_days)
    recent = ((dates > last - pd.Timedelta(days=NOISE_HISTORY_DAYS)) & (dates <= last)).to_numpy()
    if not recent.any():
        return {}
    frame, day = train[recent], dates[recent].to_numpy()
    window = pd.Timedelta(days=NOISE_WINDOW_DAYS)
    ends = pd.date_range(pd.Timestamp(day.min()) + window - pd.Timedelta(days=1), last)
    values: dict[str, list[float]] = {name: [] for name in profile["features"] if name in frame}
    for end in ends:
        inside = (day > (end - window).to_datetime64()) & (day <= end.to_datetime64())
        if not inside.any():
            continue
        rows = frame[inside]
        for name in values:
            entry = profile["features"][name]
            values[name].append(psi(entry["shares"], distribution(entry, rows[name])))
    return {
        name: float(np.quantile(v, NOISE_QUANTILE))
        for name, v in values.items()
        if len(v) >= MIN_NOISE_WINDOWS
    }


def drift_threshold(noise_psi: float | None) -> float:
    """The PSI above which a live window is above the tenant's noise (the fixed PSI_WARN without a noise level)."""
    if noise_psi is None or not np.isfinite(noise_psi):
        return PSI_WARN
    return max(NOISE_MARGIN * noise_psi, PSI_NOISE_FLOOR)


def feature_drift(profile: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """PSI of every profiled feature between the training profile and `frame`, with its noise level, its
    `drift_score` (PSI / threshold: above 1 is above the noise) and a one-day status: with a noise level 'warn'
    above the threshold ('fail' needs persistence: `persistent_drift`); without one the fixed PSI thresholds."""
    noise = profile.get("noise") or {}
    rows = []
    for name, entry in profile["features"].items():
        if name not in frame:
            continue
        value = psi(entry["shares"], distribution(entry, frame[name]))
        level = noise.get(name)
        score = value / drift_threshold(level)
        status = drift_status(value) if level is None else ("warn" if score > 1.0 else "ok")
        rows.append(
            {
                "feature": name,
                "psi": value,
                "status": status,
                "rows": int(len(frame)),
                "noise_psi": np.nan if level is None else float(level),
                "drift_score": score,
                "days_above": int(score > 1.0),
            }
        )
    return pd.DataFrame(rows, columns=DRIFT_COLUMNS)


def persistent_drift(today: pd.DataFrame, earlier: pd.DataFrame) -> pd.DataFrame:
    """Apply the k-of-n rule to today's calibrated drift rows: `days_above` counts the days, among today and the
    PERSIST_WINDOW - 1 evaluated days before it (`earlier`: feature_drift rows of those days), on which the same
    tenant, model version and feature were above the noise; today above and days_above >= PERSIST_DAYS is 'fail'.
    Rows without a noise level keep their fixed-threshold status. Both frames carry tenant_id, model_name,
    model_version, feature, drift_score (and `earlier` a date)."""
    out = today.copy()
    if out.empty:
        return out
    key = ["tenant_id", "model_name", "model_version", "feature"]  # a new champion starts afresh
    above_today = pd.to_numeric(out["drift_score"], errors="coerce").fillna(0.0) > 1.0
    if earlier is not None and not earlier.empty and "drift_score" in earlier:
        previous = earlier[pd.to_numeric(earlier["drift_score"], errors="coerce").fillna(0.0) > 1.0]
        counts = previous.groupby(key)["date"].nunique() if len(previous) else pd.Series(dtype=float)
        before = counts.reindex(pd.MultiIndex.from_frame(out[key])).fillna(0).to_numpy(dtype=int)
    else:
        before = np.zeros(len(out), dtype=int)
    calibrated = out["noise_psi"].notna().to_numpy()
    out["days_above"] = np.where(calibrated, before + above_today.to_numpy(), out["days_above"])
    alarm = calibrated & above_today.to_numpy() & (out["days_above"].to_numpy() >= PERSIST_DAYS)
    out.loc[alarm, "status"] = "fail"
    return out


def top_drift(drift: pd.DataFrame) -> dict[str, list[str]]:
    """{tenant: [feature, ...]}: each tenant's features above its noise threshold, highest drift_score first."""
    if drift.empty or "drift_score" not in drift:
        return {}
    score = pd.to_numeric(drift["drift_score"], errors="coerce")
    above = drift[score > 1.0].assign(_s=score).sort_values("_s", ascending=False)
    return {str(t): list(g["feature"]) for t, g in above.groupby("tenant_id", sort=True)}


def summarize_features(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """One row per feature: missing share, and mean / p10 / p50 / p90 for numbers or the top category's share."""
    rows = []
    for name in features:
        if name not in frame:
            continue
        series = frame[name]
        row = {
            "feature": name,
            "rows": int(len(series)),
            "missing": float(series.isna().mean()) if len(series) else 0.0,
        }
        if _is_numeric(series):
            values = pd.to_numeric(series, errors="coerce").dropna()
            if len(values):
                q = values.quantile([0.1, 0.5, 0.9]).to_numpy()
                row.update(mean=float(values.mean()), p10=float(q[0]), p50=float(q[1]), p90=float(q[2]))
        else:
            counts = series.dropna().astype(str).value_counts(normalize=True)
            if len(counts):
                row.update(top=f"{counts.index[0]} ({counts.iloc[0]:.0%})")
        rows.append(row)
    return pd.DataFrame(rows)


# --- conversion calibration ----------------------------------------------------------------

CALIBRATION_BINS = 10
CALIBRATION_WARN = 0.02  # |mean predicted - observed| conversion rate, absolute
CALIBRATION_FAIL = 0.05


def calibration(probability, observed, bins: int = CALIBRATION_BINS) -> dict[str, float]:
    """Predicted vs observed conversion rate and expected calibration error (equal-width probability bins)."""
    p = np.clip(np.asarray(probability, dtype=float), 0.0, 1.0)
    y = np.asarray(observed, dtype=float)
    if len(p) == 0:
        return {
            "rows": 0,
            "predicted_rate": float("nan"),
            "observed_rate": float("nan"),
            "rate_gap": float("nan"),
            "ece": float("nan"),
        }
    index = np.minimum((p * bins).astype(int), bins - 1)
    ece = 0.0
    for b in np.unique(index):
        inside = index == b
        ece += inside.mean() * abs(p[inside].mean() - y[inside].mean())
    return {
        "rows": int(len(p)),
        "predicted_rate": float(p.mean()),
        "observed_rate": float(y.mean()),
        "rate_gap": float(p.mean() - y.mean()),
        "ece": float(ece),
    }


def calibration_status(rate_gap: float) -> str:
    """'ok', 'warn' or 'fail' for the gap between the predicted and observed conversion rate."""
    if not np.isfinite(rate_gap):
        return "ok"
    if abs(rate_gap) > CALIBRATION_FAIL:
        return "fail"
    if abs(rate_gap) > CALIBRATION_WARN:
        return "warn"
    return "ok"
