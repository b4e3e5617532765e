"""Incident records: what detection says (:class:`DetectionUpdate`), what the store holds
(:class:`IncidentRecord`, :class:`ActionRecord`) and how a list is filtered (:class:`IncidentFilter`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage.accounts import Role
from storage.incident_rules import Action, WorkflowStatus

__all__ = ["ActionRecord", "DetectionFacts", "DetectionUpdate", "IncidentFilter", "IncidentRecord"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectionFacts:
    """What detection says about an incident: each event carries it (:class:`DetectionUpdate`) and the store keeps
    the latest (:class:`IncidentRecord`), so it is declared once, here, for both."""

    incident_id: str
    type: str
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
    analytics: dict[str, Any] | None = None
    """Rule specifics (line and direction, crowd count, plate and speed ...), as the event carries them."""
    review: str = "alert"  # alert: a feed card; detection: history only (core.alerting)
    object_count: int | None = None  # zone episodes: objects inside


@dataclass(frozen=True, slots=True)
class DetectionUpdate(DetectionFacts):
    """What the detection side says about an incident (one event of its start / update / end)."""

    event_id: str
    state: str  # start / update / end


@dataclass(frozen=True, slots=True)
class IncidentRecord(DetectionFacts):
    """An incident as the store holds it: the latest detection facts, then the workflow around them."""

    detection_state: str
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
            "review": self.review,
            "object_count": self.object_count,
            "incident_id": self.incident_id,
            "type": self.type,
            "severity": self.severity,
            "camera_id": self.camera_id,
            "camera_name": self.camera_name,
            "location": self.location,
            "zone": self.zone,
            "detection_state": self.detection_state,
            "seq": self.seq,  # the newest detection event this card reflects (delivery accounting)
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
            "analytics": self.analytics,
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
    reviews: Sequence[str] = ()  # alert / detection
