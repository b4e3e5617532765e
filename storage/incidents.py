"""Incident workflow state: what detection said about each incident, and what dispatchers did with it.

Why this shape:

* Every change to an incident (a detection event from the bus or a
  dispatcher's action) bumps a store-wide revision counter and stamps the row
  with it. The console's live feed uses that revision as the SSE event id, so
  a browser that reconnects with ``Last-Event-ID: n`` is sent exactly the
  incidents that changed after ``n`` — each once, in its current state — and
  the replay survives a console restart because it comes from the database.
  Writes are serialised by the connection's lock, so revisions commit in order.
* Transitions are validated by one pure function, :func:`next_status`, which
  the store applies inside the same transaction that records who did what and
  when (``wf_actions``): the history is the audit of the workflow.
* Storage does not import ``event_bus`` (the flow goes the other way): the
  console converts each ``Incident`` event to a :class:`DetectionUpdate`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from storage.accounts import Role, User, is_active_with_role
from storage.db import Cursor, NotFoundError, Store
from storage.incident_records import ActionRecord, DetectionUpdate, IncidentFilter, IncidentRecord
from storage.incident_rules import (
    CLOSED,
    WORKFLOW_ROLES,
    Action,
    ConflictError,
    InvalidInput,
    WorkflowStatus,
    clean_note,
    next_status,
)

__all__ = ["IncidentStore"]


_DDL = """
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
    rev                BIGINT NOT NULL,
    review             TEXT NOT NULL DEFAULT 'alert',
    object_count       BIGINT
);
CREATE INDEX IF NOT EXISTS wf_incidents_started ON wf_incidents (started_at_ms DESC, incident_id DESC);
CREATE INDEX IF NOT EXISTS wf_incidents_rev ON wf_incidents (rev);
CREATE INDEX IF NOT EXISTS wf_incidents_camera ON wf_incidents (camera_id, started_at_ms);
CREATE INDEX IF NOT EXISTS wf_incidents_status ON wf_incidents (status, started_at_ms);
CREATE TABLE IF NOT EXISTS wf_incident_analytics (
    incident_id TEXT PRIMARY KEY,
    analytics   TEXT NOT NULL
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
    "acknowledged_at_ms, closed_by, closed_at_ms, created_at_ms, updated_at_ms, events, notes, version, rev, "
    "review, object_count"
)
_SELECT_COLS = (
    _INCIDENT_COLS + ", (SELECT analytics FROM wf_incident_analytics a WHERE a.incident_id = wf_incidents.incident_id)"  # noqa: S608
)
"""What an incident row reads as: its columns, then the rule specifics of its latest event (a table of their own,
so databases made before analytics existed need no column added)."""
# Columns added after the first release, with their DDL, and how each dialect lists a table's columns.
_ADDED_INCIDENT_COLUMNS = {"review": "TEXT NOT NULL DEFAULT 'alert'", "object_count": "BIGINT"}
_COLUMNS_SQL = {
    "sqlite": "SELECT name FROM pragma_table_info(?)",
    "postgres": "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
}
_ACTION_COLS = "id, incident_id, action, actor, role, at_ms, from_status, to_status, note, assignee"


def _incident(row: Sequence[Any]) -> IncidentRecord:
    (iid, typ, sev, cam, cam_name, loc, zone, dstate, seq, started, observed, ended, conf, snap, worker, status,
     assignee, ack_by, ack_at, closed_by, closed_at, created, updated, events, notes, version, rev, review,
     object_count, analytics) = row  # fmt: skip
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
        analytics=json.loads(analytics) if analytics else None,
        review=review,
        object_count=None if object_count is None else int(object_count),
    )


def _action(row: Sequence[Any]) -> ActionRecord:
    aid, iid, action, actor, role, at, frm, to, note, assignee = row
    return ActionRecord(
        int(aid), iid, Action(action), actor, Role(role), int(at), WorkflowStatus(frm), WorkflowStatus(to), note,
        assignee,
    )  # fmt: skip


def _glob_to_like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


class IncidentStore(Store):
    """Incidents and their workflow history (see the module docstring)."""

    store_uid: str

    def _migrate(self, c: Cursor) -> None:
        super()._migrate(c)
        c.script(_DDL + _DDL_ACTIONS[self._db.dialect] + _DDL_ACTIONS_TAIL)
        have = {r[0] for r in c.execute(_COLUMNS_SQL[self._db.dialect], ("wf_incidents",)).fetchall()}
        for column, ddl in _ADDED_INCIDENT_COLUMNS.items():
            if column not in have:  # a database from before the column: add it (defaults fill old rows)
                c.execute(f"ALTER TABLE wf_incidents ADD COLUMN {column} {ddl}")
        row = c.one("SELECT value FROM wf_meta WHERE name = 'store_uid'")
        if row is None:
            c.execute("INSERT INTO wf_meta (name, value) VALUES ('store_uid', ?)", (uuid.uuid4().hex[:12],))
            c.execute("INSERT INTO wf_meta (name, value) VALUES ('rev', '0')")
        self.store_uid = c.one("SELECT value FROM wf_meta WHERE name = 'store_uid'")[0]

    def _next_rev(self, c: Any) -> int:
        c.execute("UPDATE wf_meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE name = 'rev'")
        return int(c.execute("SELECT value FROM wf_meta WHERE name = 'rev'").fetchone()[0])

    def current_rev(self) -> int:
        return int(self._db.read("SELECT value FROM wf_meta WHERE name = 'rev'")[0][0])

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
        with self._db.tx() as c:
            for u in updates:
                row = c.execute(
                    f"SELECT {_SELECT_COLS} FROM wf_incidents WHERE incident_id = ?",  # noqa: S608
                    (u.incident_id,),
                ).fetchone()
                snap = json.dumps(u.snapshot, sort_keys=True) if u.snapshot is not None else None
                if row is None:
                    rev = self._next_rev(c)
                    c.execute(
                        f"INSERT INTO wf_incidents ({_INCIDENT_COLS}) VALUES "  # noqa: S608
                            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (u.incident_id, u.type, u.severity, u.camera_id, u.camera_name, u.location, u.zone, u.state,
                         u.seq, u.started_at_ms, u.observed_at_ms, u.ended_at_ms, u.confidence, snap, u.worker_id,
                         WorkflowStatus.NEW.value, None, None, None, None, None, now, now, 1, 0, 1, rev, u.review,
                         u.object_count),
                    )  # fmt: skip
                else:
                    current = _incident(row)
                    if u.seq <= current.seq:
                        continue  # a redelivery or an older event: the row already says more
                    rev = self._next_rev(c)
                    c.execute(
                        "UPDATE wf_incidents SET severity = ?, camera_name = ?, location = ?, zone = ?, "
                            "detection_state = ?, seq = ?, observed_at_ms = ?, ended_at_ms = ?, confidence = ?, "
                            "snapshot = COALESCE(?, snapshot), worker_id = ?, updated_at_ms = ?, events = events + 1, "
                            "version = version + 1, rev = ?, object_count = COALESCE(?, object_count) "
                            "WHERE incident_id = ?",
                        (u.severity, u.camera_name, u.location, u.zone, u.state, u.seq, u.observed_at_ms,
                         u.ended_at_ms, max(u.confidence, current.confidence), snap, u.worker_id, now, rev,
                         u.object_count, u.incident_id),
                    )  # fmt: skip
                new = c.execute(
                    f"SELECT {_SELECT_COLS} FROM wf_incidents WHERE incident_id = ?",  # noqa: S608
                    (u.incident_id,),
                ).fetchone()
                if u.analytics is not None:
                    c.execute(
                        "INSERT INTO wf_incident_analytics (incident_id, analytics) VALUES (?, ?) "
                        "ON CONFLICT (incident_id) DO UPDATE SET analytics = excluded.analytics",
                        (u.incident_id, json.dumps(u.analytics, sort_keys=True)),
                    )
                    new = c.execute(
                        f"SELECT {_SELECT_COLS} FROM wf_incidents WHERE incident_id = ?",  # noqa: S608
                        (u.incident_id,),
                    ).fetchone()
                changed[u.incident_id] = _incident(new)
        return sorted(changed.values(), key=lambda r: r.rev)

    def get(self, incident_id: str) -> IncidentRecord | None:
        rows = self._db.read(f"SELECT {_SELECT_COLS} FROM wf_incidents WHERE incident_id = ?", (incident_id,))  # noqa: S608
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
        any_of("review", flt.reviews)
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
        sql = f"SELECT {_SELECT_COLS} FROM wf_incidents"  # noqa: S608 - only fixed fragments, values are bound
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at_ms DESC, incident_id DESC LIMIT ?"
        params.append(max(1, min(flt.limit, 1000)))
        return [_incident(r) for r in self._db.read(sql, params)]

    def changes_since(self, rev: int, limit: int) -> list[IncidentRecord]:
        """Incidents whose latest change is after ``rev``, oldest change first (the SSE replay)."""
        rows = self._db.read(
            f"SELECT {_SELECT_COLS} FROM wf_incidents WHERE rev > ? ORDER BY rev LIMIT ?",  # noqa: S608
            (rev, limit),
        )
        return [_incident(r) for r in rows]

    def actions(self, incident_id: str) -> list[ActionRecord]:
        rows = self._db.read(f"SELECT {_ACTION_COLS} FROM wf_actions WHERE incident_id = ? ORDER BY id", (incident_id,))  # noqa: S608
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
        with self._db.tx() as c:
            row = c.execute(
                f"SELECT {_SELECT_COLS} FROM wf_incidents WHERE incident_id = ?",  # noqa: S608
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
                if not is_active_with_role(c, assignee, WORKFLOW_ROLES):
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
                f"UPDATE wf_incidents SET {', '.join(sets)} WHERE incident_id = ?",  # noqa: S608
                [*params, incident_id],
            )
            arow = c.execute(
                "INSERT INTO wf_actions (incident_id, action, actor, role, at_ms, from_status, to_status, note, "  # noqa: S608
                f"assignee) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_ACTION_COLS}",
                (incident_id, action.value, actor.username, actor.role.value, now, current.status.value, target.value,
                 note, assignee),
            ).fetchone()  # fmt: skip
            new = c.execute(
                f"SELECT {_SELECT_COLS} FROM wf_incidents WHERE incident_id = ?",  # noqa: S608
                (incident_id,),
            ).fetchone()
        return _incident(new), _action(arow)
