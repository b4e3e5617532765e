"""Incident schema v2 (clip + watchlist match) is what producers write; v1 records stay readable.

A v1 record is validated against the committed v1 schema (the contract it was
produced under) and lifted to the v2 model; a v2 record carries the clip
reference and the watchlist match. Both go through the console's bus consumer
into the incident store, and through the shared :func:`event_bus.consume.decode`
every consumer uses.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dispatch.testing import ServedApp, local_console, make_incident
from event_bus import schemas, topics
from event_bus.consume import decode
from event_bus.events import ClipRef, ClipStatus, Incident, WatchlistMatchRef
from event_bus.interfaces import InRecord, OutRecord
from event_bus.local_bus import LocalBusPublisher
from storage.workflow import WorkflowStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def v1_doc(inc: Incident) -> dict[str, Any]:
    """What a v1 producer wrote: the same incident without the v2 fields."""
    doc = inc.model_dump(mode="json")
    for v2_field in ("clip", "watchlist", "analytics", "review", "review_reason", "object_count", "track_ids"):
        del doc[v2_field]
    return {**doc, "schema_version": 1}


def clip_ref(status: ClipStatus = ClipStatus.COMPLETE, reason: str = "") -> ClipRef:
    return ClipRef(
        store="s3",
        bucket="kuzet-clips",
        key="cam-1/2026/03/01/x.mp4",
        sha256="b" * 64,
        size=123_456,
        started_at=T0 - timedelta(seconds=10),
        ended_at=T0 + timedelta(seconds=20),
        duration_s=30.0,
        status=status,
        reason=reason,
    )


def v2_incident() -> Incident:
    inc = make_incident(type="watchlist_hit", started_at=T0)
    match = WatchlistMatchRef(
        plate="123ABC02",
        plate_read_id=uuid.uuid4(),
        watchlist_id=uuid.uuid4(),
        watchlist_plate="123ABC02",
        mode="exact",
    )
    return inc.model_copy(update={"clip": clip_ref(), "watchlist": match})


def in_record(doc: dict[str, Any]) -> InRecord:
    return InRecord(topics.INCIDENTS, 0, 0, "cam-1", json.dumps(doc).encode(), timestamp_ms=0)


def test_producers_write_v2_and_its_schema_is_exported() -> None:
    doc = json.loads(v2_incident().model_dump_json())
    assert doc["schema_version"] == 2
    schemas.validate("incident", doc)
    assert schemas.load("incident")["$id"].endswith(":incident:v2")
    assert schemas.load("incident", 1)["$id"].endswith(":incident:v1")  # still published, still read


def test_v1_document_decodes_to_the_current_model() -> None:
    inc = make_incident(started_at=T0)
    doc = v1_doc(inc)
    schemas.validate("incident", doc, 1)
    with pytest.raises(schemas.SchemaValidationError):
        schemas.validate("incident", doc)  # it is not a v2 document
    _, event = decode(in_record(doc))
    assert isinstance(event, Incident)
    assert event.schema_version == 2 and event.clip is None and event.watchlist is None
    assert event.incident_id == inc.incident_id and event.started_at == inc.started_at


def test_v2_document_keeps_clip_and_watchlist() -> None:
    inc = v2_incident()
    _, event = decode(in_record(json.loads(inc.model_dump_json())))
    assert event == inc
    assert isinstance(event, Incident) and event.clip is not None and event.watchlist is not None
    assert event.clip.sha256 == "b" * 64 and event.watchlist.plate == "123ABC02"


@pytest.mark.parametrize(
    "change",
    [
        {"schema_version": 1, "clip": None},  # v1 had no clip field: not a valid v1 document
        {"schema_version": 3},  # from the future: not readable
        {"schema_version": 0},
        {"schema_version": True},
        {"clip": {"store": "s3"}},
    ],
)
def test_unreadable_versions_and_bad_fields_are_errors(change: dict[str, Any]) -> None:
    doc = {**json.loads(v2_incident().model_dump_json()), **change}
    with pytest.raises(ValueError):
        decode(in_record(doc))


def test_clip_ref_rules() -> None:
    with pytest.raises(ValidationError, match="must say why"):
        clip_ref(ClipStatus.INCOMPLETE)
    assert clip_ref(ClipStatus.INCOMPLETE, "camera dropped").reason == "camera dropped"
    with pytest.raises(ValidationError, match="ends before"):
        ClipRef.model_validate({**clip_ref().model_dump(), "ended_at": T0 - timedelta(hours=1)})


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[ServedApp, LocalBusPublisher, WorkflowStore]]:
    with local_console(tmp_path) as served_pub_store:
        yield served_pub_store


def test_console_reads_v1_and_v2_records(console: tuple[ServedApp, LocalBusPublisher, WorkflowStore]) -> None:
    _served, pub, store = console
    old = make_incident(camera_id="cam-1", started_at=T0)
    new = v2_incident()
    pub.publish(
        [
            OutRecord(topics.INCIDENTS, "cam-1", json.dumps(v1_doc(old)).encode()),
            OutRecord(topics.INCIDENTS, "cam-1", new.model_dump_json().encode()),
        ]
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (store.get(str(old.incident_id)) and store.get(str(new.incident_id))):
        time.sleep(0.05)
    got_old, got_new = store.get(str(old.incident_id)), store.get(str(new.incident_id))
    assert got_old is not None and got_old.type == "person_in_zone"
    assert got_new is not None and got_new.type == "watchlist_hit"
