"""Durable local outbox: every event is written here first and removed only once the broker acknowledged it.

Why SQLite (WAL) rather than an append-only file: insertion order, deletion
of acknowledged rows, blobs (snapshot JPEGs waiting for the object store) and
crash recovery all come for free and are well tested.

Why ``synchronous=FULL``: :meth:`Spool.append` returning is the promise that
the event survives anything, including a power cut. In WAL mode ``NORMAL``
survives a process kill (SIGKILL) but may lose the last commits on power loss
because it does not fsync the WAL on each commit; ``FULL`` does. Incidents are
rare events (tens a second per box at most), so the ~1 ms fsync per append is
affordable; :meth:`Spool.append_many` amortises it when a caller has several.
``durability="normal"`` is offered for benchmarks and tests, not for production.

A spool file found damaged at open is moved aside (kept), its readable records
are carried into a fresh file, and the process goes on, saying so in logs and
metrics (:mod:`event_bus.spool_recovery`).

A spool belongs to one process at a time: opening it takes an exclusive
``flock`` on ``<path>.lock`` (released by the kernel when the process dies,
SIGKILL included), so a restarted worker cannot run beside a stale one and
deliver the same rows twice in parallel.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.sqlite_tx import rollback
from event_bus import spool_recovery
from event_bus.interfaces import OutRecord
from event_bus.spool_recovery import Quarantine

log = logging.getLogger(__name__)

_RECORD_COLUMNS = """
    topic      TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      BLOB    NOT NULL,
    headers    TEXT    NOT NULL,
    blob       BLOB,
    blob_key   TEXT,
    size       INTEGER NOT NULL,
    created_ms INTEGER NOT NULL"""
"""A record's columns: the outbox's and, with why and when, the parked table's (a record moves between them)."""
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,{_RECORD_COLUMNS}
);
CREATE TABLE IF NOT EXISTS parked (
    id         INTEGER PRIMARY KEY,{_RECORD_COLUMNS},
    parked_ms  INTEGER NOT NULL,
    reason     TEXT    NOT NULL
);
"""


class SpoolFull(RuntimeError):
    """The spool reached its bound; the caller must slow down or fail loudly, the spool never drops."""


class SpoolLocked(RuntimeError):
    """Another live process holds this spool."""


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    """A record waiting for delivery; ``id`` orders records (insertion order) and is what :meth:`Spool.ack` takes."""

    id: int
    record: OutRecord
    blob: bytes | None
    blob_key: str | None
    created_ms: int


@dataclass(frozen=True, slots=True)
class SpoolStats:
    depth: int
    bytes: int
    appended: int
    acked: int
    rejected_full: int
    parked: int
    quarantined: bool  # this open found the file damaged and moved it aside (see event_bus.spool_recovery)
    salvaged: int  # records carried over from the damaged file
    max_records: int
    max_bytes: int


class Spool:
    """Thread-safe durable FIFO of :class:`OutRecord` (plus an optional blob each) on SQLite."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_records: int = 1_000_000,
        max_bytes: int = 2 * 1024**3,
        durability: Literal["full", "normal"] = "full",
        exclusive: bool = True,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._lock_fd: int | None = None
        if exclusive:
            self._lock_fd = self._take_lock()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # One connection guarded by a lock: SQLite serialises writers anyway, and
        # a single connection keeps the depth/bytes counters exact.
        self.quarantine: Quarantine | None = None
        try:
            self._db = self._open(durability)
            spool_recovery.check(self._db)
        except sqlite3.DatabaseError as exc:  # not a database, damaged pages: keep the file, salvage, go on
            with contextlib.suppress(Exception):
                self._db.close()
            moved, rows = spool_recovery.quarantine(self.path, f"{type(exc).__name__}: {exc}")
            self._db = self._open(durability)
            spool_recovery.restore(self._db, rows)
            self.quarantine = Quarantine(moved, f"{type(exc).__name__}: {exc}", len(rows))
        depth, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox").fetchone()
        self._depth: int = depth
        self._bytes: int = size
        self._parked: int = self._db.execute("SELECT COUNT(*) FROM parked").fetchone()[0]
        self._appended = 0
        self._acked = 0
        self._rejected = 0
        self._closed = False
        if depth:
            log.info("spool reopened with pending records", extra={"spool": str(self.path), "depth": depth})

    def _open(self, durability: str) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._db = db  # so a failure below can close it
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
        db.executescript(_SCHEMA)
        return db

    def _take_lock(self) -> int:
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolLocked(f"spool {self.path} is in use by another process") from None
        return fd

    # -- writing -----------------------------------------------------------------------------------------------

    def append(self, record: OutRecord, blob: bytes | None = None, blob_key: str | None = None) -> int:
        """Store one record durably (committed and fsynced before returning); returns its id.

        Raises :class:`SpoolFull` when the bound is reached: nothing is dropped silently.
        """
        return self.append_many([(record, blob, blob_key)])[0]

    def append_many(self, items: Sequence[tuple[OutRecord, bytes | None, str | None]]) -> list[int]:
        """Store several records in one transaction (one fsync); all or none are stored."""
        if not items:
            return []
        rows = []
        total = 0
        now_ms = int(time.time() * 1000)
        for record, blob, blob_key in items:
            if (blob is None) != (blob_key is None):
                raise ValueError("blob and blob_key go together")
            size = len(record.value) + len(record.key) + (len(blob) if blob else 0)
            total += size
            headers = json.dumps([[k, v.hex()] for k, v in record.headers])
            rows.append((record.topic, record.key, record.value, headers, blob, blob_key, size, now_ms))
        with self._cond:
            self._check_open()
            if self._depth + len(rows) > self.max_records or self._bytes + total > self.max_bytes:
                self._rejected += len(rows)
                raise SpoolFull(
                    f"spool {self.path} is full ({self._depth} records, {self._bytes} bytes; "
                    f"limits {self.max_records} records, {self.max_bytes} bytes): the broker or object store "
                    "has been unreachable too long"
                )
            ids = []
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    cur = self._db.execute(
                        "INSERT INTO outbox (topic, key, value, headers, blob, blob_key, size, created_ms) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        row,
                    )
                    assert cur.lastrowid is not None
                    ids.append(cur.lastrowid)
                self._db.execute("COMMIT")
            except BaseException:
                rollback(self._db)
                raise
            self._depth += len(rows)
            self._bytes += total
            self._appended += len(rows)
            self._cond.notify_all()
        return ids

    # -- reading -----------------------------------------------------------------------------------------------

    def peek(self, limit: int = 500) -> list[SpooledRecord]:
        """The oldest ``limit`` records, in insertion order, without removing them."""
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT id, topic, key, value, headers, blob, blob_key, created_ms FROM outbox ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        out = []
        for rid, topic, key, value, headers, blob, blob_key, created_ms in rows:
            hdrs = tuple((k, bytes.fromhex(v)) for k, v in json.loads(headers))
            out.append(
                SpooledRecord(
                    id=rid,
                    record=OutRecord(topic=topic, key=key, value=bytes(value), headers=hdrs),
                    blob=bytes(blob) if blob is not None else None,
                    blob_key=blob_key,
                    created_ms=created_ms,
                )
            )
        return out

    def ack(self, ids: Iterable[int]) -> int:
        """Remove delivered records; returns how many were removed (unknown ids are ignored)."""
        id_list = list(ids)
        if not id_list:
            return 0
        with self._cond:
            self._check_open()
            removed = 0
            freed = 0
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(id_list), 500):
                    chunk = id_list[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    count, size = self._db.execute(
                        f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox WHERE id IN ({marks})",  # noqa: S608
                        chunk,
                    ).fetchone()
                    self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)  # noqa: S608
                    removed += count
                    freed += size
                self._db.execute("COMMIT")
            except BaseException:
                rollback(self._db)
                raise
            self._depth -= removed
            self._bytes -= freed
            self._acked += removed
            self._cond.notify_all()
        return removed

    def park(self, record_id: int, reason: str) -> bool:
        """Move a record the broker refuses for good out of the queue, kept with the reason (never dropped).

        Why: the outbox delivers in order, so one record that can never be published (too large for the
        broker, say) would otherwise hold back every later one, incidents included. Parked records stay
        in the ``parked`` table of the spool file for an operator to inspect; ``SpoolStats.parked``
        counts them. Returns False when the id is not queued.
        """
        with self._cond:
            self._check_open()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                moved = self._db.execute(
                    "INSERT INTO parked (id, topic, key, value, headers, blob, blob_key, size, created_ms, "
                    "parked_ms, reason) SELECT id, topic, key, value, headers, blob, blob_key, size, created_ms, "
                    "?, ? FROM outbox WHERE id = ?",
                    (int(time.time() * 1000), reason[:2000], record_id),
                ).rowcount
                size = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM outbox WHERE id = ?", (record_id,))
                freed = int(size.fetchone()[0])
                self._db.execute("DELETE FROM outbox WHERE id = ?", (record_id,))
                self._db.execute("COMMIT")
            except BaseException:
                rollback(self._db)
                raise
            if moved:
                self._depth -= 1
                self._bytes -= freed
                self._parked += 1
                self._cond.notify_all()
        return bool(moved)

    def depth(self) -> int:
        """Records waiting for delivery."""
        with self._lock:
            return self._depth

    def wait(self, timeout_s: float) -> bool:
        """Block until the spool is non-empty (True) or the timeout passes (False); lets the relay idle cheaply."""
        with self._cond:
            return self._cond.wait_for(lambda: self._depth > 0 or self._closed, timeout=timeout_s) and not self._closed

    def wait_empty(self, timeout_s: float) -> bool:
        """Block until every record is acknowledged (True) or the timeout passes (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._depth == 0 or self._closed, timeout=timeout_s)

    def stats(self) -> SpoolStats:
        with self._lock:
            return SpoolStats(
                depth=self._depth,
                bytes=self._bytes,
                appended=self._appended,
                acked=self._acked,
                rejected_full=self._rejected,
                parked=self._parked,
                quarantined=self.quarantine is not None,
                salvaged=self.quarantine.salvaged if self.quarantine is not None else 0,
                max_records=self.max_records,
                max_bytes=self.max_bytes,
            )

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
            self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"spool {self.path} is closed")

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
