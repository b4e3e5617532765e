"""Three RTSP cameras from the local GStreamer server; one stalls (TCP open, no data) and resumes.

Done-when 6: the stalled camera is reported down within 10 s and up again
within 10 s of the stream returning, while the other two keep their analysed
frame rate. Frame rates are compared over equal wall-clock windows before and
during the stall; the bound (>= 90 %) leaves room for one frame of edge jitter
per window and for other engineers' jobs on this 2-core box, and is still far
above what a shared decode loop blocked on the silent socket would give (0 %).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core.config import CameraConfig, IngestConfig
from core.frame import Frame
from core.health import CameraState
from ingest.camera import CameraRunner, StatusChange

pytestmark = [pytest.mark.services, pytest.mark.slow]

PASSWORD = "rtsp-Pa55:w@rd"
WINDOW_S = 8.0


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frames: dict[str, list[float]] = {}
        self.statuses: list[tuple[float, StatusChange]] = []

    def on_frame(self, frame: Frame) -> None:
        with self.lock:
            self.frames.setdefault(frame.camera_id, []).append(time.monotonic())

    def on_status(self, change: StatusChange) -> None:
        with self.lock:
            self.statuses.append((time.monotonic(), change))

    def count(self, cam: str, start: float, end: float) -> int:
        with self.lock:
            return sum(1 for t in self.frames.get(cam, []) if start <= t < end)

    def state_since(self, cam: str, state: CameraState, since: float) -> float | None:
        with self.lock:
            for t, s in self.statuses:
                if s.camera_id == cam and s.state is state and t >= since:
                    return t
        return None

    def current(self, cam: str) -> CameraState | None:
        with self.lock:
            mine = [s for _, s in self.statuses if s.camera_id == cam]
        return mine[-1].state if mine else None


def _wait(pred: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


def _seconds_until(rec: Recorder, cam: str, state: CameraState, since: float) -> float:
    """Seconds from ``since`` until ``cam`` reported ``state``; fails with every status seen after 12 s without."""
    assert _wait(lambda: rec.state_since(cam, state, since) is not None, 12), rec.statuses
    at = rec.state_since(cam, state, since)
    assert at is not None
    return at - since


def test_stalled_camera_goes_down_and_back_up_while_others_keep_their_rate(
    rtsp_server: Any,
    vtest_h264: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("KUZET_CAM_TEST_RTSP", f"viewer:{PASSWORD}")
    names = ["ingest-a", "ingest-b", "ingest-c"]
    for name in names:
        rtsp_server.add_stream(name, vtest_h264)
    ingest = IngestConfig(stall_timeout_s=5.0, open_timeout_s=5.0, backoff_initial_s=0.5, backoff_max_s=4.0)
    rec = Recorder()
    runners = [
        CameraRunner(
            CameraConfig(
                id=name, url=rtsp_server.url(name), analysis_fps=5.0, keyframe_only="never",
                credentials="env:KUZET_CAM_TEST_RTSP" if name == "ingest-a" else None,
            ),
            ingest, rec.on_frame, rec.on_status,
        )
        for name in names
    ]  # fmt: skip
    stalled, others = names[0], names[1:]
    try:
        for r in runners:
            r.start()
        assert _wait(lambda: all(rec.current(n) is CameraState.UP for n in names), 30), rec.statuses
        time.sleep(2.0)  # settle: every stream past its first key frame and at its steady rate

        t_before = time.monotonic()
        time.sleep(WINDOW_S)
        t_stall = time.monotonic()
        rtsp_server.stall(stalled)
        down_after = _seconds_until(rec, stalled, CameraState.DOWN, t_stall)
        time.sleep(max(0.0, t_stall + WINDOW_S - time.monotonic()))
        t_resume = time.monotonic()
        rtsp_server.resume(stalled)
        up_after = _seconds_until(rec, stalled, CameraState.UP, t_resume)

        ratios = {}
        for n in others:
            before = rec.count(n, t_before, t_stall)
            during = rec.count(n, t_stall, t_stall + WINDOW_S)
            ratios[n] = (before, during, during / before if before else 0.0)
        stalled_during = rec.count(stalled, t_stall + 1.0, t_resume)
        print(
            f"\nstall: down after {down_after:.2f} s, back up {up_after:.2f} s after resume; "
            f"others' analysed frames before/during ({WINDOW_S:g} s windows): "
            + ", ".join(f"{n} {b}/{d} ({r:.1%})" for n, (b, d, r) in ratios.items())
        )
        assert down_after <= 10.0
        assert up_after <= 10.0
        assert stalled_during == 0
        for n, (before, during, ratio) in ratios.items():
            assert before >= 0.8 * 5.0 * WINDOW_S, f"{n}: only {before} frames before the stall"
            assert ratio >= 0.90, f"{n} lost frame rate during the stall: {before} -> {during}"
            assert rec.current(n) is CameraState.UP
        down_status = next(
            s for t, s in rec.statuses if s.camera_id == stalled and s.state is CameraState.DOWN and t >= t_stall
        )
        assert down_status.reason.startswith("stalled"), down_status.reason
        up_status = next(s for t, s in rec.statuses if s.camera_id == stalled and t >= t_resume)
        assert up_status.state is CameraState.UP and up_status.reconnects >= 1
    finally:
        for r in runners:
            r.stop(10.0)
        for name in names:
            rtsp_server.resume(name)
            rtsp_server.remove_stream(name)
    everything = caplog.text + " ".join(repr(s) for _, s in rec.statuses)
    assert PASSWORD not in everything and "Pa55" not in everything


def test_stop_is_prompt_on_a_silent_connection(rtsp_server: Any, vtest_h264: Path) -> None:
    """A read blocked on a socket that sends nothing must not hold stop() for the whole stall timeout."""
    rtsp_server.add_stream("ingest-d", vtest_h264)
    rec = Recorder()
    runner = CameraRunner(
        CameraConfig(id="ingest-d", url=rtsp_server.url("ingest-d"), analysis_fps=2.0),
        IngestConfig(stall_timeout_s=30.0, open_timeout_s=5.0),
        rec.on_frame,
        rec.on_status,
    )
    try:
        runner.start()
        assert _wait(lambda: rec.current("ingest-d") is CameraState.UP, 20)
        rtsp_server.stall("ingest-d")
        time.sleep(1.5)  # the camera thread is now inside a read that gets no data
        t0 = time.monotonic()
        assert runner.stop(5.0)
        took = time.monotonic() - t0
        print(f"\nstop() on a silent RTSP connection took {took:.2f} s (stall timeout 30 s)")
        assert took < 1.5
        assert rec.current("ingest-d") is CameraState.UP, "a stop is not a camera fault: no down status"
    finally:
        runner.stop(10.0)
        rtsp_server.resume("ingest-d")
        rtsp_server.remove_stream("ingest-d")
