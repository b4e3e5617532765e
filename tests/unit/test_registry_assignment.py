"""The assignment without a broker: capacity (pending), updates, removals, bad records, two phases, fencing."""

from __future__ import annotations

import json
import time
from typing import Any

from core.config import CameraConfig
from event_bus import topics
from event_bus.interfaces import OutRecord
from event_bus.kafka_admin import RawRecord
from event_bus.kafka_group import Assigned
from worker.assignment import PENDING_REASON, AssignmentSettings, CameraAssignment
from worker.registry import encode_camera
from worker.registry_dead_letters import registry_dead_letter


class FakeWorker:
    worker_id = "w-test"

    def __init__(self) -> None:
        self.running: dict[str, CameraConfig] = {}
        self.calls: list[tuple[str, str]] = []

    def add_camera(self, camera: CameraConfig) -> None:
        assert camera.id not in self.running
        self.running[camera.id] = camera
        self.calls.append(("add", camera.id))

    def remove_camera(self, camera_id: str) -> None:
        self.running.pop(camera_id, None)
        self.calls.append(("remove", camera_id))

    def update_camera(self, camera: CameraConfig) -> None:
        self.running[camera.id] = camera
        self.calls.append(("update", camera.id))

    def camera_ids(self) -> list[str]:
        return sorted(self.running)


class FakeGroup:
    """The group member as the assignment sees it: heartbeat age and rejoin requests."""

    def __init__(self) -> None:
        self.age_s = 0.0
        self.out = False
        self.rejoins = 0

    def heartbeat_age_s(self, since: float) -> float:
        return self.age_s

    def expelled(self) -> bool:
        return self.out

    def request_rejoin(self) -> None:
        self.rejoins += 1


def Rec(key: bytes | None, value: bytes | None, offset: int, partition: int = 0) -> RawRecord:
    """A registry record as the registry view reads it."""
    return RawRecord(partition, offset, key, value, 0)


def _cam(cid: str, **kw: Any) -> CameraConfig:
    return CameraConfig(id=cid, url=f"rtsp://127.0.0.1/{cid}", **kw)


def _assignment(capacity: int) -> tuple[CameraAssignment, FakeWorker, list[OutRecord], list[tuple[str, str]]]:
    worker = FakeWorker()
    sunk: list[OutRecord] = []
    events: list[tuple[str, str]] = []
    a = CameraAssignment(
        worker,
        AssignmentSettings(bootstrap="127.0.0.1:1", capacity=capacity),
        known_detectors=["person"],
        sink=sunk.extend,
        on_event=lambda kind, cid, _d: events.append((kind, cid)),
    )
    return a, worker, sunk, events


def _feed(a: CameraAssignment, partition: int, cid: str, value: bytes | None, offset: int) -> None:
    a.view.apply(Rec(cid.encode(), value, offset, partition))


def _give(a: CameraAssignment, generation: int, *cameras: str) -> None:
    a._assigned(Assigned(generation, frozenset(cameras), time.monotonic()))


def test_capacity_leaves_cameras_pending_and_reports_them() -> None:
    a, worker, sunk, _events = _assignment(capacity=3)
    for i in range(5):
        _feed(a, i % 2, f"cam-{i}", encode_camera(_cam(f"cam-{i}")), i)
    _give(a, 4, *[f"cam-{i}" for i in range(5)])
    a._reconcile()
    assert worker.camera_ids() == ["cam-0", "cam-1", "cam-2"]
    assert a.pending() == ["cam-3", "cam-4"]
    stats = a.stats()
    assert (stats.cameras_running, stats.cameras_pending, stats.capacity, stats.generation) == (3, 2, 3, 4)
    reasons = {r.key: json.loads(r.value)["reason"] for r in sunk if r.topic == topics.CAMERA_STATUS}
    assert set(reasons) == {"cam-3", "cam-4"} and all(v.startswith(PENDING_REASON) for v in reasons.values())
    a._reconcile()
    assert len(sunk) == 2, "pending cameras are reported once, not at every loop"
    # room frees up: a pending camera starts
    _feed(a, 0, "cam-0", None, 10)
    a._reconcile()
    assert worker.camera_ids() == ["cam-1", "cam-2", "cam-3"] and a.pending() == ["cam-4"]


def test_updates_restart_one_camera_and_disabled_or_tombstoned_stop() -> None:
    a, worker, _sunk, events = _assignment(capacity=10)
    _feed(a, 0, "cam-a", encode_camera(_cam("cam-a")), 0)
    _feed(a, 1, "cam-b", encode_camera(_cam("cam-b")), 0)
    _give(a, 1, "cam-a", "cam-b")
    a._reconcile()
    worker.calls.clear()
    a._reconcile()
    assert worker.calls == [], "an unchanged registry changes nothing"
    zone = {"name": "left", "polygon": [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0)]}
    _feed(a, 0, "cam-a", encode_camera(_cam("cam-a", zones=[zone], analysis_fps=2.0)), 1)
    a._reconcile()
    assert worker.calls == [("update", "cam-a")] and worker.running["cam-a"].zones[0].name == "left"
    _feed(a, 1, "cam-b", encode_camera(_cam("cam-b", enabled=False)), 1)
    _feed(a, 0, "cam-a", None, 2)
    assert a._reconcile() is False, "cameras gone from the registry need no second round"
    assert worker.camera_ids() == []
    assert ("stop", "cam-a") in events and ("stop", "cam-b") in events


def test_bad_records_are_skipped_and_reported_once_and_the_dead_letters_carry_no_credentials() -> None:
    a, worker, sunk, events = _assignment(capacity=10)
    _feed(a, 0, "cam-a", encode_camera(_cam("cam-a")), 0)
    good = json.loads(encode_camera(_cam("cam-a")))
    good["camera"]["url"] = "rtsp://admin:hunter2@127.0.0.1/x"
    bad = [
        Rec(b"cam-a", json.dumps(good).encode(), 1, 0),  # bad update: the camera keeps its last valid definition
        Rec(b"cam-b", encode_camera(_cam("cam-b", detectors=["no-such-model"])), 2, 0),
        Rec(b"Bad Key", b"{}", 0, 1),
        Rec(b"cam-c", b"\xff\xfe", 1, 1),
    ]
    for r in bad:
        a.view.apply(r)
    _give(a, 1, "cam-a", "cam-b", "cam-c")
    a._reconcile()
    assert worker.camera_ids() == ["cam-a"] and worker.running["cam-a"].url == "rtsp://127.0.0.1/cam-a"
    assert a.invalid_records == 4
    assert not [r for r in sunk if r.topic == topics.DLQ], "a reader never dead-letters: N workers would write N"
    _feed(a, 0, "cam-b", encode_camera(_cam("cam-b", detectors=["no-such-model"])), 2)  # read again
    assert a.invalid_records == 4, "the same record is reported once per process"
    assert sum(1 for kind, _ in events if kind == "invalid") == 4
    # the dead letters the group's dead-lettering member writes for them, by the same rules as the view
    letters = [registry_dead_letter(r, a.view.policy, a.view.known_detectors, "kuzet-workers") for r in bad]
    dlq = [x for x in letters if x is not None]
    assert len(dlq) == 4 and not any(b"hunter2" in r.value for r in dlq)
    assert any("unknown detector" in dict(r.headers)["kuzet-error"].decode() for r in dlq)
    assert registry_dead_letter(Rec(b"cam-a", encode_camera(_cam("cam-a")), 3), a.view.policy, None, "g") is None


def test_a_taken_camera_is_reported_until_stopped_then_the_worker_asks_to_rejoin() -> None:
    a, worker, _sunk, _events = _assignment(capacity=10)
    for cid in ("cam-a", "cam-b"):
        _feed(a, 0, cid, encode_camera(_cam(cid)), 0)
    _give(a, 1, "cam-a", "cam-b")
    a._reconcile()
    _give(a, 2, "cam-a")  # the leader moves cam-b elsewhere
    assert a.owned() == {"cam-a", "cam-b"}, "still running: the leader must not hand it on yet"
    assert a._reconcile() is True, "cam-b stopped: rejoin so its new owner gets it"
    assert worker.camera_ids() == ["cam-a"] and a.owned() == {"cam-a"}


def test_a_worker_without_heartbeats_fences_itself_and_reports_nothing() -> None:
    a, worker, _sunk, events = _assignment(capacity=10)
    _feed(a, 0, "cam-a", encode_camera(_cam("cam-a")), 0)
    group = FakeGroup()
    a._group = group  # type: ignore[assignment]
    _give(a, 7, "cam-a")
    a._reconcile()
    assert a.status_generation() == 7
    group.age_s = a.settings.fence_after_s + 0.1  # e.g. resumed after SIGSTOP past the session timeout
    assert a.status_generation() is None, "no status may claim the camera now"
    assert a._owned_for_join() == set(), "and it rejoins owning nothing"
    assert worker.camera_ids() == [] and ("fenced", "") in events and group.rejoins == 1
    assert a.stats().fenced == 1 and a.stats().generation is None
    # a camera taken while pending (never started) also needs the follow-up round
    _give(a, 8, "cam-a", "cam-z")
    a._reconcile()
    _give(a, 9, "cam-a")
    assert a._reconcile() is True
    # told by the coordinator that its generation is gone (heartbeat or join error): fenced at once
    group.age_s, group.out = 0.0, False
    _give(a, 9, "cam-a")
    a._reconcile()
    assert a.status_generation() == 9 and worker.camera_ids() == ["cam-a"]
    group.out = True
    assert a.status_generation() is None and a._owned_for_join() == set() and worker.camera_ids() == []


def test_status_command_prints_cameras_per_worker(monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from kuzet.commands import status as status_cmd
    from worker.status_report import CameraRow, StatusReport, WorkerRow

    report = StatusReport(
        group="kuzet-workers",
        group_state="Stable",
        workers=[WorkerRow("w1", "m-1", "10.0.0.5", 8, ["cam-a", "cam-b"], ["cam-a", "cam-b"])],
        cameras=[
            CameraRow("cam-a", True, 0, "w1", "up", "heartbeat", "w1", "2026-01-01T00:00:00Z"),
            CameraRow("cam-b", True, 1, "w1", "pending-capacity", f"{PENDING_REASON}: full", "w1", None),
            CameraRow("cam-c", True, 2, None, "unassigned", "no worker owns its partition", None, None),
        ],
        invalid_records=1,
    )
    monkeypatch.setattr(status_cmd, "report_within", lambda *_a: report)
    out = CliRunner().invoke(status_cmd.app, []).output
    assert "w1" in out and "pending-capacity" in out and "3 camera(s): 1 pending-capacity, 1 unassigned, 1 up" in out
    doc = json.loads(CliRunner().invoke(status_cmd.app, ["--json"]).output)
    assert doc["counts"] == {"up": 1, "pending-capacity": 1, "unassigned": 1}
