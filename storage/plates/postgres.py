"""Plate history in PostgreSQL: day partitions, COPY batches, a trigram-indexed plate dictionary.

Layout
------
``plate_reads`` is range-partitioned by day on ``observed_at`` (UTC days,
``plate_reads_pYYYYMMDD``). Retention drops whole partitions, which is
instantaneous and leaves no dead tuples, instead of deleting 170 million rows
a day. Time-bounded searches touch only the partitions of their range
(partition pruning). Indexes (declared on the parent, created on each
partition): ``(plate, observed_at DESC)`` for exact search and for fetching
the reads of candidate plates, ``(camera_id, observed_at DESC)`` for camera
timelines.

Idempotency: the primary key is ``(event_id, observed_at)``. PostgreSQL only
enforces uniqueness on a partitioned table when the key contains the partition
key, so ``event_id`` alone cannot be the key; but ``observed_at`` is part of
the event itself, so a re-delivered event (the only source of duplicates: the
bus is at-least-once) carries the same pair and lands in the same partition,
where the key rejects it (``ON CONFLICT DO NOTHING``). A separate dedupe table
keyed on ``event_id`` would cost a second index write per read and would have
to be pruned in step with the partitions, for no gain.

``plate_dictionary`` holds one row per distinct plate (first/last seen) with a
``pg_trgm`` GIN index on its OCR-folded form (``O->0, I->1, B->8, S->5,
Z->2``) and a B-tree on the same column. Fuzzy and wildcard searches find
candidate plates there, the B-tree answers "differs only by OCR confusions"
exactly, ``fuzzystrmatch.levenshtein_less_equal`` on the folded strings
prefilters soundly (it is a lower bound of the weighted distance), Python
ranks the few survivors with the weighted distance, and the reads come from
the ``(plate, observed_at)`` index.

Needs the ``pg_trgm`` and ``fuzzystrmatch`` extensions (contrib, shipped with
PostgreSQL); :meth:`PostgresHistoryStore.migrate` creates them when the role
may, else an administrator runs ``CREATE EXTENSION`` once.

Why one module over 400 lines: the PostgreSQL plate history is one schema (daily partitions, trigram
indexes) and the SQL that depends on it (COPY ingest, exact / wildcard / fuzzy search, retention);
keeping the DDL beside every query that relies on it is what makes a schema change safe.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg import sql

from core.redact import redact_text
from storage.db import Database
from storage.plates.query import SearchMode, ValidQuery
from storage.plates.store import (
    RECORD_COLUMNS,
    PlateReadRecord,
    RetentionReport,
    SearchPage,
    StoreError,
    capped,
    check_record,
    hit_from_row,
)
from storage.plates.text import DEFAULT_CONFUSIONS, fold, rank, trigram_threshold

log = logging.getLogger(__name__)

_PARTITION_RE = re.compile(r"^plate_reads_p(\d{8})$")
_LOCK_KEY = 0x6B757A6574  # "kuzet": serialises partition DDL between indexer instances

_HIT_COLUMNS = "r.event_id, r.observed_at, r.camera_id, r.plate, r.confidence, r.is_candidate, r.raw_text, r.snapshot"

_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS fuzzystrmatch;
CREATE TABLE IF NOT EXISTS plate_reads (
    event_id     uuid        NOT NULL,
    observed_at  timestamptz NOT NULL,
    camera_id    text        NOT NULL,
    plate        text        NOT NULL,
    raw_text     text        NOT NULL DEFAULT '',
    country      text        NOT NULL DEFAULT '',
    plate_format text        NOT NULL DEFAULT '',
    confidence   real        NOT NULL,
    is_candidate boolean     NOT NULL DEFAULT false,
    candidates   jsonb       NOT NULL DEFAULT '[]',
    boxes        jsonb       NOT NULL DEFAULT '{}',
    snapshot     jsonb,
    PRIMARY KEY (event_id, observed_at)
) PARTITION BY RANGE (observed_at);
CREATE INDEX IF NOT EXISTS plate_reads_plate_time ON plate_reads (plate, observed_at DESC);
CREATE INDEX IF NOT EXISTS plate_reads_camera_time ON plate_reads (camera_id, observed_at DESC);
CREATE TABLE IF NOT EXISTS plate_dictionary (
    plate        text        PRIMARY KEY,
    plate_folded text        NOT NULL,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS plate_dictionary_folded ON plate_dictionary (plate_folded);
CREATE INDEX IF NOT EXISTS plate_dictionary_trgm ON plate_dictionary USING gin (plate_folded gin_trgm_ops);
CREATE INDEX IF NOT EXISTS plate_dictionary_last_seen ON plate_dictionary (last_seen);
"""

_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS plate_reads_stage (
    event_id uuid, observed_at timestamptz, camera_id text, plate text, raw_text text, country text,
    plate_format text, confidence real, is_candidate boolean, candidates jsonb, boxes jsonb, snapshot jsonb
) ON COMMIT DELETE ROWS
"""


def pigeonhole_patterns(folded: str, edits: int) -> list[str] | None:
    """LIKE patterns of which every string within ``edits`` edits of ``folded`` matches at least one.

    Cut the query into ``edits + 1`` pieces; an edit (substitution, deletion, or insertion, counted
    against the piece after the gap) touches one piece, so some piece survives intact: the first one
    as a prefix (``P%``), the last as a suffix (``%P``), a middle one as a substring (``%P%``). Each
    pattern must give pg_trgm at least one trigram to look up (the blanks it pads a word with count at
    anchored ends), else the index cannot narrow it: then None (use the similarity threshold instead).
    Short pieces go first, where the two leading blanks make even two characters searchable.
    """
    n, parts = len(folded), edits + 1
    if edits < 1 or n < 3 * parts - 1:
        return None
    sizes = [n // parts + (1 if i >= parts - n % parts else 0) for i in range(parts)]  # short pieces first
    out, at = [], 0
    for i, size in enumerate(sizes):
        piece = folded[at : at + size]
        at += size
        if i == 0:
            ok = size >= 2
            out.append(piece + "%")
        elif i == parts - 1:
            ok = size >= 3
            out.append("%" + piece)
        else:
            ok = size >= 3
            out.append("%" + piece + "%")
        if not ok:
            return None
    return out


def partition_name(day: date) -> str:
    return f"plate_reads_p{day:%Y%m%d}"


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _fold_translate() -> tuple[str, str]:
    """``translate()`` arguments that fold like :func:`storage.plates.text.fold` (kept in step by a test)."""
    src = sorted({c for pair in DEFAULT_CONFUSIONS for c in pair})
    dst = fold("".join(src))
    keep = [(s, d) for s, d in zip(src, dst, strict=True) if s != d]
    return "".join(s for s, _ in keep), "".join(d for _, d in keep)


class PostgresHistoryStore:
    """Plate history on PostgreSQL 15+. Thread-safe (one connection, serialised); reconnects after a failure."""

    kind = "postgres"

    def __init__(
        self,
        conninfo: str,
        *,
        statement_timeout_ms: int = 10_000,
        connect_timeout_s: int = 10,
    ) -> None:
        self._statement_timeout_ms = statement_timeout_ms
        self._lock = threading.RLock()
        # opening and reconnecting: the one database layer (opened at first use, like the services expect)
        self._database = Database(
            conninfo,
            connect_timeout_s=connect_timeout_s,
            lazy=True,
            unavailable=lambda exc: StoreError(redact_text(f"plate history: cannot connect: {exc}")),
        )
        self._db: psycopg.Connection[Any] | None = None
        self._known_days: set[date] = set()
        self._fold_src, self._fold_dst = _fold_translate()

    # ------------------------------------------------------------------ plumbing
    def _connection(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] = self._database.connection()
        if conn is not self._db:  # a new connection (first or after a loss): partitions known are re-read
            self._db = conn
            self._known_days.clear()
        return conn

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction; database errors become :class:`StoreError` (rolled back, connection kept if sound)."""
        with self._lock:
            db = self._connection()
            try:
                with db.transaction(), db.cursor() as cur:
                    cur.execute("SELECT set_config('statement_timeout', %s, true)", (str(self._statement_timeout_ms),))
                    yield cur
            except psycopg.Error as exc:
                raise StoreError(redact_text(f"plate history: {type(exc).__name__}: {exc}".strip())) from exc

    def close(self) -> None:
        with self._lock:
            self._database.close()
            self._db = None

    def migrate(self) -> None:
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                cur.execute(statement)  # fixed DDL text, no user input

    # ------------------------------------------------------------------ partitions
    def partitions(self) -> list[tuple[str, date]]:
        """Existing day partitions, oldest first."""
        with self._tx() as cur:
            return self._partitions(cur)

    @staticmethod
    def _partitions(cur: psycopg.Cursor[Any]) -> list[tuple[str, date]]:
        cur.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('plate_reads')"
        )
        out = []
        for (name,) in cur.fetchall():
            m = _PARTITION_RE.match(name)
            if m:
                out.append((name, datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=UTC).date()))
        return sorted(out, key=lambda nd: nd[1])

    def _ensure_days(self, cur: psycopg.Cursor[Any], days: set[date]) -> list[str]:
        missing = days - self._known_days
        if not missing:
            return []
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        existing = {d for _, d in self._partitions(cur)}
        created = []
        for day in sorted(missing - existing):
            name = partition_name(day)
            cur.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF plate_reads FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(name), sql.Literal(_day_start(day)), sql.Literal(_day_start(day + timedelta(1)))
                )
            )
            created.append(name)
        self._known_days |= existing | missing
        return created

    def ensure_partitions(self, now: datetime, days_ahead: int = 3) -> list[str]:
        """Create today's and the next ``days_ahead`` partitions, so inserts never wait on DDL at midnight."""
        today = now.astimezone(UTC).date()
        with self._tx() as cur:
            created = self._ensure_days(cur, {today + timedelta(i) for i in range(days_ahead + 1)})
        if created:
            log.info("created plate partitions %s", ", ".join(created))
        return created

    # ------------------------------------------------------------------ writes
    def insert(self, reads: Sequence[PlateReadRecord]) -> int:
        """COPY the batch into a staging table, then one INSERT ... ON CONFLICT DO NOTHING into the partitions."""
        if not reads:
            return 0
        for r in reads:
            check_record(r)
        days = {r.observed_at.astimezone(UTC).date() for r in reads}
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in RECORD_COLUMNS)
        with self._tx() as cur:
            self._ensure_days(cur, days)
            cur.execute(_STAGE)
            with cur.copy(sql.SQL("COPY plate_reads_stage ({}) FROM STDIN").format(cols)) as copy:
                for r in reads:
                    copy.write_row(r.row())
            cur.execute(
                sql.SQL(
                    "INSERT INTO plate_reads ({cols}) SELECT DISTINCT ON (event_id, observed_at) {cols} "
                    "FROM plate_reads_stage ON CONFLICT DO NOTHING"
                ).format(cols=cols)
            )
            inserted = cur.rowcount
            # Sorted, so two indexers upserting overlapping plates lock rows in one order (no deadlock).
            cur.execute(
                "INSERT INTO plate_dictionary (plate, plate_folded, first_seen, last_seen) "
                "SELECT plate, translate(plate, %s, %s), min(observed_at), max(observed_at) "
                "FROM plate_reads_stage GROUP BY plate ORDER BY plate "
                "ON CONFLICT (plate) DO UPDATE SET "
                "first_seen = LEAST(plate_dictionary.first_seen, EXCLUDED.first_seen), "
                "last_seen = GREATEST(plate_dictionary.last_seen, EXCLUDED.last_seen) "
                "WHERE plate_dictionary.first_seen > EXCLUDED.first_seen "
                "OR plate_dictionary.last_seen < EXCLUDED.last_seen",
                (self._fold_src, self._fold_dst),
            )
        return inserted

    # ------------------------------------------------------------------ retention
    def apply_retention(self, days: int, now: datetime) -> RetentionReport:
        """Drop every day partition whose whole day is older than ``days`` before ``now``.

        Granularity is one day: a read is removed at the latest one day after it passed the age limit.
        Plates whose last sighting lies before the oldest kept day leave the dictionary.
        """
        if days < 1:
            raise ValueError("retention must keep at least one day")
        cutoff = now.astimezone(UTC) - timedelta(days=days)
        keep_from = cutoff.date()  # partitions ending at or before this midnight hold only expired reads
        dropped = []
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            for name, day in self._partitions(cur):
                if day + timedelta(1) <= keep_from:
                    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
                    dropped.append(name)
                    self._known_days.discard(day)
            cur.execute("DELETE FROM plate_dictionary WHERE last_seen < %s", (_day_start(keep_from),))
            forgotten = cur.rowcount
        return RetentionReport(
            cutoff=cutoff, reads_deleted=None, partitions_dropped=tuple(dropped), plates_forgotten=forgotten
        )

    # ------------------------------------------------------------------ reads
    def count(self) -> int:
        with self._tx() as cur:
            cur.execute("SELECT count(*) FROM plate_reads")
            row = cur.fetchone()
            return int(row[0]) if row else 0

    def find(self, query: ValidQuery) -> SearchPage:
        with self._tx() as cur:
            if query.mode is SearchMode.EXACT:
                return self._page(cur, [(query.plate, 0.0)], query, candidates=1)
            if query.mode is SearchMode.WILDCARD:
                plates = self._wildcard_candidates(cur, query)
                return self._page(cur, [(p, 0.0) for p in plates], query, candidates=len(plates))
            found = self._fuzzy_candidates(cur, query)
            ranked = rank(query.plate, found, query.max_distance)
            return self._page(cur, ranked, query, candidates=len(found))

    def _wildcard_candidates(self, cur: psycopg.Cursor[Any], query: ValidQuery) -> list[str]:
        cur.execute(
            "SELECT plate FROM plate_dictionary WHERE plate_folded LIKE %(lf)s AND plate LIKE %(l)s "
            "AND last_seen >= %(since)s AND first_seen < %(until)s LIMIT %(cap)s",
            {
                "lf": query.like_folded,
                "l": query.like,
                "since": query.since,
                "until": query.until,
                "cap": query.max_candidates + 1,
            },
            prepare=False,
        )
        return capped([p for (p,) in cur.fetchall()], query)

    def _fuzzy_candidates(self, cur: psycopg.Cursor[Any], query: ValidQuery) -> list[str]:
        edits = math.floor(query.max_distance + 1e-9)
        params: dict[str, Any] = {
            "qf": query.folded,
            "k": edits,
            "since": query.since,
            "until": query.until,
            "cap": query.max_candidates + 1,
        }
        pieces = pigeonhole_patterns(query.folded, edits)
        if edits == 0:
            cur.execute(
                "SELECT plate FROM plate_dictionary WHERE plate_folded = %(qf)s "
                "AND last_seen >= %(since)s AND first_seen < %(until)s LIMIT %(cap)s",
                params,
                prepare=False,  # a generic plan cannot see the pattern and may scan the whole dictionary
            )
        elif pieces is not None and edits >= 2:
            # Two or more edits: a trigram similarity threshold low enough to be sound matches half the
            # dictionary, so use the pigeonhole principle instead (see pigeonhole_patterns).
            params.update({f"p{i}": piece for i, piece in enumerate(pieces)})
            ors = " OR ".join(f"plate_folded LIKE %(p{i})s" for i in range(len(pieces)))
            cur.execute(
                f"SELECT plate FROM plate_dictionary WHERE ({ors} OR plate_folded = %(qf)s) "  # noqa: S608
                "AND levenshtein_less_equal(plate_folded, %(qf)s, %(k)s) <= %(k)s "
                "AND last_seen >= %(since)s AND first_seen < %(until)s LIMIT %(cap)s",
                params,
                prepare=False,  # a generic plan cannot see the pattern and may scan the whole dictionary
            )
        else:
            cur.execute(
                "SELECT set_config('pg_trgm.similarity_threshold', %s, true)",
                (f"{trigram_threshold(query.folded, edits):.3f}",),
            )
            cur.execute(
                "SELECT plate FROM plate_dictionary WHERE "
                "((plate_folded %% %(qf)s AND levenshtein_less_equal(plate_folded, %(qf)s, %(k)s) <= %(k)s) "
                "OR plate_folded = %(qf)s) "
                "AND last_seen >= %(since)s AND first_seen < %(until)s LIMIT %(cap)s",
                params,
                prepare=False,  # a generic plan cannot see the pattern and may scan the whole dictionary
            )
        return capped([p for (p,) in cur.fetchall()], query)

    def _page(
        self, cur: psycopg.Cursor[Any], ranked: list[tuple[str, float]], query: ValidQuery, candidates: int
    ) -> SearchPage:
        if not ranked:
            return SearchPage(hits=(), has_more=False, candidates=candidates)
        params: dict[str, Any] = {
            "since": query.since,
            "until": query.until,
            "cams": list(query.cameras),
            "lim": query.limit + 1,
            "off": query.offset,
        }
        camera_filter = sql.SQL("AND r.camera_id = ANY(%(cams)s)") if query.cameras else sql.SQL("")
        if len(ranked) == 1:
            params["plate"] = ranked[0][0]
            stmt = sql.SQL(
                "SELECT {hit}, %(dist)s::float8 FROM plate_reads r WHERE r.plate = %(plate)s "
                "AND r.observed_at >= %(since)s AND r.observed_at < %(until)s {cam} "
                "ORDER BY r.observed_at DESC, r.event_id DESC LIMIT %(lim)s OFFSET %(off)s"
            )
            params["dist"] = ranked[0][1]
        else:
            # Each candidate gives at most offset + limit + 1 of its newest reads: the lateral subquery walks its
            # day partitions newest first along (plate, observed_at) and stops there, so a candidate read ten
            # thousand times costs a page, not ten thousand heap fetches and a sort (the plain join fetched every
            # read of every candidate in the range). Same rows: a plate has one distance, so the global order
            # (distance, time, id) never needs more than a page of any one plate.
            params["plates"] = [p for p, _ in ranked]
            params["dists"] = [d for _, d in ranked]
            params["per_plate"] = query.offset + query.limit + 1
            stmt = sql.SQL(
                "SELECT {hit}, c.dist FROM unnest(%(plates)s::text[], %(dists)s::float8[]) AS c(plate, dist) "
                "CROSS JOIN LATERAL (SELECT {hit} FROM plate_reads r WHERE r.plate = c.plate "
                "AND r.observed_at >= %(since)s AND r.observed_at < %(until)s {cam} "
                "ORDER BY r.observed_at DESC, r.event_id DESC LIMIT %(per_plate)s) r "
                "ORDER BY c.dist, r.observed_at DESC, r.event_id DESC LIMIT %(lim)s OFFSET %(off)s"
            )
        cur.execute(stmt.format(hit=sql.SQL(_HIT_COLUMNS), cam=camera_filter), params, prepare=False)
        rows = cur.fetchall()
        hits = tuple(hit_from_row(row, row[1].astimezone(UTC)) for row in rows[: query.limit])
        return SearchPage(hits=hits, has_more=len(rows) > query.limit, candidates=candidates)
