"""Data-quality checks on raw extracts (blocking) and feature tables, as great-expectations suites.

Raw extract contract (blocking: a failed check stops the assets downstream in the same run):
schema, required values, non-negative amounts, known platforms, unique business key, pair rules
(clicks <= impressions), and per tenant and day: the share of quarantined rows and the row count
against the tenant's previous day. When the tenants breaking those limits hold a minority of the
day's volume (one tenant's data is bad) the check fails with WARN severity, which does not block:
the other tenants' features are built. When they hold more than half of it (the extract itself
looks broken) it fails with ERROR and blocks. Feature contract: schema, unique key, value ranges, and no row lost since the
raw extract.
"""

from datetime import date, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa

from stratum_pipeline.checks.expectations import ExpectationSpec, validate_frame
from stratum_pipeline.checks.partitioned import per_partition
from stratum_pipeline.partitions import daily_partitions, partition_days
from stratum_pipeline.resources import Warehouse
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.storage.extracts import EXTRACTS, Extract

MAX_QUARANTINE_RATE = 0.05  # more than 5% of a day's rows rejected means the extract itself is broken...
QUARANTINE_ALLOWANCE = 5  # ...unless it is a handful of rows on a small day
DAY_OVER_DAY_RATIO = (0.5, 2.0)  # a day's clean rows against the previous day's...
NOISE_SIGMAS = 2.0  # ...widened by Poisson noise (2 sqrt(previous)) so small tenants don't flap


def _schema(table: sa.Table) -> ExpectationSpec:
    return (
        "ExpectTableColumnsToMatchSet",
        {"column_set": [c.name for c in table.columns], "exact_match": True},
    )


def _unique(columns: tuple[str, ...]) -> ExpectationSpec:
    if len(columns) == 1:
        return ("ExpectColumnValuesToBeUnique", {"column": columns[0]})
    return ("ExpectCompoundColumnsToBeUnique", {"column_list": list(columns)})


def raw_row_expectations(extract: Extract) -> list[ExpectationSpec]:
    rules = extract.rules
    specs = [_schema(extract.table), _unique(rules.key)]
    specs += [("ExpectColumnValuesToNotBeNull", {"column": c}) for c in rules.required]
    specs += [("ExpectColumnValuesToBeBetween", {"column": c, "min_value": 0}) for c in rules.non_negative]
    specs += [
        ("ExpectColumnValuesToBeInSet", {"column": c, "value_set": list(v)})
        for c, v in rules.allowed_values.items()
    ]
    specs += [
        ("ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": b, "column_B": a, "or_equal": True})
        for a, b in rules.not_greater
    ]
    return specs


VOLUME_EXPECTATIONS: list[ExpectationSpec] = [
    (
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {"column_A": "quarantine_limit", "column_B": "quarantined", "or_equal": True},
    ),
    (
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {"column_A": "rows", "column_B": "min_expected_rows", "or_equal": True},
    ),
    (
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {"column_A": "max_expected_rows", "column_B": "rows", "or_equal": True},
    ),
]


def _with_limits(frame: pd.DataFrame, previous: np.ndarray) -> pd.DataFrame:
    """Add the quarantine and day-over-day limits to rows of (rows, quarantined) given the previous day's rows.

    quarantine_limit = max(QUARANTINE_ALLOWANCE, 5% of the rows read); expected rows = the previous day's
    x 0.5..2, widened by NOISE_SIGMAS x sqrt(previous) (so a small tenant may have an empty day).
    """
    total = frame["rows"] + frame["quarantined"]
    frame["quarantine_rate"] = (frame["quarantined"] / total.where(total > 0)).fillna(0.0)
    frame["quarantine_limit"] = np.maximum(QUARANTINE_ALLOWANCE, np.floor(MAX_QUARANTINE_RATE * total))
    noise = NOISE_SIGMAS * np.sqrt(previous)
    frame["min_expected_rows"] = np.maximum(0, np.floor(DAY_OVER_DAY_RATIO[0] * previous - noise))
    frame["max_expected_rows"] = np.where(
        previous > 0,
        np.ceil(DAY_OVER_DAY_RATIO[1] * previous + noise + QUARANTINE_ALLOWANCE),
        np.iinfo(np.int64).max,
    )
    return frame


def tenant_daily_volume(warehouse: Warehouse, extract: Extract, first: date, last: date) -> pd.DataFrame:
    """Per tenant and day in [first, last]: clean and quarantined rows with their limits (each tenant against
    its own previous day), and `failing` marking the tenant-days over a limit."""
    days = pd.date_range(first - timedelta(days=1), last, freq="D").date
    clean = warehouse.daily_tenant_counts(extract.table, days[0], last)
    rejected = warehouse.daily_tenant_counts(extract.quarantine, first, last, "partition_date")
    tenants = sorted(set(clean["tenant_id"]) | set(rejected["tenant_id"]))
    grid = pd.MultiIndex.from_product([tenants, days], names=["tenant_id", "day"])
    frame = pd.DataFrame(
        {
            "rows": clean.set_index(["tenant_id", "day"])["rows"].reindex(grid, fill_value=0),
            "quarantined": rejected.set_index(["tenant_id", "day"])["rows"].reindex(grid, fill_value=0),
        }
    ).reset_index()
    previous = frame.groupby("tenant_id")["rows"].shift(1).fillna(0).to_numpy()
    frame = _with_limits(frame.assign(previous_rows=previous.astype("int64")), previous)
    frame = frame[frame["day"] > days[0]].reset_index(drop=True)
    frame["failing"] = (
        (frame["quarantined"] > frame["quarantine_limit"])
        | (frame["rows"] < frame["min_expected_rows"])
        | (frame["rows"] > frame["max_expected_rows"])
    )
    return frame[["day", "tenant_id", *[c for c in frame.columns if c not in ("day", "tenant_id")]]]


BROKEN_EXTRACT_SHARE = 0.5  # failing tenants holding more than half of a day's volume: the extract is broken


def severity_by_day(volume: pd.DataFrame) -> dict[date, dg.AssetCheckSeverity]:
    """The days with failing tenant-days and how bad each is: ERROR when the failing tenants hold more than
    half of the day's volume (a tenant's volume = its previous day's rows or today's rows read, whichever is
    larger: the extract itself looks broken), WARN when they hold a minority (one tenant's bad data)."""
    if not volume["failing"].any():
        return {}
    weight = np.maximum(volume["previous_rows"], volume["rows"] + volume["quarantined"]).clip(lower=1)
    share = (weight * volume["failing"]).groupby(volume["day"]).sum() / weight.groupby(volume["day"]).sum()
    failing_days = volume.loc[volume["failing"], "day"].unique()
    return {
        day: dg.AssetCheckSeverity.ERROR if share[day] > BROKEN_EXTRACT_SHARE else dg.AssetCheckSeverity.WARN
        for day in sorted(failing_days)
    }


def volume_severity(volume: pd.DataFrame) -> tuple[dg.AssetCheckSeverity | None, dict[str, list[str]]]:
    """How bad the failing tenant-days are, and the failing tenants per day.

    None: no tenant-day fails. ERROR (blocks everything downstream): on some day the failing tenants hold
    more than half of the day's volume (`severity_by_day`): the extract itself looks broken. WARN (does not
    block): a minority of the volume fails - one tenant's bad data does not stop the others.
    """
    days = severity_by_day(volume)
    if not days:
        return None, {}
    failing = {
        str(day): sorted(rows.loc[rows["failing"], "tenant_id"])
        for day, rows in volume.groupby("day")
        if rows["failing"].any()
    }
    broken = dg.AssetCheckSeverity.ERROR in days.values()
    return (dg.AssetCheckSeverity.ERROR if broken else dg.AssetCheckSeverity.WARN), failing


def _all_days(first: date, last: date, severity: dg.AssetCheckSeverity) -> dict[date, dg.AssetCheckSeverity]:
    return {d.date(): severity for d in pd.date_range(first, last, freq="D")}


def _result(outcomes: dict[str, object], extra: dict) -> dg.AssetCheckResult:
    passed = all(o.success for o in outcomes.values())
    metadata = dict(extra)
    for name, outcome in outcomes.items():
        metadata[f"{name}_expectations"] = outcome.evaluated
        metadata[f"{name}_failures"] = dg.MetadataValue.json(outcome.failures)
    return dg.AssetCheckResult(passed=passed, metadata=metadata)


def _validated_rows(context, warehouse: Warehouse, table: sa.Table, suite: str, specs: list[ExpectationSpec]):
    """The checked partitions' rows of `table` and the suite's outcome on them. The rows the run itself just
    wrote are validated in memory (storage/handover.py) without reading them back; anything but a pass is
    judged again on the rows read from the warehouse, so a reported failure is always about the stored rows."""
    first, last = partition_days(context)
    rows = warehouse.written(context.run.run_id, table, first, last)
    if rows is not None:
        outcome = validate_frame(rows, suite, specs)
        if outcome.success:
            return rows, outcome
    rows = warehouse.read_range(table, first, last)
    return rows, validate_frame(rows, suite, specs)


def build_raw_contract_check(extract: Extract) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=extract.name,
        name="raw_contract",
        blocking=True,
        partitions_def=daily_partitions,
        description=f"Blocking GX suite on {extract.name}: schema, required values, ranges, known platforms, unique "
        f"{'/'.join(extract.rules.key)}; per tenant and day at most {MAX_QUARANTINE_RATE:.0%} of rows quarantined (or "
        f"{QUARANTINE_ALLOWANCE}) and rows within {DAY_OVER_DAY_RATIO[0]}x-{DAY_OVER_DAY_RATIO[1]}x of the tenant's "
        f"previous day (widened by Poisson noise). Tenants over those limits holding a minority of the day's volume "
        f"fail it with WARN (not blocking: the other tenants go ahead); a majority fails it with ERROR (blocking).",
    )
    def _raw_contract(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
        first, last = partition_days(context)
        rows, rows_outcome = _validated_rows(
            context, warehouse, extract.table, f"{extract.name}_rows", raw_row_expectations(extract)
        )
        volume = tenant_daily_volume(warehouse, extract, first, last)
        outcomes = {
            "rows": rows_outcome,
            "volume": validate_frame(volume, f"{extract.name}_volume", VOLUME_EXPECTATIONS),
        }
        severity, failing = volume_severity(volume)
        shown = volume[volume["failing"]] if failing else volume.head(0)
        result = _result(
            outcomes,
            {
                "rows_checked": len(rows),
                "tenants_over_limits": dg.MetadataValue.json(failing),
                "failing_tenant_days": dg.MetadataValue.md(shown.head(50).to_markdown(index=False)),
            },
        )
        if outcomes["rows"].success and severity == dg.AssetCheckSeverity.WARN:
            # Only some tenants' volumes are off: warn (non-blocking), the other tenants' features go ahead.
            result = dg.AssetCheckResult(
                passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=result.metadata
            )
        # Per day in a ranged run: a row rule broken anywhere in the range fails every day (GX does not say
        # which), the volume limits fail the days they name, each with its own severity.
        failing_days = severity_by_day(volume)
        if not outcomes["rows"].success:
            failing_days = _all_days(first, last, dg.AssetCheckSeverity.ERROR)
        day_metadata = {
            pd.Timestamp(day).date(): {"tenants_over_limits": dg.MetadataValue.json({day: tenants})}
            for day, tenants in failing.items()
        }
        key = dg.AssetCheckKey(dg.AssetKey(extract.name), "raw_contract")
        return per_partition(context, key, result, failing_days, blocking=True, day_metadata=day_metadata)

    return _raw_contract


FEATURE_CONTRACTS = {
    "campaign_features": dict(
        table=wh.campaign_features,
        key=("campaign_id", "date"),
        upstream=wh.raw_campaign_daily,
        ranges={
            "roas_7d": (0, None),
            "roas_30d": (0, None),
            "roas_3d": (0, None),
            "roas_14d": (0, None),
            "spend_velocity": (0, None),
            "spend_vs_3d": (0, 3 + 1e-9),
            "spend_vs_7d": (0, 7 + 1e-9),
            "spend_vs_30d": (0, 30 + 1e-9),
            "ctr": (0, 1),
            "conversion_rate": (0, None),
            "impressions_growth": (-1, None),
            "day_of_week": (0, 6),
            "season": (1, 4),
            "day_of_quarter": (0, 91),
            "creative_fatigue": (0, 100),
            "history_days": (1, 30),
            "conversions_30d": (0, None),
        },
        not_null=("tenant_id", "campaign_id", "platform", "day_of_week", "season"),
    ),
    "creative_features": dict(
        table=wh.creative_features,
        key=("creative_id", "date"),
        upstream=wh.raw_creative_daily,
        ranges={
            "days_active": (1, None),
            "frequency": (0, None),
            "ctr_current": (0, 1),
            "ctr_baseline": (0, 1),
            "engagement_rate_current": (0, 1),
            "engagement_rate_baseline": (0, 1),
            "fatigue_score": (0, 100),
        },
        not_null=("tenant_id", "campaign_id", "creative_id", "days_active", "fatigue_score"),
    ),
    "session_features": dict(
        table=wh.session_features,
        key=("session_id",),
        upstream=wh.raw_sessions,
        ranges={
            "session_duration": (0, 4 * 3600),
            "pages_viewed": (0, None),
            "cart_value": (0, None),
            "items_in_cart": (0, None),
            "time_since_last_visit": (0, None),
            "previous_purchases": (0, None),
        },
        not_null=("tenant_id", "session_id", "converted"),
    ),
}


def feature_expectations(contract: dict) -> list[ExpectationSpec]:
    specs = [_schema(contract["table"]), _unique(contract["key"])]
    specs += [("ExpectColumnValuesToNotBeNull", {"column": c}) for c in contract["not_null"]]
    specs += [
        ("ExpectColumnValuesToBeBetween", {"column": c, "min_value": lo, "max_value": hi})
        for c, (lo, hi) in contract["ranges"].items()
    ]
    return specs


def build_feature_contract_check(asset_name: str, contract: dict) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_name,
        name="feature_contract",
        partitions_def=daily_partitions,
        description=f"GX suite on {asset_name}: schema, unique {'/'.join(contract['key'])}, value ranges, and one "
        f"feature row per clean {contract['upstream'].name} row.",
    )
    def _feature_contract(
        context: dg.AssetCheckExecutionContext, warehouse: Warehouse
    ) -> dg.AssetCheckResult:
        first, last = partition_days(context)
        rows, rows_outcome = _validated_rows(
            context, warehouse, contract["table"], f"{asset_name}_rows", feature_expectations(contract)
        )
        counts = pd.DataFrame(
            {
                "features": warehouse.daily_counts(contract["table"], first, last),
                "upstream": warehouse.daily_counts(contract["upstream"], first, last),
            }
        ).fillna(0)
        counts["missing_rows"] = counts["upstream"] - counts["features"]
        outcomes = {
            "rows": rows_outcome,
            "completeness": validate_frame(
                counts,
                f"{asset_name}_completeness",
                [
                    (
                        "ExpectColumnValuesToBeBetween",
                        {"column": "missing_rows", "min_value": 0, "max_value": 0},
                    )
                ],
            ),
        }
        result = _result(outcomes, {"rows_checked": len(rows)})
        # Per day in a ranged run: a row rule broken anywhere fails every day, lost rows fail their own day.
        if not outcomes["rows"].success:
            failing_days = _all_days(first, last, dg.AssetCheckSeverity.ERROR)
        else:
            lost = counts.index[counts["missing_rows"] != 0]
            failing_days = {pd.Timestamp(day).date(): dg.AssetCheckSeverity.ERROR for day in lost}
        return per_partition(
            context, dg.AssetCheckKey(dg.AssetKey(asset_name), "feature_contract"), result, failing_days
        )

    return _feature_contract


raw_contract_checks = [build_raw_contract_check(x) for x in EXTRACTS.values()]
feature_contract_checks = [build_feature_contract_check(name, c) for name, c in FEATURE_CONTRACTS.items()]
