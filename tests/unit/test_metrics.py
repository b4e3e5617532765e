"""Worker metrics: families and values from a worker's stats, bounded series for 1,000 cameras, HTTP endpoints."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from detectors.batcher import BatchStats
from event_bus.relay import RelayStats
from event_bus.spool import SpoolStats
from ingest.camera import RunnerStats
from worker.analytics import AnalyticsStats
from worker.assignment import AssignmentStats
from worker.http import HealthServer
from worker.metrics import TimedDetector, WorkerMetrics, series_count
from worker.runtime import CameraHealth

FIGURES: dict[str, Any] = {}


# The camera runner's, the spool's and the relay's own stats types (not look-alikes), so a renamed field fails here.
def _runner(camera_id: str) -> RunnerStats:
    return RunnerStats(
        camera_id=camera_id, packets_read=100, key_packets_read=0, packets_decoded=0, frames_decoded=10,
        key_frames_decoded=0, frames_analysed=10, decode_errors=0, corrupt_packets=0, corrupt_frames=0,
        decode_cpu_s=0.05, reconnects=1, callback_errors=0, keyframe_only=False, keyframe_interval_s=None,
    )  # fmt: skip


SPOOL = SpoolStats(
    depth=3, bytes=4096, appended=10, acked=7, rejected_full=0, parked=0, quarantined=False, salvaged=0,
    max_records=100_000, max_bytes=1 << 30,
)  # fmt: skip
RELAY = RelayStats(delivered=7)


class FakeWorker:
    def __init__(self, n: int) -> None:
        self.worker_id = "w-test"
        now = time.time()
        states = ["up", "degraded", "down", "starting"]
        self._health = {
            f"cam-{i:05d}": CameraHealth(f"cam-{i:05d}", states[i % 4], "", now - 10, now - (i % 7)) for i in range(n)
        }
        self.spool = type("S", (), {"stats": staticmethod(lambda: SPOOL)})()
        self.relay = type("R", (), {"stats": staticmethod(lambda: RELAY)})()
        self.outbox = type(
            "O",
            (),
            {
                "refused": staticmethod(lambda: {"kuzet.incidents.v1": 2}),
                "dropped": staticmethod(lambda: {}),
                "waiting": staticmethod(lambda: 1),
            },
        )()
        self.analytics = AnalyticsStats()

    def camera_ids(self) -> list[str]:
        return sorted(self._health)

    def camera_stats(self) -> dict[str, Any]:
        return {cid: _runner(cid) for cid in self._health}

    def camera_health(self) -> dict[str, CameraHealth]:
        return dict(self._health)

    def scheduler_stats(self) -> dict[str, Any]:
        s = BatchStats(submitted=120, analysed=100, dropped=15, batches=30, batch_sizes=Counter({1: 10, 4: 15, 8: 5}))
        return {"person": s}

    def models_loaded(self) -> list[str]:
        return ["person"]


class FakeAssignment:
    def __init__(self, running: int, pending: int) -> None:
        self.running, self.n_pending = running, pending

    def stats(self) -> AssignmentStats:
        return AssignmentStats(
            group="kuzet-workers",
            generation=5,
            cameras_assigned=self.running + self.n_pending,
            cameras_running=self.running,
            cameras_pending=self.n_pending,
            capacity=self.running,
            invalid_records=2,
            start_failures=0,
            rebalances=3,
            fenced=0,
            registry_lag=0,
            registry_loaded=True,
            registry_cameras_enabled=1000,
            registry_cameras_disabled=5,
            last_poll_age_s=0.2,
            member_of_group=True,
            dead_letters_written=7,
            dead_letter_member_ok=False,
        )

    def pending(self) -> list[str]:
        return [f"pending-{i}" for i in range(self.n_pending)]


def _scrape(metrics: WorkerMetrics) -> dict[str, list[Any]]:
    from prometheus_client import generate_latest

    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    return samples


def test_metric_families_and_values() -> None:
    metrics = WorkerMetrics()
    metrics.bind(FakeWorker(8), FakeAssignment(running=8, pending=2))
    s = _scrape(metrics)
    value = {name: sum(x.value for x in v) for name, v in s.items()}
    assert value["kuzet_frames_received_total"] == 800
    assert value["kuzet_frames_analysed_total"] == 100
    assert value["kuzet_frames_dropped_total"] == 15
    assert value["kuzet_batch_queue_depth"] == 5
    buckets = {x.labels["le"]: x.value for x in s["kuzet_batch_size_bucket"]}
    assert buckets["1.0"] == 10 and buckets["4.0"] == 25 and buckets["8.0"] == 30 and buckets["+Inf"] == 30
    assert value["kuzet_batch_size_sum"] == 10 + 60 + 40
    assert value["kuzet_spool_depth"] == 3
    assert value["kuzet_camera_reconnects_total"] == 8
    assert value["kuzet_worker_cameras_pending"] == 2 and value["kuzet_worker_full"] == 1
    by_state = {x.labels["state"]: x.value for x in s["kuzet_cameras"]}
    assert by_state == {"up": 2, "degraded": 2, "down": 2, "starting": 2, "pending": 2}
    assert len(s["kuzet_camera_state"]) == 10
    assert 0 <= max(x.value for x in s["kuzet_camera_last_frame_age_seconds"]) < 10
    assert {x.labels["topic"] for x in s["kuzet_kafka_consumer_lag"]} == {"kuzet.cameras.v1"}
    assert value["kuzet_registry_dead_letters_total"] == 7 and value["kuzet_registry_dead_letter_member_ok"] == 0
    assert "process_cpu_seconds_total" in s


def test_series_stay_bounded_for_1000_cameras() -> None:
    counts = {}
    for n in (10, 1000):
        metrics = WorkerMetrics()
        metrics.bind(FakeWorker(n), FakeAssignment(running=n, pending=0))
        counts[n] = series_count(metrics.registry, "kuzet_")
    per_camera = (counts[1000] - counts[10]) / 990
    FIGURES["series_1000_cameras"] = counts[1000]
    FIGURES["series_per_camera"] = per_camera
    print(f"kuzet_ series: {counts[10]} for 10 cameras, {counts[1000]} for 1,000 cameras ({per_camera:g} per camera)")
    assert per_camera == 2  # state + last-frame age, nothing else per camera
    assert counts[1000] <= 2 * 1000 + 150


def test_drop_counts_of_cameras_that_moved_away_are_not_exported() -> None:
    """Drops are counted per camera in the stages; a camera rebalanced to another worker leaves no series here."""
    from worker.pipeline import PipelineStats
    from worker.stage_queue import QueueStats

    class Rebalanced(FakeWorker):
        def scheduler_stats(self) -> dict[str, Any]:
            return {"person": BatchStats(dropped=5, dropped_by_camera=Counter({"cam-00001": 2, "gone-1": 3}))}

        def pipeline_stats(self) -> PipelineStats:
            plate = QueueStats("plate", 8, "drop_oldest", 0, 9, 9, 4, Counter({"cam-00002": 1, "gone-2": 3}), 0.0)
            return PipelineStats(queues={"plate": plate})

    metrics = WorkerMetrics()
    metrics.bind(Rebalanced(4), FakeAssignment(running=4, pending=0))
    series = {(x.labels["stage"], x.labels["camera"]): x.value for x in _scrape(metrics)["kuzet_stage_dropped_total"]}
    assert series == {("inference:person", "cam-00001"): 2, ("plate", "cam-00002"): 1}


def test_timed_detector_observes_one_per_batch() -> None:
    metrics = WorkerMetrics()

    class Det:
        name, version = "person", "1"

        def detect(self, images: Any) -> list[Any]:
            return [None for _ in images]

    timed = TimedDetector(Det(), metrics.inference)
    timed.detect([np.zeros((2, 2, 3), np.uint8)] * 4)
    timed.detect([np.zeros((2, 2, 3), np.uint8)])
    s = _scrape(metrics)
    assert sum(x.value for x in s["kuzet_inference_seconds_count"]) == 2
    assert timed.version == "1"


def test_http_endpoints() -> None:
    metrics = WorkerMetrics()
    metrics.bind(FakeWorker(3), FakeAssignment(3, 0))
    ready = {"ok": False}
    server = HealthServer(
        metrics.registry,
        port=0,
        checks={"model": lambda: (ready["ok"], "person"), "bus": lambda: (True, "ok")},
        status=lambda: {"cameras": 3, "url": "rtsp://u:hunter2@h/x"},
    ).start()
    try:
        body = urllib.request.urlopen(f"{server.url}/metrics", timeout=5).read().decode()
        assert "kuzet_frames_received_total" in body
        assert urllib.request.urlopen(f"{server.url}/healthz", timeout=5).status == 200
        try:
            urllib.request.urlopen(f"{server.url}/readyz", timeout=5)
            raise AssertionError("readyz must fail while the model is not loaded")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
            assert json.loads(exc.read())["checks"]["model"]["ok"] is False
        ready["ok"] = True
        assert json.loads(urllib.request.urlopen(f"{server.url}/readyz", timeout=5).read())["ready"] is True
        try:
            urllib.request.urlopen(f"{server.url}/nope", timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
    finally:
        server.stop()
