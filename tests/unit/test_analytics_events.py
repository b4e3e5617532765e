"""Analytics fields of Incident v2 and the line-count event against their exported JSON Schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from pydantic import ValidationError

from event_bus import schemas
from event_bus.analytics_events import AnalyticsDetails, LineCountEntry, TrafficDetails
from event_bus.events import Incident, IncidentState, IncidentType, LineCount, new_event_id
from event_bus.versions import upgrade

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def speeding() -> Incident:
    traffic = TrafficDetails(
        plate="123ABC02", plate_confidence=0.91, section="s1", speed_kmh=85.26, limit_kmh=60.0, distance_m=20.0,
        entered_at=T0, exited_at=T0 + timedelta(seconds=0.8444),
    )  # fmt: skip
    return Incident(
        incident_id=uuid4(), type=IncidentType.SPEEDING, state=IncidentState.START, camera_id="cam-1",
        severity="medium", started_at=T0, observed_at=T0, confidence=0.91, worker_id="w1", seq=0,
        analytics=AnalyticsDetails(traffic=traffic),
    )  # fmt: skip


def test_incident_with_traffic_fields_validates_against_the_v2_schema() -> None:
    doc = json.loads(speeding().model_dump_json())
    schemas.validate("incident", doc)
    assert doc["analytics"]["traffic"]["distance_m"] == 20.0
    doc["analytics"]["traffic"]["speed_kmh"] = -1
    with pytest.raises(schemas.SchemaValidationError):
        schemas.validate("incident", doc)


def test_a_section_speed_without_its_times_is_refused() -> None:
    with pytest.raises(ValidationError, match="together"):
        TrafficDetails(speed_kmh=90.0, distance_m=20.0, entered_at=T0)
    with pytest.raises(ValidationError, match="after entered_at"):
        TrafficDetails(speed_kmh=90.0, distance_m=20.0, entered_at=T0, exited_at=T0)


def test_line_count_event_validates() -> None:
    event = LineCount(
        event_id=new_event_id(), camera_id="cam-1", period_start=T0, period_end=T0 + timedelta(minutes=1),
        complete=True, counts=[LineCountEntry(line="gate", direction="in", label="person", count=3)], worker_id="w1",
    )  # fmt: skip
    schemas.validate("line-count", json.loads(event.model_dump_json()))
    bad = json.loads(event.model_dump_json())
    bad["counts"][0]["direction"] = "sideways"
    with pytest.raises(schemas.SchemaValidationError):
        schemas.validate("line-count", bad)


def test_a_v1_crowd_incident_lifts_to_crowding() -> None:
    assert upgrade("incident", 1, {"schema_version": 1, "type": "crowd"}, 2)["type"] == "crowding"
    assert upgrade("incident", 1, {"schema_version": 1, "type": "fire"}, 2)["type"] == "fire"
