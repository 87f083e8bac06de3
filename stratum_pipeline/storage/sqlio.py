"""DataFrame <-> SQL table helpers shared by the source writer and the warehouse (SQLite and PostgreSQL)."""

from __future__ import annotations

import warnings
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


def _value_columns(
    table: sa.Table, frame: pd.DataFrame, chunk_rows: int, processors=None
) -> Iterator[tuple[list[str], list[list]]]:
    """Per chunk of rows: the table's column names present in `frame` and their values, column by column,
    as plain Python values (NULL for NaN/NaT), passed through `processors` (one per column, or None) if given."""
    columns = [c for c in table.columns if c.name in frame.columns]
    processors = processors or [None] * len(columns)
    for start in range(0, len(frame), chunk_rows):
        part = frame.iloc[start : start + chunk_rows]
        values = [_column_values(part[c.name], c.type) for c in columns]
        yield [c.name for c in columns], [list(map(p, v)) if p else v for p, v in zip(processors, values)]


def frame_chunks(
    table: sa.Table, frame: pd.DataFrame, chunk_rows: int = INSERT_CHUNK_ROWS
) -> Iterator[list[dict]]:
    """Rows of `frame` as lists of dicts with plain Python values, only the table's columns, NULL for NaN/NaT."""
    for names, values in _value_columns(table, frame, chunk_rows):
        yield [dict(zip(names, row)) for row in zip(*values)]


def _insert_sqlite(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """SQLite: the driver's executemany on tuples, each column converted by its SQLAlchemy bind processor, so the
    stored values are those of table.insert() without SQLAlchemy's per-row parameter handling (4-5x faster)."""
    dialect = conn.dialect
    columns = [c for c in table.columns if c.name in frame.columns]
    quote = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({', '.join(quote(c.name) for c in columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )
    processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
    for _, values in _value_columns(table, frame, INSERT_CHUNK_ROWS, processors):
        conn.exec_driver_sql(sql, list(zip(*values)))


def insert_frame(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Insert every row of `frame` into `table` on an open connection (inside the caller's transaction)."""
    if len(frame) and conn.dialect.name == "sqlite":
        _insert_sqlite(conn, table, frame)
        return len(frame)
    for rows in frame_chunks(table, frame):
        if rows:
            conn.execute(table.insert(), rows)
    return len(frame)


READ_CHUNK_ROWS = 100_000


def read_frame(conn: sa.Connection, statement) -> pd.DataFrame:
    """Run a (bound-parameter) statement and return its rows as a DataFrame with the statement's columns.

    Rows are fetched and turned into frames READ_CHUNK_ROWS at a time: a year of rows as Python tuples
    would take several times the memory of the frame they become."""
    result = conn.execute(statement)
    columns = list(result.keys())
    parts = [
        pd.DataFrame(rows, columns=columns) for rows in iter(lambda: result.fetchmany(READ_CHUNK_ROWS), [])
    ]
    if len(parts) <= 1:
        return parts[0] if parts else pd.DataFrame([], columns=columns)
    with warnings.catch_warnings():  # all-NULL chunks: their columns are re-inferred below
        warnings.simplefilter("ignore", FutureWarning)
        frame = pd.concat(parts, ignore_index=True)
    for i, column in enumerate(
        columns
    ):  # a chunk that is all NULL in a column infers another type: infer again
        if len({str(part.dtypes.iloc[i]) for part in parts}) > 1:
            frame[column] = pd.Series(frame[column].tolist(), dtype=None).to_numpy()
    return frame
