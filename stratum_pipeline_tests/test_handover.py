"""Frames handed from a run's writers to its checks and features in the same process (storage/handover.py)."""

from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pandas as pd
import pytest
import sqlalchemy as sa

from stratum_pipeline.automation.local_runs import execute_daily_range
from stratum_pipeline.checks.data_quality import _validated_rows, raw_row_expectations
from stratum_pipeline.resources import Warehouse
from stratum_pipeline.storage import handover
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.storage.database import WarehouseTables
from stratum_pipeline.storage.extracts import EXTRACTS

from .conftest import TEST_CONFIG
from .helpers import checks_of, defs_for

FIRST, LAST = date(2026, 1, 1), date(2026, 1, 3)


def _frame(table, n: int = 3) -> pd.DataFrame:
    """n rows of `table`: 1 (or "x") in each required column, missing elsewhere."""

    def value(column):
        if column.nullable:
            return None
        if isinstance(column.type, (sa.Date, sa.DateTime)):
            return pd.Timestamp(FIRST)
        return "x" if isinstance(column.type, sa.String) else 1

    return pd.DataFrame({c.name: [value(c)] * n for c in table.columns}).assign(tenant_id="t1")


def _sessions(n: int = 3) -> pd.DataFrame:
    return _frame(wh.raw_sessions, n).assign(session_id=[f"s{i}" for i in range(n)])


@pytest.fixture(autouse=True)
def _empty():
    handover.clear()
    yield
    handover.clear()


def test_a_kept_frame_is_given_only_to_its_run_range_and_warehouse_and_as_a_copy():
    frame = _sessions()
    handover.keep("sqlite:///w.db", "run-1", wh.raw_sessions, FIRST, LAST, frame.assign(extra=1))
    got = handover.written("sqlite:///w.db", "run-1", wh.raw_sessions, FIRST, LAST)
    assert list(got.columns) == [c.name for c in wh.raw_sessions.columns]  # the table's columns only
    got.loc[0, "session_id"] = "changed"
    assert (
        handover.written("sqlite:///w.db", "run-1", wh.raw_sessions, FIRST, LAST).loc[0, "session_id"] == "s0"
    )
    assert handover.written("sqlite:///w.db", "run-2", wh.raw_sessions, FIRST, LAST) is None
    assert handover.written("sqlite:///w.db", "run-1", wh.raw_sessions, FIRST, LAST + timedelta(1)) is None
    assert handover.written("sqlite:///other.db", "run-1", wh.raw_sessions, FIRST, LAST) is None
    assert handover.written("sqlite:///w.db", "run-1", wh.raw_campaign_daily, FIRST, LAST) is None
    assert handover.written("sqlite:///w.db", None, wh.raw_sessions, FIRST, LAST) is None


def test_another_run_or_range_drops_what_was_kept_and_incomplete_frames_are_not_kept():
    handover.keep("u", "run-1", wh.raw_sessions, FIRST, LAST, _sessions())
    handover.keep("u", "run-1", wh.raw_capi_events, LAST, LAST, _frame(wh.raw_capi_events))  # other range
    assert handover.written("u", "run-1", wh.raw_sessions, FIRST, LAST) is None
    handover.keep("u", "run-2", wh.raw_sessions, FIRST, LAST, _sessions().drop(columns=["device_type"]))
    assert handover.written("u", "run-2", wh.raw_sessions, FIRST, LAST) is None


def test_the_warehouse_gives_back_what_a_run_kept_for_the_days_it_wrote(tmp_path):
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}")
    rows = _sessions().assign(date=pd.Timestamp(FIRST))
    warehouse.replace_partitions(wh.raw_sessions, rows, FIRST, LAST)
    warehouse.keep_written("run-1", wh.raw_sessions, FIRST, LAST, rows)
    assert warehouse.written("run-1", wh.raw_sessions, FIRST, LAST)["session_id"].tolist() == [
        "s0",
        "s1",
        "s2",
    ]
    assert warehouse.written("run-1", wh.raw_sessions, FIRST, FIRST) is None


def _context(run_id: str) -> SimpleNamespace:
    start = datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=timezone.utc)
    window = SimpleNamespace(start=start, end=start + timedelta(days=(LAST - FIRST).days + 1))
    return SimpleNamespace(run=SimpleNamespace(run_id=run_id), partition_time_window=window)


def test_a_check_judges_a_failure_on_the_stored_rows_not_on_the_kept_frame(tmp_path, monkeypatch):
    extract = EXTRACTS["raw_campaign_daily"]
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}")
    stored = _frame(wh.raw_campaign_daily, 1).assign(campaign_id="c1", platform="meta", spend=5.0)
    warehouse.replace_partitions(wh.raw_campaign_daily, stored, FIRST, LAST)
    warehouse.keep_written("run-1", wh.raw_campaign_daily, FIRST, LAST, stored)
    specs = raw_row_expectations(extract)
    rows, outcome = _validated_rows(_context("run-1"), warehouse, wh.raw_campaign_daily, "s", specs)
    assert outcome.success and len(rows) == 1

    reads = []
    original = WarehouseTables.read_range
    monkeypatch.setattr(
        WarehouseTables,
        "read_range",
        lambda self, *a, **k: reads.append(a[0].name) or original(self, *a, **k),
    )
    _validated_rows(_context("run-1"), warehouse, wh.raw_campaign_daily, "s", specs)
    assert reads == []  # a pass on the run's own rows reads nothing back
    # the kept frame breaks a rule but the stored rows do not: the verdict is the stored rows'
    handover.keep(warehouse.url, "run-1", wh.raw_campaign_daily, FIRST, LAST, stored.assign(spend=-1.0))
    rows, outcome = _validated_rows(_context("run-1"), warehouse, wh.raw_campaign_daily, "s", specs)
    assert reads == ["raw_campaign_daily"] and outcome.success and rows["spend"].tolist() == [5.0]
    # another run's check reads the warehouse
    _validated_rows(_context("run-2"), warehouse, wh.raw_campaign_daily, "s", specs)
    assert reads == ["raw_campaign_daily"] * 2


def test_a_ranged_ingest_run_reads_back_none_of_the_rows_it_wrote(sqlite_loaded_urls, monkeypatch):
    reads = []
    original = WarehouseTables.read_range

    def spy(self, table, start, end, *args, **kwargs):
        reads.append((table.name, start, end))
        return original(self, table, start, end, *args, **kwargs)

    monkeypatch.setattr(WarehouseTables, "read_range", spy)
    first, last = TEST_CONFIG.end_date - timedelta(days=6), TEST_CONFIG.end_date
    result = execute_daily_range(defs_for(sqlite_loaded_urls), first.isoformat(), last.isoformat())
    assert result.success and checks_of(result) and all(checks_of(result).values()), checks_of(result)
    written = {*EXTRACTS, "creative_features", "campaign_features", "session_features"}
    assert not [r for r in reads if r[0] in written and (r[1], r[2]) == (first, last)], reads
    # what is still read: the feature lookback windows reaching before the run's days
    assert ("raw_campaign_daily", first - timedelta(days=29), last) in reads
    # nothing is held once the run is over
    assert handover.written(sqlite_loaded_urls[1], result.run_id, wh.raw_sessions, first, last) is None
