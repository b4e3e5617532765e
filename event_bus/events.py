"""Versioned event types: what Kuzet publishes, frozen and JSON-serialisable.

Each type carries ``schema_version``; its JSON Schema is exported to
``event_bus/schemas/<name>.v<version>.json`` (``kuzet schemas export``) and a
test keeps the files in step with these models. Consumers validate against
the published schema, producers build these models, so a malformed event
cannot be produced and is detected when consumed.

Older versions stay readable: their schema files stay committed and
:mod:`event_bus.versions` lifts a validated old document to the current model
(``Incident`` v1 -> v2). New fields are optional with a default, so a later
field added to v2 keeps every v2 record readable.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from uuid6 import uuid7

from core.clip import ClipRef, ClipStatus
from core.config import CAMERA_ID_PATTERN
from core.health import CameraState
from core.snapshot import SnapshotRef
from event_bus.analytics_events import AnalyticsDetails, LineCountEntry

CameraId = Annotated[str, Field(pattern=CAMERA_ID_PATTERN)]
Box = Annotated[list[float], Field(min_length=4, max_length=4, description="x1, y1, x2, y2 in frame pixels")]


def new_event_id() -> UUID:
    """UUIDv7: unique, and sortable by creation time; the consumers' dedupe key."""
    return uuid7()


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IncidentType(StrEnum):
    PERSON_IN_ZONE = "person_in_zone"
    LOITERING = "loitering"
    LINE_CROSSING = "line_crossing"
    CROWDING = "crowding"
    FIRE = "fire"
    SMOKE = "smoke"
    WATCHLIST_HIT = "watchlist_hit"
    STOPPED_VEHICLE = "stopped_vehicle"
    WRONG_WAY = "wrong_way"
    SPEEDING = "speeding"
    CAMERA_FLOODING = "camera_flooding"  # one alert instead of many when a camera exceeds its alert budget


class IncidentState(StrEnum):
    START = "start"
    UPDATE = "update"
    END = "end"


PlateText = Annotated[str, Field(pattern=r"^[A-Z0-9]{1,16}$")]


class WatchlistMatchRef(BaseModel):
    """Which read matched which watchlist entry (a ``watchlist_hit``): in the event, not only in record headers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plate: PlateText = Field(description="the plate as read (normalised)")
    plate_read_id: UUID = Field(description="event_id of the PlateRead that matched")
    watchlist_id: UUID = Field(description="id of the watchlist entry")
    watchlist_plate: PlateText = Field(description="the plate on the watchlist entry")
    mode: Literal["exact", "fuzzy"]
    distance: float = Field(default=0.0, ge=0.0, le=16.0, description="OCR-aware edit distance (0 for exact)")


class Incident(Event):
    """One state change of one incident. All events of an incident share ``incident_id``.

    v2 adds ``clip`` (the evidence clip, on the event published once it is
    stored) and ``watchlist`` (for ``watchlist_hit``), and the alert review
    fields ``review``, ``review_reason``, ``object_count`` and ``track_ids``
    (:mod:`core.alerting`); all optional, so v1 documents lift to v2 unchanged
    (:mod:`event_bus.versions`).
    """

    schema_version: Literal[2] = 2
    event_id: UUID = Field(default_factory=new_event_id, description="UUIDv7, unique per event; dedupe key")
    incident_id: UUID = Field(description="stable across start / update / end of one incident")
    type: IncidentType
    state: IncidentState
    camera_id: CameraId
    camera_name: str = Field(default="", max_length=128)
    location: str = Field(default="", max_length=256)
    zone: str | None = Field(default=None, max_length=64)
    severity: Literal["low", "medium", "high", "critical"]
    started_at: AwareDatetime
    observed_at: AwareDatetime = Field(description="capture time of the frame this event is about")
    ended_at: AwareDatetime | None = None
    track_id: int | None = Field(default=None, ge=0)
    boxes: list[Box] = Field(default_factory=list, max_length=256)
    confidence: float = Field(ge=0.0, le=1.0)
    snapshot: SnapshotRef | None = None
    model_versions: dict[str, str] = Field(default_factory=dict)
    worker_id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0, description="per-incident event counter: start is 0")
    clip: ClipRef | None = Field(default=None, description="evidence clip (v2): pre-roll to post-roll, sha256")
    watchlist: WatchlistMatchRef | None = Field(default=None, description="the plate match of a watchlist_hit (v2)")
    analytics: AnalyticsDetails | None = Field(default=None, description="line, crowd or traffic specifics")
    review: Literal["alert", "detection"] = Field(
        default="alert", description="alert: a card for dispatchers; detection: recorded only (core.alerting)"
    )
    review_reason: str | None = Field(default=None, max_length=200, description="why it is a detection")
    object_count: int | None = Field(
        default=None, ge=0, description="zone episodes: objects inside now (at end: the most at once)"
    )
    track_ids: list[int] | None = Field(
        default=None, max_length=256, description="zone episodes: every track seen in the episode"
    )


class CameraStatus(Event):
    """A camera's health changed (or a periodic heartbeat of it)."""

    schema_version: Literal[1] = 1
    event_id: UUID = Field(default_factory=new_event_id)
    camera_id: CameraId
    state: CameraState
    reason: str = Field(default="", max_length=512, description="redacted: never holds credentials")
    input_fps: float = Field(ge=0.0)
    analysed_fps: float = Field(ge=0.0)
    last_frame_at: AwareDatetime | None = None
    reconnects: int = Field(ge=0)
    worker_id: str = Field(min_length=1, max_length=64)
    at: AwareDatetime
    generation: int | None = Field(
        default=None, ge=0, description="worker-group generation the worker ran this camera under (None: no group)"
    )


class LineCount(Event):
    """Crossings per line, direction and label of one camera over one count period (default one minute).

    Sent at the end of every period, zeros included, so a dashboard can draw flows without gaps;
    ``complete`` is false for a period cut short (camera stopped or reconfigured).
    """

    schema_version: Literal[1] = 1
    event_id: UUID = Field(default_factory=new_event_id)
    camera_id: CameraId
    period_start: AwareDatetime
    period_end: AwareDatetime
    complete: bool
    counts: list[LineCountEntry] = Field(max_length=1024)
    worker_id: str = Field(min_length=1, max_length=64)


class PlateCandidate(BaseModel):
    """One alternative reading of a plate with its share of the vote (0..1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plate: str = Field(pattern=r"^[A-Z0-9]{1,16}$")
    score: float = Field(ge=0.0, le=1.0)


class PlateRead(Event):
    """One vehicle pass read by a plate camera: the vote over every frame of its track.

    ``is_candidate`` marks a read below the confidence threshold: it is kept
    for fuzzy search but must not be treated as a fact (nor trigger an exact
    watchlist hit on its own).
    """

    schema_version: Literal[1] = 1
    event_id: UUID = Field(default_factory=new_event_id, description="UUIDv7, unique per read; dedupe key")
    camera_id: CameraId
    observed_at: AwareDatetime = Field(description="capture time of the frame with the best read")
    first_seen_at: AwareDatetime
    last_seen_at: AwareDatetime
    plate: str = Field(pattern=r"^[A-Z0-9]{1,16}$", description="normalised: upper-case Latin letters and digits")
    raw_text: str = Field(max_length=64, description="what the OCR read on the best frame, before correction")
    format_id: str = Field(max_length=32, description="plate format from plate_reader/formats, or 'generic'")
    country: str = Field(min_length=2, max_length=2, description="ISO 3166 alpha-2, '??' when unknown")
    confidence: float = Field(ge=0.0, le=1.0)
    is_candidate: bool = Field(description="below the confidence threshold: a lead, not a fact")
    candidates: list[PlateCandidate] = Field(default_factory=list, max_length=16, description="top-k, best first")
    reads: int = Field(ge=1, description="frames whose OCR reads were voted")
    track_id: int | None = Field(default=None, ge=0)
    vehicle_box: Box | None = None
    plate_box: Box
    snapshot: SnapshotRef | None = None
    model_versions: dict[str, str] = Field(default_factory=dict)
    worker_id: str = Field(default="", max_length=64)


__all__ = [
    "EVENT_TYPES",
    "CameraStatus",
    "ClipRef",
    "ClipStatus",
    "Event",
    "Incident",
    "IncidentState",
    "IncidentType",
    "LineCount",
    "PlateCandidate",
    "PlateRead",
    "SnapshotRef",
    "WatchlistMatchRef",
    "new_event_id",
]

EVENT_TYPES: dict[str, type[Event]] = {
    "incident": Incident,
    "camera-status": CameraStatus,
    "plate-read": PlateRead,
    "line-count": LineCount,
}
