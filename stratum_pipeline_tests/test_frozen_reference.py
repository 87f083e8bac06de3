"""The daily path's output tables against a frozen reference: what an optimisation of ingest, checks, features
or warehouse writes must not change.

On a small generated dataset (4 tenants, 42 days, 1% bad rows) the test runs what production runs: a ranged
backfill of `daily_ingest_job` for the first 41 days, then the daily run of the last day (`daily_ingest_job`,
`fatigue_scores_job`), the default models' training (`train_default_models_job`) and `daily_forecasts_job`
for the last day. Every warehouse table it writes is compared with the reference frames under
snapshots/daily_reference/ (csv.gz, sorted rows): same columns, same rows, text and integers equal, floats
within REL_TOL (relative) or ABS_TOL (absolute). Columns that record when or in which run a row was written
are left out (VOLATILE). The reference was written by the code before the scale work of issue #16; refresh it
only after an intended change of outputs:
`STRATUM_UPDATE_SNAPSHOT=1 pytest stratum_pipeline_tests/test_frozen_reference.py` and commit the diff.
"""

import os
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from stratum_pipeline.automation.local_runs import execute_daily_range
from stratum_pipeline.definitions import build_definitions
from stratum_pipeline.demo.generator import DemoConfig, TenantSpec, generate
from stratum_pipeline.demo.writer import write_source
from stratum_pipeline.resources import ModelRegistry, SourceDatabase, Warehouse
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.storage.database import engine_for

from .helpers import train

pytestmark = pytest.mark.slow  # ~45-100 s on this loaded machine: a backfill, a daily run and a training

REFERENCE = Path(__file__).parent / "snapshots" / "daily_reference"
REL_TOL = 1e-6
ABS_TOL = 1e-9
# Written per run or at wall-clock time: not part of what the data determines.
VOLATILE = {"run_id", "created_at", "updated_at", "predicted_at", "trained_at", "computed_at"}

END = date(2026, 5, 20)
CONFIG = DemoConfig(
    end_date=END,
    seed=23,
    tenants=tuple(
        TenantSpec(f"ref{i}", f"Reference {i}", campaigns=12, history_days=42, sessions_per_day=50)
        for i in range(1, 5)
    ),
    bad_row_rate=0.01,
)


def table_frame(url: str, table: sa.Table) -> pd.DataFrame:
    """A table's rows without volatile columns, in a canonical order and with canonical types."""
    with engine_for(url).connect() as conn:
        frame = pd.read_sql(sa.select(table), conn)
    frame = frame.drop(columns=[c for c in frame.columns if c in VOLATILE])
    for column in table.columns:
        if column.name not in frame.columns:
            continue
        if isinstance(column.type, (sa.Date, sa.DateTime)):
            frame[column.name] = pd.to_datetime(frame[column.name]).dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        elif isinstance(column.type, sa.Boolean):
            frame[column.name] = frame[column.name].astype("boolean")
    frame = frame.astype({c: "float64" for c in frame.columns if frame[c].dtype.kind in "iuf"})
    return frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)


def run_daily_path(tmp_path) -> str:
    """Source written, backfill + daily run + training + forecasts executed; returns the warehouse URL."""
    urls = f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'warehouse.db'}"
    write_source(engine_for(urls[0]), generate(CONFIG))
    defs = build_definitions(
        {
            "source": SourceDatabase(url=urls[0]),
            "warehouse": Warehouse(url=urls[1]),
            "registry": ModelRegistry(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"),
        }
    )
    instance = dg.DagsterInstance.ephemeral()
    first = CONFIG.start_date
    backfill = execute_daily_range(defs, first.isoformat(), (END - timedelta(days=1)).isoformat(), instance)
    assert backfill.success
    for job in ("daily_ingest_job", "fatigue_scores_job"):
        assert execute_daily_range(defs, END.isoformat(), END.isoformat(), instance, job_name=job).success
    assert train(defs, instance, "train_default_models_job")[0].success
    forecasts = execute_daily_range(
        defs, END.isoformat(), END.isoformat(), instance, job_name="daily_forecasts_job"
    )
    assert forecasts.success
    return urls[1]


def _text(values: pd.Series) -> pd.Series:
    """Values as text; missing and empty text are one value (CSV does not tell them apart)."""
    text = values.astype("string")
    return text.mask(text == "").fillna("<NA>")


def assert_same(table: str, current: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert list(current.columns) == list(reference.columns), f"{table}: columns differ"
    assert len(current) == len(reference), f"{table}: {len(current)} rows, reference {len(reference)}"
    for column in reference.columns:
        now, then = current[column], reference[column]
        if then.dtype.kind == "f" or now.dtype.kind == "f":
            a, b = now.to_numpy(dtype=float), then.to_numpy(dtype=float)
            close = np.isclose(a, b, rtol=REL_TOL, atol=ABS_TOL, equal_nan=True)
            assert close.all(), (
                f"{table}.{column}: {int((~close).sum())} values differ, e.g. {a[~close][:3]} vs {b[~close][:3]}"
            )
        else:
            same = (_text(now) == _text(then)).to_numpy()
            assert same.all(), (
                f"{table}.{column}: {int((~same).sum())} values differ, e.g. {now[~same].head(3).tolist()}"
            )


def test_daily_path_output_tables_match_the_frozen_reference(tmp_path):
    url = run_daily_path(tmp_path)
    current = {table.name: table_frame(url, table) for table in wh.metadata.sorted_tables}
    current = {name: frame for name, frame in current.items() if len(frame)}
    if os.environ.get("STRATUM_UPDATE_SNAPSHOT"):
        REFERENCE.mkdir(parents=True, exist_ok=True)
        for old in REFERENCE.glob("*.csv.gz"):
            old.unlink()
        for name, frame in current.items():
            frame.to_csv(REFERENCE / f"{name}.csv.gz", index=False, float_format="%.12g")
    stored = {p.name.removesuffix(".csv.gz"): p for p in sorted(REFERENCE.glob("*.csv.gz"))}
    assert sorted(current) == sorted(stored), "a table gained or lost all its rows"
    # what the path must produce, so a reference of empty tables cannot pass
    assert {"raw_campaign_daily", "creative_features", "campaign_features", "daily_roas_forecasts"} <= set(
        stored
    )
    assert "raw_campaign_daily_quarantine" in stored  # the bad rows took the quarantine path
    for name, path in stored.items():
        reference = pd.read_csv(path, keep_default_na=True, dtype=str)
        frame = current[name]
        typed = reference.astype({c: "float64" for c in frame.columns if frame[c].dtype.kind == "f"})
        assert_same(name, frame, typed)
