"""The camera board in Chromium stops showing a camera live once its worker stops (issue 14, point 1).

Before heartbeats a worker published a camera's status only when it changed, so after every worker had
stopped the board still said "up" minutes later. Here two real ``kuzet worker`` processes each run one
camera (a looped H.264 file) with a heartbeat every ``INTERVAL_S``; the console reads their embedded
local bus and its board is open in Chromium:

* while they run, both cameras stay "up" for several intervals (the heartbeats keep them fresh);
* one worker is stopped with Ctrl-C: it says goodbye, and its camera shows "down";
* the other is SIGKILLed (a crash, an OOM kill, a lost machine): it sends nothing more, and the board
  shows its camera "stale" within two heartbeat intervals of its last heartbeat (plus the board's
  once-a-second tick: nothing is pushed for silence, the browser ages the row itself).

The board is read through one selector only (the row's ``data-camera`` and its ``camera-state`` cell),
so a rebuilt board keeps this test meaningful. A sampler in the page records what the state cell shows,
with the browser's clock, four times a second; the figures are printed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import make_console
from tests.integration.cli_process import CliProcess

pytestmark = [pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
INTERVAL_S = 5.0
STALE_AFTER_S = 2 * INTERVAL_S  # what the console is told: two missed heartbeats
# A silent worker sends nothing: the board turns a row stale itself, on its once-a-second tick between fetches
# (dispatch/static/cameras.js); plus the sampler's 250 ms and a browser timer late on a loaded box.
SLACK_S = 2.5

SAMPLE = """(ids) => {
  window.__states = Object.fromEntries(ids.map((id) => [id, []]));
  setInterval(() => {
    for (const id of ids) {
      const cell = document.querySelector(`tr[data-camera='${id}'] [data-testid=camera-state]`);
      const seen = window.__states[id];
      const text = cell ? cell.textContent.trim() : "";
      if (!seen.length || seen[seen.length - 1][1] !== text) seen.push([Date.now(), text]);
    }
  }, 250);
}"""
SHOWS = "([id, want]) => (window.__states[id] || []).some(([, s]) => s === want)"


def _worker(tmp: Path, name: str, video: Path) -> CliProcess:
    (tmp / name).mkdir()
    config = tmp / name / "worker.yaml"
    config.write_text(
        f"""
worker: {{id: worker-{name}, status_interval_s: {INTERVAL_S}, data_dir: {tmp / name}}}
bus: {{kind: local, local_path: {tmp / "bus.sqlite3"}, spool_path: {tmp / name / "spool.sqlite3"}}}
storage: {{kind: local, local_dir: {tmp / "snapshots"}}}
evidence: {{clips: false}}
cameras:
  - {{id: {name}, url: {video}, loop: true, analysis_fps: 1, detectors: [person]}}
""",
        encoding="utf-8",
    )
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KUZET_")}, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "kuzet.cli", "worker", "--config", str(config), "--summary-minutes", "0"]
    return CliProcess(args, tmp, env)


def test_board_shows_a_stopped_workers_camera_down_and_a_killed_ones_stale_within_two_heartbeats(
    browser: Any, vtest_h264: Path, tmp_path: Path
) -> None:
    suffix = int(time.time()) % 100000
    calm, crash = f"calm-{suffix}", f"crash-{suffix}"
    workers = {cam: _worker(tmp_path, cam, vtest_h264) for cam in (calm, crash)}
    console = make_console(
        tmp_path / "console", bus={"kind": "local", "local_path": tmp_path / "bus.sqlite3"},
        camera_stale_after_s=STALE_AFTER_S,
    )  # fmt: skip
    page = None
    try:
        for w in workers.values():
            w.wait_for("cameras up: 1/1", timeout_s=180.0)
        page = console.login(browser, "dispatcher")
        page.goto(f"{console.url}/cameras")
        page.evaluate(SAMPLE, [calm, crash])
        page.wait_for_function(
            "(ids) => ids.every((id) => (window.__states[id] || []).some(([, s]) => s === 'up'))",
            arg=[calm, crash],
            timeout=60_000,
        )
        time.sleep(3 * INTERVAL_S)  # three heartbeat periods of a healthy worker: the board must stay "up"
        states = page.evaluate("() => window.__states")
        for cam in (calm, crash):
            shown = [s for _, s in states[cam]]
            assert shown[shown.index("up") :] == ["up"], (cam, states[cam])

        # -- Ctrl-C: the worker reports its camera down on the way out ------------------------------------------
        assert workers[calm].interrupt() == 0, workers[calm].err[-5:]
        page.wait_for_function(SHOWS, arg=[calm, "down"], timeout=30_000)

        # -- SIGKILL: nothing more comes; the board must see the silence ---------------------------------------------
        last_beat_ms = _last_status_ms(page, console.url, crash)
        killed_ms = time.time() * 1000
        workers[crash].kill()
        page.wait_for_function(SHOWS, arg=[crash, "stale"], timeout=int((STALE_AFTER_S + 30) * 1000))
        shown_ms = next(t for t, s in page.evaluate("() => window.__states")[crash] if s == "stale")
        final_beat_ms = _last_status_ms(page, console.url, crash)
    finally:
        if page is not None:
            page.context.close()
        for w in workers.values():
            w.kill()
        console.served.stop()
        console.store.close()

    after_beat_s = (shown_ms - final_beat_ms) / 1000
    after_kill_s = (shown_ms - killed_ms) / 1000
    print(
        f"\ncamera board: heartbeat {INTERVAL_S:g} s; killed worker's camera shown stale {after_kill_s:.1f} s after "
        f"the kill, {after_beat_s:.1f} s after its last heartbeat (2 heartbeats = {STALE_AFTER_S:g} s)"
    )
    assert final_beat_ms >= last_beat_ms and final_beat_ms <= killed_ms + 1000, "nothing came after the kill"
    assert STALE_AFTER_S - 1.0 <= after_beat_s <= STALE_AFTER_S + SLACK_S, after_beat_s


def _last_status_ms(page: Any, url: str, camera: str) -> float:
    """The time of the camera's last status the console holds (the board's own API, from the page's session)."""
    body = page.evaluate("async (u) => (await fetch(u)).json()", f"{url}/api/cameras")
    item = next(i for i in body["items"] if i["camera_id"] == camera)
    return float(item["at_ms"])
