"""The scale benchmark at a tiny scale, and the chunked generation it relies on."""

import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from stratum_pipeline.demo.generator import DemoConfig, generate, generate_in_chunks

ROOT = Path(__file__).resolve().parents[1]


def _config(tenants: int) -> DemoConfig:
    return DemoConfig.scaled(
        date(2026, 3, 31), tenants=tenants, campaigns=3, days=20, sessions_per_day=15, bad_row_rate=0.02
    )


def test_one_chunk_is_exactly_the_whole_generation():
    config = _config(3)
    (chunk,) = list(generate_in_chunks(config, tenants_per_chunk=3))
    whole = generate(config)
    assert chunk.tables.keys() == whole.tables.keys()
    for name, frame in whole.tables.items():
        pd.testing.assert_frame_equal(chunk[name], frame, check_dtype=True, obj=name)


def test_chunks_cover_every_tenant_with_unique_ids_and_traceable_bad_rows():
    config = _config(3)
    chunks = list(generate_in_chunks(config, tenants_per_chunk=1))
    assert [list(c["tenants"]["id"]) for c in chunks] == [[t.tenant_id] for t in config.tenants]
    tables = {name: pd.concat([c[name] for c in chunks], ignore_index=True) for name in chunks[0].tables}
    for name in ("campaign_daily_metrics", "creative_daily_metrics", "sessions", "capi_events"):
        assert tables[name]["id"].is_unique, name
    bad = tables["truth_bad_rows"]
    assert len(bad) > 0
    injected_copies = bad[(bad["table_name"] == "sessions") & (bad["kind"] == "duplicate_key")]["source_id"]
    assert tables["sessions"].loc[~tables["sessions"]["id"].isin(injected_copies), "session_id"].is_unique
    for name, rows in bad.groupby("table_name"):
        assert set(rows["source_id"]) <= set(tables[name]["id"]), name
    # the tenants differ from each other: each chunk has its own seed
    spend = [c["campaign_daily_metrics"]["spend"].sum() for c in chunks]
    assert len(set(spend)) == len(spend)


@pytest.mark.slow  # generates, backfills, trains in and out of process and runs the daily graph (minutes)
def test_scale_benchmark_reports_every_stage_and_the_run_counts(tmp_path):
    tenants = 2
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "scale.py"),
            "--tenants",
            str(tenants),
            "--campaigns",
            "3",
            "--days",
            "35",
            "--sessions-per-day",
            "15",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=1500,  # a guard against a hang, not a speed check (it now also launches training runs)
        cwd=ROOT,
    )
    out = completed.stdout
    assert completed.returncode == 0, out + completed.stderr
    report = out[out.index("Scale benchmark:") :]
    assert "2 tenants x 3 campaigns x 35 days" in report
    for stage in ("(a) daily", "(b) backfill", "(c) train"):
        assert stage in report
    rows = re.findall(
        r"^\S*.*?(dagster|plain)\s+([\d.]+)\s+[\d.]+\s+([\d.]+) GiB\s+(\d+|-)\s", report, re.MULTILINE
    )
    assert [r[0] for r in rows] == ["dagster", "plain"] * 3
    # every plain body of the daily graph and the backfill ran (a failed one would shrink the baseline); at this
    # tiny scale the default ROAS model has too little data in both modes, and the plain detail says so
    plain_rows = [line for line in report.splitlines() if line.lstrip().startswith("plain ")]
    assert "FAILED" not in plain_rows[0] and "FAILED" not in plain_rows[1], plain_rows
    assert "step(s) FAILED: roas_default_model (ValueError: too little data" in plain_rows[2]
    assert all(float(seconds) > 0 and 0 < float(gib) < 4 for _, seconds, gib, _ in rows)
    runs = [r[3] for r in rows if r[0] == "dagster"]
    assert runs == [
        "3",
        "2",
        str(1 + tenants),
    ]  # daily: 3 jobs; backfill: 31 + 4 days; train: default + per tenant
    assert len(re.findall(r"overhead ratio dagster/plain: \d+\.\d\d", report)) == 3
    assert (
        "backfill runs: 2 run(s) counted in the instance for 35 daily partitions (at most 31 days per run: "
        "at least 2; one run per day would be 35) MET"
    ) in report
    assert re.search(r"peak memory <= 4 GiB: [\d.]+ GiB MET", report)
    # the training detail says which tenants the default model serves, in both modes
    assert report.count(f"roas_model: 0 own model(s), {tenants} served by the default") == 2
    # (d) training launched as run processes: one run per tenant, then the schedule's batch runs, every tenant's
    # partitions materialised by both, and the before/after rows of the target table filled in
    from stratum_pipeline.demo.generator import DemoConfig
    from stratum_pipeline.tenancy import training_batches

    ids = [t.tenant_id for t in DemoConfig.scaled(date(2026, 11, 24), tenants, 3, 36).tenants]
    partitions = f"roas_model {tenants}/{tenants} tenant partitions, conversion_model {tenants}/{tenants}"
    assert "(d) launched runs" in report and f"{tenants} run(s), 0 failed; {partitions}" in report
    assert f"{len(training_batches(ids))} run(s), 0 failed; {partitions}" in report
    overheads = re.findall(r"overhead beyond it (-?[\d.]+) s CPU per tenant", report)
    assert len(overheads) == 2 and all(float(o) > 0 for o in overheads)
    assert re.search(
        r"\| per-tenant training overhead beyond fit \+ MLflow, CPU \| [\d.]+ s \| [\d.]+ s \| <= 1 s \|",
        report,
    )


def _scale_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("scale_benchmark", ROOT / "benchmarks" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["scale_benchmark"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_step_clock_times_each_step_between_its_start_and_success_events():
    """The daily run's per-step split: CPU and wall between a step's STEP_START and STEP_SUCCESS events (summed
    over runs), nothing for a step that never succeeded or failed."""
    from types import SimpleNamespace

    scale = _scale_module()
    stored = []
    instance = SimpleNamespace(handle_new_event=lambda event, *a, **k: stored.append(event))
    steps = scale._step_clock(instance)

    def event(run, step, kind):
        return SimpleNamespace(
            run_id=run, step_key=step, dagster_event=SimpleNamespace(event_type_value=kind)
        )

    for run in ("r1", "r2"):
        instance.handle_new_event(event(run, "curves", "STEP_START"))
        sum(i * i for i in range(200_000))  # some CPU inside the step
        instance.handle_new_event(event(run, "curves", "STEP_SUCCESS"))
    instance.handle_new_event(event("r1", "hung", "STEP_START"))
    assert len(stored) == 5  # every event still reaches the instance
    assert set(steps) == {"curves"} and steps["curves"][0] > 0 and steps["curves"][1] > 0


def test_print_steps_lists_every_step_of_each_code_by_this_codes_cpu(capsys):
    scale = _scale_module()
    runs = {
        "main": {"daily": [{"steps": {"curves": [30.0, 50.0], "features": [2.0, 3.0]}}]},
        "this code": {
            "daily": [{"steps": {"curves": [25.0, 30.0], "features": [3.0, 4.0], "new": [1.0, 1.0]}}]
        },
    }
    scale.print_steps(runs, ["main", "this code"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["curves", "features", "new"]
    assert "30.00 / 50.00" in lines[1] and "25.00 / 30.00" in lines[1] and lines[3].split()[1] == "-"
