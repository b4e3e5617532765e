"""Incident workflow state, console users, sessions and API tokens: PostgreSQL at scale, SQLite on one box.

Why this shape:

* One :class:`WorkflowStore` class, two SQL dialects. The SQL is written once
  with ``?`` placeholders and portable types (times are epoch milliseconds in
  ``BIGINT``, JSON is text), so both backends run the same statements and the
  same tests; only DDL identity columns and the placeholder style differ.
* Every change to an incident (a detection event from the bus or a
  dispatcher's action) bumps a store-wide revision counter and stamps the row
  with it. The console's live feed uses that revision as the SSE event id, so
  a browser that reconnects with ``Last-Event-ID: n`` is sent exactly the
  incidents that changed after ``n`` — each once, in its current state — and
  the replay survives a console restart because it comes from the database.
  Writes are serialised by a lock, so revisions commit in order.
* Transitions are validated by one pure function, :func:`next_status`, which
  the store applies inside the same transaction that records who did what and
  when (``wf_actions``): the history is the audit of the workflow.
* Storage does not import ``event_bus`` (the flow goes the other way): the
  console converts each ``Incident`` event to a :class:`DetectionUpdate`.
* Passwords are argon2id hashes (argon2-cffi); session and API tokens are
  random and only their sha256 is stored, so a leaked database holds nothing
  that logs anyone in.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.sqlite_tx import rollback

__all__ = [
    "Action",
    "ActionRecord",
    "CameraHealth",
    "ConflictError",
    "DetectionUpdate",
    "IncidentFilter",
    "IncidentRecord",
    "InvalidInput",
    "NotFoundError",
    "Role",
    "Session",
    "TransitionError",
    "User",
    "UserError",
    "WorkflowStatus",
    "WorkflowStore",
    "next_status",
    "open_workflow_store",
]


class Role(StrEnum):
    DISPATCHER = "dispatcher"
    INVESTIGATOR = "investigator"
    ADMIN = "admin"


class WorkflowStatus(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    FALSE_ALARM = "false_alarm"


CLOSED = frozenset({WorkflowStatus.RESOLVED, WorkflowStatus.FALSE_ALARM})


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    NOTE = "note"
    RESOLVE = "resolve"
    FALSE_ALARM = "false_alarm"
    REOPEN = "reopen"


class TransitionError(ValueError):
    """The action is not allowed in the incident's current status (or not for this role)."""


class NotFoundError(KeyError):
    """No such incident (or user)."""


class ConflictError(RuntimeError):
    """The incident changed since the caller read it (``expected_version`` did not match)."""


class InvalidInput(ValueError):
    """An action's input is unusable (empty or oversized note, unknown assignee): nothing was stored."""


class UserError(ValueError):
    """A user cannot be created or changed as asked (bad name, duplicate, unknown role)."""


WORKFLOW_ROLES = frozenset({Role.DISPATCHER, Role.ADMIN})
NOTE_MAX = 2000
USERNAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def next_status(current: WorkflowStatus, action: Action, role: Role) -> WorkflowStatus:
    """The status after ``action``; raises :class:`TransitionError` when the action is not allowed.

    Closing (resolve or false alarm) needs an acknowledgement first, so that
    every closed incident was looked at by someone who said so; an admin may
    skip that (bulk clean-up of a misconfigured camera). Only an admin reopens.
    """
    if role not in WORKFLOW_ROLES:
        raise TransitionError(f"role {role.value} cannot change incidents")
    if action is Action.NOTE:
        return current
    if action is Action.ACKNOWLEDGE:
        if current is WorkflowStatus.NEW:
            return WorkflowStatus.ACKNOWLEDGED
        raise TransitionError(f"cannot acknowledge an incident that is {current.value}")
    if action is Action.ASSIGN:
        if current in CLOSED:
            raise TransitionError(f"cannot assign an incident that is {current.value}")
        return current
    if action in (Action.RESOLVE, Action.FALSE_ALARM):
        target = WorkflowStatus.RESOLVED if action is Action.RESOLVE else WorkflowStatus.FALSE_ALARM
        if current is WorkflowStatus.ACKNOWLEDGED:
            return target
        if current is WorkflowStatus.NEW:
            if role is Role.ADMIN:
                return target
            raise TransitionError(f"acknowledge the incident before marking it {target.value}")
        raise TransitionError(f"incident is already {current.value}")
    if action is Action.REOPEN:
        if role is not Role.ADMIN:
            raise TransitionError("only an admin can reopen an incident")
        if current in CLOSED:
            return WorkflowStatus.ACKNOWLEDGED
        raise TransitionError(f"cannot reopen an incident that is {current.value}")
    raise TransitionError(f"unknown action {action!r}")  # pragma: no cover - exhaustive above


def clean_note(text: str) -> str:
    """A note as stored: plain text, trimmed, no control characters, bounded. It is never interpreted as HTML."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n")).strip()
    if not text:
        raise InvalidInput("a note needs some text")
    if len(text) > NOTE_MAX:
        raise InvalidInput(f"a note holds at most {NOTE_MAX} characters")
    return text


# -- records ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DetectionUpdate:
    """What the detection side says about an incident (one event of its start / update / end)."""

    event_id: str
    incident_id: str
    type: str
    state: str  # start / update / end
    seq: int
    camera_id: str
    camera_name: str
    location: str
    zone: str | None
    severity: str
    started_at_ms: int
    observed_at_ms: int
    ended_at_ms: int | None
    confidence: float
    snapshot: dict[str, Any] | None
    worker_id: str


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    incident_id: str
    type: str
    severity: str
    camera_id: str
    camera_name: str
    location: str
    zone: str | None
    detection_state: str
    seq: int
    started_at_ms: int
    observed_at_ms: int
    ended_at_ms: int | None
    confidence: float
    snapshot: dict[str, Any] | None
    worker_id: str
    status: WorkflowStatus
    assignee: str | None
    acknowledged_by: str | None
    acknowledged_at_ms: int | None
    closed_by: str | None
    closed_at_ms: int | None
    created_at_ms: int
    updated_at_ms: int
    events: int
    notes: int
    version: int
    rev: int

    def to_json(self) -> dict[str, Any]:
        """The card the console and the API show (snapshot reduced to whether there is one)."""
        return {
            "incident_id": self.incident_id,
            "type": self.type,
            "severity": self.severity,
            "camera_id": self.camera_id,
            "camera_name": self.camera_name,
            "location": self.location,
            "zone": self.zone,
            "detection_state": self.detection_state,
            "started_at_ms": self.started_at_ms,
            "observed_at_ms": self.observed_at_ms,
            "ended_at_ms": self.ended_at_ms,
            "confidence": round(self.confidence, 3),
            "has_snapshot": self.snapshot is not None,
            "worker_id": self.worker_id,
            "status": self.status.value,
            "assignee": self.assignee,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at_ms": self.acknowledged_at_ms,
            "closed_by": self.closed_by,
            "closed_at_ms": self.closed_at_ms,
            "updated_at_ms": self.updated_at_ms,
            "events": self.events,
            "notes": self.notes,
            "version": self.version,
            "rev": self.rev,
        }


@dataclass(frozen=True, slots=True)
class ActionRecord:
    id: int
    incident_id: str
    action: Action
    actor: str
    role: Role
    at_ms: int
    from_status: WorkflowStatus
    to_status: WorkflowStatus
    note: str | None
    assignee: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "incident_id": self.incident_id,
            "action": self.action.value,
            "actor": self.actor,
            "role": self.role.value,
            "at_ms": self.at_ms,
            "from_status": self.from_status.value,
            "to_status": self.to_status.value,
            "note": self.note,
            "assignee": self.assignee,
        }


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    """Filters for listing incidents after the fact; every list is ANDed, values inside one are ORed."""

    types: Sequence[str] = ()
    severities: Sequence[str] = ()
    statuses: Sequence[str] = ()
    camera_ids: Sequence[str] = ()
    camera_patterns: Sequence[str] = ()  # glob patterns (``*``) over camera ids: camera groups
    since_ms: int | None = None
    until_ms: int | None = None
    assignee: str | None = None
    before: tuple[int, str] | None = None  # page cursor: (started_at_ms, incident_id) of the last row seen
    limit: int = 100


@dataclass(frozen=True, slots=True)
class CameraHealth:
    camera_id: str
    state: str
    reason: str
    input_fps: float
    analysed_fps: float
    last_frame_at_ms: int | None
    reconnects: int
    worker_id: str
    at_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "camera_id": self.camera_id,
            "state": self.state,
            "reason": self.reason,
            "input_fps": round(self.input_fps, 2),
            "analysed_fps": round(self.analysed_fps, 2),
            "last_frame_at_ms": self.last_frame_at_ms,
            "reconnects": self.reconnects,
            "worker_id": self.worker_id,
            "at_ms": self.at_ms,
        }


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: Role
    display_name: str
    disabled: bool
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf_token: str
    expires_at_ms: int
    via: str = field(default="session")  # "session" (cookie, needs CSRF) or "token" (bearer, no ambient credential)


# -- SQL ------------------------------------------------------------------------------------------------------------

_DDL_COMMON = """
CREATE TABLE IF NOT EXISTS wf_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS wf_incidents (
    incident_id        TEXT PRIMARY KEY,
    type               TEXT NOT NULL,
    severity           TEXT NOT NULL,
    camera_id          TEXT NOT NULL,
    camera_name        TEXT NOT NULL,
    location           TEXT NOT NULL,
    zone               TEXT,
    detection_state    TEXT NOT NULL,
    seq                BIGINT NOT NULL,
    started_at_ms      BIGINT NOT NULL,
    observed_at_ms     BIGINT NOT NULL,
    ended_at_ms        BIGINT,
    confidence         DOUBLE PRECISION NOT NULL,
    snapshot           TEXT,
    worker_id          TEXT NOT NULL,
    status             TEXT NOT NULL,
    assignee           TEXT,
    acknowledged_by    TEXT,
    acknowledged_at_ms BIGINT,
    closed_by          TEXT,
    closed_at_ms       BIGINT,
    created_at_ms      BIGINT NOT NULL,
    updated_at_ms      BIGINT NOT NULL,
    events             BIGINT NOT NULL,
    notes              BIGINT NOT NULL,
    version            BIGINT NOT NULL,
    rev                BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS wf_incidents_started ON wf_incidents (started_at_ms DESC, incident_id DESC);
CREATE INDEX IF NOT EXISTS wf_incidents_rev ON wf_incidents (rev);
CREATE INDEX IF NOT EXISTS wf_incidents_camera ON wf_incidents (camera_id, started_at_ms);
CREATE INDEX IF NOT EXISTS wf_incidents_status ON wf_incidents (status, started_at_ms);
CREATE TABLE IF NOT EXISTS wf_cameras (
    camera_id        TEXT PRIMARY KEY,
    state            TEXT NOT NULL,
    reason           TEXT NOT NULL,
    input_fps        DOUBLE PRECISION NOT NULL,
    analysed_fps     DOUBLE PRECISION NOT NULL,
    last_frame_at_ms BIGINT,
    reconnects       BIGINT NOT NULL,
    worker_id        TEXT NOT NULL,
    at_ms            BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS console_users (
    username      TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS console_sessions (
    token_sha256  TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    csrf_token    TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS console_api_tokens (
    token_sha256  TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    label         TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
"""

_DDL_ACTIONS = {
    "sqlite": "CREATE TABLE IF NOT EXISTS wf_actions (id INTEGER PRIMARY KEY AUTOINCREMENT, ",
    "postgres": "CREATE TABLE IF NOT EXISTS wf_actions (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ",
}
_DDL_ACTIONS_TAIL = """
    incident_id TEXT NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    note        TEXT,
    assignee    TEXT
);
CREATE INDEX IF NOT EXISTS wf_actions_incident ON wf_actions (incident_id, id);
"""

_INCIDENT_COLS = (
    "incident_id, type, severity, camera_id, camera_name, location, zone, detection_state, seq, started_at_ms, "
    "observed_at_ms, ended_at_ms, confidence, snapshot, worker_id, status, assignee, acknowledged_by, "
    "acknowledged_at_ms, closed_by, closed_at_ms, created_at_ms, updated_at_ms, events, notes, version, rev"
)
_ACTION_COLS = "id, incident_id, action, actor, role, at_ms, from_status, to_status, note, assignee"
_CAMERA_COLS = "camera_id, state, reason, input_fps, analysed_fps, last_frame_at_ms, reconnects, worker_id, at_ms"


class _Conn(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...


def _incident(row: Sequence[Any]) -> IncidentRecord:
    (iid, typ, sev, cam, cam_name, loc, zone, dstate, seq, started, observed, ended, conf, snap, worker, status,
     assignee, ack_by, ack_at, closed_by, closed_at, created, updated, events, notes, version, rev) = row  # fmt: skip
    return IncidentRecord(
        incident_id=iid,
        type=typ,
        severity=sev,
        camera_id=cam,
        camera_name=cam_name,
        location=loc,
        zone=zone,
        detection_state=dstate,
        seq=int(seq),
        started_at_ms=int(started),
        observed_at_ms=int(observed),
        ended_at_ms=None if ended is None else int(ended),
        confidence=float(conf),
        snapshot=json.loads(snap) if snap else None,
        worker_id=worker,
        status=WorkflowStatus(status),
        assignee=assignee,
        acknowledged_by=ack_by,
        acknowledged_at_ms=None if ack_at is None else int(ack_at),
        closed_by=closed_by,
        closed_at_ms=None if closed_at is None else int(closed_at),
        created_at_ms=int(created),
        updated_at_ms=int(updated),
        events=int(events),
        notes=int(notes),
        version=int(version),
        rev=int(rev),
    )


def _action(row: Sequence[Any]) -> ActionRecord:
    aid, iid, action, actor, role, at, frm, to, note, assignee = row
    return ActionRecord(
        int(aid), iid, Action(action), actor, Role(role), int(at), WorkflowStatus(frm), WorkflowStatus(to), note,
        assignee,
    )  # fmt: skip


def _camera(row: Sequence[Any]) -> CameraHealth:
    cid, state, reason, in_fps, an_fps, last, reconnects, worker, at = row
    return CameraHealth(
        cid, state, reason, float(in_fps), float(an_fps), None if last is None else int(last), int(reconnects),
        worker, int(at),
    )  # fmt: skip


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _glob_to_like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


class WorkflowStore:
    """Incident workflow, camera health, users and sessions in one database (see the module docstring)."""

    def __init__(
        self,
        conn: Any,
        dialect: str,
        *,
        clock: Callable[[], float] = time.time,
        hasher: PasswordHasher | None = None,
    ) -> None:
        if dialect not in ("sqlite", "postgres"):
            raise ValueError(f"unknown dialect {dialect!r}")
        self._conn = conn
        self.dialect = dialect
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self._lock = threading.RLock()
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        with self._tx() as c:
            for stmt in (_DDL_COMMON + _DDL_ACTIONS[dialect] + _DDL_ACTIONS_TAIL).split(";"):
                if stmt.strip():
                    c.execute(stmt)
            row = c.execute(self._q("SELECT value FROM wf_meta WHERE name = 'store_uid'")).fetchone()
            if row is None:
                c.execute(
                    self._q("INSERT INTO wf_meta (name, value) VALUES ('store_uid', ?)"), (uuid.uuid4().hex[:12],)
                )
                c.execute(self._q("INSERT INTO wf_meta (name, value) VALUES ('rev', '0')"))
        with self._tx() as c:
            self.store_uid: str = c.execute(self._q("SELECT value FROM wf_meta WHERE name = 'store_uid'")).fetchone()[0]

    # -- plumbing ----------------------------------------------------------------------------------------------

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction under the store lock: revisions are taken and committed in order."""
        with self._lock:
            if self.dialect == "sqlite":
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException:
                    rollback(self._conn)  # a plain ROLLBACK would hide a disk-full error behind its own
                    raise
            else:
                with self._conn.transaction():
                    yield self._conn

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            if self.dialect == "sqlite":
                return list(self._conn.execute(self._q(sql), params).fetchall())
            with self._conn.transaction():
                return list(self._conn.execute(self._q(sql), params).fetchall())

    def _next_rev(self, c: Any) -> int:
        c.execute(self._q("UPDATE wf_meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE name = 'rev'"))
        return int(c.execute(self._q("SELECT value FROM wf_meta WHERE name = 'rev'")).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- incidents ---------------------------------------------------------------------------------------------

    def current_rev(self) -> int:
        return int(self._read("SELECT value FROM wf_meta WHERE name = 'rev'")[0][0])

    def ingest(self, updates: Sequence[DetectionUpdate]) -> list[IncidentRecord]:
        """Apply detection events (idempotent, tolerant of reordering); returns the rows that changed.

        A new incident id creates a row in status ``new``; a later event (higher
        ``seq``) updates the detection fields; an older or repeated one only
        counts as seen. The workflow fields are never touched by detection.
        """
        changed: dict[str, IncidentRecord] = {}
        if not updates:
            return []
        now = self._now_ms()
        with self._tx() as c:
            for u in updates:
                row = c.execute(
                    self._q(f"SELECT {_INCIDENT_COLS} FROM wf_incidents WHERE incident_id = ?"),  # noqa: S608
                    (u.incident_id,),
                ).fetchone()
                snap = json.dumps(u.snapshot, sort_keys=True) if u.snapshot is not None else None
                if row is None:
                    rev = self._next_rev(c)
                    c.execute(
                        self._q(
                            f"INSERT INTO wf_incidents ({_INCIDENT_COLS}) VALUES "  # noqa: S608
                            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                        ),
                        (u.incident_id, u.type, u.severity, u.camera_id, u.camera_name, u.location, u.zone, u.state,
                         u.seq, u.started_at_ms, u.observed_at_ms, u.ended_at_ms, u.confidence, snap, u.worker_id,
                         WorkflowStatus.NEW.value, None, None, None, None, None, now, now, 1, 0, 1, rev),
                    )  # fmt: skip
                else:
                    current = _incident(row)
                    if u.seq <= current.seq:
                        continue  # a redelivery or an older event: the row already says more
                    rev = self._next_rev(c)
                    c.execute(
                        self._q(
                            "UPDATE wf_incidents SET severity = ?, camera_name = ?, location = ?, zone = ?, "
                            "detection_state = ?, seq = ?, observed_at_ms = ?, ended_at_ms = ?, confidence = ?, "
                            "snapshot = COALESCE(?, snapshot), worker_id = ?, updated_at_ms = ?, events = events + 1, "
                            "version = version + 1, rev = ? WHERE incident_id = ?"
                        ),
                        (u.severity, u.camera_name, u.location, u.zone, u.state, u.seq, u.observed_at_ms,
                         u.ended_at_ms, max(u.confidence, current.confidence), snap, u.worker_id, now, rev,
                         u.incident_id),
                    )  # fmt: skip
                new = c.execute(
                    self._q(f"SELECT {_INCIDENT_COLS} FROM wf_incidents WHERE incident_id = ?"),  # noqa: S608
                    (u.incident_id,),
                ).fetchone()
                changed[u.incident_id] = _incident(new)
        return sorted(changed.values(), key=lambda r: r.rev)

    def get(self, incident_id: str) -> IncidentRecord | None:
        rows = self._read(f"SELECT {_INCIDENT_COLS} FROM wf_incidents WHERE incident_id = ?", (incident_id,))  # noqa: S608
        return _incident(rows[0]) if rows else None

    def list_incidents(self, flt: IncidentFilter) -> list[IncidentRecord]:
        """Newest first (by start time), keyset-paginated with ``flt.before``."""
        where: list[str] = []
        params: list[Any] = []

        def any_of(column: str, values: Sequence[str]) -> None:
            if values:
                where.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params.extend(values)

        any_of("type", flt.types)
        any_of("severity", flt.severities)
        any_of("status", flt.statuses)
        cams: list[str] = []
        if flt.camera_ids:
            cams.append(f"camera_id IN ({', '.join('?' for _ in flt.camera_ids)})")
            params.extend(flt.camera_ids)
        for pattern in flt.camera_patterns:
            cams.append("camera_id LIKE ? ESCAPE '\\'")
            params.append(_glob_to_like(pattern))
        if cams:
            where.append("(" + " OR ".join(cams) + ")")
        if flt.since_ms is not None:
            where.append("started_at_ms >= ?")
            params.append(flt.since_ms)
        if flt.until_ms is not None:
            where.append("started_at_ms < ?")
            params.append(flt.until_ms)
        if flt.assignee is not None:
            where.append("assignee = ?")
            params.append(flt.assignee)
        if flt.before is not None:
            where.append("(started_at_ms < ? OR (started_at_ms = ? AND incident_id < ?))")
            params.extend([flt.before[0], flt.before[0], flt.before[1]])
        sql = f"SELECT {_INCIDENT_COLS} FROM wf_incidents"  # noqa: S608 - only fixed fragments, values are bound
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at_ms DESC, incident_id DESC LIMIT ?"
        params.append(max(1, min(flt.limit, 1000)))
        return [_incident(r) for r in self._read(sql, params)]

    def changes_since(self, rev: int, limit: int) -> list[IncidentRecord]:
        """Incidents whose latest change is after ``rev``, oldest change first (the SSE replay)."""
        rows = self._read(
            f"SELECT {_INCIDENT_COLS} FROM wf_incidents WHERE rev > ? ORDER BY rev LIMIT ?",  # noqa: S608
            (rev, limit),
        )
        return [_incident(r) for r in rows]

    def actions(self, incident_id: str) -> list[ActionRecord]:
        rows = self._read(f"SELECT {_ACTION_COLS} FROM wf_actions WHERE incident_id = ? ORDER BY id", (incident_id,))  # noqa: S608
        return [_action(r) for r in rows]

    def act(
        self,
        incident_id: str,
        action: Action,
        actor: User,
        *,
        note: str | None = None,
        assignee: str | None = None,
        expected_version: int | None = None,
    ) -> tuple[IncidentRecord, ActionRecord]:
        """Validate and apply one workflow action, recording who and when; returns the new row and the record."""
        if note is not None or action is Action.NOTE:
            note = clean_note(note or "")
        now = self._now_ms()
        with self._tx() as c:
            row = c.execute(
                self._q(f"SELECT {_INCIDENT_COLS} FROM wf_incidents WHERE incident_id = ?"),  # noqa: S608
                (incident_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(incident_id)
            current = _incident(row)
            if expected_version is not None and expected_version != current.version:
                raise ConflictError(
                    f"incident changed (version {current.version}, expected {expected_version}); reload and retry"
                )
            target = next_status(current.status, action, actor.role)
            sets = ["status = ?", "updated_at_ms = ?", "version = version + 1", "rev = ?"]
            rev = self._next_rev(c)
            params: list[Any] = [target.value, now, rev]
            if action is Action.ASSIGN:
                if not assignee:
                    raise InvalidInput("assign needs an assignee")
                urow = c.execute(
                    self._q("SELECT role, disabled FROM console_users WHERE username = ?"), (assignee,)
                ).fetchone()
                if urow is None or bool(urow[1]) or Role(urow[0]) not in WORKFLOW_ROLES:
                    raise InvalidInput(f"{assignee!r} is not an active dispatcher or admin")
                sets.append("assignee = ?")
                params.append(assignee)
            else:
                assignee = None
            if action is Action.ACKNOWLEDGE:
                sets += ["acknowledged_by = ?", "acknowledged_at_ms = ?"]
                params += [actor.username, now]
            if target in CLOSED and current.status not in CLOSED:
                sets += ["closed_by = ?", "closed_at_ms = ?"]
                params += [actor.username, now]
            if action is Action.REOPEN:
                sets += ["closed_by = NULL", "closed_at_ms = NULL"]
            if note is not None:
                sets.append("notes = notes + 1")
            c.execute(
                self._q(f"UPDATE wf_incidents SET {', '.join(sets)} WHERE incident_id = ?"),  # noqa: S608
                [*params, incident_id],
            )
            arow = c.execute(
                self._q(
                    "INSERT INTO wf_actions (incident_id, action, actor, role, at_ms, from_status, to_status, note, "  # noqa: S608
                    f"assignee) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_ACTION_COLS}"
                ),
                (incident_id, action.value, actor.username, actor.role.value, now, current.status.value, target.value,
                 note, assignee),
            ).fetchone()  # fmt: skip
            new = c.execute(
                self._q(f"SELECT {_INCIDENT_COLS} FROM wf_incidents WHERE incident_id = ?"),  # noqa: S608
                (incident_id,),
            ).fetchone()
        return _incident(new), _action(arow)

    # -- camera health -----------------------------------------------------------------------------------------

    def upsert_cameras(self, statuses: Sequence[CameraHealth]) -> list[CameraHealth]:
        """Keep the newest status per camera (by its ``at``); returns those that replaced an older one."""
        changed: list[CameraHealth] = []
        with self._tx() as c:
            for s in statuses:
                row = c.execute(self._q("SELECT at_ms FROM wf_cameras WHERE camera_id = ?"), (s.camera_id,)).fetchone()
                if row is not None and int(row[0]) > s.at_ms:
                    continue
                c.execute(
                    self._q(
                        f"INSERT INTO wf_cameras ({_CAMERA_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
                        "ON CONFLICT (camera_id) DO UPDATE SET state = excluded.state, reason = excluded.reason, "
                        "input_fps = excluded.input_fps, analysed_fps = excluded.analysed_fps, "
                        "last_frame_at_ms = excluded.last_frame_at_ms, reconnects = excluded.reconnects, "
                        "worker_id = excluded.worker_id, at_ms = excluded.at_ms"
                    ),
                    (s.camera_id, s.state, s.reason, s.input_fps, s.analysed_fps, s.last_frame_at_ms, s.reconnects,
                     s.worker_id, s.at_ms),
                )  # fmt: skip
                changed.append(s)
        return changed

    def cameras(self) -> list[CameraHealth]:
        return [_camera(r) for r in self._read(f"SELECT {_CAMERA_COLS} FROM wf_cameras ORDER BY camera_id")]  # noqa: S608

    # -- users -------------------------------------------------------------------------------------------------

    def add_user(self, username: str, role: Role | str, password: str, display_name: str = "") -> User:
        if not USERNAME_RE.match(username):
            raise UserError(
                "username: 2-32 characters, lower-case letters, digits, '_', '.', '-', starting with a letter"
            )
        try:
            role = Role(role)
        except ValueError:
            raise UserError(f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}") from None
        if len(password) < 10:
            raise UserError("password: at least 10 characters")
        now = self._now_ms()
        pw_hash = self._hasher.hash(password)
        with self._tx() as c:
            if c.execute(self._q("SELECT 1 FROM console_users WHERE username = ?"), (username,)).fetchone():
                raise UserError(f"user {username} already exists")
            c.execute(
                self._q(
                    "INSERT INTO console_users (username, role, display_name, password_hash, disabled, created_at_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?)"
                ),
                (username, role.value, display_name[:64] or username, pw_hash, False, now),
            )
        return User(username, role, display_name[:64] or username, False, now)

    def set_password(self, username: str, password: str) -> None:
        if len(password) < 10:
            raise UserError("password: at least 10 characters")
        with self._tx() as c:
            cur = c.execute(
                self._q("UPDATE console_users SET password_hash = ? WHERE username = ?"),
                (self._hasher.hash(password), username),
            )
            if cur.rowcount == 0:
                raise NotFoundError(username)
            c.execute(self._q("DELETE FROM console_sessions WHERE username = ?"), (username,))

    def set_disabled(self, username: str, disabled: bool) -> None:
        with self._tx() as c:
            cur = c.execute(self._q("UPDATE console_users SET disabled = ? WHERE username = ?"), (disabled, username))
            if cur.rowcount == 0:
                raise NotFoundError(username)
            if disabled:
                c.execute(self._q("DELETE FROM console_sessions WHERE username = ?"), (username,))

    def user(self, username: str) -> User | None:
        rows = self._read(
            "SELECT username, role, display_name, disabled, created_at_ms FROM console_users WHERE username = ?",
            (username,),
        )
        if not rows:
            return None
        u, role, name, disabled, created = rows[0]
        return User(u, Role(role), name, bool(disabled), int(created))

    def users(self) -> list[User]:
        rows = self._read(
            "SELECT username, role, display_name, disabled, created_at_ms FROM console_users ORDER BY username"
        )
        return [User(u, Role(r), n, bool(d), int(c)) for u, r, n, d, c in rows]

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches and the account is enabled; timing does not reveal which failed."""
        rows = self._read("SELECT password_hash FROM console_users WHERE username = ?", (username,))
        stored = rows[0][0] if rows else self._dummy_hash
        try:
            self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if not rows:
            return None
        if self._hasher.check_needs_rehash(stored):
            with self._tx() as c:
                c.execute(
                    self._q("UPDATE console_users SET password_hash = ? WHERE username = ?"),
                    (self._hasher.hash(password), username),
                )
        user = self.user(username)
        return user if user is not None and not user.disabled else None

    # -- sessions and tokens -----------------------------------------------------------------------------------

    def create_session(self, username: str, ttl_s: int) -> tuple[str, Session]:
        """A new session: the cookie token (returned once, stored hashed) and its CSRF token."""
        user = self.user(username)
        if user is None or user.disabled:
            raise NotFoundError(username)
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self._now_ms()
        expires = now + ttl_s * 1000
        with self._tx() as c:
            c.execute(self._q("DELETE FROM console_sessions WHERE expires_at_ms < ?"), (now,))
            c.execute(
                self._q(
                    "INSERT INTO console_sessions (token_sha256, username, csrf_token, created_at_ms, expires_at_ms) "
                    "VALUES (?, ?, ?, ?, ?)"
                ),
                (_sha(token), username, csrf, now, expires),
            )
        return token, Session(user, csrf, expires)

    def session(self, token: str) -> Session | None:
        rows = self._read(
            "SELECT s.csrf_token, s.expires_at_ms, u.username, u.role, u.display_name, u.disabled, u.created_at_ms "
            "FROM console_sessions s JOIN console_users u ON u.username = s.username WHERE s.token_sha256 = ?",
            (_sha(token),),
        )
        if not rows:
            return None
        csrf, expires, username, role, name, disabled, created = rows[0]
        if int(expires) < self._now_ms() or bool(disabled):
            return None
        return Session(User(username, Role(role), name, bool(disabled), int(created)), csrf, int(expires))

    def delete_session(self, token: str) -> None:
        with self._tx() as c:
            c.execute(self._q("DELETE FROM console_sessions WHERE token_sha256 = ?"), (_sha(token),))

    def create_api_token(self, username: str, label: str) -> str:
        """A bearer token for another system of the operations centre; shown once, stored hashed."""
        if self.user(username) is None:
            raise NotFoundError(username)
        token = "kzt_" + secrets.token_urlsafe(32)
        with self._tx() as c:
            c.execute(
                self._q(
                    "INSERT INTO console_api_tokens (token_sha256, username, label, created_at_ms) VALUES (?, ?, ?, ?)"
                ),
                (_sha(token), username, label[:64], self._now_ms()),
            )
        return token

    def token_session(self, token: str) -> Session | None:
        rows = self._read(
            "SELECT u.username, u.role, u.display_name, u.disabled, u.created_at_ms FROM console_api_tokens t "
            "JOIN console_users u ON u.username = t.username WHERE t.token_sha256 = ?",
            (_sha(token),),
        )
        if not rows or bool(rows[0][3]):
            return None
        username, role, name, disabled, created = rows[0]
        return Session(User(username, Role(role), name, bool(disabled), int(created)), "", 2**62, via="token")


def open_workflow_store(
    url: str | Path, *, clock: Callable[[], float] = time.time, hasher: PasswordHasher | None = None
) -> WorkflowStore:
    """``postgresql://...`` opens PostgreSQL (psycopg 3); anything else is a SQLite file path."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        import psycopg

        conn = psycopg.connect(text, autocommit=True)
        return WorkflowStore(conn, "postgres", clock=clock, hasher=hasher)
    path = Path(text.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    return WorkflowStore(db, "sqlite", clock=clock, hasher=hasher)
