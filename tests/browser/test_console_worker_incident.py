"""An incident made by a real worker (RTSP stream, person model, zone rule) reaches the open console over Kafka
within 2 s, and the dispatchers' workflow on it is shared between two browsers and survives a reload.

The clip's walkers raise several person_in_zone alerts on one camera and zone within seconds; with the
console's default feed_group_window_s they fold into one card showing the newest (dispatch/grouping.py), so
the first incident's own card gives way at once. This test is about one incident's latency and workflow,
so its console runs with folding off: every alert keeps its own card (folding: tests/unit/test_feed_grouping.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from event_bus.events import Incident, IncidentState
from tests.browser.conftest import Console, running_kafka_console
from tests.browser.test_console_browser import card, card_status, open_feed, wait_status
from tests.integration.worker_support import rtsp_camera, worker_config
from worker.runtime import Worker

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def unfolded_console(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Console]:
    """The Kafka console of conftest.kafka_console, with one feed card per alert (no folding)."""
    with running_kafka_console(kafka_bootstrap, tmp_path, feed_group_window_s=0.0) as console:
        yield console


def test_worker_incident_appears_within_2s_and_workflow_is_shared(
    browser: Any, unfolded_console: Console, kafka_bootstrap: str, rtsp_server: Any, vtest_h264: Path, tmp_path: Path
) -> None:
    cam = rtsp_camera(rtsp_server, vtest_h264, "feed", analysis_fps=5.0)
    cfg = worker_config(tmp_path / "worker", [cam], kafka=kafka_bootstrap, worker_id="worker-feed")
    # the worker writes snapshots where the console serves them from (one box, local store)
    cfg = cfg.model_copy(
        update={"storage": cfg.storage.model_copy(update={"local_dir": unfolded_console.snapshots.root})}
    )

    a = unfolded_console.login(browser, "dispatcher")
    b = unfolded_console.login(browser, "dispatcher", user="dispatcher2")
    open_feed(a)
    open_feed(b)
    first: list[tuple[Incident, float]] = []
    spooled = threading.Event()

    def seen(inc: Incident) -> None:
        if inc.state is IncidentState.START and not first:
            first.append((inc, time.monotonic()))
            spooled.set()

    worker = Worker(cfg, on_incident=seen)
    worker.start()
    try:
        assert spooled.wait(90), "the worker raised no incident from the RTSP stream"
        inc, t_spooled = first[0]
        a.wait_for_selector(card(inc.incident_id), timeout=2000)
        appear = time.monotonic() - t_spooled
        assert appear < 2.0
        b.wait_for_selector(card(inc.incident_id), timeout=2000)
        assert "person in zone" in a.locator(card(inc.incident_id)).inner_text().lower()

        a.click(f'{card(inc.incident_id)} button[data-action="acknowledge"]')
        ack_seen = wait_status(b, inc.incident_id, "acknowledged", 1000)
        a.click(f'{card(inc.incident_id)} button[data-action="resolve"]')
        resolve_seen = wait_status(b, inc.incident_id, "resolved", 1000)
        a.reload()
        a.wait_for_selector(card(inc.incident_id), timeout=5000)
        assert card_status(a, inc.incident_id) == "resolved"
        print(f"\nworker incident: in console {appear:.3f} s after spooling; ack seen by B {ack_seen:.3f} s, ", end="")
        print(f"resolve seen by B {resolve_seen:.3f} s")
    finally:
        worker.stop()
        a.context.close()
        b.context.close()
