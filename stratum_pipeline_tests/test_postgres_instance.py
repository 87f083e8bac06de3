"""The deployment's Dagster instance: the project's dagster.yaml puts runs and events in PostgreSQL."""

import shutil
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from stratum_pipeline.automation.local_runs import execute_daily_range
from stratum_pipeline.demo.writer import write_source
from stratum_pipeline.storage.database import engine_for

from .conftest import TEST_CONFIG
from .helpers import defs_for

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_run_is_recorded_in_postgres_instance_storage(tmp_path, monkeypatch, pg_databases, dataset):
    storage_url = pg_databases.create("dagster")
    source_url, warehouse_url = pg_databases.create("src"), pg_databases.create("wh")
    write_source(engine_for(source_url), dataset)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("STRATUM_DAGSTER_PG_URL", storage_url)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        day = TEST_CONFIG.end_date.isoformat()
        result = execute_daily_range(defs_for((source_url, warehouse_url)), day, day, instance=instance)
        assert result.success
        run_id = result.run_id

    engine = sa.create_engine(storage_url)
    with engine.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM runs WHERE run_id = :r"), {"r": run_id}
        ).scalar_one()
        materializations = conn.execute(
            sa.text(
                "SELECT count(*) FROM event_logs WHERE run_id = :r AND dagster_event_type = 'ASSET_MATERIALIZATION'"
            ),
            {"r": run_id},
        ).scalar_one()
    engine.dispose()
    assert status == "SUCCESS"
    assert materializations == 7  # four raw extracts and three feature tables, one partition each
