"""Frames a run has just written, kept in the process for the steps after it in the same run.

A ranged ingest run writes a month of raw rows and features, and its checks and downstream features used to
read those rows straight back from the warehouse (about a quarter of a backfill's CPU). With the in-process
executor every step of a run shares this process, so the writer keeps the frame it wrote and the reader takes
it from here; with a step per process (multiprocess, Celery, K8s) nothing is kept and readers read the
warehouse as before.

A kept frame is the table's rows for exactly the written days: the writers (raw extracts, features) keep it
after their write of every tenant's rows committed (`WarehouseTables.keep_written`; a one-tenant write leaves
other tenants' rows, which its frame does not hold, so it must not be kept), and it is given only to the run
that wrote it. Everything kept for one run and range is dropped when another
run or range keeps a frame, so a process holds at most one range's frames.
"""

from __future__ import annotations

import threading
from datetime import date

import pandas as pd
import sqlalchemy as sa

_lock = threading.Lock()
_scope: list[tuple] = [()]  # (warehouse url, run id, first, last) of the frames held
_frames: dict[str, pd.DataFrame] = {}  # table name -> the rows written


def keep(url: str, run_id: str | None, table: sa.Table, first: date, last: date, frame: pd.DataFrame) -> None:
    """Hold `frame` as the rows `run_id` wrote to `table` for the days [first, last] (after the commit).

    A frame without all of the table's columns is not kept (readers would see other columns than a read)."""
    columns = [c.name for c in table.columns]
    if not run_id or any(c not in frame.columns for c in columns):
        return
    scope = (url, run_id, first, last)
    with _lock:
        if _scope[0] != scope:
            _frames.clear()
            _scope[0] = scope
        _frames[table.name] = frame[columns].reset_index(drop=True)


def written(url: str, run_id: str | None, table: sa.Table, first: date, last: date) -> pd.DataFrame | None:
    """A copy of the rows `run_id` wrote to `table` for exactly [first, last] in this process, or None."""
    with _lock:
        if not run_id or _scope[0] != (url, run_id, first, last) or table.name not in _frames:
            return None
        return _frames[table.name].copy()


def clear() -> None:
    """Drop every kept frame."""
    with _lock:
        _frames.clear()
        _scope[0] = ()
