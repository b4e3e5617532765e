"""Each incident's event history and legal hold, beside the console's workflow tables.

The workflow store keeps one row per incident in its latest state; evidence
needs more: the bundle ships every event of the incident as it was published
(start, updates, end, the end restated with its clip), and the clip and
snapshot references come from those events. Legal holds live here too: an
incident on hold keeps its objects out of retention expiry.

Same database as the console (SQLite file or PostgreSQL URL), own tables and
connection, so it stays out of the workflow store's way. Recording is
idempotent on ``event_id`` (the bus delivers at least once).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.db import Cursor, Database, Store

_DDL = [
    """CREATE TABLE IF NOT EXISTS ev_events (
        event_id    TEXT PRIMARY KEY,
        incident_id TEXT NOT NULL,
        camera_id   TEXT NOT NULL,
        seq         BIGINT NOT NULL,
        doc         TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ev_events_incident ON ev_events (incident_id, seq)",
    """CREATE TABLE IF NOT EXISTS ev_holds (
        incident_id TEXT PRIMARY KEY,
        held_by     TEXT NOT NULL,
        role        TEXT NOT NULL,
        reason      TEXT NOT NULL,
        at_ms       BIGINT NOT NULL
    )""",
]


@dataclass(frozen=True, slots=True)
class Hold:
    incident_id: str
    held_by: str
    role: str
    reason: str
    at_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"held_by": self.held_by, "role": self.role, "reason": self.reason, "at_ms": self.at_ms}


class EvidenceIndex(Store):
    """Incident event documents and legal holds (``postgresql://`` URL or a SQLite path), on
    :class:`storage.db.Database` like every store (``?`` SQL, transactions, reconnect)."""

    def __init__(self, url: str | Path) -> None:
        # its own connection (see the module docstring), and SQLite at synchronous=FULL as before it used the layer
        super().__init__(Database(url, durable=True))

    def _migrate(self, c: Cursor) -> None:
        super()._migrate(c)
        c.script(_DDL)

    def record(self, docs: Sequence[dict[str, Any]]) -> None:
        """Store incident event documents (JSON as published); a redelivered event is ignored."""
        if not docs:
            return
        conflict = "ON CONFLICT (event_id) DO NOTHING"
        with self._db.tx() as c:
            for d in docs:
                c.execute(
                    f"INSERT INTO ev_events (event_id, incident_id, camera_id, seq, doc) VALUES (?, ?, ?, ?, ?) {conflict}",  # noqa: S608, E501
                    (str(d["event_id"]), str(d["incident_id"]), str(d["camera_id"]), int(d["seq"]),
                     json.dumps(d, sort_keys=True)),
                )  # fmt: skip

    def history(self, incident_id: str) -> list[dict[str, Any]]:
        """Every event of the incident, oldest first."""
        rows = self._db.read("SELECT doc FROM ev_events WHERE incident_id = ? ORDER BY seq, event_id", (incident_id,))
        return [json.loads(r[0]) for r in rows]

    def clip(self, incident_id: str) -> dict[str, Any] | None:
        """The clip reference of the incident's latest event that carries one."""
        refs = [e["clip"] for e in self.history(incident_id) if e.get("clip")]
        return refs[-1] if refs else None

    def snapshots(self, incident_id: str) -> list[dict[str, Any]]:
        """Distinct snapshot references of the incident, in event order."""
        seen: dict[str, dict[str, Any]] = {}
        for e in self.history(incident_id):
            snap = e.get("snapshot")
            if snap and snap["key"] not in seen:
                seen[snap["key"]] = snap
        return list(seen.values())

    def set_hold(self, incident_id: str, hold: Hold | None) -> None:
        """Put an incident on legal hold (``hold``) or release it (None)."""
        with self._db.tx() as c:
            c.execute("DELETE FROM ev_holds WHERE incident_id = ?", (incident_id,))
            if hold is not None:
                c.execute(
                    "INSERT INTO ev_holds (incident_id, held_by, role, reason, at_ms) VALUES (?, ?, ?, ?, ?)",
                    (hold.incident_id, hold.held_by, hold.role, hold.reason, hold.at_ms),
                )

    def hold(self, incident_id: str) -> Hold | None:
        rows = self._db.read(
            "SELECT incident_id, held_by, role, reason, at_ms FROM ev_holds WHERE incident_id = ?", (incident_id,)
        )
        return Hold(*rows[0]) if rows else None
