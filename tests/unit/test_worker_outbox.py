"""An event the outbox refuses is not only logged: the camera goes degraded, a metric counts it (#10.13).

Before the fix ``Worker._emit`` let ``SpoolFull`` (or a disk-full error) escape into the sink thread,
which logged it; health, metrics and alerts showed nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from core.config import CameraConfig, load_config
from dispatch.testing import make_incident
from event_bus import topics
from event_bus.events import Incident
from worker.events import Outgoing
from worker.metrics import WorkerMetrics
from worker.runtime import Worker, _Camera


def _worker(tmp_path: Path) -> Worker:
    cfg = load_config(
        overrides={
            "bus": {
                "kind": "local",
                "local_path": str(tmp_path / "bus.sqlite3"),
                "spool_path": str(tmp_path / "spool.sqlite3"),
            },
            "storage": {"kind": "local", "local_dir": str(tmp_path / "snapshots")},
        }
    )
    worker = Worker(cfg)
    cam = CameraConfig(id="cam-1", url=str(tmp_path / "x.mp4"))
    runner: Any = SimpleNamespace(status=None, stop=lambda: None, stats=lambda: SimpleNamespace())
    worker._cameras["cam-1"] = _Camera(cam, runner)
    return worker


def _incident() -> Incident:
    return make_incident(started_at=datetime(2026, 1, 1, tzinfo=UTC), worker_id="w1")


def _refused_metric(worker: Worker) -> dict[str, float]:
    metrics = WorkerMetrics()
    metrics.bind(worker)
    return {
        s.labels["topic"]: s.value
        for fam in metrics.registry.collect()
        for s in fam.samples
        if s.name == "kuzet_outbox_refused_total"
    }


def test_refused_incident_degrades_the_camera_and_counts(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    try:
        worker.spool.max_records = 0  # the spool is "full": every append is refused
        worker._emit(Outgoing(topics.INCIDENTS, _incident(), None))  # must not raise into the sink thread
        health = worker.camera_health()["cam-1"]
        assert health.state == "degraded" and "SpoolFull" in health.reason
        assert worker.outbox.refused() == {topics.INCIDENTS: 1}
        assert _refused_metric(worker)[topics.INCIDENTS] == 1.0
        assert worker.outbox.waiting() == 1, "the refused event waits in memory, it is not dropped"
        worker.spool.max_records = 1000  # room again: the waiting event goes first, then the new one
        worker._emit(Outgoing(topics.INCIDENTS, _incident(), None))
        assert worker.camera_health()["cam-1"].state == "starting" and worker.spool.depth() == 2
        assert worker.outbox.waiting() == 0
    finally:
        worker.stop(flush_timeout_s=0.1)
