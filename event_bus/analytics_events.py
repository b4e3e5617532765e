"""What the analytics rules add to an incident (and the entries of the line-count event).

Kept out of :mod:`event_bus.events` so that the incident model only gains one
optional field (``analytics``) whose parts say, per rule, what a dispatcher
and an investigator need to re-check the alert: the line and direction, the
crowd's peak, the voted plate and, for section control, the calibrated
distance with both crossing times so the speed can be recomputed from them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

Name = Annotated[str, Field(min_length=1, max_length=64)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LineCrossingDetails(_Part):
    """A tracked object's anchor changed side of a tripwire."""

    line: Name
    direction: Literal["in", "out"]
    label: str = Field(max_length=32, description="canonical label of the object (person, car, ...)")
    count: int = Field(ge=1, description="crossings of this line in this direction in the current count period")


class CrowdDetails(_Part):
    """More people in a zone than its limit, for longer than its time."""

    count: int = Field(ge=0, description="people in the zone on this frame")
    peak: int = Field(ge=0, description="most people seen in the zone during this incident")
    limit: int = Field(ge=1, description="a crowd is more than this many")


class TrafficDetails(_Part):
    """A traffic offence of one vehicle, identified by its voted plate (when one was read)."""

    plate: str | None = Field(default=None, pattern=r"^[A-Z0-9]{1,16}$", description="voted plate so far")
    plate_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    lane: Name | None = None
    section: Name | None = None
    stopped_s: float | None = Field(default=None, ge=0.0, description="stopped_vehicle: seconds standing still")
    frames_against: int | None = Field(default=None, ge=1, description="wrong_way: analysed frames against the lane")
    speed_kmh: float | None = Field(default=None, ge=0.0, description="speeding: distance / (exited - entered)")
    limit_kmh: float | None = Field(default=None, gt=0.0)
    distance_m: float | None = Field(default=None, gt=0.0, description="calibrated distance between the lines")
    entered_at: AwareDatetime | None = Field(default=None, description="crossing of the entry line (interpolated)")
    exited_at: AwareDatetime | None = Field(default=None, description="crossing of the exit line (interpolated)")

    @model_validator(mode="after")
    def _speed_recomputable(self) -> TrafficDetails:
        section = (self.speed_kmh, self.distance_m, self.entered_at, self.exited_at)
        if any(v is not None for v in section) and any(v is None for v in section):
            raise ValueError("a section speed needs speed_kmh, distance_m, entered_at and exited_at together")
        if self.entered_at is not None and self.exited_at is not None and self.exited_at <= self.entered_at:
            raise ValueError("exited_at must be after entered_at")
        return self


class AnalyticsDetails(_Part):
    """Rule-specific fields of an incident; exactly the part of its rule is set."""

    line_crossing: LineCrossingDetails | None = None
    crowd: CrowdDetails | None = None
    traffic: TrafficDetails | None = None


class LineCountEntry(_Part):
    line: Name
    direction: Literal["in", "out"]
    label: str = Field(max_length=32)
    count: int = Field(ge=0)
