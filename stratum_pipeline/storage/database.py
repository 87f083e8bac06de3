"""The source database and the warehouse by URL: SQLite files for the embedded default, PostgreSQL in a deployment.

No Dagster here: `resources.SourceDatabase` and `resources.Warehouse` are these classes as Dagster resources."""

from __future__ import annotations

import functools
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from stratum_pipeline.settings import mask_url
from stratum_pipeline.storage import handover, warehouse_schema
from stratum_pipeline.storage.sqlio import as_datetimes, insert_frame, read_frame


@functools.lru_cache(maxsize=None)
def engine_for(url: str) -> sa.Engine:
    """One engine per URL and process. SQLite files get their folder created and a generous lock timeout."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return sa.create_engine(url, connect_args={"timeout": 120})
    return sa.create_engine(url, pool_pre_ping=True)


def describe_url(url: str) -> str:
    """The URL without its secrets (userinfo password, secret query parameters), for logs and metadata."""
    return mask_url(url)


class SourceUnavailableError(RuntimeError):
    """The source database could not be reached or dropped the connection (retryable)."""


class SourceUnusableError(RuntimeError):
    """The source database refuses for a reason a retry does not change: it does not exist, the host name is
    unknown, the login is refused (not retried)."""


def _first_line(exc: BaseException) -> str:
    return (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]


# Told apart by the driver's SQLSTATE where it gives one, else by its message (connection-time errors have no
# SQLSTATE in psycopg2). Permanent wins over transient: "FATAL: database "x" does not exist" is reported on a
# connection attempt too.
_TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "40001", "40P01", "53300", "55P03")
_PERMANENT_SQLSTATES = ("3D000", "28000", "28P01", "42")
_PERMANENT_MESSAGES = (
    "does not exist",
    "could not translate host name",
    "name or service not known",
    "nodename nor servname",
    "authentication failed",
    "no pg_hba.conf entry",
    "permission denied",
    "invalid dsn",
    "invalid connection option",
    "unable to open database file",
    "no such table",
    "no such column",
    "syntax error",
    "invalid integer value",
    "invalid port",
)
_TRANSIENT_MESSAGES = (
    "connection refused",
    "timeout",
    "timed out",
    "connection reset",
    "server closed the connection",
    "terminating connection",
    "could not receive data",
    "could not send data",
    "connection already closed",
    "starting up",
    "shutting down",
    "in recovery",
    "not currently accepting connections",
    "too many connections",
    "too many clients",
    "database is locked",
    "deadlock detected",
    "could not serialize",
    "ssl syscall error",
    "eof detected",
    "broken pipe",
    "network is unreachable",
    "no route to host",
    "temporary failure in name resolution",
    "lost connection",
    "connection was closed",
)


def is_transient(exc: BaseException) -> bool:
    """True for errors a retry can cure (connection refused or reset, timeouts, failover, deadlock, a locked
    SQLite file); False for everything else - a database or host that does not exist, a refused login, SQL
    errors, bugs - which fail at once."""
    if isinstance(exc, SourceUnavailableError):
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    text = str(orig or exc).lower()
    if code and code.startswith(_PERMANENT_SQLSTATES):
        return False
    if any(marker in text for marker in _PERMANENT_MESSAGES):
        return False
    if exc.connection_invalidated or (code and code.startswith(_TRANSIENT_SQLSTATES)):
        return True
    return any(marker in text for marker in _TRANSIENT_MESSAGES)


class SourceReader:
    """The product backend's database at `self.url`, read with bound-parameter queries only."""

    url: str

    @property
    def engine(self) -> sa.Engine:
        return engine_for(self.url)

    def read(self, statement) -> pd.DataFrame:
        """Rows of a statement; a lost or refused connection is a SourceUnavailableError naming the database
        (without its password), so the run fails with one clear line and the retry policy can try again."""
        try:
            with self.engine.connect() as conn:
                return read_frame(conn, statement)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if not is_transient(exc):
                raise SourceUnusableError(
                    f"source database {describe_url(self.url)} cannot be used: {_first_line(exc)}"
                ) from None
            raise SourceUnavailableError(
                f"source database {describe_url(self.url)} is unavailable: {_first_line(exc)}"
            ) from None


RETRAINING_CADENCES = ("monthly", "weekly")


class WarehouseSchemaError(RuntimeError):
    pass


@functools.lru_cache(maxsize=None)
def _ensure_schema(url: str) -> None:
    """Create missing warehouse tables; refuse to run against tables that lack columns of this version."""
    engine = engine_for(url)
    try:
        warehouse_schema.metadata.create_all(engine)
    except sa.exc.SQLAlchemyError:
        # Another process created a table between the check and the CREATE: the schema now exists.
        warehouse_schema.metadata.create_all(engine)
    inspector = sa.inspect(engine)
    for table in warehouse_schema.metadata.sorted_tables:
        # indexes added since a table was created (create_all only makes missing tables)
        existing = {i["name"] for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in existing:
                index.create(engine, checkfirst=True)
        present = {c["name"] for c in inspector.get_columns(table.name)}
        missing = [c.name for c in table.columns if c.name not in present]
        if missing:
            raise WarehouseSchemaError(
                f"warehouse table {table.name} at {describe_url(url)} lacks columns {missing}: it was made by an older "
                "version; migrate it (or, for the embedded demo, run `stratum demo` again, which recreates it)"
            )


def reset_warehouse(url: str) -> None:
    """Drop and recreate every warehouse table (the embedded demo does this when it regenerates its source)."""
    engine = engine_for(url)
    warehouse_schema.metadata.drop_all(engine)
    warehouse_schema.metadata.create_all(engine)
    _ensure_schema.cache_clear()


class WarehouseTables:
    """The tables the pipeline writes and the product reads, at `self.url`; partition writes replace, never append."""

    url: str

    @property
    def engine(self) -> sa.Engine:
        _ensure_schema(self.url)
        return engine_for(self.url)

    def replace_partitions(
        self,
        table: sa.Table,
        frame: pd.DataFrame,
        start: date,
        end: date,
        date_column: str = "date",
        tenant_id: str | None = None,
    ) -> int:
        """In one transaction: delete the rows with `date_column` in [start, end], insert `frame`.

        With `tenant_id`, only that tenant's rows of those days are replaced (other tenants' rows stay),
        and `frame` must hold that tenant's rows only."""
        return self.replace_partitions_together(
            [(table, frame, date_column)], start, end, tenant_id=tenant_id
        )[0]

    def replace_partitions_together(
        self,
        writes: list[tuple[sa.Table, pd.DataFrame, str]],
        start: date,
        end: date,
        tenant_id: str | None = None,
    ) -> list[int]:
        """`replace_partitions` for several (table, frame, date_column) in ONE transaction: a crash or kill
        anywhere before the commit leaves every table with its previous rows (e.g. a raw table and its
        quarantine stay consistent). Returns the rows inserted per table."""
        return self._replace(writes, start, end, tenant_id)

    def keep_written(
        self, run_id: str | None, table: sa.Table, start: date, end: date, frame: pd.DataFrame
    ) -> None:
        """After `replace_partitions` of every tenant's rows of [start, end] committed: keep `frame` in the process
        for the later steps of run `run_id` (`written`), so they need not read it back."""
        handover.keep(self.url, run_id, table, start, end, frame)

    def written(self, run_id: str | None, table: sa.Table, start: date, end: date) -> pd.DataFrame | None:
        """The rows `run_id` wrote to `table` for exactly [start, end] in this process (a copy), or None: then
        read the warehouse. (See storage/handover.py: kept only within a run, only for every tenant.)"""
        return handover.written(self.url, run_id, table, start, end)

    def _replace(self, writes, start: date, end: date, tenant_id: str | None) -> list[int]:
        for table, frame, date_column in writes:
            days = as_datetimes(frame[date_column])
            outside = days.notna() & ((days < pd.Timestamp(start)) | (days > pd.Timestamp(end)))
            if outside.any():
                raise ValueError(
                    f"{outside.sum()} rows for {table.name} fall outside the partitions {start}..{end}"
                )
            if tenant_id is not None and (foreign := frame["tenant_id"] != tenant_id).any():
                raise ValueError(
                    f"{foreign.sum()} rows for {table.name} belong to other tenants than {tenant_id}"
                )
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Writers of the same table take turns (the lock is released at commit): two overlapping runs of
                # one day (e.g. a one-tenant rerun beside the scheduled run) cannot both insert, since each DELETE
                # sees what the other committed. Sorted names: no lock-order deadlock between multi-table writes.
                for name in sorted({table.name for table, _, _ in writes}):
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"stratum:{name}"}
                    )
            counts = []
            for table, frame, date_column in writes:
                column = table.c[date_column]
                scope = [column >= start, column <= end]
                if tenant_id is not None:
                    scope.append(table.c.tenant_id == tenant_id)
                conn.execute(sa.delete(table).where(*scope))
                counts.append(insert_frame(conn, table, frame))
            return counts

    def replace_table(self, table: sa.Table, frame: pd.DataFrame) -> int:
        """In one transaction: delete every row of `table`, insert `frame` (a table that holds only the latest
        state, e.g. the live predictions of the last window); returns the rows inserted."""
        with self.engine.begin() as conn:
            conn.execute(table.delete())
            return insert_frame(conn, table, frame)

    def read_range(
        self,
        table: sa.Table,
        start: date,
        end: date,
        date_column: str = "date",
        tenant_id: str | None = None,
        columns: list[str] | None = None,
    ) -> pd.DataFrame:
        """Rows with `date_column` in [start, end] (of one tenant if given), with the table's columns (or only
        `columns`) even when empty."""
        names = [c.name for c in table.columns] if columns is None else list(columns)
        column = table.c[date_column]
        statement = sa.select(*(table.c[n] for n in names)).where(column >= start, column <= end)
        if tenant_id is not None:
            statement = statement.where(table.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            frame = read_frame(conn, statement)
        return frame if len(frame.columns) else pd.DataFrame(columns=names)

    def read_histories(
        self, table: sa.Table, key: str, start: date, live_from: date, end: date, columns: list[str]
    ) -> pd.DataFrame:
        """`columns` of the rows dated in [start, end] whose `key` (e.g. a creative) has a row in [live_from,
        end]: the history of what is live in those days, without the rows of what ended before them."""
        live = sa.select(table.c[key]).where(table.c.date >= live_from, table.c.date <= end).distinct()
        statement = sa.select(*(table.c[c] for c in columns)).where(
            table.c.date >= start, table.c.date <= end, table.c[key].in_(live.scalar_subquery())
        )
        with self.engine.connect() as conn:
            frame = read_frame(conn, statement)
        return frame if len(frame.columns) else pd.DataFrame(columns=columns)

    def read_tenant(self, table: sa.Table, tenant_id: str | None, since: date | None = None) -> pd.DataFrame:
        """A tenant's rows of `table` (all tenants when tenant_id is None), from `since` on."""
        statement = sa.select(table)
        if tenant_id is not None:
            statement = statement.where(table.c.tenant_id == tenant_id)
        if since is not None:
            statement = statement.where(table.c.date >= since)
        with self.engine.connect() as conn:
            frame = read_frame(conn, statement)
        return frame if len(frame.columns) else pd.DataFrame(columns=[c.name for c in table.columns])

    def set_retraining_cadence(self, tenant_id: str, cadence: str) -> None:
        """Switch a tenant to 'weekly' retraining (busy periods) or back to 'monthly'."""
        if cadence not in RETRAINING_CADENCES:
            raise ValueError(
                f"retraining cadence must be one of {', '.join(RETRAINING_CADENCES)}, not {cadence!r}"
            )
        table = warehouse_schema.tenant_settings
        with self.engine.begin() as conn:
            conn.execute(sa.delete(table).where(table.c.tenant_id == tenant_id))
            conn.execute(
                table.insert(),
                [
                    {
                        "tenant_id": tenant_id,
                        "retraining_cadence": cadence,
                        "updated_at": datetime.now(timezone.utc).replace(tzinfo=None),
                    }
                ],
            )

    def tenants_with_cadence(self, cadence: str) -> list[str]:
        table = warehouse_schema.tenant_settings
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.tenant_id)
                .where(table.c.retraining_cadence == cadence)
                .order_by(table.c.tenant_id)
            )
            return [r[0] for r in rows]

    def latest_date(self, table: sa.Table) -> date | None:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(table.c.date))).scalar()
        return pd.Timestamp(value).date() if value is not None else None

    def daily_counts(self, table: sa.Table, start: date, end: date, date_column: str = "date") -> pd.Series:
        """Row count per day in [start, end] (days with no rows are absent)."""
        column = table.c[date_column]
        statement = (
            sa.select(column.label("day"), sa.func.count().label("rows"))
            .where(column >= start, column <= end)
            .group_by(column)
        )
        with self.engine.connect() as conn:
            frame = read_frame(conn, statement)
        if frame.empty:
            return pd.Series(dtype="int64")
        return frame.set_index(pd.to_datetime(frame["day"]).dt.date)["rows"].astype("int64")

    def daily_tenant_counts(
        self, table: sa.Table, start: date, end: date, date_column: str = "date"
    ) -> pd.DataFrame:
        """Rows per day and tenant in [start, end]: columns day, tenant_id ('(none)' for rows without one), rows."""
        column = table.c[date_column]
        tenant = sa.func.coalesce(table.c.tenant_id, "(none)")
        statement = (
            sa.select(column.label("day"), tenant.label("tenant_id"), sa.func.count().label("rows"))
            .where(column >= start, column <= end)
            .group_by(column, tenant)
        )
        with self.engine.connect() as conn:
            frame = read_frame(conn, statement)
        if frame.empty:
            return pd.DataFrame(
                {
                    "day": pd.Series(dtype=object),
                    "tenant_id": pd.Series(dtype=object),
                    "rows": pd.Series(dtype="int64"),
                }
            )
        return frame.assign(day=pd.to_datetime(frame["day"]).dt.date, rows=frame["rows"].astype("int64"))
