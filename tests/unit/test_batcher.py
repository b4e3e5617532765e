"""Cross-camera batching: the pure BatchFormer with a fake clock, then the thread around it."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pytest

from core.clock import FakeClock
from core.detections import Detections
from core.frame import Frame
from detectors.batcher import BatchFormer, BatchScheduler

IMG = np.zeros((4, 4, 3), np.uint8)


def frame(cam: str, seq: int = 0) -> Frame:
    return Frame(cam, seq, datetime(2026, 1, 1, tzinfo=UTC), seq / 10, True, IMG)


# ----------------------------------------------------------------- BatchFormer
def test_waits_for_max_wait_then_releases_partial_batch() -> None:
    clock = FakeClock()
    bf = BatchFormer(max_batch=4, max_wait_s=0.02)
    bf.offer(frame("a"), clock.monotonic())
    assert bf.take(clock.monotonic()) == []
    clock.advance(0.019)
    assert bf.take(clock.monotonic()) == []
    clock.advance(0.001)
    assert [f.camera_id for f in bf.take(clock.monotonic())] == ["a"]
    assert len(bf) == 0 and bf.deadline() is None


def test_full_batch_is_released_at_once() -> None:
    clock = FakeClock()
    bf = BatchFormer(max_batch=3, max_wait_s=10)
    for cam in "abcd":
        bf.offer(frame(cam), clock.monotonic())
    assert [f.camera_id for f in bf.take(clock.monotonic())] == ["a", "b", "c"]
    assert bf.take(clock.monotonic()) == []  # "d" alone waits for its deadline
    clock.advance(10)
    assert [f.camera_id for f in bf.take(clock.monotonic())] == ["d"]


def test_newest_frame_wins_and_keeps_its_cameras_place() -> None:
    clock = FakeClock()
    bf = BatchFormer(max_batch=2, max_wait_s=0.05)
    assert bf.offer(frame("a", 1), clock.monotonic()) is None
    clock.advance(0.01)
    bf.offer(frame("b", 1), clock.monotonic())
    clock.advance(0.01)
    replaced = bf.offer(frame("a", 2), clock.monotonic())
    assert replaced is not None and replaced.seq == 1
    assert len(bf) == 2
    batch = bf.take(clock.monotonic())
    assert [(f.camera_id, f.seq) for f in batch] == [("a", 2), ("b", 1)]


def test_replacement_does_not_reset_the_wait() -> None:
    clock = FakeClock()
    bf = BatchFormer(max_batch=8, max_wait_s=0.05)
    bf.offer(frame("a", 1), clock.monotonic())
    for seq in range(2, 6):
        clock.advance(0.01)
        bf.offer(frame("a", seq), clock.monotonic())
    # 0.04 s after the first frame: not due yet; 0.05 s: due, with the newest frame
    assert bf.take(clock.monotonic()) == []
    clock.advance(0.01)
    assert [f.seq for f in bf.take(clock.monotonic())] == [5]


def test_oldest_pending_camera_goes_first_across_batches() -> None:
    clock = FakeClock()
    bf = BatchFormer(max_batch=2, max_wait_s=0.0)
    for cam in "abc":
        bf.offer(frame(cam), clock.monotonic())
        clock.advance(0.001)
    assert [f.camera_id for f in bf.take(clock.monotonic())] == ["a", "b"]
    bf.offer(frame("a"), clock.monotonic())  # a comes back behind c
    assert [f.camera_id for f in bf.take(clock.monotonic())] == ["c", "a"]


def test_batch_holding_every_known_camera_goes_without_waiting() -> None:
    """One camera has at most one frame pending: once every camera feeding the model is in, waiting is useless."""
    clock = FakeClock()
    bf = BatchFormer(max_batch=16, max_wait_s=10)
    for cam in "ab":
        bf.add_source(cam)
    bf.offer(frame("a"), clock.monotonic())
    assert bf.take(clock.monotonic()) == []  # b may still come
    bf.offer(frame("b"), clock.monotonic())
    assert [f.camera_id for f in bf.take(clock.monotonic())] == ["a", "b"]
    bf.remove_source("b")  # b stopped: a alone makes a full batch now
    bf.offer(frame("a", 1), clock.monotonic())
    assert [f.seq for f in bf.take(clock.monotonic())] == [1]


def test_single_camera_at_a_large_batch_is_not_held_for_max_wait() -> None:
    bf = BatchFormer(max_batch=8, max_wait_s=10)
    bf.add_source("a")
    bf.offer(frame("a"), 0.0)
    assert bf.full() and [f.camera_id for f in bf.take(0.0)] == ["a"]


def test_force_take_and_validation() -> None:
    bf = BatchFormer(max_batch=4, max_wait_s=100)
    bf.offer(frame("a"), 0.0)
    assert [f.camera_id for f in bf.take(0.0, force=True)] == ["a"]
    with pytest.raises(ValueError):
        BatchFormer(0, 0.1)
    with pytest.raises(ValueError):
        BatchFormer(1, -1)


# -------------------------------------------------------------- BatchScheduler
class FakeDetector:
    name = "fake"
    version = "fake@0"

    def __init__(self, delay: float = 0.0, fail_on: set[int] | None = None) -> None:
        self.delay = delay
        self.fail_on = fail_on or set()
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set once a batch is inside detect()

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.entered.set()
        self.gate.wait(5)
        self.calls.append(len(images))
        if len(self.calls) in self.fail_on:
            raise RuntimeError("boom")
        time.sleep(self.delay)
        return [Detections(np.array([[0, 0, 1, 1]]), np.array([0.9]), np.array([0])) for _ in images]


def test_scheduler_batches_across_cameras_and_reports_each_frame() -> None:
    det = FakeDetector()
    det.gate.clear()  # hold the first batch so the rest pile up
    got: list[tuple[str, int]] = []
    sched = BatchScheduler(det, max_batch=4, max_wait_s=0.01, on_result=lambda f, d: got.append((f.camera_id, len(d))))
    sched.start()
    sched.submit(frame("c0"))
    assert det.entered.wait(5)  # c0 went alone after max_wait and is held in detect
    for cam in ("c1", "c2", "c3", "c4"):
        sched.submit(frame(cam))
    det.gate.set()
    assert sched.wait_idle(5)
    sched.stop()
    st = sched.stats()
    assert sorted(got) == [(f"c{i}", 1) for i in range(5)]
    assert det.calls == [1, 4]
    assert st.submitted == 5 and st.analysed == 5 and st.dropped == 0
    assert st.batches == 2 and st.batch_sizes == {1: 1, 4: 1}
    assert st.inference_s > 0


def test_scheduler_newest_wins_under_overload_and_counts_drops() -> None:
    det = FakeDetector()
    det.gate.clear()
    got: list[Frame] = []
    sched = BatchScheduler(det, max_batch=8, max_wait_s=0.0, on_result=lambda f, d: got.append(f))
    sched.start()
    sched.submit(frame("a", 0))
    assert det.entered.wait(5)  # a/0 is in flight, held by the gate
    for seq in range(1, 6):
        sched.submit(frame("a", seq))
    sched.submit(frame("b", 1))
    det.gate.set()
    assert sched.wait_idle(5)
    sched.stop()
    assert [(f.camera_id, f.seq) for f in got] == [("a", 0), ("a", 5), ("b", 1)]
    st = sched.stats()
    assert st.dropped == 4 and st.dropped_by_camera == {"a": 4}
    assert st.submitted == 7 and st.analysed == 3


def _run_a_then_b(sched: BatchScheduler) -> None:
    """Frame "a" through the scheduler, then frame "b" (each on its own: a failure on "a" must not touch "b")."""
    sched.start()
    sched.submit(frame("a"))
    assert sched.wait_idle(5)
    sched.submit(frame("b"))
    assert sched.wait_idle(5)
    sched.stop()


def test_detector_error_is_counted_and_thread_survives() -> None:
    det = FakeDetector(fail_on={1})
    ok: list[str] = []
    failed: list[tuple[str, str]] = []
    sched = BatchScheduler(
        det,
        max_batch=2,
        max_wait_s=0.0,
        on_result=lambda f, d: ok.append(f.camera_id),
        on_failure=lambda f, e: failed.append((f.camera_id, str(e))),
    )
    _run_a_then_b(sched)
    assert failed == [("a", "boom")] and ok == ["b"]
    st = sched.stats()
    assert st.errors == 1 and st.failed == 1 and st.analysed == 1


def test_callback_error_does_not_kill_the_thread() -> None:
    det = FakeDetector()
    seen: list[str] = []

    def cb(f: Frame, d: Detections) -> None:
        seen.append(f.camera_id)
        if f.camera_id == "a":
            raise ValueError("rule bug")

    sched = BatchScheduler(det, max_batch=1, max_wait_s=0.0, on_result=cb)
    _run_a_then_b(sched)
    assert seen == ["a", "b"] and sched.stats().callback_errors == 1


def test_stop_drains_or_drops_pending_frames() -> None:
    det = FakeDetector()
    got: list[str] = []
    sched = BatchScheduler(det, max_batch=4, max_wait_s=60, on_result=lambda f, d: got.append(f.camera_id))
    sched.start()
    sched.submit(frame("a"))
    sched.stop(drain=True)
    assert got == ["a"]
    with pytest.raises(RuntimeError, match="not running"):
        sched.submit(frame("b"))

    sched2 = BatchScheduler(det, max_batch=4, max_wait_s=60, on_result=lambda f, d: got.append(f.camera_id))
    sched2.start()
    sched2.submit(frame("z"))
    sched2.stop(drain=False)
    assert "z" not in got and sched2.stats().dropped_by_camera == {"z": 1}


def test_submit_wait_holds_the_producer_instead_of_dropping() -> None:
    det = FakeDetector(delay=0.005)
    got: list[tuple[str, int]] = []
    sched = BatchScheduler(det, max_batch=4, max_wait_s=0.001, on_result=lambda f, d: got.append((f.camera_id, f.seq)))
    sched.start()

    def replay(cam: str) -> None:
        for seq in range(30):
            sched.submit(frame(cam, seq), wait=True)

    threads = [threading.Thread(target=replay, args=(c,)) for c in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sched.wait_idle(5)
    sched.stop()
    st = sched.stats()
    assert st.dropped == 0 and st.analysed == 60
    for cam in ("a", "b"):
        assert [s for c, s in got if c == cam] == list(range(30))  # every frame, in order
