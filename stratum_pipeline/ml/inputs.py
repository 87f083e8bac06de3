"""Input validation shared by the public APIs of `ml/`: one rule set, one-line errors that name the field.

- A number may be an int, float, bool or numeric string. Missing values (None, NaN) and
  infinities count as missing; magnitudes are clipped to +-MAX_MAGNITUDE so no output overflows.
- Anything else where a number belongs (text, lists, objects) is an `InputError` naming the field.
- `strict_number` is for parameters that must be present and finite (spend, days, iterations).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MAX_MAGNITUDE = 1e12


class InputError(ValueError):
    """Bad input at an ml/ API boundary: a one-line message naming the field."""


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _raw_float(value, field: str) -> float:
    if value is None or value is pd.NA or value is pd.NaT:
        return math.nan
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range (copysign would convert it again and overflow)
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
        except OverflowError:
            return math.inf
    raise InputError(f"{field} must be a number, got {_show(value)}")


def number(value, field: str) -> float:
    """A numeric field: float clipped to +-MAX_MAGNITUDE, NaN when missing or infinite; InputError otherwise."""
    x = _raw_float(value, field)
    return float(np.clip(x, -MAX_MAGNITUDE, MAX_MAGNITUDE)) if math.isfinite(x) else math.nan


def strict_number(
    value,
    field: str,
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float = MAX_MAGNITUDE,
) -> float:
    """A required finite number in range: `minimum` (inclusive), `above` (exclusive), `maximum` (inclusive)."""
    x = _raw_float(value, field)
    if not math.isfinite(x):
        raise InputError(f"{field} must be a finite number, got {_show(value)}")
    if (minimum is not None and x < minimum) or (above is not None and x <= above) or x > maximum:
        kind = (
            "a positive number"
            if above == 0
            else f"a number above {above:g}"
            if above is not None
            else f"a number of at least {minimum:g}"
            if minimum is not None
            else "a number"
        )
        raise InputError(f"{field} must be {kind} and at most {maximum:g}, got {_show(value)}")
    return x


def whole_number(value, field: str, minimum: int, maximum: int) -> int:
    """A required integer in [minimum, maximum] (an integral float such as 30.0 is accepted)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and minimum <= value <= maximum:
        return int(
            value
        )  # exactly: through a float, integers past 2**53 would round (a seed up to 2**63 - 1)
    x = strict_number(value, field, minimum=minimum, maximum=maximum)
    if isinstance(value, bool) or not float(x).is_integer():
        raise InputError(f"{field} must be a whole number from {minimum} to {maximum}, got {_show(value)}")
    return int(x)


def require_mapping(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict, got {type(value).__name__}")
    return value


def require_frame(frame, what: str, columns=()) -> pd.DataFrame:
    """`frame` if it is a DataFrame holding `columns`; else TypeError / InputError naming what is missing."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what} is missing columns: {', '.join(missing)}")
    return frame


def numeric_column(values: pd.Series, field: str) -> np.ndarray:
    """A column as floats under the rules of `number` (vectorised for numeric dtypes)."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        out = pd.Series(values).astype("float64", copy=True).to_numpy(dtype=float, na_value=np.nan)
    elif pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values):
        raise InputError(f"{field} must hold numbers, got {values.dtype} values")
    else:
        out = np.fromiter((_raw_float(v, field) for v in values), dtype=float, count=len(values))
    out = np.where(np.isfinite(out), out, np.nan)
    return np.clip(out, -MAX_MAGNITUDE, MAX_MAGNITUDE)


def date_column(values: pd.Series, field: str) -> pd.Series:
    """A required date/time column as naive datetimes; InputError if a value is missing or not a date."""
    try:
        parsed = pd.to_datetime(values, errors="coerce")
    except (TypeError, ValueError):
        parsed = pd.Series(pd.NaT, index=values.index)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    bad = parsed.isna()
    if bad.any():
        raise InputError(
            f"{field} has {int(bad.sum())} values that are missing or not dates, e.g. {_show(values[bad].iloc[0])}"
        )
    return parsed


def by_distinct(values: pd.Series, transform) -> pd.Series:
    """`transform(values)` computed once per distinct value and spread back to every row (same index).

    Exact where equal values are the same value: text (missing values all become one missing value, which the
    transforms here treat alike), booleans and integers. Any other column is transformed row by row as given."""
    kind = values.dtype.kind
    if not (
        kind in "biu"
        or (kind == "O" and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"))
    ):
        return transform(values)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    distinct = list(uniques)
    missing = codes < 0
    if missing.any():
        distinct.append(values[missing].iloc[0])
        codes = np.where(missing, len(uniques), codes)
    out = transform(pd.Series(distinct, dtype=values.dtype if kind != "O" else object))
    return pd.Series(out.to_numpy()[codes], index=values.index, name=values.name, dtype=out.dtype)
