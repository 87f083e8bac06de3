"""Freshness of the daily product tables: stale if not updated within 26 hours (a day plus slack for the run).

Two views of the same rule: a `FreshnessPolicy` with `PRODUCT_FRESHNESS` on each product asset gives its
freshness state in the UI (dagster 1.13), and the last-update checks built here, evaluated by their sensor,
record a failed ERROR check on a stale table (visible in the asset's checks and testable with a frozen clock).
`definitions.py` builds them from the product assets, so this module never imports `assets/`.
"""

import warnings
from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

PRODUCT_FRESHNESS = timedelta(hours=26)


def product_freshness_policy() -> dg.FreshnessPolicy:
    """The UI's freshness state of a daily product table."""
    return dg.FreshnessPolicy.time_window(fail_window=PRODUCT_FRESHNESS)


def build_product_freshness(assets: Sequence) -> tuple[list[dg.AssetChecksDefinition], dg.SensorDefinition]:
    """Last-update checks of `assets` and the sensor that evaluates them between runs (a table that silently
    stops updating fails its check)."""
    with (
        warnings.catch_warnings()
    ):  # "superseded" by FreshnessPolicy, which we set too; the checks stay testable
        warnings.simplefilter("ignore")
        checks = dg.build_last_update_freshness_checks(
            assets=assets, lower_bound_delta=PRODUCT_FRESHNESS, severity=dg.AssetCheckSeverity.ERROR
        )
        sensor = dg.build_sensor_for_freshness_checks(
            freshness_checks=checks, default_status=dg.DefaultSensorStatus.RUNNING
        )
    return list(checks), sensor
