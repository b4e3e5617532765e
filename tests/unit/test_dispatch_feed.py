"""The live feed end to end on one box: local bus -> console -> SSE, over real sockets.

Covers: incidents arriving in order with revision ids, a reconnect with
``Last-Event-ID`` replaying exactly what was missed (once each), workflow
actions pushed to open streams within a second, malformed bus records going
to the DLQ without stopping the feed, and the parser of event ids.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatch.feed import _parse_last_id
from dispatch.testing import (
    PASSWORDS,
    ServedApp,
    local_console,
    make_incident,
    record_of,
)
from event_bus import topics
from event_bus.consume import read_dead_letter
from event_bus.interfaces import OutRecord
from event_bus.local_bus import LocalBusPublisher, LocalBusSubscriber


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[ServedApp, LocalBusPublisher, Any]]:
    with local_console(tmp_path) as served_pub_store:
        yield served_pub_store


def login(url: str, role: str = "dispatcher") -> tuple[httpx.Client, str]:
    c = httpx.Client(base_url=url, timeout=10)
    r = c.post("/api/session", json={"username": role, "password": PASSWORDS[role]})
    r.raise_for_status()
    return c, r.json()["csrf_token"]


class SseReader:
    """Reads one SSE connection in a thread into a queue of (event, id, data)."""

    def __init__(self, client: httpx.Client, last_id: str | None = None, kinds: str = "incidents") -> None:
        self.events: queue.Queue[tuple[str, str | None, Any]] = queue.Queue()
        headers = {"Last-Event-ID": last_id} if last_id else {}
        self._cm = client.stream("GET", f"/api/feed?kinds={kinds}", headers=headers, timeout=None)
        self.response = self._cm.__enter__()
        assert self.response.status_code == 200
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self.last_id: str | None = last_id
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        event, eid, data = "message", None, []
        try:
            for line in self.response.iter_lines():
                if self._stop:
                    return
                if line == "":
                    if data:
                        payload = "\n".join(data)
                        self.events.put((event, eid, json.loads(payload) if payload[:1] in "{[" else payload))
                    event, eid, data = "message", None, []
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("id: "):
                    eid = line[4:]
                elif line.startswith("data: "):
                    data.append(line[6:])
        except (httpx.HTTPError, RuntimeError):
            return

    def next(self, kind: str, timeout: float = 3.0) -> tuple[str | None, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} event within {timeout} s")
            event, eid, data = self.events.get(timeout=left)
            if eid:
                self.last_id = eid
            if event == kind:
                return eid, data

    def close(self) -> None:
        self._stop = True
        self.response.close()


def test_live_feed_and_last_event_id_replay(console: Any) -> None:
    served, pub, store = console
    client, _ = login(served.url)
    page = client.get("/api/incidents").json()
    reader = SseReader(client, f"{page['store']}.{page['rev']}")
    first = make_incident(camera_id="cam-1")
    t0 = time.monotonic()
    pub.publish([record_of(first)])
    eid, card = reader.next("incident")
    assert card["incident_id"] == str(first.incident_id) and card["status"] == "new"
    assert time.monotonic() - t0 < 2.0
    assert eid == f"{store.store_uid}.{card['rev']}"
    # the card is updated in place: same incident id, higher version
    pub.publish([record_of(make_incident(incident_id=first.incident_id, state="end", seq=1))])
    _, ended = reader.next("incident")
    assert ended["incident_id"] == card["incident_id"] and ended["version"] > card["version"]
    assert ended["detection_state"] == "end"
    last_seen = reader.last_id
    reader.close()

    # while disconnected: three new incidents, one of them updated twice
    missed = [make_incident(camera_id=f"cam-{i}") for i in range(3)]
    pub.publish([record_of(m) for m in missed])
    pub.publish([record_of(make_incident(incident_id=missed[0].incident_id, state="update", seq=s)) for s in (1, 2)])
    deadline = time.monotonic() + 3
    while store.current_rev() < card["rev"] + 1 + 5 and time.monotonic() < deadline:
        time.sleep(0.05)

    again = SseReader(client, last_seen)
    got = []
    hello_seen = False
    deadline = time.monotonic() + 3
    while len(got) < 3 and time.monotonic() < deadline:
        event, eid, data = again.events.get(timeout=3)
        if event == "hello":
            hello_seen = True
            assert data["resumed"] is True
        if event == "incident":
            got.append(data)
    assert hello_seen
    assert sorted(d["incident_id"] for d in got) == sorted(str(m.incident_id) for m in missed)  # each once
    assert next(d for d in got if d["incident_id"] == str(missed[0].incident_id))["events"] == 3
    time.sleep(0.6)
    assert all(e[0] != "incident" for e in list(again.events.queue)), "nothing replayed twice"
    again.close()
    client.close()


def test_workflow_action_reaches_every_open_console_within_a_second(console: Any) -> None:
    served, pub, store = console
    inc = make_incident()
    pub.publish([record_of(inc)])
    deadline = time.monotonic() + 3
    while store.get(str(inc.incident_id)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    watcher, _ = login(served.url, "admin")
    page = watcher.get("/api/incidents").json()
    reader = SseReader(watcher, f"{page['store']}.{page['rev']}")
    actor, csrf = login(served.url, "dispatcher")
    t0 = time.monotonic()
    r = actor.post(
        f"/api/incidents/{inc.incident_id}/actions", json={"action": "acknowledge"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200
    _, card = reader.next("incident", timeout=1.0)
    assert card["status"] == "acknowledged" and card["acknowledged_by"] == "dispatcher"
    assert time.monotonic() - t0 < 1.0
    reader.close()


def test_camera_status_events_and_dlq(console: Any, tmp_path: Path) -> None:
    served, pub, _store = console
    client, _ = login(served.url, "admin")
    reader = SseReader(client, None, kinds="cameras")
    bad = OutRecord(topics.INCIDENTS, "cam-9", b'{"not": "an incident"}')
    from datetime import UTC, datetime

    from event_bus.events import CameraStatus

    status = CameraStatus(camera_id="cam-9", state="down", reason="stalled", input_fps=0, analysed_fps=0,
                          reconnects=2, worker_id="w-7", at=datetime.now(UTC))  # fmt: skip
    pub.publish([bad, OutRecord(topics.CAMERA_STATUS, "cam-9", status.model_dump_json().encode())])
    _, cam = reader.next("camera")
    assert cam["camera_id"] == "cam-9" and cam["state"] == "down" and cam["worker_id"] == "w-7"
    assert client.get("/api/cameras").json()["items"][0]["reconnects"] == 2
    dlq = LocalBusSubscriber(tmp_path / "bus.sqlite3", [topics.DLQ], None)
    records = dlq.poll(2.0)
    assert len(records) == 1 and read_dead_letter(records[0]).topic == topics.INCIDENTS
    reader.close()


def test_reconnect_from_another_database_or_too_far_back_resets(console: Any) -> None:
    served, _pub, store = console
    client, _ = login(served.url)
    reader = SseReader(client, "someotherdb.5")
    _, hello = reader.next("hello")
    assert hello["resumed"] is False and hello["store"] == store.store_uid
    reader.close()


def test_feed_needs_dispatcher_or_admin(console: Any) -> None:
    served, _, _ = console
    client, _ = login(served.url, "investigator")
    assert client.get("/api/feed").status_code == 403
    assert httpx.get(served.url + "/api/feed").status_code == 401


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("abc.12", 12),
        ("abc.", None),
        ("abc.-1", None),
        ("xyz.12", None),
        ("abc.1e3", None),
        ("abc." + "9" * 30, None),
    ],
)
def test_parse_last_event_id(value: str | None, expected: int | None) -> None:
    assert _parse_last_id(value, "abc") == expected
