"""The seed document's feature names, accepted as aliases of this project's own.

The product's backend was written against the seed's names; the predictors take either spelling.
A project name that is present (and not None) wins over its seed alias.

ROAS (`ROASPredictor.predict`):

| seed name | project name | encoding accepted |
| --- | --- | --- |
| `historical_roas_7d` | `roas_7d` | number |
| `historical_roas_30d` | `roas_30d` | number |
| `creative_fatigue_score` | `creative_fatigue` | number (0-100) |
| `platform_encoded` | `platform` | a platform name (`"meta"`), or its one-hot position in PLATFORM_ORDER (0-3), or the one-hot list itself (`[0, 1, 0, 0]` = google) |
| `season_encoded` | `season` | `"Q1"`-`"Q4"` or 1-4 |
| `date` (only when neither season is given) | `season` | the quarter of the date, as the seed's `_encode_season(data['date'])` |

The other seed ROAS features (`spend_velocity`, `ctr`, `conversion_rate`, `impressions_growth`,
`day_of_week`, `audience_size`) have the same names here.

Fatigue (`FatigueScorer.calculate_score`, a mapping or any object with these attributes):

| seed name | project input |
| --- | --- |
| `days_in_rotation` | `days_active` |
| `avg_frequency` (the seed's scorer) or `frequency` | `frequency` |
| `total_impressions` / `audience_size` | `frequency` (when no frequency is given) |
| `initial_ctr`, `current_ctr` (the seed's scorer) | `ctr_baseline`, `ctr_current` |
| `ctr_trend_30d`, else `ctr_trend_7d` (relative change, -0.25 = down 25%) | the CTR decay, when the CTR pair is not given |
| `engagement_decay_rate` (relative decline, 0.25 = down 25%) | the engagement decay, when the engagement rates are not given |

Conversion: the seed's nine input names are this project's names.
EMQ: see `ml.emq` (the seed's `email`, `phone`, `click_id`, `ip_address`, `user_agent`, `external_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

import numpy as np
import pandas as pd

from stratum_pipeline.ml.inputs import InputError, _show, number

# The one-hot order of platform_encoded (the same order as ROASPredictor's one-hot columns).
PLATFORM_ORDER = ("meta", "google", "tiktok", "linkedin")

ROAS_ALIASES = {
    "historical_roas_7d": "roas_7d",
    "historical_roas_30d": "roas_30d",
    "creative_fatigue_score": "creative_fatigue",
    "platform_encoded": "platform",
    "season_encoded": "season",
}


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def decode_platform(value):
    """`platform_encoded` as a platform name: a name, a one-hot position 0-3, or a one-hot list."""
    if isinstance(value, str):
        return value.strip().lower()
    if isinstance(value, (list, tuple, np.ndarray)):
        flags = [number(v, "platform_encoded") for v in value]
        if len(flags) == len(PLATFORM_ORDER) and sorted(flags) == [0.0] * (len(flags) - 1) + [1.0]:
            return PLATFORM_ORDER[flags.index(1.0)]
    elif not isinstance(value, (bool, np.bool_)):
        position = number(value, "platform_encoded")
        if float(position).is_integer() and 0 <= position < len(PLATFORM_ORDER):
            return PLATFORM_ORDER[int(position)]
    raise InputError(
        f"platform_encoded must be a platform name, its one-hot position 0-{len(PLATFORM_ORDER) - 1} "
        f"({', '.join(PLATFORM_ORDER)}) or a one-hot list, got {_show(value)}"
    )


def decode_season(value) -> int:
    """`season_encoded` as the quarter 1-4: "Q1".."Q4" (any case) or 1..4."""
    text = value.strip().upper() if isinstance(value, str) else None
    if text and text[0] == "Q":
        text = text[1:]
    quarter = (
        number(text if text is not None else value, "season_encoded")
        if not isinstance(value, bool)
        else np.nan
    )
    if float(quarter).is_integer() and 1 <= quarter <= 4:
        return int(quarter)
    raise InputError(f"season_encoded must be Q1-Q4 or 1-4, got {_show(value)}")


def quarter_of(value) -> float:
    """The quarter of a date (date, datetime or ISO text); NaN when there is none; InputError if it is not a date."""
    if _missing(value):
        return np.nan
    if isinstance(value, (date, datetime, pd.Timestamp)):
        return float(pd.Timestamp(value).quarter)
    if isinstance(value, str):
        parsed = pd.to_datetime(value.strip(), errors="coerce")
        if not pd.isna(parsed):
            return float(parsed.quarter)
    raise InputError(f"date must be a date, got {_show(value)}")


def roas_input(campaign: Mapping) -> dict:
    """A campaign dict with the seed's ROAS names resolved to this project's (the input is not changed)."""
    out = dict(campaign)
    for seed, own in ROAS_ALIASES.items():
        if seed in campaign and not _missing(campaign[seed]) and _missing(campaign.get(own)):
            value = campaign[seed]
            out[own] = (
                decode_platform(value)
                if own == "platform"
                else decode_season(value)
                if own == "season"
                else value
            )
    if _missing(out.get("season")) and "date" in campaign:
        out["season"] = quarter_of(campaign["date"])
    return out


FATIGUE_SIMPLE_ALIASES = {
    "days_active": ("days_in_rotation",),
    "frequency": ("avg_frequency",),
    "ctr_current": ("current_ctr",),
    "ctr_baseline": ("initial_ctr",),
}
FATIGUE_SEED_NAMES = (
    "days_in_rotation",
    "avg_frequency",
    "frequency",
    "total_impressions",
    "audience_size",
    "initial_ctr",
    "current_ctr",
    "ctr_trend_7d",
    "ctr_trend_30d",
    "engagement_decay_rate",
)
_NOT_AN_ASSET = (str, bytes, bytearray, int, float, complex, list, tuple, set, frozenset, type(None))


def _reader(asset):
    """A `get(name)` over a mapping, or over any object's attributes (the seed's CreativeAsset)."""
    if isinstance(asset, Mapping):
        return asset.get
    if isinstance(asset, (*_NOT_AN_ASSET, np.generic, pd.DataFrame, pd.Series)):
        raise TypeError(
            f"asset must be a dict or an object with the seed's creative attributes "
            f"(days_in_rotation, avg_frequency, ...), got {type(asset).__name__}"
        )
    return lambda name: getattr(asset, name, None)


def fatigue_inputs(asset, features: tuple[str, ...]) -> tuple[dict[str, float], float, float]:
    """(the fatigue features as numbers, ctr decay override, engagement decay override) of a mapping or object.

    The overrides are NaN unless the CTR pair (or the engagement rates) are missing and the seed's trend
    (or decay rate) is given: the caller then uses them in place of the decays computed from the pairs."""
    get = _reader(asset)
    if not isinstance(asset, Mapping) and all(get(n) is None for n in (*features, *FATIGUE_SEED_NAMES)):
        raise TypeError(
            f"asset must be a dict or an object with the seed's creative attributes (days_in_rotation, "
            f"avg_frequency, ...), got a {type(asset).__name__} with none of them"
        )

    def first(*names):
        for name in names:
            value = get(name)
            if not _missing(value):
                return number(value, name)
        return np.nan

    x = {name: first(name, *FATIGUE_SIMPLE_ALIASES.get(name, ())) for name in features}
    if np.isnan(x["frequency"]):
        impressions, audience = first("total_impressions"), first("audience_size")
        if audience > 0 and np.isfinite(impressions):
            x["frequency"] = impressions / audience
    ctr_decay = engagement_decay = np.nan
    if np.isnan(x["ctr_current"]) or np.isnan(x["ctr_baseline"]):
        trend = first("ctr_trend_30d")
        trend = first("ctr_trend_7d") if np.isnan(trend) else trend
        if np.isfinite(trend):
            ctr_decay = float(np.clip(-trend, 0.0, 1.0))
    if np.isnan(x["engagement_rate_current"]) or np.isnan(x["engagement_rate_baseline"]):
        rate = first("engagement_decay_rate")
        if np.isfinite(rate):
            engagement_decay = float(np.clip(rate, 0.0, 1.0))
    return x, ctr_decay, engagement_decay
