"""The pieces of the staged worker: stage queue policies, the sink's per-camera order, the event builder."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import numpy as np
import pytest

from core.config import CameraConfig
from core.frame import Frame
from event_bus.events import Incident, IncidentState, IncidentType, PlateRead
from event_bus.schemas import validate
from plate_reader.formats import FormatMatch
from plate_reader.ocr import OcrRead
from plate_reader.pipeline import PlateObservation
from plate_reader.reader import PlatePass
from storage.local_store import LocalSnapshotStore
from worker.events import EventBuilder, IncidentDraft, Outgoing, PlateDraft
from worker.incident_change import IncidentChange
from worker.sink import Sink, SinkItem
from worker.stage_queue import Overflow, QueueClosedError, StageQueue

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CAM = CameraConfig(id="cam-1", url="file:///dev/null", name="Gate", location="North")


# ------------------------------------------------------------------ StageQueue
def test_drop_oldest_never_blocks_and_counts_per_camera() -> None:
    dropped: list[int] = []
    q: StageQueue[int] = StageQueue("plate", 2, Overflow.DROP_OLDEST, on_drop=dropped.append)
    for i, cam in enumerate(["a", "b", "a", "a"]):
        q.put(cam, i)
    assert dropped == [0, 1]
    s = q.stats()
    assert s.dropped == 2 and s.dropped_by_camera == {"a": 1, "b": 1} and s.depth == 2
    assert q.get_many(10) == [2, 3]
    q.task_done(2)
    assert q.join(0.1)


def test_hold_waits_for_room_and_a_per_item_policy_overrides() -> None:
    q: StageQueue[int] = StageQueue("sink", 1, Overflow.HOLD)
    q.put("a", 1)
    q.put("a", 2, Overflow.DROP_OLDEST)  # override: evicts 1 instead of waiting
    assert q.stats().dropped == 1
    put_done = threading.Event()

    def producer() -> None:
        q.put("a", 3)  # full: waits until the consumer takes 2
        put_done.set()

    t = threading.Thread(target=producer)
    t.start()
    assert not put_done.wait(0.05)
    assert q.get_many(1) == [2]
    t.join(5)
    assert put_done.is_set() and q.get_many(1) == [3]
    q.task_done(2)
    q.close()
    assert q.get_many(1) == []
    with pytest.raises(QueueClosedError):
        q.put("a", 4)


def test_hold_at_holds_a_producer_below_capacity_and_others_not() -> None:
    q: StageQueue[int] = StageQueue("analysis", 100, Overflow.HOLD)
    q.put("live", 1)
    q.put("live", 2)
    put_done = threading.Event()

    def replay() -> None:
        q.put("file", 3, hold_at=2)  # depth 2 already: a replay's producer waits here, far below capacity
        put_done.set()

    t = threading.Thread(target=replay)
    t.start()
    assert not put_done.wait(0.05)
    q.put("live", 4)  # a producer without hold_at still gets in
    assert q.get_many(2) == [1, 2]
    t.join(5)
    assert put_done.is_set() and q.get_many(10) == [4, 3]
    q.task_done(4)
    assert q.stats().held_s > 0.0


# ------------------------------------------------------------------------ Sink
def _change(state: IncidentState, seq: int, incident_id=None) -> IncidentChange:  # type: ignore[no-untyped-def]
    return IncidentChange(
        incident_id=incident_id or uuid4(), type=IncidentType.PERSON_IN_ZONE, state=state, seq=seq,
        severity="medium", started_at=T0, observed_at=T0 + timedelta(seconds=seq), ended_at=None,
        zone="yard", track_id=3, boxes=[[1.0, 2.0, 30.0, 40.0]], confidence=0.8,
    )  # fmt: skip


def test_sink_writes_each_cameras_tickets_in_order() -> None:
    out: list[Outgoing] = []
    sink = Sink(EventBuilder("w1", None), out.append)
    iid = uuid4()
    drafts = [IncidentDraft(CAM, _change(s, n, iid), {"person": "m@1"}) for n, s in enumerate(IncidentState)]
    done = threading.Event()
    sink.take(SinkItem(2, "cam-1", [drafts[2]], done))
    sink.take(SinkItem(1, "cam-1", []))  # a plate frame that made no read (or was dropped)
    assert out == [] and sink.waiting() == 2 and not done.is_set()
    sink.take(SinkItem(0, "cam-1", drafts[:2]))
    assert [o.event.state for o in out] == list(IncidentState)  # type: ignore[union-attr]
    assert done.is_set() and sink.waiting() == 0


# ---------------------------------------------------------------- EventBuilder
def test_incident_snapshot_is_taken_at_start_and_carried_to_the_end(tmp_path: Path) -> None:
    store = LocalSnapshotStore(tmp_path)
    builder = EventBuilder("w1", store.ref_for)
    image = np.zeros((60, 80, 3), np.uint8)
    iid = uuid4()
    start = builder.build(IncidentDraft(CAM, _change(IncidentState.START, 0, iid), {"person": "m@1"}, image))
    update = builder.build(IncidentDraft(CAM, _change(IncidentState.UPDATE, 1, iid), {"person": "m@1"}, image))
    end = builder.build(IncidentDraft(CAM, _change(IncidentState.END, 2, iid), {"person": "m@1"}))
    assert isinstance(start.event, Incident) and start.snapshot_jpeg is not None
    ref = start.event.snapshot
    assert ref is not None and ref.key == f"cam-1/2026/03/01/{start.event.event_id}.jpg"
    assert ref.size == len(start.snapshot_jpeg)
    assert update.snapshot_jpeg is None and update.event.snapshot == ref and end.event.snapshot == ref
    assert start.event.camera_name == "Gate" and start.event.worker_id == "w1"
    for o in (start, update, end):
        validate("incident", o.event.model_dump(mode="json"))


def test_plate_pass_becomes_a_plate_read_with_its_snapshot(tmp_path: Path) -> None:
    read = OcrRead("123ABC02", 0.9, tuple({c: 0.9} for c in "123ABC02"))
    obs = PlateObservation((10.0, 20.0, 70.0, 36.0), 0.8, read, (FormatMatch("kz-2012", "KZ", "123ABC02", 0.9, -0.1),))
    image = np.zeros((60, 80, 3), np.uint8)
    result = PlatePass(
        camera_id="cam-1", plate="123ABC02", raw_text="123ABC02", format_id="kz-2012", country="KZ",
        confidence=0.9, is_candidate=False, candidates=(("123ABC02", 1.0),), reads=3, track_id=None,
        first_seen_at=T0, last_seen_at=T0, observed_at=T0, vehicle_box=None, plate_box=(10.0, 20.0, 70.0, 36.0),
        best=obs, frame=Frame("cam-1", 0, T0, 0.0, False, image),
    )  # fmt: skip
    out = EventBuilder("w1", LocalSnapshotStore(tmp_path).ref_for).build(PlateDraft(result, {"plate": "p@1"}))
    assert isinstance(out.event, PlateRead) and out.topic == "kuzet.plates.v1"
    assert out.event.snapshot is not None and out.snapshot_jpeg is not None
    assert out.event.plate == "123ABC02" and out.event.model_versions == {"plate": "p@1"}
    validate("plate-read", out.event.model_dump(mode="json"))
