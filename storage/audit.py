"""Append-only, hash-chained audit log (plate searches, watchlist changes) in PostgreSQL or SQLite.

Why a hash chain on top of "append-only" triggers: triggers stop the
application role and honest mistakes, but a database superuser can disable
them. Each row's hash covers the previous row's hash and the canonical JSON of
the row itself, so any edit, deletion or reordering of a past row breaks the
chain at that row and :func:`verify` names it. A rewrite with recomputed
hashes, or rows cut off the *end*, leave a valid chain: anchors kept outside
the database (:mod:`storage.audit_anchors`) catch those.

Why "fail closed": an investigator's search is only legitimate if it is on the
record. :meth:`AuditLog.append` raises :class:`AuditUnavailable` on any
failure, and the search function returns no results in that case.

Appends are serialised (an advisory lock in PostgreSQL, ``BEGIN IMMEDIATE`` in
SQLite; both through the one connection layer, :mod:`storage.db`) so two
concurrent searches cannot fork the chain, and ``seq`` is assigned as
previous + 1 (not a sequence with gaps), so a deleted row is also visible as
a gap.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg

from core.redact import redact_text
from storage.db import Database, is_postgres_url

GENESIS = "0" * 64
_LOCK_KEY = 0x6B757A6561  # serialises appends to the chain


class AuditUnavailable(RuntimeError):
    """The audit record could not be written; whatever it was meant to record must not happen."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What the caller states: who did what, why, and with what outcome."""

    actor: str
    role: str
    action: str
    outcome: str
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    result_count: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A stored row: the record plus its place in the chain."""

    seq: int
    at: datetime
    actor: str
    role: str
    action: str
    outcome: str
    reason: str
    details: str  # canonical JSON text, exactly as hashed
    result_count: int | None
    prev_hash: str
    hash: str

    def body(self) -> bytes:
        return canonical_body(
            self.seq,
            self.at,
            self.actor,
            self.role,
            self.action,
            self.outcome,
            self.reason,
            self.details,
            self.result_count,
        )


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept: one text per value, so its hash is reproducible anywhere."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_body(
    seq: int,
    at: datetime,
    actor: str,
    role: str,
    action: str,
    outcome: str,
    reason: str,
    details: str,
    result_count: int | None,
) -> bytes:
    row = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "role": role,
        "action": action,
        "outcome": outcome,
        "reason": reason,
        "details": details,
        "result_count": result_count,
    }
    return canonical_json(row).encode("utf-8")


def chain_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + body).hexdigest()


def _entry(prev_seq: int, prev_hash: str, rec: AuditRecord, at: datetime) -> AuditEntry:
    at = at.astimezone(UTC)
    details = canonical_json(dict(rec.details))
    seq = prev_seq + 1
    body = canonical_body(seq, at, rec.actor, rec.role, rec.action, rec.outcome, rec.reason, details, rec.result_count)
    return AuditEntry(
        seq=seq,
        at=at,
        actor=rec.actor,
        role=rec.role,
        action=rec.action,
        outcome=rec.outcome,
        reason=rec.reason,
        details=details,
        result_count=rec.result_count,
        prev_hash=prev_hash,
        hash=chain_hash(prev_hash, body),
    )


class AuditLog(Protocol):
    def migrate(self) -> None: ...

    def append(self, record: AuditRecord, at: datetime) -> AuditEntry:
        """Write one entry; raises :class:`AuditUnavailable` if it is not durably stored."""
        ...

    def entries(self, after_seq: int = 0, batch: int = 1000) -> Iterator[AuditEntry]:
        """All entries with ``seq > after_seq``, in order (streamed in batches)."""
        ...

    def close(self) -> None: ...


_PG_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq          bigint      PRIMARY KEY,
        at           timestamptz NOT NULL,
        actor        text        NOT NULL,
        role         text        NOT NULL,
        action       text        NOT NULL,
        outcome      text        NOT NULL,
        reason       text        NOT NULL,
        details      text        NOT NULL,
        result_count integer,
        prev_hash    text        NOT NULL,
        hash         text        NOT NULL
    )""",
    """CREATE OR REPLACE FUNCTION kuzet_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
    END $$""",
    """CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION kuzet_audit_append_only()""",
    """CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION kuzet_audit_append_only()""",
]
_COLS = "seq, at, actor, role, action, outcome, reason, details, result_count, prev_hash, hash"
_SQLITE_SCHEMA = [  # statements apart: the trigger bodies hold ';' themselves
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq          INTEGER PRIMARY KEY,
        at           TEXT    NOT NULL,
        actor        TEXT    NOT NULL,
        role         TEXT    NOT NULL,
        action       TEXT    NOT NULL,
        outcome      TEXT    NOT NULL,
        reason       TEXT    NOT NULL,
        details      TEXT    NOT NULL,
        result_count INTEGER,
        prev_hash    TEXT    NOT NULL,
        hash         TEXT    NOT NULL
    )""",
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END""",
]


class DatabaseAuditLog:
    """The audit log on :class:`storage.db.Database` (the one connection layer), PostgreSQL or SQLite alike.

    Appends are serialised by the transaction itself: ``BEGIN IMMEDIATE`` on SQLite, plus an advisory
    lock on PostgreSQL (several processes append to one chain there).
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def kind(self) -> str:
        return self._db.dialect

    @property
    def database(self) -> Database:
        return self._db

    def migrate(self) -> None:
        with self._db.tx() as c:
            if self._db.dialect == "postgres":
                c.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK_KEY,))
                c.script(_PG_SCHEMA)
            else:
                c.script(_SQLITE_SCHEMA)

    def append(self, record: AuditRecord, at: datetime) -> AuditEntry:
        try:
            with self._db.tx() as c:
                if self._db.dialect == "postgres":
                    c.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK_KEY,))
                row = c.one("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                entry = _entry(row[0] if row else 0, row[1] if row else GENESIS, record, at)
                values = list(_values(entry))
                if self._db.dialect == "sqlite":
                    values[1] = entry.at.isoformat(timespec="microseconds")
                c.execute(f"INSERT INTO audit_log ({_COLS}) VALUES ({', '.join('?' * 11)})", values)  # noqa: S608
            return entry
        except (psycopg.Error, sqlite3.Error) as exc:
            raise AuditUnavailable(redact_text(f"audit log not writable: {type(exc).__name__}: {exc}")) from exc

    def entries(self, after_seq: int = 0, batch: int = 1000) -> Iterator[AuditEntry]:
        last = after_seq
        while True:
            rows = self._db.read(
                f"SELECT {_COLS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608
                (last, batch),
            )
            if not rows:
                return
            for row in rows:
                yield _from_row(row)
            last = rows[-1][0]

    def close(self) -> None:
        self._db.close()


class PostgresAuditLog(DatabaseAuditLog):
    """The audit log in PostgreSQL, opened at first use (a service starts while the server is down)."""

    def __init__(self, conninfo: str, *, connect_timeout_s: int = 10) -> None:
        super().__init__(Database(conninfo, connect_timeout_s=connect_timeout_s, lazy=True))


class SqliteAuditLog(DatabaseAuditLog):
    """The audit log in a SQLite file (one box), synced on every commit: a row a power cut can lose is no record."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(Database(Path(str(path)), durable=True))


def open_audit_log(url: str | Path) -> DatabaseAuditLog:
    """The audit log at a PostgreSQL URL or SQLite path (``sqlite:///`` prefix allowed): the one factory."""
    if is_postgres_url(url):
        return PostgresAuditLog(str(url))
    return SqliteAuditLog(str(url).removeprefix("sqlite:///").removeprefix("sqlite://"))


def _values(e: AuditEntry) -> tuple[Any, ...]:
    return (
        e.seq,
        e.at,
        e.actor,
        e.role,
        e.action,
        e.outcome,
        e.reason,
        e.details,
        e.result_count,
        e.prev_hash,
        e.hash,
    )


def _from_row(row: Any) -> AuditEntry:
    seq, at, actor, role, action, outcome, reason, details, result_count, prev_hash, hash_ = row
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return AuditEntry(
        seq=int(seq),
        at=at.astimezone(UTC),
        actor=actor,
        role=role,
        action=action,
        outcome=outcome,
        reason=reason,
        details=details,
        result_count=None if result_count is None else int(result_count),
        prev_hash=prev_hash,
        hash=hash_,
    )


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of :func:`verify`: ``first_bad_seq`` is the first row that does not belong to the chain."""

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


def verify(
    log: AuditLog, anchor: tuple[int, str] | None = None, anchors: Sequence[tuple[int, str]] = ()
) -> VerifyReport:
    """Walk the whole chain; stop at the first row whose sequence, link or hash is wrong.

    ``anchor`` and ``anchors`` (seq, hash), recorded outside the database (by hand, or by
    :mod:`storage.audit_anchors`), must still be in the chain with the same hash: that catches a chain
    rewritten with recomputed hashes, and rows removed from the end, which the chain alone cannot show.
    """
    pinned = dict(anchors)
    if anchor is not None:
        pinned[anchor[0]] = anchor[1]
    prev_seq, prev_hash, checked = 0, GENESIS, 0
    try:
        for e in log.entries():
            checked += 1
            problem = None
            if e.seq != prev_seq + 1:
                problem = f"sequence gap: expected {prev_seq + 1}, found {e.seq} (rows removed)"
            elif e.prev_hash != prev_hash:
                problem = "prev_hash does not match the previous row's hash (a row before it was changed or removed)"
            elif chain_hash(e.prev_hash, e.body()) != e.hash:
                problem = "row content does not match its hash (the row was edited)"
            if problem is not None:
                return VerifyReport(False, checked, prev_seq, prev_hash, first_bad_seq=e.seq, problem=problem)
            want = pinned.get(e.seq)
            if want is not None and e.hash != want:
                return VerifyReport(
                    False,
                    checked,
                    e.seq,
                    e.hash,
                    first_bad_seq=e.seq,
                    problem="hash differs from the anchor (the chain was rewritten)",
                )
            prev_seq, prev_hash = e.seq, e.hash
    except (psycopg.Error, sqlite3.Error) as exc:
        raise AuditUnavailable(redact_text(f"audit log not readable: {exc}")) from exc
    missing = sorted(seq for seq in pinned if seq > prev_seq)
    if missing:
        return VerifyReport(
            False,
            checked,
            prev_seq,
            prev_hash,
            first_bad_seq=missing[0],
            problem=f"anchor row {missing[0]} is missing (rows removed from the end)",
        )
    return VerifyReport(True, checked, prev_seq, prev_hash)
