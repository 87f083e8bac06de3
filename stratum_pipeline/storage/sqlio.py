"""DataFrame <-> SQL table helpers shared by the source writer and the warehouse (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
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
    table: sa.Table, frame: pd.DataFrame, chunk_rows: int
) -> Iterator[tuple[list[str], list[list]]]:
    """Per chunk of rows: the table's column names present in `frame` and their values, column by column,
    as plain Python values (NULL for NaN/NaT)."""
    columns = [c for c in table.columns if c.name in frame.columns]
    for start in range(0, len(frame), chunk_rows):
        part = frame.iloc[start : start + chunk_rows]
        yield [c.name for c in columns], [_column_values(part[c.name], c.type) for c in columns]


def frame_chunks(
    table: sa.Table, frame: pd.DataFrame, chunk_rows: int = INSERT_CHUNK_ROWS
) -> Iterator[list[dict]]:
    """Rows of `frame` as lists of dicts with plain Python values, only the table's columns, NULL for NaN/NaT."""
    for names, values in _value_columns(table, frame, chunk_rows):
        yield [dict(zip(names, row)) for row in zip(*values)]


def _with_nulls(values: list, missing: np.ndarray) -> list:
    if missing.any():
        return [None if m else v for v, m in zip(values, missing)]
    return values


def _sqlite_values(series: pd.Series, column_type) -> list | None:
    """One column as the values SQLAlchemy's SQLite bind processors would store, built per column in numpy (no
    per-value Python conversion): dates as 'YYYY-MM-DD', datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's
    SQLite storage formats), numbers as Python numbers, NULL for missing. None for a column it does not handle
    (time zones, object-typed numbers, booleans...): the caller converts those value by value."""
    missing = series.isna().to_numpy()
    kind = series.dtype.kind
    if isinstance(column_type, (sa.Date, sa.DateTime)):
        if kind == "O":
            if pd.api.types.infer_dtype(series, skipna=True) not in (
                "date",
                "datetime",
                "datetime64",
                "empty",
            ):
                return None
            series = pd.to_datetime(series)
        elif kind != "M" or getattr(series.dt, "tz", None) is not None:
            return None
        if isinstance(column_type, sa.DateTime):
            text = np.datetime_as_string(series.to_numpy("datetime64[us]"), unit="us")
            return _with_nulls(np.char.replace(text, "T", " ").tolist(), missing)
        return _with_nulls(
            np.datetime_as_string(series.to_numpy("datetime64[D]"), unit="D").tolist(), missing
        )
    if isinstance(column_type, sa.Boolean):
        return None
    if isinstance(column_type, (sa.Integer, sa.BigInteger)):
        if kind in "iu":
            return series.to_numpy().tolist()
        if kind == "f":
            return _with_nulls(np.where(missing, 0, series.to_numpy()).astype(np.int64).tolist(), missing)
        return None
    if isinstance(column_type, sa.Float):
        if kind in "iuf":
            return _with_nulls(series.to_numpy(dtype=float).tolist(), missing)
        return None
    if isinstance(column_type, (sa.String, sa.Text)) and kind == "O":
        if pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
            return None
        return _with_nulls(series.tolist(), missing)
    return None


def _insert_sqlite(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """SQLite: the driver's executemany on tuples. Each column becomes the values table.insert() would store,
    built per column (`_sqlite_values`), or else converted value by value and passed through its SQLAlchemy
    bind processor: the stored rows are those of table.insert() without its per-row parameter handling."""
    dialect = conn.dialect
    columns = [c for c in table.columns if c.name in frame.columns]
    quote = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({', '.join(quote(c.name) for c in columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )
    processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
    for start in range(0, len(frame), INSERT_CHUNK_ROWS):
        part = frame.iloc[start : start + INSERT_CHUNK_ROWS]
        values = []
        for column, processor in zip(columns, processors):
            fast = _sqlite_values(part[column.name], column.type)
            if fast is None:
                fast = _column_values(part[column.name], column.type)
                fast = list(map(processor, fast)) if processor else fast
            values.append(fast)
        conn.exec_driver_sql(sql, list(zip(*values)))


def _copy_postgresql(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> bool:
    """PostgreSQL with psycopg2: COPY the rows in as CSV (NULL written \\N), the columns built as for SQLite
    (`_sqlite_values`: ISO dates and times, Python numbers) or value by value where those do not apply; the
    same rows as table.insert(), one COPY instead of many INSERT statements. False (nothing done) when the
    driver has no copy_expert or a text value is the NULL marker itself."""
    raw = conn.connection.dbapi_connection
    if not hasattr(raw, "cursor") or conn.dialect.driver != "psycopg2":
        return False
    columns = [c for c in table.columns if c.name in frame.columns]
    values = []
    for column in columns:
        series = frame[column.name]
        fast = _sqlite_values(series, column.type)
        values.append(fast if fast is not None else _column_values(series, column.type))
        if series.dtype.kind == "O" and (series == NULL_MARKER).any():
            return False
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(
        [NULL_MARKER if v is None else v for v in row] for row in zip(*values)
    )
    buffer.seek(0)
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c.name) for c in columns)
    with raw.cursor() as cursor:
        cursor.copy_expert(
            f"COPY {conn.dialect.identifier_preparer.format_table(table)} ({names}) FROM STDIN "
            f"WITH (FORMAT csv, NULL '{NULL_MARKER}')",
            buffer,
        )
    return True


NULL_MARKER = "\\N"


def as_datetimes(values: pd.Series) -> pd.Series:
    """`values` as datetime64: as they are when they already are (pd.to_datetime would still turn thousands of
    them into Timestamps to decide whether to cache: a third of a ranged run's write overhead), else converted."""
    return values if values.dtype.kind == "M" else pd.to_datetime(values)


def insert_frame(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Insert every row of `frame` into `table` on an open connection (inside the caller's transaction)."""
    if len(frame) and conn.dialect.name == "sqlite":
        _insert_sqlite(conn, table, frame)
        return len(frame)
    if len(frame) and conn.dialect.name == "postgresql" and _copy_postgresql(conn, table, frame):
        return len(frame)
    for rows in frame_chunks(table, frame):
        if rows:
            conn.execute(table.insert(), rows)
    return len(frame)


READ_CHUNK_ROWS = 100_000


def read_frame(conn: sa.Connection, statement) -> pd.DataFrame:
    """Run a (bound-parameter) statement and return its rows as a DataFrame with the statement's columns.

    Rows are fetched and turned into frames READ_CHUNK_ROWS at a time: a year of rows as Python tuples
    would take several times the memory of the frame they become. On SQLite a SELECT is read through the
    driver's cursor and its date, time and boolean columns converted per column (`_sqlite_parts`): the same
    frame as SQLAlchemy's rows give, without its per-row and per-value result processing."""
    parts, columns = (_sqlite_parts(conn, statement) if conn.dialect.name == "sqlite" else None) or (
        None,
        None,
    )
    if parts is None:
        result = conn.execute(statement)
        columns = list(result.keys())
        parts = [
            pd.DataFrame(rows, columns=columns)
            for rows in iter(lambda: result.fetchmany(READ_CHUNK_ROWS), [])
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


def _sqlite_parts(conn: sa.Connection, statement) -> tuple[list[pd.DataFrame], list[str]] | None:
    """A SELECT on SQLite run on the driver's cursor, as frames of READ_CHUNK_ROWS rows whose columns are those
    SQLAlchemy's result would give (`_sqlite_column`); None (the caller reads through SQLAlchemy) for anything
    else: other statements, expanding (IN list) parameters, a column type whose conversion it does not do."""
    if not isinstance(statement, sa.Select):
        return None
    dialect = conn.dialect
    compiled = statement.compile(dialect=dialect)
    if (
        compiled.positiontup is None
        or any(b.expanding for b in compiled.binds.values())
        or "__[POSTCOMPILE" in compiled.string
    ):
        return None
    kinds = []
    for column in statement.selected_columns:
        impl = column.type.dialect_impl(dialect)
        if impl.result_processor(dialect, None) is None:
            kinds.append(None)
        elif isinstance(impl, (sa.DateTime, sa.Date, sa.Boolean)) and not getattr(impl, "timezone", False):
            kinds.append(impl)
        else:
            return None
    params = compiled.construct_params()
    bind = compiled._bind_processors
    values = tuple(bind[k](params[k]) if k in bind else params[k] for k in compiled.positiontup)
    result = conn.exec_driver_sql(compiled.string, values)
    columns = list(result.keys())
    parts = []
    for rows in iter(lambda: result.cursor.fetchmany(READ_CHUNK_ROWS), []):
        part = pd.DataFrame(rows, columns=columns)
        for i, kind in enumerate(kinds):
            if kind is not None:
                part.isetitem(i, _sqlite_column(part.iloc[:, i], kind, dialect))
        parts.append(part)
    result.close()
    return parts, columns


def _sqlite_column(raw: pd.Series, kind, dialect) -> pd.Series:
    """One column of stored SQLite values as SQLAlchemy's result processor would give it in a frame: DATETIME
    text -> datetime64, DATE text -> datetime.date objects, 0/1 -> booleans, NULL -> NaT/None as the frame of
    processed values has it. Done per column with the strict storage formats (text SQLAlchemy's ISO parser reads
    the same way); anything else (another format, a number, a boolean that is not 0/1) goes value by value
    through the processor, so its error is SQLAlchemy's own."""
    missing = raw.isna().to_numpy()
    if missing.all():
        return raw  # all NULL: the processors give None, the frame an object column of None
    text = raw.dtype.kind == "O" and pd.api.types.infer_dtype(raw, skipna=True) == "string"
    try:
        if isinstance(kind, sa.DateTime) and text:
            parsed = pd.to_datetime(raw, format="%Y-%m-%d %H:%M:%S.%f")
            return pd.Series(parsed.to_numpy(), index=raw.index, name=raw.name)
        if isinstance(kind, sa.Date) and text:
            days = pd.to_datetime(raw, format="%Y-%m-%d").dt.date.to_numpy()
            days[missing] = None
            return pd.Series(days, index=raw.index, name=raw.name, dtype=object)
        if (
            isinstance(kind, sa.Boolean)
            and raw.dtype.kind in "if"
            and np.isin(raw.to_numpy()[~missing], (0, 1)).all()
        ):
            if not missing.any():
                return raw.astype(bool)
            flags = (raw.to_numpy() == 1).astype(object)
            flags[missing] = None
            return pd.Series(flags, index=raw.index, name=raw.name, dtype=object)
    except (ValueError, TypeError):
        pass
    processor = kind.result_processor(dialect, None)
    return pd.DataFrame({raw.name: [processor(v) for v in raw.to_numpy()]}, index=raw.index)[raw.name]
