"""`stratum demo`: generate the demo source, then materialise the graph on it as a data engineer would.

Steps: generate and write the source; register the tenants as partitions; ingest every day in ranged runs of
at most a month (the backfill policy); train and gate the default and per-tenant models and publish their
files; fill the product tables for the last week; print a summary. The CLI sets the environment and holds the
state folder's lock; this module runs the steps and says what each did.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from stratum_pipeline.automation.local_runs import (
    RunSummary,
    execute_daily_range,
    execute_tenant_job,
    materialized,
)
from stratum_pipeline.demo.generator import generate_in_chunks
from stratum_pipeline.demo.options import DemoOptions
from stratum_pipeline.demo.writer import write_source_chunks
from stratum_pipeline.partitions import MAX_DAYS_PER_RUN, backfill_ranges, tenant_partitions
from stratum_pipeline.settings import Env, mask_url
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.storage.database import describe_url, engine_for, reset_warehouse
from stratum_pipeline.tenancy import validate_tenant_id

PRODUCT_DAYS = 7  # the demo fills the product tables for the last week
DEMO_TENANTS_PER_CHUNK = 10  # tenants generated and written at a time
RAW_TABLES = ("raw_campaign_daily", "raw_creative_daily", "raw_sessions", "raw_capi_events")
SUMMARY_TABLES = (
    "campaign_features",
    "creative_features",
    "session_features",
    "daily_roas_forecasts",
    "campaign_response_curves",
    "budget_scenarios",
    "budget_allocations",
    "creative_fatigue_scores",
    "event_match_quality",
    "campaign_anomalies",
    "live_conversion_predictions",
    "model_leaderboard",
)

Say = Callable[[str], None]


def run_demo(options: DemoOptions, env: dict[str, str], say: Say, orphaned: list[str] | None = None) -> bool:
    """Run every step on the databases and instance `env` names; True when ingestion, the model files and the
    product tables all succeeded."""
    from stratum_pipeline.definitions import defs

    started = time.perf_counter()
    config = options.config()
    say("Stratum demo (embedded default unless the environment says otherwise)")
    say(f"  source     {describe_url(env['STRATUM_SOURCE_URL'])}")
    say(f"  warehouse  {describe_url(env['STRATUM_WAREHOUSE_URL'])}")
    say(f"  dagster    {env['DAGSTER_HOME']}")
    say(f"  mlflow     {mask_url(env['STRATUM_MLFLOW_TRACKING_URI'])}")
    say(f"  models     {env['ML_MODELS_PATH']} (the .joblib files the existing backend loads)")
    if orphaned:
        say(f"  {len(orphaned)} run(s) left STARTED by a killed process marked FAILED: {', '.join(orphaned)}")

    say(
        f"[1/6] Generating {len(config.tenants)} tenants x {config.days} days "
        f"({config.start_date} .. {config.end_date}, seed {config.seed}) ..."
    )
    reset_warehouse(env[Env.WAREHOUSE_URL])  # the warehouse holds only what this source produces
    t = time.perf_counter()
    # Generated and written DEMO_TENANTS_PER_CHUNK tenants at a time, so `--tenants 100` stays within a GiB
    # (all at once would take ~5.7 GiB); the default four tenants are one chunk, exactly generate(config).
    write_source_chunks(
        engine_for(env[Env.SOURCE_URL]),
        generate_in_chunks(config, tenants_per_chunk=DEMO_TENANTS_PER_CHUNK),
        progress=say,
    )
    say(f"      generated and written in {time.perf_counter() - t:.1f} s")

    say("[2/6] Registering tenants as Dagster partitions ...")
    instance = dg.DagsterInstance.get()
    tenant_ids = [validate_tenant_id(t.tenant_id) for t in config.tenants]
    known = set(instance.get_dynamic_partitions(tenant_partitions.name))
    instance.add_dynamic_partitions(tenant_partitions.name, [t for t in tenant_ids if t not in known])
    say(f"      {len(tenant_ids)} tenants: {', '.join(tenant_ids)}")

    results = _ingest(defs, instance, config.start_date, config.end_date, say)
    ingested = all(r.success for r in results)
    models = _train_models(defs, instance, tenant_ids, say) if ingested else []
    published, published_ok = _publish_models(defs, instance, tenant_ids, say) if ingested else ([], False)
    products_ok = _product_tables(defs, instance, config.end_date, say) if ingested else False

    say("[6/6] Summary")
    with engine_for(env[Env.WAREHOUSE_URL]).connect() as conn:

        def count(name: str) -> int:
            return conn.execute(sa.select(sa.func.count()).select_from(wh.TABLES[name])).scalar_one()

        width = max(map(len, RAW_TABLES + SUMMARY_TABLES))
        for name in RAW_TABLES:
            say(
                f"      {name:<{width}} {count(name):>9,} rows   {count(f'{name}_quarantine'):>5,} quarantined"
            )
        for name in SUMMARY_TABLES:
            say(f"      {name:<{width}} {count(name):>9,} rows")
    for outcome in models + published:
        say(f"      {outcome}")
    say(f"      tenants {len(tenant_ids)}; {RunSummary.of(results).checks_line()}")
    say(f"      total time {time.perf_counter() - started:.1f} s")
    return ingested and products_ok and published_ok


def _ingest(defs, instance, first_day: date, last_day: date, say: Say) -> list[dg.ExecuteInProcessResult]:
    """daily_ingest_job over the whole range in runs of at most a month, printing steps and checks as they
    finish; stops at the first failed run (later days build on its features)."""
    ranges = backfill_ranges(first_day, last_day)
    say(
        f"[3/6] Materialising daily_ingest_job for {first_day} .. {last_day} as {len(ranges)} run(s) "
        f"of at most {MAX_DAYS_PER_RUN} days (the backfill policy) ..."
    )
    results = []
    t = time.perf_counter()
    for number, (first, last) in enumerate(ranges, start=1):
        say(f"    run {number}/{len(ranges)}: {first} .. {last}")
        run_id = str(uuid.uuid4())
        stop = threading.Event()
        follower = threading.Thread(target=_follow_run, args=(instance, run_id, stop, say), daemon=True)
        follower.start()
        try:
            results.append(
                execute_daily_range(
                    defs, first.isoformat(), last.isoformat(), instance=instance, run_id=run_id
                )
            )
        finally:
            stop.set()
            follower.join(timeout=10)
        if not results[-1].success:
            say(
                f"      run {number}/{len(ranges)} ({first} .. {last}) FAILED; {len(ranges) - number} later run(s) "
                "not started"
            )
            break
    ok = all(r.success for r in results)
    say(
        f"      {len(results)} run(s) {'succeeded' if ok else 'ran, not all succeeded'} in "
        f"{time.perf_counter() - t:.1f} s"
    )
    return results


def _follow_run(instance, run_id: str, stop: threading.Event, say: Say) -> None:
    """Print step results and check evaluations of a run while it executes."""
    kinds = {
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
        dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    }
    cursor = None
    while True:
        done = stop.is_set()
        try:
            conn = instance.get_records_for_run(run_id, cursor=cursor, of_type=kinds)
        except Exception:  # the run may not be stored yet
            conn = None
        if conn is not None:
            cursor = conn.cursor
            for record in conn.records:
                event = record.event_log_entry.dagster_event
                if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                    evaluation = event.event_specific_data
                    status = "passed" if evaluation.passed else "FAILED"
                    say(
                        f"      check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} {status}"
                    )
                elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
                    say(f"    done {event.step_key} ({event.event_specific_data.duration_ms / 1000:.1f} s)")
                else:
                    say(f"    FAILED {event.step_key}")
        if done:
            return
        stop.wait(0.5)


def _model_line(asset: str, partition: str | None, md: dict) -> str:
    name = f"{asset}[{partition}]" if partition else asset
    if "version" not in md:
        return f"{name}: served by the default model ({md.get('reason')})"
    if "holdout_mae" in md:
        metric = (
            f"MAE {md['holdout_mae']:.3f}, R² {md['holdout_r2']:.3f}, "
            f"coverage {md['holdout_coverage_80']:.2f}"
        )
    else:
        metric = (
            f"AUC {md['holdout_auc']:.3f}, precision {md['holdout_precision']:.2f} "
            f"at {md['holdout_threshold']:.2f}"
        )
    return f"{name}: v{md['version']} {metric}; gate: {md['gate']}"


def _train_models(defs, instance, tenant_ids: list[str], say: Say) -> list[str]:
    """Train the default models, then each tenant's, printing what each run decided."""
    say("[4/6] Training models (MLflow) ...")
    lines = []
    runs = [("train_default_models_job", None)] + [("train_tenant_models_job", t) for t in tenant_ids]
    for job_name, tenant in runs:
        t = time.perf_counter()
        result = execute_tenant_job(defs, job_name, tenant, instance)
        lines += [_model_line(asset, tenant, md) for asset, md in materialized(result).items()]
        status = "done" if result.success else "did not pass (a gate kept the champion, or a step failed)"
        say(f"    {job_name}{f'[{tenant}]' if tenant else ''} {status} ({time.perf_counter() - t:.1f} s)")
    return lines


def _publish_models(defs, instance, tenant_ids: list[str], say: Say) -> tuple[list[str], bool]:
    """Publish the champions to ML_MODELS_PATH as {model_type}_t{tenant}.joblib / {model_type}_default.joblib."""
    say("      publishing champions to ML_MODELS_PATH, and the model leaderboard ...")
    published, ok = [], True
    runs = [("publish_default_model_files_job", None)] + [
        ("publish_tenant_model_files_job", t) for t in tenant_ids
    ]
    for job_name, tenant in runs:
        result = execute_tenant_job(defs, job_name, tenant, instance)
        ok &= result.success
        if not result.success:
            say(f"    {job_name}{f'[{tenant}]' if tenant else ''} FAILED")
        published += [
            f"{Path(md['file']).name}: {md['model']} v{md['version']}"
            for md in materialized(result).values()
            if "version" in md
        ]
    board = execute_tenant_job(defs, "model_leaderboard_job", None, instance)
    ok &= board.success
    if not board.success:
        say("    model_leaderboard_job FAILED")
    return [f"model files: {', '.join(published) or 'none'}"], ok


def _product_tables(defs, instance, end_date: date, say: Say) -> bool:
    """Fatigue scores, forecasts (with scenarios and EMQ) and campaign anomalies for the last week, then live
    predictions as of its end."""
    say(f"[5/6] Product tables for the last {PRODUCT_DAYS} days ...")
    first = (end_date - timedelta(days=PRODUCT_DAYS - 1)).isoformat()
    ok = True
    for job_name in ("fatigue_scores_job", "daily_forecasts_job", "anomalies_job"):
        t = time.perf_counter()
        result = execute_daily_range(defs, first, end_date.isoformat(), instance=instance, job_name=job_name)
        ok &= result.success
        say(f"    {job_name} {'done' if result.success else 'FAILED'} ({time.perf_counter() - t:.1f} s)")
    as_of = datetime.combine(end_date + timedelta(days=1), datetime.min.time()).isoformat()
    t = time.perf_counter()
    result = execute_tenant_job(
        defs,
        "live_predictions_job",
        None,
        instance,
        {"ops": {"live_conversion_predictions": {"config": {"as_of": as_of}}}},
    )
    ok &= result.success
    say(
        f"    live_predictions_job (sessions of the 30 minutes before {as_of}) "
        f"{'done' if result.success else 'FAILED'} ({time.perf_counter() - t:.1f} s)"
    )
    return ok
