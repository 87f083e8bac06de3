"""The code location loads and validates; jobs and schedules select what they should."""

import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from stratum_pipeline.definitions import defs
from stratum_pipeline.partitions import daily_partitions, tenant_partitions
from stratum_pipeline.tenancy import InvalidTenantId, training_batches, validate_tenant_id

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_dagster_definitions_validate_passes():
    env = dict(os.environ)
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "stratum_pipeline.definitions"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr


def test_every_asset_has_a_description_group_and_its_partitions():
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    daily = {
        "raw_campaign_daily",
        "raw_creative_daily",
        "raw_sessions",
        "raw_capi_events",
        "campaign_features",
        "creative_features",
        "session_features",
    }
    products = {
        "daily_roas_forecasts",
        "campaign_response_curves",
        "budget_scenarios",
        "budget_allocations",
        "creative_fatigue_scores",
        "event_match_quality",
        "campaign_anomalies",
    }
    models = {
        "roas_model",
        "conversion_model",
        "roas_default_model",
        "conversion_default_model",
        "anomaly_detector_model",
        "anomaly_detector_default_model",
    }
    model_files = {f"{m}_file" for m in models}
    monitoring = {"forecast_accuracy", "feature_drift"}
    assert {k.to_user_string() for k in keys} == daily | models | model_files | products | monitoring | {
        "live_conversion_predictions",
        "model_leaderboard",
    }
    for key in keys:
        node = graph.get(key)
        name = key.to_user_string()
        assert node.description and len(node.description) > 40, key
        if name in daily:
            assert node.group_name in {"ingestion", "features"} and node.partitions_def == daily_partitions, (
                key
            )
        elif name in products:
            assert node.group_name == "products" and node.partitions_def == daily_partitions, key
        elif name in monitoring:
            assert node.group_name == "monitoring" and node.partitions_def == daily_partitions, key
        elif name == "live_conversion_predictions":
            assert node.group_name == "products" and node.partitions_def is None
        elif name in model_files:  # published after the model it holds, with the same partitions
            model = graph.get(dg.AssetKey(name.removesuffix("_file")))
            assert node.group_name == "model_files" and node.parent_keys == {model.key}, key
            assert node.partitions_def == model.partitions_def, key
        else:
            assert node.group_name == "models", key
            expected = (
                tenant_partitions
                if name in ("roas_model", "conversion_model", "anomaly_detector_model")
                else None
            )
            assert node.partitions_def == expected, key


def test_raw_checks_are_blocking_and_cover_every_raw_extract():
    graph = defs.resolve_asset_graph()
    blocking = {
        spec.asset_key.to_user_string()
        for key in graph.asset_check_keys
        for spec in [graph.get_check_spec(key)]
        if spec.blocking
    }
    assert blocking == {
        "raw_campaign_daily",
        "raw_creative_daily",
        "raw_sessions",
        "raw_capi_events",
        "roas_model",
        "conversion_model",
        "roas_default_model",
        "conversion_default_model",
        "anomaly_detector_model",
        "anomaly_detector_default_model",
    }


def test_lineage_runs_from_raw_extracts_to_features():
    graph = defs.resolve_asset_graph()
    parents = lambda name: {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}  # noqa: E731
    assert parents("campaign_features") == {"raw_campaign_daily", "creative_features"}
    assert parents("creative_features") == {"raw_creative_daily"}
    assert parents("session_features") == {"raw_sessions"}
    assert parents("roas_model") == {"campaign_features", "campaign_anomalies"}
    assert parents("conversion_model") == {"session_features"}


def test_the_daily_schedule_requests_yesterdays_partition():
    schedule = defs.resolve_schedule_def("daily_ingest_job_schedule")
    assert schedule.cron_schedule == "0 1 * * *" and schedule.execution_timezone in (None, "UTC")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
    )
    requests = list(schedule.evaluate_tick(context).run_requests)
    assert [r.partition_key for r in requests] == ["2026-11-24"]


def test_tenant_ids_are_validated():
    assert validate_tenant_id("acme_outdoor-2") == "acme_outdoor-2"
    for bad in ["", "Acme", "../etc", "a b", "x" * 64, None, "t;drop", "default"]:
        try:
            validate_tenant_id(bad)
        except InvalidTenantId:
            continue
        raise AssertionError(f"accepted {bad!r}")


def _requests(name, when, instance=None):
    schedule = defs.resolve_schedule_def(name)
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()
    )
    data = schedule.evaluate_tick(context)
    return schedule, list(data.run_requests or []), data.skip_message


def test_product_schedules_run_at_the_seed_times_for_yesterday():
    at = lambda h, m=0: datetime(2026, 11, 25, h, m, tzinfo=timezone.utc)  # noqa: E731
    schedule, requests, _ = _requests("daily_forecasts_job_schedule", at(6))
    assert schedule.cron_schedule == "0 6 * * *" and [r.partition_key for r in requests] == ["2026-11-24"]
    schedule, requests, _ = _requests("fatigue_scores_job_schedule", at(3))
    assert schedule.cron_schedule == "0 3 * * *" and [r.partition_key for r in requests] == ["2026-11-24"]
    schedule, requests, _ = _requests("anomalies_job_schedule", at(2, 30))
    assert schedule.cron_schedule == "30 2 * * *" and [r.partition_key for r in requests] == ["2026-11-24"]
    schedule, requests, _ = _requests("live_predictions_schedule", at(10, 30))
    assert (
        schedule.cron_schedule == "*/30 * * * *" and len(requests) == 1 and requests[0].partition_key is None
    )
    assert schedule.job_name == "live_predictions_job"


def test_monthly_retraining_requests_every_tenant():
    when = datetime(2026, 12, 1, 4, 0, tzinfo=timezone.utc)
    with dg.instance_for_test() as instance:
        _, requests, skip = _requests("monthly_tenant_retraining", when, instance)
        assert requests == [] and "no tenants" in skip
        instance.add_dynamic_partitions("tenants", ["acme", "beta"])
        schedule, requests, _ = _requests("monthly_tenant_retraining", when, instance)
    assert schedule.cron_schedule == "0 4 1 * *" and schedule.job_name == "train_tenant_batch_job"
    # batch runs (one per training bucket here): every tenant exactly once, run keys naming the month
    batches = {r.run_key: r.run_config["ops"]["train_tenant_batch"]["config"]["tenants"] for r in requests}
    assert sorted(t for batch in batches.values() for t in batch) == ["acme", "beta"]
    assert {key: tuple(tenants) for key, tenants in batches.items()} == {
        f"monthly-2026-12-b{bucket}-{batch[0]}": batch for bucket, batch in training_batches(["acme", "beta"])
    }
    default = defs.resolve_schedule_def("monthly_default_retraining")
    assert default.cron_schedule == "0 3 1 * *" and default.job_name == "train_default_models_job"


def test_every_schedule_starts_running_for_the_daemon():
    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == {
        "daily_ingest_job_schedule",
        "fatigue_scores_job_schedule",
        "daily_forecasts_job_schedule",
        "live_predictions_schedule",
        "monthly_tenant_retraining",
        "monthly_default_retraining",
        "monitoring_job_schedule",
        "weekly_tenant_retraining",
        "anomalies_job_schedule",
        "weekly_anomaly_detectors",
        "weekly_default_anomaly_detector",
    }
    for schedule in schedules.values():
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING, schedule.name
        assert schedule.execution_timezone == "UTC", schedule.name


def test_the_model_automation_starts_running_and_targets_every_model_file_and_the_leaderboard():
    sensors = {s.name: s for s in defs.sensors}
    automation = sensors["model_automation"]
    assert automation.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    targeted = automation.asset_selection.resolve(graph)
    eager = {k for k in graph.get_all_asset_keys() if graph.get(k).automation_condition is not None}
    assert {k.to_user_string() for k in targeted} == {k.to_user_string() for k in eager}
    model_files = {
        k.to_user_string() for k in graph.get_all_asset_keys() if k.to_user_string().endswith("_model_file")
    }
    assert {"roas_model_file", "conversion_default_model_file", "anomaly_detector_model_file"} <= model_files
    assert {k.to_user_string() for k in eager} == model_files | {"model_leaderboard"}


def test_a_new_model_version_requests_its_file_once_and_only_its_partition():
    """What the daemon's model_automation tick decides, evaluated in process: nothing at first, the file
    of the tenant whose model materialised once it did, nothing more after the file was published."""
    selection = dg.AssetSelection.groups("model_files")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", ["big", "small"])
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        assert first.total_requested == 0  # nothing is published before a model materialises
        instance.report_runless_asset_event(dg.AssetMaterialization("roas_model", partition="big"))
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=first.cursor
        )
        assert second.total_requested == 1
        assert second.get_requested_partitions(dg.AssetKey("roas_model_file")) == {"big"}
        instance.report_runless_asset_event(dg.AssetMaterialization("roas_model_file", partition="big"))
        third = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=second.cursor
        )
        assert third.total_requested == 0


def test_a_training_requests_the_leaderboard_once_even_with_tenants_never_trained():
    selection = dg.AssetSelection.assets("model_leaderboard")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", ["big", "small"])
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        assert (
            first.total_requested == 0
        )  # nothing before a first training (a fresh `stratum ui` starts no run)
        instance.report_runless_asset_event(dg.AssetMaterialization("conversion_model", partition="big"))
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=first.cursor
        )
        assert second.total_requested == 1  # "small" never trained: it does not hold the leaderboard back
        instance.report_runless_asset_event(dg.AssetMaterialization("model_leaderboard"))
        third = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=second.cursor
        )
        assert third.total_requested == 0


def test_descriptions_show_placeholders_as_code():
    """The UI renders descriptions as Markdown, where a bare `<tenant>` is an HTML tag and vanishes."""
    bare = re.compile(r"<[A-Za-z_][\w-]*>")
    graph = defs.resolve_asset_graph()
    texts = {k.to_user_string(): graph.get(k).description for k in graph.get_all_asset_keys()}
    texts |= {j.name: j.description for j in defs.jobs if hasattr(j, "description")}
    texts |= {s.name: s.description for s in [*defs.schedules, *defs.sensors]}
    for name, text in texts.items():
        outside_code = re.sub(r"`[^`]*`", "", text or "")
        assert not bare.search(outside_code), (name, bare.search(outside_code).group(0))


def test_daily_assets_backfill_a_month_per_run():
    from datetime import date

    from stratum_pipeline.partitions import MAX_DAYS_PER_RUN, backfill_ranges, daily_backfill_policy

    daily = [a for a in defs.resolve_all_asset_specs() if a.partitions_def == daily_partitions]
    graph = defs.resolve_asset_graph()
    assert len(daily) > 10
    for spec in daily:
        assert graph.get(spec.key).backfill_policy == daily_backfill_policy, spec.key
    assert daily_backfill_policy.max_partitions_per_run == MAX_DAYS_PER_RUN == 31
    year = backfill_ranges(date(2025, 1, 1), date(2025, 12, 31))
    assert len(year) == 12 and year[0] == (date(2025, 1, 1), date(2025, 1, 31))
    assert year[-1] == (date(2025, 12, 8), date(2025, 12, 31))  # 11 x 31 days, then 24
    assert all((b[0] - a[1]).days == 1 for a, b in zip(year, year[1:]))  # contiguous, no day twice or missing
    assert backfill_ranges(date(2025, 3, 4), date(2025, 3, 4)) == [(date(2025, 3, 4), date(2025, 3, 4))]
    import pytest

    with pytest.raises(ValueError, match="ends .* before it starts"):
        backfill_ranges(date(2025, 3, 4), date(2025, 3, 3))


def test_readable_metadata_keeps_four_significant_digits_and_every_other_value():
    from stratum_pipeline.assets.common import readable

    value = {
        "mae": 0.23838051651443673,
        "big": 123456.789,
        "n": 7,
        "ok": True,
        "nan": float("nan"),
        "nested": {"bias": -0.0123456, "list": [1.0000001, "x"]},
        "zero": 0.0,
    }
    out = readable(value)
    assert out["mae"] == 0.2384 and out["big"] == 123500.0 and out["n"] == 7 and out["ok"] is True
    assert (
        out["nested"] == {"bias": -0.01235, "list": [1.0, "x"]}
        and out["zero"] == 0.0
        and out["nan"] != out["nan"]
    )


def test_the_tenant_sensor_skips_a_source_without_tables_in_one_line(tmp_path):
    """`stratum ui` before `stratum demo`: the source has no tables yet; the tick is skipped, saying why."""
    from stratum_pipeline.automation.sensors import tenant_sync_sensor
    from stratum_pipeline.resources import SourceDatabase

    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"source": SourceDatabase(url=f"sqlite:///{tmp_path / 'empty.db'}")}
        )
        result = tenant_sync_sensor(context)
    assert isinstance(result, dg.SkipReason) and "has no tenants table yet" in result.skip_message
    assert "\n" not in result.skip_message
