"""Feature builders from source-shaped DataFrames. Pure pandas; no future data in any window.

- `campaign_features`: the 11 ROAS features per campaign and day, from `campaign_daily_metrics`
  rows (as extracted) and the day's creative fatigue.
- `creative_features`: the 6 fatigue features per creative and day.
- `session_features`: the 9 conversion features per session, cleaned and typed.

Rolling windows are calendar windows ending on (and including) the row's day: a feature for day D
uses only rows dated D or earlier, so adding or changing later rows never changes it. Calendar
features (day of week, season) describe D+1, the day the ROAS model forecasts.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from stratum_pipeline.ml import fatigue
from stratum_pipeline.ml.inputs import InputError, by_distinct, date_column, numeric_column, require_frame

ROAS_FEATURES = [
    "roas_7d",
    "roas_30d",
    "spend_velocity",
    "ctr",
    "conversion_rate",
    "impressions_growth",
    "platform",
    "day_of_week",
    "season",
    "audience_size",
    "creative_fatigue",
]
FATIGUE_FEATURES = [
    "days_active",
    "frequency",
    "ctr_current",
    "ctr_baseline",
    "engagement_rate_current",
    "engagement_rate_baseline",
]
# Short-horizon context the ROAS model uses beside the 11 features: yesterday's, 3-day and 14-day ROAS,
# the day's spend and how it compares with its 3-, 7- and 30-day daily averages (a day of unusually high
# spend has unusually low ROAS on a saturating response curve, and spend drifts back), and the forecast
# day's position in its quarter (the quarterly cycle), and the campaign's conversions over the last 30 days
# (its volume: how far a noisy ROAS history can be trusted).
ROAS_CONTEXT = [
    "roas",
    "roas_3d",
    "roas_14d",
    "spend",
    "spend_vs_3d",
    "spend_vs_7d",
    "spend_vs_30d",
    "day_of_quarter",
    "conversions_30d",
]
CONVERSION_FEATURES = [
    "session_duration",
    "pages_viewed",
    "cart_value",
    "items_in_cart",
    "time_since_last_visit",
    "previous_purchases",
    "device_type",
    "traffic_source",
    "user_segment",
]
CONVERSION_NUMERIC = CONVERSION_FEATURES[:6]
CONVERSION_CATEGORICAL = CONVERSION_FEATURES[6:]

# The raw_creative_daily columns `creative_features` reads.
CREATIVE_INPUTS = [
    "tenant_id",
    "campaign_id",
    "creative_id",
    "launch_date",
    "audience_size",
    "date",
    "impressions",
    "clicks",
    "engagements",
]
CAMPAIGN_LOOKBACK_DAYS = 30  # longest campaign window
CREATIVE_LOOKBACK_DAYS = 90  # covers a creative's whole life (the generator's are <= 80 days)
BASELINE_DAYS = 3  # a creative's launch CTR: its first three days
MAX_SESSION_SECONDS = 4 * 3600.0
PLAIN_IDS = {
    "string",
    "integer",
    "empty",
}  # pandas' inferred kinds of an id column that need no per-value check


def _ratio(numerator, denominator) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _typed(
    frame: pd.DataFrame,
    what: str,
    keys: list[str],
    numbers: list[str],
    dates: list[str],
    required_numbers: tuple[str, ...] = (),
) -> pd.DataFrame:
    """A copy of `frame` with its key, number and date columns checked (ml.inputs rules); InputError names the field.

    Keys must be present in every row; `required_numbers` must be known in every row (the raw
    extracts guarantee both); other numbers may be missing.
    """
    require_frame(frame, what, [*keys, *numbers, *dates])
    df = frame.copy()
    for column in keys:
        if df[column].isna().any():
            raise InputError(f"{what}: {column} has {int(df[column].isna().sum())} missing values")
        not_an_id = (
            int(df[column].map(lambda v: isinstance(v, (list, dict, set, tuple, bytes, bytearray))).sum())
            if df[column].dtype == object
            and pd.api.types.infer_dtype(df[column], skipna=True) not in PLAIN_IDS
            else 0
        )
        if not_an_id:
            raise InputError(f"{what}: {column} has {not_an_id} values that are not a text or number id")
    for column in numbers:
        df[column] = numeric_column(df[column], column)
        if column in required_numbers and np.isnan(df[column].to_numpy()).any():
            raise InputError(f"{what}: {column} must be a finite number in every row")
    for column in dates:
        df[column] = date_column(df[column], column)
    return df


def _rolling_sums(frame: pd.DataFrame, key: str, columns: list[str], days: int) -> dict[str, np.ndarray]:
    """Per-key sums of `columns` over the `days`-day calendar window ending on each row's date, plus the row
    count `n_{days}d`, aligned with `frame`'s rows, which must be sorted by key and date.

    Vectorised: the window of row i is the rows j <= i of its key dated after date_i - days (pandas'
    `rolling(f"{days}D")`); its sum is a difference of per-key cumulative sums, and its first row is found by
    one `searchsorted` over (key, date) pairs. Columns must have no missing values."""
    codes = pd.factorize(frame[key], sort=False)[0].astype(np.int64)
    day = frame["date"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    span = int(day.max() - day.min()) + days + 1 if len(day) else 1
    position = codes * span + (day - (day.min() if len(day) else 0))  # increasing: sorted by key, date
    start = np.searchsorted(position, position - days + 1, side="left")
    rows = np.arange(len(frame))
    out = {f"n_{days}d": rows - start + 1}
    for column in columns:
        total = np.concatenate([[0.0], np.cumsum(frame[column].to_numpy(dtype=float))])
        out[f"{column}_{days}d"] = total[rows + 1] - total[start]
    return out


def _sorted_by(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """`frame` sorted by key and date (stable), with a fresh index."""
    return frame.sort_values([key, "date"], kind="stable").reset_index(drop=True)


def _in_range(frame: pd.DataFrame, start: date | None, end: date | None) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    if start is not None:
        mask &= (frame["date"] >= pd.Timestamp(start)).to_numpy()
    if end is not None:
        mask &= (frame["date"] <= pd.Timestamp(end)).to_numpy()
    return frame.loc[mask].reset_index(drop=True)


def campaign_features(
    daily: pd.DataFrame,
    creative_fatigue: pd.DataFrame | None = None,
    start: date | None = None,
    end: date | None = None,
) -> pd.DataFrame:
    """ROAS features for each campaign-day in [start, end] (inclusive).

    `daily` holds raw_campaign_daily rows from at least 29 days before `start`; `creative_fatigue`
    holds creative_features rows (campaign_id, date, fatigue_score, impressions_7d) for the same days.
    """
    metrics = ["spend", "revenue", "impressions", "clicks", "conversions"]
    df = _typed(
        daily,
        "campaign daily rows",
        ["tenant_id", "campaign_id", "platform"],
        [*metrics, "audience_size", "daily_budget"],
        ["date"],
        tuple(metrics),
    )
    df = _sorted_by(df, "campaign_id")
    for window in (3, 7, 14, CAMPAIGN_LOOKBACK_DAYS):
        df = df.assign(**_rolling_sums(df, "campaign_id", metrics, window))

    out = df[
        ["tenant_id", "campaign_id", "date", "platform", "audience_size", "daily_budget", "spend", "revenue"]
    ].copy()
    out["roas_7d"] = _ratio(df["revenue_7d"], df["spend_7d"])
    out["roas_30d"] = _ratio(df["revenue_30d"], df["spend_30d"])
    out["roas_3d"] = _ratio(df["revenue_3d"], df["spend_3d"])
    out["roas_14d"] = _ratio(df["revenue_14d"], df["spend_14d"])
    out["spend_velocity"] = _ratio(_ratio(df["spend_7d"], df["n_7d"]), _ratio(df["spend_30d"], df["n_30d"]))
    out["ctr"] = _ratio(df["clicks_7d"], df["impressions_7d"])
    out["conversion_rate"] = _ratio(df["conversions_7d"], df["clicks_7d"])
    previous_week = df["impressions_14d"] - df["impressions_7d"]
    out["impressions_growth"] = _ratio(df["impressions_7d"], previous_week) - 1.0
    target_day = df["date"] + pd.Timedelta(days=1)
    out["day_of_week"] = target_day.dt.dayofweek.astype(int)
    out["season"] = target_day.dt.quarter.astype(int)
    out["day_of_quarter"] = (target_day - target_day.dt.to_period("Q").dt.start_time).dt.days.astype(int)
    out["roas"] = _ratio(df["revenue"], df["spend"])
    for window in (3, 7, CAMPAIGN_LOOKBACK_DAYS):
        out[f"spend_vs_{window}d"] = _ratio(df["spend"], _ratio(df[f"spend_{window}d"], df[f"n_{window}d"]))
    out["conversions_30d"] = df["conversions_30d"].astype(float)
    out["history_days"] = df["n_30d"].astype(int)
    out["creative_fatigue"] = _campaign_fatigue(out, creative_fatigue)
    return _in_range(out, start, end)


def _campaign_fatigue(campaign_days: pd.DataFrame, creative_fatigue: pd.DataFrame | None) -> np.ndarray:
    """Impression-weighted mean fatigue score of each campaign's live creatives on the day (NaN if none)."""
    if creative_fatigue is None or creative_fatigue.empty:
        return np.full(len(campaign_days), np.nan)
    cf = creative_fatigue[["campaign_id", "date", "fatigue_score", "impressions_7d"]].copy()
    cf["date"] = pd.to_datetime(cf["date"])
    weight = (
        cf["impressions_7d"].fillna(0).clip(lower=0) + 1.0
    )  # +1: a creative with no delivery still counts a little
    cf["_w"] = weight
    cf["_ws"] = weight * cf["fatigue_score"]
    agg = cf.groupby(["campaign_id", "date"], as_index=False)[["_w", "_ws"]].sum()
    agg["creative_fatigue"] = agg["_ws"] / agg["_w"]
    joined = campaign_days[["campaign_id", "date"]].merge(agg, on=["campaign_id", "date"], how="left")
    return joined["creative_fatigue"].to_numpy()


def creative_features(
    daily: pd.DataFrame, start: date | None = None, end: date | None = None
) -> pd.DataFrame:
    """Fatigue features for each creative-day in [start, end], plus its fatigue score.

    `daily` holds raw_creative_daily rows from up to CREATIVE_LOOKBACK_DAYS before `start`.
    Frequency is cumulative impressions per audience member since launch (within the lookback);
    the baseline CTR and engagement rate are those of the creative's first BASELINE_DAYS days,
    known only once those days have happened.
    """
    df = _typed(
        daily,
        "creative daily rows",
        ["tenant_id", "campaign_id", "creative_id"],
        ["impressions", "clicks", "engagements", "audience_size"],
        ["date"],
        ("impressions", "clicks", "engagements"),
    )
    df["launch_date"] = pd.to_datetime(df["launch_date"], errors="coerce") if "launch_date" in df else pd.NaT
    df = _sorted_by(df, "creative_id")
    df = df.assign(**_rolling_sums(df, "creative_id", ["impressions", "clicks", "engagements"], 7))
    by_creative = df.groupby("creative_id", sort=False)
    first_seen = by_creative["date"].transform("min")
    launch = df["launch_date"].fillna(first_seen)
    in_baseline = (df["date"] <= launch + pd.Timedelta(days=BASELINE_DAYS - 1)).to_numpy()
    cum = (
        pd.DataFrame(
            {
                "creative_id": df["creative_id"],
                "impressions": df["impressions"].astype(float),
                "b_impressions": np.where(in_baseline, df["impressions"], 0.0),
                "b_clicks": np.where(in_baseline, df["clicks"], 0.0),
                "b_engagements": np.where(in_baseline, df["engagements"], 0.0),
            }
        )
        .groupby("creative_id", sort=False)
        .cumsum()
    )

    out = df[["tenant_id", "campaign_id", "creative_id", "date"]].copy()
    out["days_active"] = ((df["date"] - launch).dt.days + 1).astype(int)
    out["frequency"] = _ratio(cum["impressions"], df["audience_size"])
    out["ctr_current"] = _ratio(df["clicks_7d"], df["impressions_7d"])
    out["ctr_baseline"] = _ratio(cum["b_clicks"], cum["b_impressions"])
    out["engagement_rate_current"] = _ratio(df["engagements_7d"], df["impressions_7d"])
    out["engagement_rate_baseline"] = _ratio(cum["b_engagements"], cum["b_impressions"])
    out["impressions_7d"] = df["impressions_7d"].astype("int64")
    out["fatigue_score"] = fatigue.score_frame(out).round(3)
    return _in_range(out, start, end)


def session_features(sessions: pd.DataFrame) -> pd.DataFrame:
    """The 9 conversion features per session, typed and cleaned; missing values stay missing.

    Categories are trimmed and lower-cased (unknown ones are kept: the model treats them as unseen);
    durations are capped at 4 hours (idle tabs); counts and amounts are floats so NaN survives.
    """
    require_frame(sessions, "sessions", ["tenant_id", "session_id", "started_at"])
    sessions = sessions.reset_index(drop=True)
    out = sessions[["tenant_id", "session_id"]].copy()
    out["started_at"] = date_column(sessions["started_at"], "started_at")
    out["date"] = out["started_at"].dt.normalize()
    for column in CONVERSION_NUMERIC:  # an absent signal is all missing: normal input
        out[column] = numeric_column(sessions[column], column) if column in sessions else np.nan
    out["session_duration"] = out["session_duration"].clip(upper=MAX_SESSION_SECONDS)
    for column in CONVERSION_CATEGORICAL:
        values = (
            by_distinct(sessions[column], lambda v: v.astype("string").str.strip().str.lower())
            if column in sessions
            else pd.Series(pd.NA, index=sessions.index, dtype="string")
        )
        values = values.mask(values == "")
        out[column] = values.astype(object).where(values.notna(), None)
    if "converted" in sessions:  # live sessions have no outcome yet
        out["converted"] = _outcome(sessions["converted"])
    return out


def _outcome(values: pd.Series) -> np.ndarray:
    """converted as booleans: True/False, 1/0 or their text; anything else (or missing) is an InputError."""
    known = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False}
    mapped = by_distinct(values, lambda v: v.astype("string").str.strip().str.lower().map(known))
    if mapped.isna().any():
        raise InputError(
            f"converted must be true/false (or 1/0) in every row, got {values[mapped.isna()].iloc[0]!r:.40}"
        )
    return mapped.astype(bool).to_numpy()
