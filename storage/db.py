"""The one small database layer under the stores: a connection, its dialect, transactions, reconnect.

Why one layer: each store writes its SQL once, with ``?`` placeholders and
portable types, and runs it on PostgreSQL at scale or on SQLite on one box.
What differs between the two (placeholder style, how a transaction starts,
how a lost connection comes back) is decided here and nowhere else.

* :meth:`Database.tx` is one transaction under the connection's lock: SQLite
  takes ``BEGIN IMMEDIATE`` (writers queue instead of failing half-way),
  PostgreSQL a psycopg transaction block. Anything raised inside rolls back.
* A PostgreSQL connection that was closed or broke (server restart, network)
  is opened again at the start of the next transaction; the failed one was
  rolled back and its error reached the caller, so nothing is retried behind
  the caller's back. Reconnects back off (capped, jittered): while the server
  is down, requests fail at once instead of each waiting for a connect timeout.
* A store that must start while PostgreSQL is down (the plate services' audit log and watchlist) opens
  with ``lazy=True`` (first connect at the first transaction) and may name the error a failed connect
  becomes (``unavailable``); the audit log asks SQLite for ``synchronous=FULL`` (``durable=True``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from core.backoff import Backoff
from core.sqlite_tx import rollback

Dialect = Literal["sqlite", "postgres"]
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


_MIGRATION_LOCK_KEY = 0x6B757A6D  # "kuzm": serialises schema creation across processes


class NotFoundError(KeyError):
    """No such row (incident, user) in a store."""


def is_postgres_url(url: str | Path) -> bool:
    """A PostgreSQL URL or libpq keyword string (``dbname=...``); anything else is a SQLite path."""
    text = str(url)
    return text.startswith(POSTGRES_SCHEMES) or ("=" in text and "dbname" in text)


class Database:
    """A connection to PostgreSQL (psycopg 3, autocommit outside :meth:`tx`) or SQLite (WAL), shared by stores."""

    def __init__(
        self,
        url: str | Path,
        *,
        connect_timeout_s: float = 30.0,
        lazy: bool = False,
        durable: bool = False,
        unavailable: Callable[[Exception], Exception] | None = None,
    ) -> None:
        self.url = str(url)
        self.dialect: Dialect = "postgres" if is_postgres_url(self.url) else "sqlite"
        self._timeout = connect_timeout_s
        self._durable = durable
        self._unavailable = unavailable
        self._lock = threading.RLock()
        self._backoff = Backoff(0.2, 5.0)  # short cap: recovery within seconds of the server coming back
        self._retry_at = 0.0
        self._conn: Any = None if lazy and self.dialect == "postgres" else self._connect()

    def _connect(self) -> Any:
        if self.dialect == "postgres":
            import psycopg

            return psycopg.connect(self.url, autocommit=True, connect_timeout=int(self._timeout))
        path = self.url.removeprefix("sqlite:///")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=self._timeout)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL" if self._durable else "PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def _reconnect(self) -> None:
        """Open the lost PostgreSQL connection again, at most once per back-off delay (capped, jittered):
        while the server is down, callers fail at once instead of each waiting out a connect timeout."""
        import psycopg

        now = time.monotonic()
        try:
            if now < self._retry_at:
                raise psycopg.OperationalError(f"database unavailable; next reconnect in {self._retry_at - now:.1f} s")
            try:
                self._conn = self._connect()
            except Exception:
                self._retry_at = time.monotonic() + self._backoff.next_delay()
                raise
        except Exception as exc:
            if self._unavailable is None:
                raise
            raise self._unavailable(exc) from exc
        self._backoff.reset()
        self._retry_at = 0.0

    def q(self, sql: str) -> str:
        """``sql`` in this dialect's placeholder style (stores write ``?``)."""
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    @contextmanager
    def tx(self) -> Iterator[Cursor]:
        """One transaction under the connection's lock; rolls back on any exception."""
        with self._lock:
            if self.dialect == "sqlite":
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield Cursor(self)
                    self._conn.execute("COMMIT")
                except BaseException:
                    rollback(self._conn)  # a plain ROLLBACK would hide a disk-full error behind its own
                    raise
                return
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._reconnect()
            with self._conn.transaction():
                yield Cursor(self)

    @contextmanager
    def migration(self) -> Iterator[Cursor]:
        """A transaction for a store's DDL. On PostgreSQL it first takes a cluster-wide advisory lock: two
        replicas starting together both run ``CREATE ... IF NOT EXISTS``, and the loser of that race fails on
        the catalog's unique index instead of seeing the table (two plate indexers started at once crashed
        one of them on the watchlist table)."""
        with self.tx() as c:
            if self.dialect == "postgres":
                c.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK_KEY,))
            yield c

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """All rows of one query: a transaction of its own on PostgreSQL; on SQLite a plain read (WAL readers
        never wait for the writer, and ``BEGIN IMMEDIATE`` would make them)."""
        if self.dialect == "sqlite":
            with self._lock:
                return list(self._conn.execute(sql, params).fetchall())
        with self.tx() as c:
            return c.all(sql, params)

    def connection(self) -> Any:
        """The driver's connection, opened again first if it was lost: for a store whose SQL needs the driver
        itself (PostgreSQL COPY, SQLite FTS5 reads) while opening and reconnecting stay here."""
        with self._lock:
            if self.dialect == "postgres" and (self._conn is None or self._conn.closed or self._conn.broken):
                self._reconnect()
            return self._conn

    def backend_pid(self) -> int | None:
        """The PostgreSQL server process serving this connection (benchmarks measure its CPU); None on SQLite."""
        with self.tx():  # connected (a lazy or lost connection opens here)
            return int(self._conn.info.backend_pid) if self.dialect == "postgres" else None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()


class Cursor:
    """What a transaction hands to a store: run ``?``-style SQL on the transaction's connection."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the driver's cursor (``fetchone``, ``fetchall``, ``rowcount``)."""
        return self._db._conn.execute(self._db.q(sql), params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.execute(sql, params).fetchall())

    def script(self, ddl: str | Sequence[str]) -> None:
        """Run DDL (no placeholders) statement by statement: ``;``-separated text, or a list of statements
        (for bodies that hold ``;`` themselves, such as PostgreSQL functions)."""
        for stmt in ddl.split(";") if isinstance(ddl, str) else ddl:
            if stmt.strip():
                self._db._conn.execute(stmt)


class Store:
    """Base of the stores that share one :class:`Database`: each subclass adds its tables in :meth:`_migrate`
    (calling ``super()._migrate`` first), so a class that combines several stores creates all their tables."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        with db.migration() as c:
            self._migrate(c)

    @property
    def dialect(self) -> Dialect:
        return self._db.dialect

    def _migrate(self, c: Cursor) -> None:
        """Create this store's tables and indexes (idempotent)."""

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def close(self) -> None:
        self._db.close()
