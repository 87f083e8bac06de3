"""The bulk write paths (executemany of per-column values on SQLite, COPY on PostgreSQL) store exactly what
SQLAlchemy's table.insert() stores, for awkward values too: NULLs of every kind, empty and quoted text, text
with newlines, commas and backslashes, nanosecond times, integers held as floats, booleans, and dates given as
Python dates."""

from datetime import date

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from stratum_pipeline.storage import sqlio
from stratum_pipeline.storage.database import engine_for
from stratum_pipeline.storage.sqlio import NULL_MARKER, frame_chunks, insert_frame

metadata = sa.MetaData()
awkward = sa.Table(
    "awkward",
    metadata,
    sa.Column("n", sa.Integer),
    sa.Column("label", sa.String(64)),
    sa.Column("note", sa.Text),
    sa.Column("day", sa.Date),
    sa.Column("py_day", sa.Date),
    sa.Column("at", sa.DateTime),
    sa.Column("amount", sa.Float),
    sa.Column("count", sa.BigInteger),
    sa.Column("flag", sa.Boolean),
)


def awkward_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n": [1, 2, 3, 4, 5],
            "label": ["plain", "", None, 'say "hi", ok', "back\\slash"],
            "note": ["line\nbreak", "tab\there", np.nan, "comma,comma", "ünïcode"],
            "day": pd.to_datetime(["2026-01-01", None, "2026-02-28", "2025-12-31", "2026-03-01"]),
            "py_day": [date(2026, 1, 1), None, date(2026, 2, 28), date(2025, 12, 31), date(2026, 3, 1)],
            "at": pd.to_datetime(
                [
                    "2026-01-01 10:11:12.123456789",
                    None,
                    "2026-02-28 00:00:00.000",
                    "2026-03-01 23:59:59.500",
                    None,
                ],
                format="ISO8601",
            ),
            "amount": [0.1 + 0.2, np.nan, -1e-300, 12345678.125, 1 / 3],
            "count": [1.0, np.nan, 3.0, 2.0**40, 0.0],  # integers as floats, with a missing one
            "flag": [True, False, True, False, True],
        }
    )


def stored(url: str) -> list[tuple]:
    with engine_for(url).connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(awkward).order_by(awkward.c.n))]


@pytest.fixture(params=["sqlite", "postgresql"])
def two_databases(request, tmp_path, pg_databases):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bulk.db'}", f"sqlite:///{tmp_path / 'reference.db'}"
    return pg_databases.create("bulk"), pg_databases.create("ref")


def test_bulk_writes_store_what_table_insert_stores(two_databases, monkeypatch):
    bulk, reference = two_databases
    frame = awkward_frame()
    copied = []  # on PostgreSQL the rows must go through COPY, not the fallback
    copy = sqlio._copy_postgresql
    monkeypatch.setattr(sqlio, "_copy_postgresql", lambda *a: copied.append(copy(*a)) or copied[-1])
    for url in two_databases:
        metadata.create_all(engine_for(url))
    with engine_for(bulk).begin() as conn:
        assert insert_frame(conn, awkward, frame) == len(frame)
    with engine_for(reference).begin() as conn:
        for rows in frame_chunks(awkward, frame):
            conn.execute(awkward.insert(), rows)
    assert stored(bulk) == stored(reference)
    assert copied == ([True] if bulk.startswith("postgresql") else [])
    assert stored(bulk)[1][1] == "" and stored(bulk)[2][1] is None  # empty text is not NULL
    if bulk.startswith("sqlite"):  # byte for byte: the text SQLite holds, not only what SQLAlchemy parses
        for url in two_databases:
            with engine_for(url).connect() as conn:
                raw = conn.exec_driver_sql("SELECT day, py_day, at, typeof(count), count FROM awkward").all()
            if url == bulk:
                bulk_raw = raw
        assert bulk_raw == raw


@pytest.mark.services
def test_text_equal_to_the_null_marker_is_kept_on_postgresql(pg_databases):
    url = pg_databases.create("marker")
    metadata.create_all(engine_for(url))
    frame = awkward_frame().assign(label=["a", NULL_MARKER, None, "b", "c"])
    with engine_for(url).begin() as conn:
        insert_frame(conn, awkward, frame)
    assert [row[1] for row in stored(url)] == ["a", NULL_MARKER, None, "b", "c"]


def _read_through_sqlalchemy(monkeypatch, conn, statement) -> pd.DataFrame:
    with monkeypatch.context() as patched:
        patched.setattr(sqlio, "_sqlite_parts", lambda *_: None)
        return sqlio.read_frame(conn, statement)


def test_sqlite_reads_through_the_cursor_give_sqlalchemys_frame(tmp_path, monkeypatch):
    """read_frame on SQLite reads the driver's cursor and converts dates, times and booleans per column: the same
    frame, dtypes and value types as SQLAlchemy's processed rows, NULLs and an all-NULL column included, in chunks
    (one chunk all NULL in a column) and with a bound date parameter."""
    engine = engine_for(f"sqlite:///{tmp_path / 'reads.db'}")
    metadata.create_all(engine)
    frame = pd.concat([awkward_frame()] * 3, ignore_index=True).assign(n=range(15))
    frame.loc[10:, "at"] = pd.NaT
    frame["count"] = None
    with engine.begin() as conn:
        insert_frame(conn, awkward, frame)
    monkeypatch.setattr(sqlio, "READ_CHUNK_ROWS", 4)
    statements = [
        sa.select(awkward),
        sa.select(awkward.c.n, awkward.c.day, awkward.c.flag).where(awkward.c.py_day >= date(2026, 1, 1)),
    ]
    with engine.connect() as conn:
        for statement in statements:
            assert sqlio._sqlite_parts(conn, statement) is not None  # the cursor path is the one taken
            ours, theirs = (
                sqlio.read_frame(conn, statement),
                _read_through_sqlalchemy(monkeypatch, conn, statement),
            )
            pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
            for column in ours.columns:
                assert [type(v) for v in ours[column]] == [type(v) for v in theirs[column]], column
    assert len(ours) == 9 and ours["day"].dtype == object and set(ours["flag"]) == {True}


def test_sqlite_text_sqlalchemy_cannot_parse_fails_as_sqlalchemy_does(tmp_path, monkeypatch):
    """A DATETIME cell holding other text (a SQLite file stores anything): the cursor path gives it to
    SQLAlchemy's own processor, so the error is the one a SQLAlchemy read raises."""
    engine = engine_for(f"sqlite:///{tmp_path / 'bad.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO awkward (n, at) VALUES (1, '2026-01-01 10:00:00.000000'), (2, 'soon')"
        )
    with engine.connect() as conn:
        with pytest.raises(ValueError) as ours:
            sqlio.read_frame(conn, sa.select(awkward.c.at))
        with pytest.raises(ValueError) as theirs:
            _read_through_sqlalchemy(monkeypatch, conn, sa.select(awkward.c.at))
    assert str(ours.value) == str(theirs.value)
