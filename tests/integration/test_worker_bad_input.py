"""Bad input never crashes a worker: unreachable, not-video and corrupt streams are cameras marked down,
a missing model is a clear error, and no credential reaches the logs or the status events."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from core.health import CameraState
from core.logs import setup_logging
from deploy.services.media import not_video, truncated_h264
from event_bus.events import CameraStatus
from tests.integration.worker_support import camera, worker_config
from worker.runtime import Worker

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Zx9-very-secret"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_streams_are_marked_down_and_the_good_one_keeps_running(
    tmp_path: Path, vtest_h264: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUZET_CAM_TEST_CREDS", f"admin:{PASSWORD}")
    cams = [
        camera("cam-good", str(vtest_h264), loop=True),
        camera("cam-unreachable", f"rtsp://127.0.0.1:{_free_port()}/x", credentials="env:KUZET_CAM_TEST_CREDS"),
        camera("cam-notvideo", str(not_video(tmp_path / "notvideo.mp4"))),
        camera("cam-corrupt", str(truncated_h264(tmp_path / "corrupt.h264")), realtime=False),
    ]
    statuses: list[CameraStatus] = []
    logs = io.StringIO()
    setup_logging("debug", stream=logs)
    worker = Worker(worker_config(tmp_path, cams), on_status=statuses.append)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            down = {s.camera_id for s in statuses if s.state is CameraState.DOWN}
            if {"cam-unreachable", "cam-notvideo", "cam-corrupt"} <= down:
                break
            time.sleep(0.5)
        good_before = worker.camera_stats()["cam-good"].frames_analysed
        time.sleep(3)
        good_after = worker.camera_stats()["cam-good"].frames_analysed
        running = len(statuses)
    finally:
        worker.stop()
        logging.getLogger().handlers.clear()

    # A clean stop reports every camera down with "worker stopped"; the reasons to check came before it.
    stopped = {s.camera_id for s in statuses[running:] if s.reason == "worker stopped"}
    assert stopped == {"cam-good", "cam-unreachable", "cam-notvideo", "cam-corrupt"}, statuses[running:]
    statuses = statuses[:running]
    by_camera = {s.camera_id: s for s in statuses}
    assert by_camera["cam-unreachable"].state is CameraState.DOWN
    assert "refused" in by_camera["cam-unreachable"].reason or "cannot open" in by_camera["cam-unreachable"].reason
    assert by_camera["cam-notvideo"].state is CameraState.DOWN
    assert "not a readable video" in by_camera["cam-notvideo"].reason
    # The cut, garbled file yields the frames before the damage, then ends down; nothing crashes.
    corrupt = [s for s in statuses if s.camera_id == "cam-corrupt"]
    assert corrupt[-1].state is CameraState.DOWN, corrupt[-1]
    assert good_after > good_before, "the good camera stopped while the bad ones failed"
    text = logs.getvalue() + "".join(s.model_dump_json() for s in statuses)
    assert PASSWORD not in text and "admin:" not in text


def test_missing_model_is_a_clear_error_not_a_crash(tmp_path: Path, vtest_h264: Path) -> None:
    cfg = worker_config(tmp_path, [camera("cam-1", str(vtest_h264))])
    doc = yaml.safe_load(cfg.model_dump_json())
    doc["model_cache"] = str(tmp_path / "empty-model-cache")
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = subprocess.run(
        [sys.executable, "-m", "kuzet.cli", "worker", "--config", str(path)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert "kuzet models build" in out and "Traceback" not in out
