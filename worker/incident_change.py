"""What every rule returns: an incident's start, updates and end, numbered, before they become events.

The rules (zones and loitering, fire, crowding, line crossings, traffic offences) and the alert review
(zone episodes, flood notices) keep different state per incident, but each change they emit is built by
:func:`next_change`, so ``seq`` and ``ended_at`` follow one rule everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from event_bus.analytics_events import AnalyticsDetails
from event_bus.events import IncidentState, IncidentType

Box = list[float]


@dataclass(frozen=True)
class IncidentChange:
    """One start / update / end of one incident, before it becomes an event."""

    incident_id: UUID
    type: IncidentType
    state: IncidentState
    seq: int
    severity: str
    started_at: datetime
    observed_at: datetime
    ended_at: datetime | None
    zone: str | None
    track_id: int | None
    boxes: list[Box]
    confidence: float
    analytics: AnalyticsDetails | None = None


class OpenIncident(Protocol):
    """What every rule keeps of an incident between its changes (the zone-episode and flood notices too)."""

    incident_id: UUID
    type: IncidentType
    severity: str
    started_at: datetime
    zone: str | None
    seq: int


@dataclass
class TimedIncident:
    """An open incident of a rule that re-emits updates on a timer (crowding, traffic offences)."""

    incident_id: UUID
    started_at: datetime
    type: IncidentType
    severity: str
    zone: str | None
    seq: int = 0
    last_emit_t: float = 0.0


def next_change(
    inc: OpenIncident,
    state: IncidentState,
    at: datetime,
    track_id: int | None,
    boxes: list[Box],
    confidence: float,
    analytics: AnalyticsDetails | None = None,
) -> IncidentChange:
    """The incident's next change: ``seq`` counts every change after the start, and only an end has ``ended_at``."""
    if state is not IncidentState.START:
        inc.seq += 1
    return IncidentChange(
        incident_id=inc.incident_id,
        type=inc.type,
        state=state,
        seq=inc.seq,
        severity=inc.severity,
        started_at=inc.started_at,
        observed_at=at,
        ended_at=at if state is IncidentState.END else None,
        zone=inc.zone,
        track_id=track_id,
        boxes=boxes,
        confidence=confidence,
        analytics=analytics,
    )
