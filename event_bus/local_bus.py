"""Embedded bus for one box: the Publisher/Subscriber interfaces on one SQLite file, no broker needed.

One table holds the log of every topic (``offset`` is a global autoincrement,
so it is monotonic per topic too); a second table holds each group's
committed position per topic. Because it is a file in WAL mode, it works
across processes: the worker publishes from one, the console reads in
another. Semantics match what consumers expect from Kafka where they matter:
per-topic order, at-least-once with explicit commits, a group resumes where it
committed, a new group starts at the beginning (or the end). Everything is
one partition (0); a group is meant to have one member on one box.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from core.redact import redact_text
from core.sqlite_tx import rollback
from event_bus.interfaces import DeliveryError, InRecord, OutRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    "offset" INTEGER PRIMARY KEY AUTOINCREMENT,
    topic    TEXT    NOT NULL,
    key      TEXT,
    value    BLOB    NOT NULL,
    headers  TEXT    NOT NULL,
    ts_ms    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS log_topic ON log (topic, "offset");
CREATE TABLE IF NOT EXISTS group_offsets (
    grp      TEXT    NOT NULL,
    topic    TEXT    NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (grp, topic)
);
"""


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL: the local bus sits behind the durable spool, which keeps a record until this commit returns;
    # a power cut may lose the newest rows of the log but never a record the spool has not handed over.
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    return db


class LocalBusPublisher:
    """Appends records to the local log; one transaction per :meth:`publish` call."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = _connect(self.path)
        self._lock = threading.Lock()

    def publish(self, records: Sequence[OutRecord]) -> list[DeliveryError | None]:
        if not records:
            return []
        now_ms = int(time.time() * 1000)
        rows = [(r.topic, r.key, r.value, json.dumps([[k, v.hex()] for k, v in r.headers]), now_ms) for r in records]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT INTO log (topic, key, value, headers, ts_ms) VALUES (?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                rollback(self._db)
                err = DeliveryError(redact_text(f"local bus write failed: {exc}"))
                return [err] * len(records)
        return [None] * len(records)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class LocalBusSubscriber:
    """Reads topics from the local log as member of ``group`` (None: no committed offsets).

    ``since_ms`` (group-less only): start after the last record written before that time, as the Kafka
    subscriber seeks by time.
    """

    def __init__(
        self,
        path: Path | str,
        topics: Sequence[str],
        group: str | None,
        *,
        from_beginning: bool = True,
        poll_interval_s: float = 0.05,
        since_ms: int | None = None,
    ) -> None:
        if since_ms is not None and group is not None:
            raise ValueError("since_ms is for a reader without a consumer group")
        self.path = Path(path)
        self.group = group
        self.topics = list(topics)
        self.poll_interval_s = poll_interval_s
        self._db = _connect(self.path)
        self._positions: dict[str, int] = {}  # next offset to read is > position
        self._uncommitted: dict[str, int] = {}
        for topic in self.topics:
            committed = None
            if group is not None:
                row = self._db.execute(
                    "SELECT position FROM group_offsets WHERE grp = ? AND topic = ?", (group, topic)
                ).fetchone()
                committed = row[0] if row else None
            if committed is not None:
                self._positions[topic] = committed
            elif since_ms is not None:
                row = self._db.execute(
                    'SELECT COALESCE(MAX("offset"), 0) FROM log WHERE topic = ? AND ts_ms < ?', (topic, since_ms)
                ).fetchone()
                self._positions[topic] = row[0]
            elif from_beginning:
                self._positions[topic] = 0
            else:
                row = self._db.execute(
                    'SELECT COALESCE(MAX("offset"), 0) FROM log WHERE topic = ?', (topic,)
                ).fetchone()
                self._positions[topic] = row[0]

    def poll(self, timeout_s: float, max_records: int = 500) -> list[InRecord]:
        """Records after this subscriber's position, oldest first; waits up to ``timeout_s`` for some."""
        deadline = time.monotonic() + timeout_s
        while True:
            out = self._read(max_records)
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(min(self.poll_interval_s, max(0.0, deadline - time.monotonic())))

    def _read(self, max_records: int) -> list[InRecord]:
        where = " OR ".join('(topic = ? AND "offset" > ?)' for _ in self.topics)
        params: list[object] = []
        for t in self.topics:
            params += [t, self._positions[t]]
        rows = self._db.execute(
            f'SELECT "offset", topic, key, value, headers, ts_ms FROM log WHERE {where} '  # noqa: S608
            'ORDER BY "offset" LIMIT ?',
            [*params, max_records],
        ).fetchall()
        out = []
        for offset, topic, key, value, headers, ts_ms in rows:
            out.append(
                InRecord(
                    topic=topic,
                    partition=0,
                    offset=offset,
                    key=key,
                    value=bytes(value),
                    timestamp_ms=ts_ms,
                    headers=tuple((k, bytes.fromhex(v)) for k, v in json.loads(headers)),
                )
            )
            self._positions[topic] = offset
            self._uncommitted[topic] = offset
        return out

    def commit(self) -> None:
        """Store the positions of everything polled so far for this group (durable, visible to other processes)."""
        if self.group is None or not self._uncommitted:
            self._uncommitted.clear()
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for topic, pos in self._uncommitted.items():
                self._db.execute(
                    "INSERT INTO group_offsets (grp, topic, position) VALUES (?, ?, ?) "
                    "ON CONFLICT (grp, topic) DO UPDATE SET position = excluded.position",
                    (self.group, topic, pos),
                )
            self._db.execute("COMMIT")
        except BaseException:
            rollback(self._db)
            raise
        self._uncommitted.clear()

    def close(self) -> None:
        self._db.close()
