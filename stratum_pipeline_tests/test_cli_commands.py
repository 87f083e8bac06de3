"""`stratum predict|simulate|fatigue|emq`: JSON in, the seed's JSON shapes out, one-line errors."""

import json
from datetime import datetime

import pytest
import sqlalchemy as sa

from stratum_pipeline.cli import embedded_environment
from stratum_pipeline.storage import source_schema

from .helpers import stratum_cli as stratum


def test_simulate_fatigue_and_emq_print_the_seed_shapes(tmp_path):
    done = stratum(
        tmp_path, "simulate", '{"campaign": {"daily_spend": 800, "roas": 2.5}, "seed": 4, "iterations": 500}'
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out["baseline"]) >= {"spend", "revenue", "roas", "conversions", "confidence_interval"}
    assert [s["name"] for s in out["scenarios"]] == ["-20%", "+20%", "+50%"] and "marginal_roas" in out[
        "scenarios"
    ][0]

    done = stratum(
        tmp_path,
        "fatigue",
        stdin='{"days_active": 45, "frequency": 6, "ctr_current": 0.01, "ctr_baseline": 0.02}',
    )
    assert done.returncode == 0 and json.loads(done.stdout)["fatigue_level"] in {"medium", "high", "critical"}

    done = stratum(tmp_path, "emq", "--platform", "google", '{"gclid": "abc", "email": "a@b.c"}')
    out = json.loads(done.stdout)
    assert out["emq_score"] == 5.0 and out["unhashed_fields"] == ["email"]


@pytest.mark.slow  # `stratum` subprocesses (~8 s)
def test_bad_input_and_unknown_tenants_give_one_line_errors(tmp_path):
    home = tmp_path / "stratum"
    engine = sa.create_engine(embedded_environment(home)["STRATUM_SOURCE_URL"])
    home.mkdir()
    source_schema.metadata.create_all(engine, tables=[source_schema.tenants])
    with engine.begin() as conn:
        conn.execute(
            source_schema.tenants.insert(),
            [{"id": "known", "name": "Known", "created_at": datetime(2026, 1, 1)}],
        )
    cases = [
        (("simulate", "{not json"), "input is not valid JSON"),
        (("simulate", '{"daily_spend": -1, "roas": 2}'), "must be a positive number"),
        (("predict", "roas", "--tenant", "nobody", '{"roas_7d": 2}'), "unknown tenant 'nobody'"),
        (("predict", "roas", "--tenant", "Bad/Id", '{"roas_7d": 2}'), "invalid tenant id"),
        (("predict", "roas", "--tenant", "known", '{"roas_7d": 2}'), "no roas model serves tenant 'known'"),
        (("fatigue", "[1, 2]"), "asset must be a dict"),
    ]
    for args, message in cases:
        done = stratum(home, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
