"""A camera's first / last analysed times belong to its current run on the worker, never to an earlier one.

The CI failure of ``test_sigkill_failover_then_fourth_worker_rebalances``:
so-cam-13 had run on w3 during the first split and was taken from it; a frame
still in inference when it stopped finished 0.1 s later and wrote its time
back after ``remove_camera`` had cleared it. When the failover gave the camera
back to w3, its health said "first analysed 39 s ago", the journal's
``first_frame`` carried that old time, and the failover was never seen. The
same stale time fed the heartbeat's last-frame time and the metrics'
last-frame age.

Real worker, pipeline and decoder (a file camera); only the model is a fake
whose ``detect`` holds each batch until the test lets it go, so a frame is
provably in inference while its camera stops or restarts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from core.config import CameraConfig, KuzetConfig, Zone
from core.detections import Detections
from worker import runtime
from worker.runtime import Worker

CAM = "cam-1"


class HeldDetector:
    """A model whose every batch waits for a permit: ``entered`` counts batches that reached ``detect``."""

    name = "person"
    version = "held@0"

    def __init__(self) -> None:
        self.permits = threading.Semaphore(0)
        self.entered = 0
        self._cond = threading.Condition()

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        with self._cond:
            self.entered += 1
            self._cond.notify_all()
        self.permits.acquire(timeout=30)
        return [Detections.empty() for _ in images]

    def wait_entered(self, n: int, timeout_s: float = 20.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.entered >= n, timeout_s), f"{n} batch(es) never reached the model"


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> HeldDetector:
    det = HeldDetector()
    monkeypatch.setattr(runtime, "load_detector", lambda *_: det)
    return det


@pytest.fixture
def worker(tmp_path: Path, held: HeldDetector) -> Iterator[Worker]:
    cfg = KuzetConfig.model_validate(
        {
            "bus": {"spool_path": tmp_path / "spool.sqlite3", "local_path": tmp_path / "bus.sqlite3"},
            "storage": {"local_dir": tmp_path / "snaps"},
        }
    )
    w = Worker(cfg).start()
    try:
        yield w
    finally:
        held.permits.release(1000)
        w.stop(flush_timeout_s=0.1)


def _camera(clip: Path, **kw: Any) -> CameraConfig:
    return CameraConfig(id=CAM, url=str(clip), detectors=["person"], analysis_fps=5.0, **kw)


def _results_done(worker: Worker) -> threading.Semaphore:
    """Released once per frame whose inference result the worker has fully taken (after its own callback)."""
    done = threading.Semaphore(0)
    inner: Any = worker._pipeline._on_inferred

    def observed(*args: Any) -> None:
        inner(*args)
        done.release()

    worker._pipeline._on_inferred = observed
    return done


def test_a_frame_finishing_after_its_camera_left_does_not_date_the_cameras_next_run(
    worker: Worker, held: HeldDetector, vtest_h264: Path
) -> None:
    done = _results_done(worker)
    worker.add_camera(_camera(vtest_h264))
    held.wait_entered(1)  # a frame of the first run is inside the model
    worker.remove_camera(CAM)  # the camera is taken from this worker (assigned elsewhere)
    held.permits.release(1)
    assert done.acquire(timeout=20)  # ... and that frame's result arrives after the camera stopped
    back_at = time.time()
    worker.add_camera(_camera(vtest_h264))  # the camera comes back (failover)
    health = worker.camera_health()[CAM]
    assert health.first_analysed_at is None, f"first analysed {back_at - health.first_analysed_at:.2f} s before"
    assert health.last_analysed_at is None
    held.permits.release(1000)
    deadline = time.monotonic() + 30
    while worker.camera_health()[CAM].first_analysed_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first = worker.camera_health()[CAM].first_analysed_at
    assert first is not None and first >= back_at, "the new run's own first frame is reported"


def test_a_frame_of_the_run_before_a_restart_does_not_count_for_the_new_run(
    worker: Worker, held: HeldDetector, vtest_h264: Path
) -> None:
    done = _results_done(worker)
    worker.add_camera(_camera(vtest_h264))
    held.wait_entered(1)
    left = Zone(name="left", polygon=[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)])
    worker.update_camera(_camera(vtest_h264, zones=[left]))  # restart with new zones while a frame is in the model
    held.permits.release(1)
    assert done.acquire(timeout=20)  # the old run's frame finishes after the new run started
    health = worker.camera_health()[CAM]
    assert health.first_analysed_at is None and health.last_analysed_at is None, health
