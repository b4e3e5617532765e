"""Line counts on the camera board (Chromium, real Kafka): exact counts per line, live updates, and a restart.

Line-count events go to ``kuzet.line-counts.v1`` as workers send them (one per camera and count period,
per line, direction and label; the worker side is covered by tests/integration/test_analytics_worker.py);
camera statuses go to ``kuzet.camera-status.v1`` so the board lists the cameras. A malformed record goes
first: the console dead-letters it and still shows the counts after it; counts ten minutes old (a camera
whose worker stopped sending them) are marked with their time. The open board then follows a
new period without a reload, and a console restarted on the same database shows the newest period again,
read back from the topic's retained records.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.config import KafkaConfig
from core.health import CameraState
from event_bus import topics
from event_bus.analytics_events import LineCountEntry
from event_bus.events import CameraStatus, LineCount
from event_bus.interfaces import OutRecord
from event_bus.kafka_publisher import KafkaPublisher
from event_bus.records import to_record
from tests.browser.conftest import Console, _wait_for_assignment, make_console, shot

pytestmark = [pytest.mark.services, pytest.mark.slow]

Counts = dict[tuple[str, str, str], int]  # (line, direction, label) -> count
LINES = (
    "([id]) => [...document.querySelectorAll(`tr[data-camera='${id}'] [data-testid=line-count]`)]"
    ".map(e => e.textContent)"
)


def _period(camera: str, end: datetime, counts: Counts) -> LineCount:
    return LineCount(
        camera_id=camera,
        period_start=end - timedelta(minutes=1),
        period_end=end,
        complete=True,
        counts=[LineCountEntry(line=k[0], direction=k[1], label=k[2], count=n) for k, n in counts.items()],  # type: ignore[arg-type]
        worker_id="worker-lines",
    )


def _status(camera: str) -> CameraStatus:
    now = datetime.now(UTC)
    return CameraStatus(
        camera_id=camera, state=CameraState.UP, input_fps=10.0, analysed_fps=5.0, last_frame_at=now, reconnects=0,
        worker_id="worker-lines", at=now,
    )  # fmt: skip


def _console(kafka_bootstrap: str, tmp_path: Path) -> Console:
    console = make_console(
        tmp_path,
        bus={"kind": "kafka", "kafka": {"bootstrap_servers": kafka_bootstrap}},
        consumer_group=f"kuzet-console-lines-{uuid.uuid4().hex[:8]}",
        from_beginning=False,  # statuses from now on (ours come after assignment); counts: the lookback
        camera_stale_after_s=3600.0,
    )
    _wait_for_assignment(console)
    reader = console.app.state.console.extra["line_counts"]
    assert reader.ready.wait(30.0), "the line-count reader did not open"
    return console


def _stop(console: Console) -> None:
    console.served.stop()
    console.store.close()


@pytest.fixture
def publisher(kafka_bootstrap: str) -> Iterator[KafkaPublisher]:
    pub = KafkaPublisher(KafkaConfig(bootstrap_servers=kafka_bootstrap, client_id="board-lines-test"))
    yield pub
    pub.close()


def _wait_lines(page: Any, camera: str, want: list[str], timeout_ms: int = 20_000) -> None:
    page.wait_for_function(f"(args) => JSON.stringify(({LINES})(args)) === args[1]", arg=[camera, _json(want)],
                           timeout=timeout_ms)  # fmt: skip


def _json(v: list[str]) -> str:
    return json.dumps(v, separators=(",", ":"))


def test_board_shows_exact_line_counts_live_and_after_a_restart(
    browser: Any, kafka_bootstrap: str, tmp_path: Path, publisher: KafkaPublisher
) -> None:
    from event_bus.kafka_admin import ensure_topics

    ensure_topics(kafka_bootstrap)
    prefix = f"lines-{uuid.uuid4().hex[:6]}"
    gate, quiet, gone = f"{prefix}-gate", f"{prefix}-nolines", f"{prefix}-gone"
    console = _console(kafka_bootstrap, tmp_path)
    first: Counts = {
        ("gate", "in", "person"): 9, ("gate", "out", "person"): 7, ("gate", "in", "car"): 3, ("gate", "out", "car"): 2,
        ("north", "in", "person"): 12, ("north", "out", "person"): 9,
    }  # fmt: skip
    end = datetime.now(UTC).replace(microsecond=0)
    results = publisher.publish(
        [
            to_record(_status(gate)),
            to_record(_status(quiet)),
            to_record(_status(gone)),
            OutRecord(topics.LINE_COUNTS, gate, b'{"schema_version": 1, "camera_id": "oops"}'),
            to_record(_period(gate, end, first)),
            # a camera whose worker stopped sending counts ten minutes ago (its lines were removed)
            to_record(_period(gone, end - timedelta(minutes=10), {("door", "in", "person"): 1})),
        ]
    )
    assert results == [None] * 6
    try:
        page = console.login(browser, "dispatcher", viewport=(1920, 1080))
        page.goto(f"{console.url}/cameras?q={prefix}")
        page.wait_for_selector('#conn[data-state="live"]')
        _wait_lines(page, gate, ["gate 12 in / 9 out", "north 12 in / 9 out"])
        title = page.locator(f"tr[data-camera='{gate}'] [data-line=gate]").get_attribute("title")
        assert title is not None and "person 9 in / 7 out" in title and "car 3 in / 2 out" in title
        assert page.locator(f"tr[data-camera='{quiet}'] [data-testid=camera-line-counts]").inner_text() == ""
        _wait_lines(page, gone, ["door 1 in / 0 out"])
        old = page.locator(f"tr[data-camera='{gone}'] [data-testid=line-counts-old]")
        assert old.inner_text().startswith("as of ")  # dimmed: two periods or more behind
        assert page.locator(f"tr[data-camera='{gate}'] [data-testid=line-counts-old]").count() == 0
        reader = console.app.state.console.extra["line_counts"]
        assert reader.consumer.stats.dead_lettered >= 1 and reader.errors == 0
        shot(page, "camera-board-line-counts")

        # the next period reaches the open board without a reload
        page.evaluate("window.__sameDocument = true")
        nxt: Counts = {("gate", "in", "person"): 4, ("gate", "out", "person"): 1, ("north", "in", "person"): 0,
                       ("north", "out", "person"): 2}  # fmt: skip
        assert publisher.publish([to_record(_period(gate, end + timedelta(minutes=1), nxt))]) == [None]
        _wait_lines(page, gate, ["gate 4 in / 1 out", "north 0 in / 2 out"])
        assert page.evaluate("window.__sameDocument") is True
        page.context.close()
    finally:
        _stop(console)

    # a restarted console (same database: the statuses) rebuilds the counts from the topic's recent records
    time.sleep(0.5)
    console = _console(kafka_bootstrap, tmp_path)
    try:
        page = console.login(browser, "dispatcher")
        page.goto(f"{console.url}/cameras?q={prefix}")
        _wait_lines(page, gate, ["gate 4 in / 1 out", "north 0 in / 2 out"])
        assert page.locator(f"tr[data-camera='{quiet}'] [data-testid=camera-line-counts]").inner_text() == ""
        page.context.close()
    finally:
        _stop(console)
