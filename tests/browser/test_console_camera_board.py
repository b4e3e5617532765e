"""The camera board in a real browser shows a camera going down within 10 s of its RTSP stream stalling.

Everything is real: the GStreamer RTSP server serves the vtest clip, a worker from
``worker.runtime`` analyses it and publishes camera status to Kafka, the console
consumes ``kuzet.camera-status.v1`` and pushes it to the open board over SSE.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Console
from tests.integration.worker_support import rtsp_camera, worker_config
from worker.runtime import Worker

pytestmark = [pytest.mark.services, pytest.mark.slow]


STATE_IS = (
    "([id, want]) => document.querySelector(`tr[data-camera='${id}'] [data-testid=camera-state]`)?.textContent === want"
)


def test_camera_board_shows_stalled_stream_down_within_10s(
    browser: Any, kafka_console: Console, kafka_bootstrap: str, rtsp_server: Any, vtest_h264: Path, tmp_path: Path
) -> None:
    cam = rtsp_camera(rtsp_server, vtest_h264, "board", analysis_fps=2.0)
    cam_id = cam.id
    cfg = worker_config(tmp_path / "worker", [cam], kafka=kafka_bootstrap, worker_id="worker-board")
    cfg = cfg.model_copy(update={"ingest": cfg.ingest.model_copy(update={"stall_timeout_s": 5.0})})
    page = kafka_console.login(browser, "admin", viewport=(1366, 768))
    page.goto(f"{kafka_console.url}/cameras?q={cam_id}")  # the board pages; other tests' cameras may fill page 1
    page.wait_for_selector('#conn[data-state="live"]')
    worker = Worker(cfg)
    worker.start()
    try:
        page.wait_for_function(STATE_IS, arg=[cam_id, "up"], timeout=45_000)
        row = page.locator(f'tr[data-camera="{cam_id}"]')
        assert "worker-board" in row.inner_text()
        time.sleep(2.0)
        t_stall = time.monotonic()
        rtsp_server.stall(cam_id)
        page.wait_for_function(STATE_IS, arg=[cam_id, "down"], timeout=10_000)
        down_after = time.monotonic() - t_stall
        assert down_after < 10.0
        assert "ago" in row.locator("td.age").inner_text()
        print(f"\ncamera board: down {down_after:.2f} s after the stream stalled")
        rtsp_server.resume(cam_id)
    finally:
        worker.stop()
        page.context.close()
