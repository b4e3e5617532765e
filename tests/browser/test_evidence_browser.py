"""The incident page plays the evidence clip in Chromium and exports a bundle that verifies.

Real pieces: Debian's Chromium (Playwright), the console over sockets, the
embedded bus, a real H.264 clip (cut from the vtest file without re-encoding)
with its chain-of-custody manifest in the local object store.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.clip import ClipRef, ClipStatus
from dispatch.testing import make_incident
from event_bus import topics
from event_bus.interfaces import OutRecord
from event_bus.local_bus import LocalBusPublisher
from event_bus.spool import SpooledRecord
from storage.manifests import evidence_upload_hook
from tests.browser.conftest import SCREENSHOTS, make_console
from tests.unit.test_dispatch_evidence import MASK, cut_clip

pytestmark = [pytest.mark.services, pytest.mark.slow]


def wait_playing(page: Any, timeout_s: float = 60.0) -> tuple[float, float]:
    """Wait until the video can play (readyState >= 3) and its currentTime advances; returns (t0, t1)."""
    page.wait_for_function("() => { const v = document.getElementById('ev-video'); return v && v.readyState >= 3; }",
                           timeout=timeout_s * 1000)  # fmt: skip
    t0 = float(page.evaluate("() => document.getElementById('ev-video').currentTime"))
    page.wait_for_function(f"() => document.getElementById('ev-video').currentTime > {t0} + 0.5",
                           timeout=timeout_s * 1000)  # fmt: skip
    t1 = float(page.evaluate("() => document.getElementById('ev-video').currentTime"))
    return t0, t1


def test_incident_page_plays_clip_and_bundle_verifies(browser: Any, tmp_path: Path, vtest_h264: Path) -> None:
    bus = tmp_path / "bus.sqlite3"
    console = make_console(tmp_path, bus={"kind": "local", "local_path": bus})
    try:
        clip = cut_clip(vtest_h264, 6.0)
        start = make_incident(camera_id="cam-1", started_at=datetime.now(UTC) - timedelta(seconds=20))
        key = f"cam-1/{start.started_at:%Y/%m/%d}/{start.incident_id}.mp4"
        ref = ClipRef(store="local", bucket=console.snapshots.bucket, key=key, size=len(clip),
                      sha256=hashlib.sha256(clip).hexdigest(), started_at=start.started_at,
                      ended_at=start.started_at + timedelta(seconds=6), duration_s=6.0, status=ClipStatus.COMPLETE,
                      manifest_key=key + ".manifest.json", masks=[MASK])  # fmt: skip
        end = make_incident(incident_id=start.incident_id, state="end", seq=1, started_at=start.started_at)
        with_clip = end.model_copy(update={"event_id": uuid.uuid4(), "seq": 2, "clip": ref})
        record = OutRecord(topics.INCIDENTS, "cam-1", with_clip.model_dump_json().encode())
        evidence_upload_hook(console.snapshots, lambda _c: "rtsp://***@cam-1/1")(SpooledRecord(1, record, clip, key, 0))
        pub = LocalBusPublisher(bus)
        pub.publish(
            [OutRecord(topics.INCIDENTS, "cam-1", e.model_dump_json().encode()) for e in (start, end, with_clip)]
        )
        pub.close()
        svc = console.app.state.console.extra["evidence"]
        deadline = time.monotonic() + 15
        while svc.index.clip(str(start.incident_id)) is None and time.monotonic() < deadline:
            time.sleep(0.1)

        # a dispatcher plays the masked clip
        page = console.login(browser, "dispatcher")
        page.goto(f"{console.url}/incidents/{start.incident_id}")
        page.wait_for_selector("#ev-play:not([hidden])")
        assert page.locator("#ev-play-original").is_hidden() and page.locator("#ev-bundle-form").is_hidden()
        page.click("#ev-play")
        t0, t1 = wait_playing(page)
        assert t1 > t0
        page.evaluate("() => { document.getElementById('ev-video').currentTime = 4.0; }")  # seekable
        page.wait_for_function("() => document.getElementById('ev-video').currentTime >= 4.0")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "incident-evidence-dispatcher.png"))
        page.context.close()

        # an admin plays the original and downloads the bundle
        page = console.login(browser, "admin")
        page.goto(f"{console.url}/incidents/{start.incident_id}")
        page.wait_for_selector("#ev-play-original:not([hidden])")
        page.click("#ev-play-original")
        wait_playing(page)
        page.fill("#ev-reason", "case 2026-0042")
        with page.expect_download() as dl:
            page.click("#ev-bundle")
        bundle = tmp_path / "bundle.zip"
        dl.value.save_as(str(bundle))
        page.context.close()
    finally:
        console.served.stop()
        console.store.close()
    out = subprocess.run(
        [sys.executable, "-m", "kuzet.cli", "evidence", "verify", "--bundle", str(bundle)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verified" in out.stdout
