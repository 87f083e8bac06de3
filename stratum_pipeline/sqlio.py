"""DataFrame <-> SQL table helpers shared by the source writer and the warehouse (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import sqlalchemy as sa

INSERT_CHUNK_ROWS = 20_000


def _column_values(series: pd.Series, column_type) -> list:
    """One column as plain Python values of the SQL type, None for missing (vectorised per column)."""
    missing = series.isna().to_numpy()
    if isinstance(column_type, sa.DateTime):
        values = [None if v is pd.NaT else v.to_pydatetime() for v in pd.to_datetime(series).dt.floor("us")]
    elif isinstance(column_type, sa.Date):
        values = pd.to_datetime(series).dt.date.tolist()
    elif isinstance(column_type, sa.Boolean):
        values = [bool(v) for v in series.to_numpy()]
    elif isinstance(column_type, (sa.Integer, sa.BigInteger)) and not missing.all():
        values = [int(v) if not m else None for v, m in zip(series.to_numpy(), missing)]
    else:
        values = series.astype(object).tolist()
        values = [v.item() if isinstance(v, np.generic) else v for v in values]
    return [None if m else v for v, m in zip(values, missing)]


def frame_chunks(table: sa.Table, frame: pd.DataFrame, chunk_rows: int = INSERT_CHUNK_ROWS) -> Iterator[list[dict]]:
    """Rows of `frame` as lists of dicts with plain Python values, only the table's columns, NULL for NaN/NaT."""
    columns = [c for c in table.columns if c.name in frame.columns]
    for start in range(0, len(frame), chunk_rows):
        part = frame.iloc[start:start + chunk_rows]
        values = [_column_values(part[c.name], c.type) for c in columns]
        names = [c.name for c in columns]
        yield [dict(zip(names, row)) for row in zip(*values)]


def insert_frame(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Insert every row of `frame` into `table` on an open connection (inside the caller's transaction)."""
    for rows in frame_chunks(table, frame):
        if rows:
            conn.execute(table.insert(), rows)
    return len(frame)


def read_frame(conn: sa.Connection, statement) -> pd.DataFrame:
    """Run a (bound-parameter) statement and return its rows as a DataFrame with the statement's columns."""
    result = conn.execute(statement)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
