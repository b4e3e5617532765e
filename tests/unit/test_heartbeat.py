"""Camera-status heartbeats: every running camera re-reported on a period, with rates over the interval."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.health import CameraState
from worker.heartbeat import StatusHeartbeat


@dataclass
class Health:
    state: str
    reason: str
    last_analysed_at: float | None


@dataclass
class Counters:
    packets_read: int
    frames_analysed: int
    reconnects: int


class FakeWorker:
    worker_id = "w1"

    def __init__(self) -> None:
        self.health: dict[str, Health] = {}
        self.stats: dict[str, Counters] = {}

    def camera_health(self) -> Mapping[str, Health]:
        return self.health

    def camera_stats(self) -> Mapping[str, Counters]:
        return self.stats


def test_every_running_camera_is_reported_each_beat_with_interval_rates() -> None:
    w = FakeWorker()
    w.health = {"a": Health("up", "frames flowing", 1000.0), "b": Health("starting", "", None)}
    w.stats = {"a": Counters(100, 50, 1)}
    hb = StatusHeartbeat(w, 10.0, lambda _s: None)
    first = hb.beat(now=1000.0)
    assert [s.camera_id for s in first] == ["a"]  # "b" has not reported its first state yet
    assert first[0].state is CameraState.UP and first[0].analysed_fps == 0.0
    w.stats = {"a": Counters(350, 100, 1)}
    (second,) = hb.beat(now=1010.0)
    assert second.input_fps == 25.0 and second.analysed_fps == 5.0
    assert second.at.timestamp() == 1010.0 and second.worker_id == "w1"


def test_final_beat_reports_cameras_down_when_the_worker_stops() -> None:
    w = FakeWorker()
    w.health = {"a": Health("up", "frames flowing", 1000.0)}
    w.stats = {"a": Counters(1, 1, 0)}
    (final,) = StatusHeartbeat(w, 30.0, lambda _s: None).beat(
        now=1001.0, state=CameraState.DOWN, reason="worker stopped"
    )
    assert final.state is CameraState.DOWN and final.reason == "worker stopped"
