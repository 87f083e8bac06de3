"""Freshness of the daily product tables: stale if not updated within 26 hours (a day plus slack for the run).

Two views of the same rule: `PRODUCT_FRESHNESS_POLICY` on each product asset gives its freshness state in the
UI (dagster 1.13's `FreshnessPolicy`), and the last-update checks below, evaluated by `freshness_checks_sensor`,
record a failed ERROR check on a stale table (visible in the asset's checks and testable with a frozen clock).
"""

import warnings
from datetime import timedelta

import dagster as dg

from stratum_pipeline.assets.products import PRODUCT_FRESHNESS, product_assets

# The sensor evaluates the checks between runs (a table that silently stops updating fails its check).
with warnings.catch_warnings():  # "superseded" by FreshnessPolicy, which we set too; the checks stay testable
    warnings.simplefilter("ignore")
    product_freshness_checks = dg.build_last_update_freshness_checks(
        assets=product_assets, lower_bound_delta=PRODUCT_FRESHNESS, severity=dg.AssetCheckSeverity.ERROR)
    freshness_checks_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=product_freshness_checks, default_status=dg.DefaultSensorStatus.RUNNING)
