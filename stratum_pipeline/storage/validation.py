"""Row-level validation of raw extracts: every row is either clean or quarantined with its reasons.

Pure pandas. Each raw extract has a `RowRules`; `validate_rows` splits a frame into the clean rows
and a quarantine frame (source id, tenant, partition date, reasons, the row as JSON). A row with
several problems gets all of them in its reason, separated by "; ". Nothing is dropped silently:
len(clean) + len(quarantine) == len(input), always.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from stratum_pipeline.ml.inputs import by_distinct
from stratum_pipeline.storage.sqlio import as_datetimes
from stratum_pipeline.tenancy import RESERVED_TENANT_IDS, TENANT_ID_PATTERN

QUARANTINE_COLUMNS = ["source_id", "tenant_id", "partition_date", "reason", "record"]


@dataclass(frozen=True)
class RowRules:
    """What makes a row of one raw extract acceptable."""

    key: tuple[str, ...]  # business key: unique within a partition; later copies are duplicates
    partition_column: str  # the date (or timestamp) the row belongs to
    required: tuple[str, ...] = ()
    non_negative: tuple[str, ...] = ()  # NULL is allowed here (required handles NULL)
    allowed_values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    not_greater: tuple[tuple[str, str], ...] = ()  # (a, b): a <= b
    recorded_column: str = "recorded_at"  # when the backend recorded the row
    future_tolerance: timedelta = timedelta(minutes=5)


@dataclass
class ValidationResult:
    clean: pd.DataFrame
    quarantine: pd.DataFrame

    @property
    def reason_counts(self) -> dict[str, int]:
        if self.quarantine.empty:
            return {}
        reasons = self.quarantine["reason"].str.split("; ").explode()
        return reasons.str.split(":").str[0].value_counts().to_dict()


def _append(reasons: np.ndarray, mask: np.ndarray, text) -> None:
    """Add a reason to the masked rows: `text` is a string or a function of the row positions."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return
    texts = text(idx) if callable(text) else [text] * len(idx)
    for i, t in zip(idx, texts):
        reasons[i] = t if not reasons[i] else f"{reasons[i]}; {t}"


def _shown(value) -> str:
    """A source value in a reason: text quoted, numbers as written."""
    return repr(value) if isinstance(value, str) else str(value)


def _valid_tenant_ids(tenants: pd.Series) -> pd.Series:
    """Whether each value is a tenant id the sensor accepts (missing: False)."""
    text = tenants.astype("string")
    return pd.Series(
        text.str.fullmatch(TENANT_ID_PATTERN.pattern).fillna(False).to_numpy(dtype=bool)
        & ~text.isin(RESERVED_TENANT_IDS).fillna(False).to_numpy(dtype=bool)
    )


def _is_missing(series: pd.Series) -> np.ndarray:
    return series.isna().to_numpy()


def _as_day(series: pd.Series) -> pd.Series:
    return as_datetimes(series).dt.normalize()


def validate_rows(frame: pd.DataFrame, rules: RowRules, now: datetime | None = None) -> ValidationResult:
    """Split `frame` into clean rows and quarantined rows with reasons."""
    now = pd.Timestamp(now or datetime.now(timezone.utc))
    if now.tzinfo is not None:  # the source stores naive UTC
        now = now.tz_convert("UTC").tz_localize(None)
    frame = frame.sort_values("source_id", kind="stable").reset_index(drop=True)
    n = len(frame)
    reasons = np.full(n, "", dtype=object)

    for column in rules.required:
        _append(reasons, _is_missing(frame[column]), f"missing value: {column}")
    if (
        "tenant_id" in frame.columns
    ):  # the sensor's rule, at ingest: such a tenant never becomes a partition or model
        tenants = frame["tenant_id"]
        present = ~_is_missing(tenants)
        valid = by_distinct(tenants, _valid_tenant_ids).to_numpy(dtype=bool)
        # the id itself is in tenant_id (cut to 64 characters) and in record: quoted here, a hostile id could
        # hold "; " or ": " and forge another reason
        _append(reasons, present & ~valid, "invalid tenant id")
    for column in rules.non_negative:
        values = pd.to_numeric(frame[column], errors="coerce")
        col = frame[column].to_numpy()
        # text or an infinity in a numeric column (a SQLite source stores whatever it is given): never a clean row
        not_number = ~_is_missing(frame[column]) & ~np.isfinite(values.to_numpy(dtype=float))
        _append(
            reasons,
            not_number,
            lambda idx: [f"not a number: {column}={_shown(v)}"[:200] for v in col[idx]],
        )
        _append(
            reasons, (values < 0).to_numpy(), lambda idx: [f"negative value: {column}={v}" for v in col[idx]]
        )
    for column, allowed in rules.allowed_values.items():
        present = ~_is_missing(frame[column])
        unknown = present & ~frame[column].isin(allowed).to_numpy()
        label = "unknown platform" if column == "platform" else f"unknown {column}"
        col = frame[column].to_numpy()
        _append(reasons, unknown, lambda idx: [f"{label}: {v!r}" for v in col[idx]])
    for a, b in rules.not_greater:
        bad = (pd.to_numeric(frame[a], errors="coerce") > pd.to_numeric(frame[b], errors="coerce")).to_numpy()
        xa, xb = frame[a].to_numpy(), frame[b].to_numpy()
        _append(reasons, bad, lambda idx: [f"{a} > {b}: {x} > {y}" for x, y in zip(xa[idx], xb[idx])])

    when = as_datetimes(frame[rules.partition_column])
    recorded = as_datetimes(frame[rules.recorded_column])
    if rules.partition_column in ("date",):  # a calendar date is in the future if after the recording day
        future = (when > _as_day(recorded)) | (when > now.normalize())
    else:
        future = (when > recorded + rules.future_tolerance) | (when > now + rules.future_tolerance)
    _append(
        reasons,
        future.fillna(False).to_numpy(),
        lambda idx: [
            f"date in the future: {w} recorded at {r}" for w, r in zip(when.iloc[idx], recorded.iloc[idx])
        ],
    )

    key_present = ~frame[list(rules.key)].isna().any(axis=1).to_numpy()
    dup = frame.duplicated(list(rules.key), keep="first").to_numpy() & key_present
    if dup.any():
        first_id = frame.groupby(list(rules.key), dropna=True)["source_id"].transform("first")
        _append(
            reasons,
            dup,
            lambda idx: [
                f"duplicate key ({', '.join(rules.key)}): first seen as source_id {f}"
                for f in first_id.iloc[idx]
            ],
        )

    bad = reasons != ""
    clean = frame.loc[~bad].reset_index(drop=True)
    rejected = frame.loc[bad]
    quarantine = pd.DataFrame(
        {
            "source_id": rejected["source_id"].to_numpy(),
            # as given, cut to the column's 64 characters (the full id stays in `record`)
            "tenant_id": rejected["tenant_id"]
            .map(lambda t: t if not isinstance(t, str) else t[:64])
            .to_numpy()
            if "tenant_id" in rejected
            else None,
            "partition_date": _as_day(rejected[rules.partition_column]).dt.date.to_numpy(),
            "reason": reasons[bad],
            "record": [_to_json(row) for row in rejected.to_dict("records")],
        },
        columns=QUARANTINE_COLUMNS,
    )
    return ValidationResult(clean=clean, quarantine=quarantine)


def _to_json(row: dict) -> str:
    def plain(v):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
            return None
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, (pd.Timestamp, datetime)):
            return v.isoformat()
        if hasattr(v, "isoformat"):
            return v.isoformat()
        return v

    return json.dumps({k: plain(v) for k, v in row.items()}, sort_keys=True)
