"""Alert-flood settings: which incidents reach a dispatcher as alerts, and which are only recorded.

A busy zone produced one "person in zone" card per passer-by: thousands an
hour, which no dispatcher can work. Operations centres answer alarm fatigue
with four controls, each configurable per zone and per rule here:

* **review** per rule (after Frigate's split of review items into *alerts*
  and *detections*): ``alert`` (a card for each object, the default),
  ``aggregate`` (one alert per zone *episode*: from the first object in until
  the zone is empty, with the count of objects and their track ids; each
  object's own incident is still recorded, as a detection) or ``detection``
  (recorded and searchable, never a card).
* **schedule**: a zone is *armed* only in its time windows (a park closed at
  night); outside them its incidents are recorded as detections.
* **cool-down** per rule: after an alert starts, further alerts of that rule
  in that zone within ``cooldown_s`` are recorded as detections.
* **budget** per camera (``alert_budget_per_min`` in ``rules``): past it, one
  "camera is flooding" alert replaces the rest, which are recorded as
  detections until the rate falls back.

Every incident event still goes to Kafka and the incident history; the
``review`` field says whether it is an alert (a card) or a detection.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ReviewMode = Literal["alert", "aggregate", "detection"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArmWindow(_Strict):
    """A weekly time window in which a zone is armed; ``end`` before ``start`` runs past midnight."""

    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1, description="days the window starts")
    start: time = Field(description="HH:MM local time (see `timezone`)")
    end: time = Field(description="HH:MM; equal to start: the whole day")

    def contains(self, local: datetime) -> bool:
        now, day = local.time(), DAYS[local.weekday()]
        prev_day = DAYS[(local.weekday() - 1) % 7]
        if self.start < self.end:
            return day in self.days and self.start <= now < self.end
        if self.start == self.end:
            return day in self.days
        # past midnight: the evening part belongs to today's window, the morning part to yesterday's
        return (day in self.days and now >= self.start) or (prev_day in self.days and now < self.end)


class RuleAlerting(_Strict):
    """How one rule's incidents in one zone reach dispatchers."""

    review: ReviewMode = Field(default="alert", description="alert, aggregate (one per zone episode) or detection")
    cooldown_s: float = Field(
        default=0.0, ge=0.0, le=86400.0, description="after an alert starts, later ones within this are detections"
    )


class AlertPolicy(_Strict):
    """Alerting of a zone (or the camera-wide default): armed windows and per-rule review settings."""

    schedule: list[ArmWindow] = Field(
        default_factory=list, max_length=32, description="armed windows; empty: always armed"
    )
    timezone: str = Field(default="UTC", description="IANA zone the schedule is written in, e.g. Asia/Almaty")
    rules: dict[str, RuleAlerting] = Field(
        default_factory=dict, description="incident type (person_in_zone, loitering, fire ...) -> its settings"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Asia/Almaty)") from None
        return name

    @model_validator(mode="after")
    def _known_rules(self) -> AlertPolicy:
        unknown = sorted(set(self.rules) - set(ALERTABLE_TYPES))
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; rules: {sorted(ALERTABLE_TYPES)}")
        return self

    def armed(self, at: datetime) -> bool:
        if not self.schedule:
            return True
        local = at.astimezone(ZoneInfo(self.timezone))
        return any(w.contains(local) for w in self.schedule)

    def rule(self, incident_type: str) -> RuleAlerting:
        return self.rules.get(incident_type) or _DEFAULT_RULE


_DEFAULT_RULE = RuleAlerting()
# incident types a worker's rules raise (watchlist hits come from the plate watcher and are always alerts)
ALERTABLE_TYPES = ("person_in_zone", "loitering", "line_crossing", "crowd", "fire", "smoke")
