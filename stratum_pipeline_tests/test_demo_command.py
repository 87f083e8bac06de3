"""End to end: `stratum demo` on the embedded default, as a user runs it, then the same instance read back."""

import os
import subprocess
import sys

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from stratum_pipeline.cli import embedded_environment

pytestmark = pytest.mark.slow  # `stratum demo` in a subprocess


def test_stratum_demo_runs_the_daily_graph_on_the_embedded_default(tmp_path):
    home = tmp_path / "stratum"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATUM_", "DAGSTER_"))}
    command = [
        sys.executable,
        "-m",
        "stratum_pipeline.cli",
        "--home",
        str(home),
        "demo",
        "--tenants",
        "2",
        "--campaigns",
        "30",
        "--days",
        "45",
        "--end-date",
        "2026-05-31",
        "--bad-row-rate",
        "0.01",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for expected in (
        "[1/6] Generating",
        "[2/6] Registering",
        "[3/6] Materialising",
        "[4/6] Training",
        "[5/6] Product tables",
        "[6/6] Summary",
        "daily_forecasts_job done",
        "live_predictions_job",
        "anomalies_job done",
        "roas_model[tenant_001]: served by the default model",
        "done raw_campaign_daily",
        "check raw_sessions:raw_contract passed",
        "stratum ui",
    ):
        assert expected in out, out
    # 45 days are two ingest runs (the backfill policy: at most 31 days per run), 7 checks each
    assert "as 2 run(s) of at most 31 days" in out and "run 2/2: 2026-05-18 .. 2026-05-31" in out
    assert "checks passed 14, failed 0" in out
    # only the demo's own lines: no MLflow registration chatter on either stream
    assert "Successfully registered model" not in done.stdout + done.stderr
    assert "Created version" not in done.stdout + done.stderr
    # The champions are published where the existing backend loads them (tenants below the minimum: default only).
    published = next(line for line in out.splitlines() if "model files:" in line)
    assert "roas_default.joblib: stratum-roas-default v" in published, out
    assert "conversion_default.joblib: stratum-conversion-default v" in published, out
    assert sorted(p.name for p in (home / "models").glob("*.joblib")) == [
        "conversion_default.joblib",
        "roas_default.joblib",
    ]

    paths = embedded_environment(home)
    engine = sa.create_engine(paths["STRATUM_WAREHOUSE_URL"])
    with engine.connect() as conn:
        raw = pd.read_sql(sa.text("SELECT date, count(*) AS n FROM raw_campaign_daily GROUP BY date"), conn)
        quarantined = conn.execute(sa.text("SELECT count(*) FROM raw_campaign_daily_quarantine")).scalar_one()
    engine.dispose()
    assert len(raw) == 45 and quarantined > 0
    with sa.create_engine(paths["STRATUM_WAREHOUSE_URL"]).connect() as conn:
        for table in (
            "daily_roas_forecasts",
            "budget_scenarios",
            "creative_fatigue_scores",
            "event_match_quality",
        ):
            days = conn.execute(sa.text(f"SELECT count(DISTINCT date) FROM {table}")).scalar_one()
            assert days == 7, table
        served = conn.execute(sa.text("SELECT DISTINCT served_by FROM daily_roas_forecasts")).scalars().all()
    assert served == ["default"]  # both scaled tenants are below the data minimum

    with dg.DagsterInstance.from_config(paths["DAGSTER_HOME"]) as instance:
        runs = {(r.job_name, r.tags.get("dagster/partition")): r.status for r in instance.get_runs()}
        ingest = instance.get_runs(filters=dg.RunsFilter(job_name="daily_ingest_job"))
        assert [r.status for r in ingest] == [dg.DagsterRunStatus.SUCCESS] * 2
        assert {
            ("train_default_models_job", None),
            ("train_tenant_models_job", "tenant_001"),
            ("train_tenant_models_job", "tenant_002"),
        } <= set(runs)
        assert set(instance.get_dynamic_partitions("tenants")) == {"tenant_001", "tenant_002"}
        materialized = instance.get_materialized_partitions(dg.AssetKey("campaign_features"))
        assert len(materialized) == 45

    # The daily partitions start at the demo's first day: for `stratum ui` and plain `dagster dev` too, so the
    # catalog shows 45 days, none of them missing (not every day since 2024-01-01).
    assert paths["STRATUM_PARTITIONS_START"] == "2026-04-17" == min(materialized)
    (tmp_path / ".stratum").symlink_to(home)  # plain `dagster dev` reads ./.stratum of its folder
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "from stratum_pipeline.embedded_definitions import defs;"
            "print(defs.resolve_assets_def('campaign_features').partitions_def.get_first_partition_key())",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.stdout.strip() == "2026-04-17", loaded.stdout + loaded.stderr


def test_bad_arguments_give_a_one_line_error(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stratum_pipeline.cli",
            "--home",
            str(tmp_path),
            "demo",
            "--end-date",
            "yesterday",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "not a date" in done.stderr and "Traceback" not in done.stderr
