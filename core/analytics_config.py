"""Configuration of the analytics rules a camera declares: tripwires, crowding and traffic offences.

Geometry is normalised to the frame (0..1) like zones, so a rule survives a
resolution change. Every rule is checked when it is loaded (YAML, registry
record, console form): a line outside the frame, a zero-length segment, a
section without its measured distance or a time limit of zero would otherwise
never fire, or fire on everything, and nobody would notice until an incident
was missed.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.labels import VEHICLES, Label

Point = tuple[float, float]
Severity = Literal["low", "medium", "high", "critical"]
_NAME = r"^[A-Za-z0-9 _.-]+$"
_MIN_SEGMENT = 0.005
"""Shortest segment accepted (normalised): shorter ones are typing errors and have no usable direction."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_polyline(pts: list[Point], what: str) -> list[Point]:
    for x, y in pts:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"{what} point ({x}, {y}) lies outside the frame (coordinates are 0..1)")
    for (ax, ay), (bx, by) in itertools.pairwise(pts):
        if math.hypot(bx - ax, by - ay) < _MIN_SEGMENT:
            raise ValueError(f"{what} has a zero-length segment at ({ax}, {ay}): points must be distinct")
    return pts


def _check_labels(labels: list[str]) -> list[str]:
    for name in labels:
        Label.parse(name)
    if len(set(labels)) != len(labels):
        raise ValueError("labels must not repeat")
    return labels


class Tripwire(_Strict):
    """A counting line: a polyline, the side that is "in", and the labels it counts.

    ``in_side`` is seen on screen standing on the first point and facing the
    second: ``right`` means objects crossing towards the right of that
    direction are going in. ``band`` is the hysteresis half-width: an anchor
    must leave the band on the other side before a crossing counts, so a box
    jittering on the line counts once.
    """

    name: str = Field(min_length=1, max_length=64, pattern=_NAME, description="shown to dispatchers")
    points: list[Point] = Field(min_length=2, max_length=32, description="polyline vertices (x, y), 0..1")
    in_side: Literal["left", "right"] = Field(description="side of the line (facing first -> second point) that is in")
    labels: list[str] = Field(default_factory=lambda: ["person"], min_length=1, description="labels counted")
    band: float = Field(default=0.02, ge=0.0, le=0.2, description="hysteresis half-width, fraction of frame width")
    anchor: Literal["bottom_center", "center"] = Field(default="bottom_center", description="point of the box")
    alert: bool = Field(default=True, description="raise a line_crossing incident per crossing (else count only)")
    severity: Severity = "low"

    @field_validator("points")
    @classmethod
    def _points(cls, pts: list[Point]) -> list[Point]:
        return _check_polyline(pts, "line")

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str]) -> list[str]:
        return _check_labels(labels)


class CrowdRule(_Strict):
    """More than ``max_persons`` people in ``zone`` for ``for_s`` seconds is a crowd."""

    zone: str = Field(min_length=1, max_length=64, description="name of one of the camera's zones")
    max_persons: int = Field(ge=1, le=1000, description="a crowd is MORE than this many people")
    for_s: float = Field(gt=0.0, le=3600.0, description="how long the count must stay above the limit")
    severity: Severity = "medium"


class NoStoppingZone(_Strict):
    """A vehicle (plate) standing still in ``zone`` for longer than ``stopped_s`` seconds is an offence."""

    zone: str = Field(min_length=1, max_length=64, description="name of one of the camera's zones")
    stopped_s: float = Field(gt=0.0, le=86400.0, description="longest a vehicle may stand still here")
    still_within: float = Field(
        default=0.01, gt=0.0, le=0.2, description="movement (fraction of frame width) still counted as standing"
    )
    severity: Severity = "medium"


class Lane(_Strict):
    """A lane with its direction of travel; a track moving against it for ``min_frames`` frames drives wrong way."""

    name: str = Field(min_length=1, max_length=64, pattern=_NAME)
    zone: str = Field(min_length=1, max_length=64, description="name of the zone covering the lane")
    direction: Point = Field(description="direction of travel on screen (dx, dy); need not be unit length")
    min_frames: int = Field(default=3, ge=1, le=1000, description="K: analysed frames against the lane")
    min_step: float = Field(
        default=0.003, gt=0.0, le=0.2, description="movement per frame (fraction of frame width) that counts"
    )
    severity: Severity = "high"

    @field_validator("direction")
    @classmethod
    def _nonzero(cls, d: Point) -> Point:
        if math.hypot(*d) < 1e-6:
            raise ValueError("lane direction must be a non-zero vector (dx, dy)")
        return d


class SpeedSection(_Strict):
    """Section control: two calibrated lines ``distance_m`` metres apart on the road; the average speed between."""

    name: str = Field(min_length=1, max_length=64, pattern=_NAME)
    entry: list[Point] = Field(min_length=2, max_length=32, description="first line, 0..1")
    exit: list[Point] = Field(min_length=2, max_length=32, description="second line, 0..1")
    distance_m: float = Field(gt=0.0, le=100000.0, description="calibration: metres driven between the two lines")
    limit_kmh: float = Field(gt=0.0, le=400.0, description="speed limit; above it is an offence")
    tolerance_kmh: float = Field(default=0.0, ge=0.0, le=50.0, description="margin added to the limit")
    severity: Severity = "medium"

    @field_validator("entry", "exit")
    @classmethod
    def _lines(cls, pts: list[Point]) -> list[Point]:
        return _check_polyline(pts, "section line")

    @model_validator(mode="after")
    def _apart(self) -> SpeedSection:
        if self.entry == self.exit:
            raise ValueError("section entry and exit lines must differ")
        return self


class AnalyticsConfig(_Strict):
    """Every analytics rule of one camera (all optional)."""

    lines: list[Tripwire] = Field(default_factory=list, max_length=32)
    crowding: list[CrowdRule] = Field(default_factory=list, max_length=32)
    no_stopping: list[NoStoppingZone] = Field(default_factory=list, max_length=32)
    lanes: list[Lane] = Field(default_factory=list, max_length=32)
    speed_sections: list[SpeedSection] = Field(default_factory=list, max_length=32)
    count_period_s: float = Field(default=60.0, ge=5.0, le=3600.0, description="line count bucket (event + metric)")

    @model_validator(mode="after")
    def _unique_names(self) -> AnalyticsConfig:
        for what, names in (
            ("line", [x.name for x in self.lines]),
            ("lane", [x.name for x in self.lanes]),
            ("speed section", [x.name for x in self.speed_sections]),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"{what} names must be unique per camera")
        return self

    @property
    def traffic(self) -> bool:
        """True when a traffic-offence rule is configured (they run on plate / vehicle tracks)."""
        return bool(self.no_stopping or self.lanes or self.speed_sections)

    def check_zones(self, zones: set[str]) -> None:
        """Every zone a rule names must exist on the camera (ValueError names the missing one)."""
        refs = [("crowding", r.zone) for r in self.crowding]
        refs += [("no_stopping", r.zone) for r in self.no_stopping]
        refs += [("lanes", r.zone) for r in self.lanes]
        for where, zone in refs:
            if zone not in zones:
                known = ", ".join(sorted(zones)) or "none"
                raise ValueError(f"analytics.{where} names zone {zone!r}, which the camera lacks (zones: {known})")

    def check_detectors(self, labels: set[Label], camera_id: str) -> None:
        """Rules need the labels they work on from the camera's detectors (ValueError says which)."""
        wanted = {Label.parse(name) for line in self.lines for name in line.labels}
        if self.crowding:
            wanted.add(Label.PERSON)
        missing = sorted(label.slug for label in wanted - labels)
        if missing:
            raise ValueError(f"camera {camera_id}: analytics rules need label(s) {missing} that no detector gives")
        if self.traffic and not (labels & (VEHICLES | {Label.LICENSE_PLATE})):
            raise ValueError(f"camera {camera_id}: traffic rules need a plate or vehicle detector")
