"""Plate history in SQLite for one box: the same interface as PostgreSQL, FTS5 trigram for fuzzy and wildcard.

Times are stored as integer microseconds since the epoch (UTC), so ordering and
range filters are plain integer comparisons on the ``(plate, t)`` and
``(camera_id, t)`` indexes. ``event_id`` is the primary key: a re-delivered
read is ignored (``INSERT OR IGNORE``). The plate dictionary has an FTS5 index
with the ``trigram`` tokenizer on the OCR-folded plate (external content, kept
in step by triggers); fuzzy search asks it for plates sharing trigrams with
the folded query, wildcard search uses its ``LIKE`` support, and Python ranks
the candidates by weighted edit distance. Retention is a ``DELETE`` (one box
holds far fewer reads than a city, and SQLite has no partitions).
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.sqlite_tx import rollback
from storage.db import Database
from storage.plates.query import SearchMode, ValidQuery
from storage.plates.store import (
    PlateReadRecord,
    RetentionReport,
    SearchPage,
    StoreError,
    capped,
    check_record,
    hit_from_row,
)
from storage.plates.text import fold, rank

_SCHEMA = """
CREATE TABLE IF NOT EXISTS plate_reads (
    event_id     TEXT    PRIMARY KEY,
    t            INTEGER NOT NULL,
    camera_id    TEXT    NOT NULL,
    plate        TEXT    NOT NULL,
    raw_text     TEXT    NOT NULL DEFAULT '',
    country      TEXT    NOT NULL DEFAULT '',
    plate_format TEXT    NOT NULL DEFAULT '',
    confidence   REAL    NOT NULL,
    is_candidate INTEGER NOT NULL DEFAULT 0,
    candidates   TEXT    NOT NULL DEFAULT '[]',
    boxes        TEXT    NOT NULL DEFAULT '{}',
    snapshot     TEXT
);
CREATE INDEX IF NOT EXISTS plate_reads_plate_t ON plate_reads (plate, t DESC);
CREATE INDEX IF NOT EXISTS plate_reads_camera_t ON plate_reads (camera_id, t DESC);
CREATE INDEX IF NOT EXISTS plate_reads_t ON plate_reads (t);
CREATE TABLE IF NOT EXISTS plate_dictionary (
    id           INTEGER PRIMARY KEY,
    plate        TEXT    NOT NULL UNIQUE,
    plate_folded TEXT    NOT NULL,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS plate_dictionary_folded ON plate_dictionary (plate_folded);
CREATE INDEX IF NOT EXISTS plate_dictionary_last_seen ON plate_dictionary (last_seen);
CREATE VIRTUAL TABLE IF NOT EXISTS plate_dictionary_fts USING fts5(
    plate_folded, content='plate_dictionary', content_rowid='id', tokenize='trigram'
);
CREATE TRIGGER IF NOT EXISTS plate_dictionary_ai AFTER INSERT ON plate_dictionary BEGIN
    INSERT INTO plate_dictionary_fts (rowid, plate_folded) VALUES (new.id, new.plate_folded);
END;
CREATE TRIGGER IF NOT EXISTS plate_dictionary_ad AFTER DELETE ON plate_dictionary BEGIN
    INSERT INTO plate_dictionary_fts (plate_dictionary_fts, rowid, plate_folded)
    VALUES ('delete', old.id, old.plate_folded);
END;
"""


def to_us(t: datetime) -> int:
    """Microseconds since the epoch (UTC), exact (no float rounding)."""
    if t.tzinfo is None:
        raise ValueError("naive datetime")
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _trigrams(text: str) -> list[str]:
    return sorted({text[i : i + 3] for i in range(len(text) - 2)})


class SqliteHistoryStore:
    """Plate history in one SQLite file (WAL), safe to share between threads of one process."""

    kind = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._database = Database(self.path)  # opened by the one database layer (WAL, synchronous=NORMAL)
        self._db: sqlite3.Connection = self._database.connection()
        self._lock = threading.RLock()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    rollback(self._db)  # a plain ROLLBACK would hide a disk-full error behind its own
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"plate history (sqlite): {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def migrate(self) -> None:
        with self._lock:
            try:
                self._db.executescript(_SCHEMA)
            except sqlite3.Error as exc:
                raise StoreError(f"plate history (sqlite): {exc}") from exc

    def ensure_partitions(self, now: datetime, days_ahead: int = 3) -> list[str]:
        """Nothing to create: SQLite keeps reads in one table."""
        return []

    def insert(self, reads: Sequence[PlateReadRecord]) -> int:
        if not reads:
            return 0
        for r in reads:
            check_record(r)
        # sqlite3 binds neither UUIDs nor datetimes: the id as text, the time as microseconds (see to_us)
        rows = [(str(r.event_id), to_us(r.observed_at), *r.row()[2:]) for r in reads]
        seen: dict[str, tuple[int, int]] = {}
        for r in reads:
            t = to_us(r.observed_at)
            lo, hi = seen.get(r.plate, (t, t))
            seen[r.plate] = (min(lo, t), max(hi, t))
        with self._tx() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO plate_reads (event_id, t, camera_id, plate, raw_text, country, plate_format, "
                "confidence, is_candidate, candidates, boxes, snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            inserted = db.total_changes - before
            db.executemany(
                "INSERT INTO plate_dictionary (plate, plate_folded, first_seen, last_seen) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (plate) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen), "
                "last_seen = max(last_seen, excluded.last_seen)",
                [(p, fold(p), lo, hi) for p, (lo, hi) in sorted(seen.items())],
            )
        return inserted

    def apply_retention(self, days: int, now: datetime) -> RetentionReport:
        """Delete reads observed more than ``days`` before ``now`` (exact to the microsecond)."""
        if days < 1:
            raise ValueError("retention must keep at least one day")
        cutoff = now.astimezone(UTC) - timedelta(days=days)
        with self._tx() as db:
            deleted = db.execute("DELETE FROM plate_reads WHERE t < ?", (to_us(cutoff),)).rowcount
            forgotten = db.execute("DELETE FROM plate_dictionary WHERE last_seen < ?", (to_us(cutoff),)).rowcount
        return RetentionReport(cutoff=cutoff, reads_deleted=deleted, plates_forgotten=forgotten)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM plate_reads").fetchone()[0])

    def find(self, query: ValidQuery) -> SearchPage:
        with self._lock:
            try:
                if query.mode is SearchMode.EXACT:
                    return self._page([(query.plate, 0.0)], query, 1)
                if query.mode is SearchMode.WILDCARD:
                    plates = self._wildcard_candidates(query)
                    return self._page([(p, 0.0) for p in plates], query, len(plates))
                found = self._fuzzy_candidates(query)
                return self._page(rank(query.plate, found, query.max_distance), query, len(found))
            except sqlite3.Error as exc:
                raise StoreError(f"plate history (sqlite): {exc}") from exc

    def _window(self, query: ValidQuery) -> tuple[int, int]:
        return to_us(query.since), to_us(query.until)

    def _wildcard_candidates(self, query: ValidQuery) -> list[str]:
        since, until = self._window(query)
        rows = self._db.execute(
            "SELECT d.plate FROM plate_dictionary_fts f JOIN plate_dictionary d ON d.id = f.rowid "
            "WHERE f.plate_folded LIKE ? AND d.plate LIKE ? AND d.last_seen >= ? AND d.first_seen < ? LIMIT ?",
            (query.like_folded, query.like, since, until, query.max_candidates + 1),
        ).fetchall()
        return capped([p for (p,) in rows], query)

    def _fuzzy_candidates(self, query: ValidQuery) -> list[str]:
        since, until = self._window(query)
        cap = query.max_candidates + 1
        plates = {
            p
            for (p,) in self._db.execute(
                "SELECT plate FROM plate_dictionary WHERE plate_folded = ? AND last_seen >= ? AND first_seen < ? "
                "LIMIT ?",
                (query.folded, since, until, cap),
            )
        }
        edits = math.floor(query.max_distance + 1e-9)
        grams = _trigrams(query.folded)
        if edits and grams:
            # Each edit breaks at most three trigrams; a plate within `edits` keeps at least this many.
            need = max(1, len(grams) - 3 * edits)
            match = " OR ".join(f'"{g}"' for g in grams)  # grams hold only [A-Z0-9]: no FTS syntax can leak in
            rows = self._db.execute(
                "SELECT d.plate, d.plate_folded FROM plate_dictionary_fts f JOIN plate_dictionary d ON d.id = f.rowid "
                "WHERE plate_dictionary_fts MATCH ? AND d.last_seen >= ? AND d.first_seen < ? LIMIT ?",
                (match, since, until, cap * 4),
            ).fetchall()
            qset = set(grams)
            for plate, folded in rows:
                if len(qset.intersection(_trigrams(folded))) >= need:
                    plates.add(plate)
        return capped(sorted(plates), query)

    def _page(self, ranked: list[tuple[str, float]], query: ValidQuery, candidates: int) -> SearchPage:
        if not ranked:
            return SearchPage(hits=(), has_more=False, candidates=candidates)
        since, until = self._window(query)
        values = ",".join("(?, ?)" for _ in ranked)
        params: list[Any] = [v for pd in ranked for v in pd] + [since, until]
        camera_sql = ""
        if query.cameras:
            camera_sql = f" AND r.camera_id IN ({','.join('?' * len(query.cameras))})"
            params += list(query.cameras)
        params += [query.limit + 1, query.offset]
        sql_text = (
            f"WITH c(plate, dist) AS (VALUES {values}) "  # noqa: S608  (placeholders only; values are parameters)
            "SELECT r.event_id, r.t, r.camera_id, r.plate, r.confidence, r.is_candidate, r.raw_text, r.snapshot, "
            "c.dist FROM c JOIN plate_reads r ON r.plate = c.plate "
            f"WHERE r.t >= ? AND r.t < ?{camera_sql} ORDER BY c.dist, r.t DESC, r.event_id DESC LIMIT ? OFFSET ?"
        )
        rows = self._db.execute(sql_text, params).fetchall()
        hits = [hit_from_row(row, from_us(row[1])) for row in rows]
        return SearchPage(hits=tuple(hits[: query.limit]), has_more=len(hits) > query.limit, candidates=candidates)
