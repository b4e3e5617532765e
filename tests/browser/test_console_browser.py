"""The console in a real browser (Debian's Chromium via Playwright) against the real app and real Kafka.

1. An incident produced to kuzet.incidents.v1 appears in two open consoles within 2 s; one dispatcher
   acknowledges and resolves it, the other sees each change within 1 s, and it survives a reload.
2. A console offline for 10 s shows every incident that arrived meanwhile, exactly once.
3. An investigator finds a plate read with its snapshot and exports CSV; a dispatcher gets 403 on the
   plate search page and API.
4. Screenshots of feed, incident detail, plate search and camera board at 1920x1080 and 1366x768.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.config import KafkaConfig
from dispatch.bus_ingest import camera_health, detection_update
from dispatch.testing import make_incident, record_of
from event_bus.events import CameraStatus
from event_bus.kafka_publisher import KafkaPublisher
from storage.incident_rules import Action
from tests.browser.conftest import SIZES, Console, TcpProxy, jpeg_frames, make_console, shot

pytestmark = [pytest.mark.services, pytest.mark.slow]


def card(iid: Any) -> str:
    return f'article.card[data-id="{iid}"]'


def card_status(page: Any, iid: Any) -> str:
    return str(page.locator(f'{card(iid)} [data-testid="card-status"]').text_content()).strip()


def wait_status(page: Any, iid: Any, status: str, timeout_ms: int) -> float:
    t0 = time.monotonic()
    page.wait_for_function(
        "([sel, want]) => { const e = document.querySelector(sel); return e && e.textContent.trim() === want; }",
        arg=[f'{card(iid)} [data-testid="card-status"]', status],
        timeout=timeout_ms,
    )
    return time.monotonic() - t0


def open_feed(page: Any) -> None:
    if not page.url.endswith("/feed"):
        page.goto(page.url.split("/", 3)[0] + "//" + page.url.split("/", 3)[2] + "/feed")
    page.wait_for_selector('#conn[data-state="live"]', timeout=10_000)


@pytest.fixture
def publisher(kafka_bootstrap: str) -> Any:
    pub = KafkaPublisher(KafkaConfig(bootstrap_servers=kafka_bootstrap, client_id="console-browser-test"))
    yield pub
    pub.close()


def produce(pub: KafkaPublisher, *incidents: Any) -> float:
    """Publish and wait for the broker's ack; returns the time the last one was acknowledged."""
    results = pub.publish([record_of(i) for i in incidents])
    assert all(r is None for r in results), results
    return time.monotonic()


def test_incident_flows_to_two_consoles_and_workflow_is_shared(
    browser: Any, kafka_console: Console, publisher: KafkaPublisher
) -> None:
    a = kafka_console.login(browser, "dispatcher")
    b = kafka_console.login(browser, "dispatcher", user="dispatcher2")
    open_feed(a)
    open_feed(b)
    jpeg = jpeg_frames(1)[0]
    inc_id = uuid.uuid4()
    now = datetime.now(UTC)
    ref = kafka_console.snapshots.put("gate-3", inc_id, now, jpeg)
    inc = make_incident(incident_id=inc_id, camera_id="gate-3", severity="critical", started_at=now, snapshot=ref)
    t_acked = produce(publisher, inc)
    a.wait_for_selector(card(inc_id), timeout=2000)
    appear_a = time.monotonic() - t_acked
    b.wait_for_selector(card(inc_id), timeout=2000)
    appear_b = time.monotonic() - t_acked
    assert appear_a < 2.0 and appear_b < 2.0
    assert a.locator(f"{card(inc_id)} img.snap").evaluate("img => img.complete && img.naturalWidth > 0") or (
        a.wait_for_function(
            "sel => { const i = document.querySelector(sel); return i && i.complete && i.naturalWidth > 0; }",
            arg=f"{card(inc_id)} img.snap",
            timeout=3000,
        )
    )

    a.click(f'{card(inc_id)} button[data-action="acknowledge"]')
    ack_seen = wait_status(b, inc_id, "acknowledged", 1000)
    a.click(f'{card(inc_id)} button[data-action="resolve"]')
    resolve_seen = wait_status(b, inc_id, "resolved", 1000)
    assert card_status(a, inc_id) == "resolved"

    # the detection end updates the same card in place
    produce(publisher, make_incident(incident_id=inc_id, camera_id="gate-3", state="end", seq=1, started_at=now))
    a.wait_for_function(
        "sel => document.querySelector(sel)?.classList.contains('ended')", arg=card(inc_id), timeout=2000
    )
    assert a.locator(card(inc_id)).count() == 1

    a.reload()
    a.wait_for_selector(card(inc_id), timeout=5000)
    assert card_status(a, inc_id) == "resolved"
    rec = kafka_console.store.get(str(inc_id))
    assert rec is not None and rec.status.value == "resolved" and rec.acknowledged_by == "dispatcher"
    assert [x.action for x in kafka_console.store.actions(str(inc_id))] == [Action.ACKNOWLEDGE, Action.RESOLVE]
    a.goto(f"{kafka_console.url}/incidents/{inc_id}")
    assert a.locator('[data-testid="detail-status"]').text_content().strip() == "resolved"
    assert "dispatcher" in a.locator('[data-testid="history"]').inner_text()
    print(f"\nappear: A {appear_a:.3f} s, B {appear_b:.3f} s", end="; ")
    print(f"ack seen by B {ack_seen:.3f} s, resolve seen by B {resolve_seen:.3f} s")
    a.context.close()
    b.context.close()


def test_console_offline_for_10s_shows_every_missed_incident_once(
    browser: Any, kafka_console: Console, publisher: KafkaPublisher
) -> None:
    proxy = TcpProxy(int(kafka_console.url.rsplit(":", 1)[1]))
    try:
        page = kafka_console.login(browser, "dispatcher", via=proxy.url)
        open_feed(page)
        before = make_incident(camera_id="cam-before")
        produce(publisher, before)
        page.wait_for_selector(card(before.incident_id), timeout=2000)

        proxy.cut()  # the network is gone: the open SSE stream breaks, reconnects fail
        t_off = time.monotonic()
        missed = []
        while time.monotonic() - t_off < 10.0:
            inc = make_incident(camera_id=f"cam-off-{len(missed)}")
            produce(publisher, inc)
            missed.append(inc)
            time.sleep(1.5)
        # updates of an incident that started while offline: still one card
        first = missed[0]
        for seq, state in ((1, "update"), (2, "end")):
            produce(
                publisher, make_incident(incident_id=first.incident_id, camera_id="cam-off-0", state=state, seq=seq)
            )
        time.sleep(max(0.0, 10.0 - (time.monotonic() - t_off)))
        shown_while_offline = sum(page.locator(card(m.incident_id)).count() for m in missed)
        assert shown_while_offline == 0, "the console was not really offline"

        proxy.restore()
        t_on = time.monotonic()
        for m in missed:
            page.wait_for_selector(card(m.incident_id), timeout=15_000)
        caught_up = time.monotonic() - t_on
        for m in missed:
            assert page.locator(card(m.incident_id)).count() == 1
        ids = page.eval_on_selector_all("article.card", "els => els.map(e => e.dataset.id)")
        assert len(ids) == len(set(ids)), "a card is shown twice"
        page.wait_for_function(
            "sel => document.querySelector(sel)?.classList.contains('ended')", arg=card(first.incident_id), timeout=3000
        )
        print(f"\n{len(missed)} incidents while offline 10 s; all shown once {caught_up:.2f} s after reconnecting")
        page.context.close()
    finally:
        proxy.close()


# -- plates -----------------------------------------------------------------------------------------------------------


@pytest.fixture
def plate_console(tmp_path: Path) -> Any:
    console = make_console(tmp_path, consume=False)
    yield console
    console.served.stop()
    console.store.close()


def seed_plates(console: Console) -> list[Any]:
    from storage.plates.store import PlateReadRecord

    svc = console.app.state.console.plates
    assert svc is not None, "storage.plates must be available"
    now = datetime.now(UTC)
    frames = jpeg_frames(3, boxes=False)
    reads = []
    for i, raw in enumerate(["123ABC02", "123ABCO2", "777KZA01"]):
        eid = uuid.uuid4()
        seen = now - timedelta(hours=i + 1)
        ref = console.snapshots.put(f"road-{i}", eid, seen, frames[i])
        reads.append(PlateReadRecord(event_id=eid, observed_at=seen, camera_id=f"road-{i}", plate=raw,
                                     confidence=0.93 - i * 0.05, raw_text=raw, country="KZ", snapshot=ref))  # fmt: skip
    svc.stores.history.insert(reads)
    return reads


@pytest.mark.parametrize("size", list(SIZES))
def test_investigator_finds_plate_with_snapshot_and_exports_csv(
    browser: Any, plate_console: Console, size: str
) -> None:
    seed_plates(plate_console)
    page = plate_console.login(browser, "investigator", viewport=SIZES[size])
    assert page.url.endswith("/plates")
    page.fill('[data-testid="plate-input"]', "123ABC02")
    page.select_option("select[name=mode]", "fuzzy")
    page.fill('[data-testid="reason-input"]', "case 2025-0142: stolen vehicle")
    page.click('[data-testid="plate-search"]')
    page.wait_for_selector('[data-testid="plate-results"]')
    rows = page.locator('[data-testid="plate-results"] tbody tr')
    assert rows.count() == 2
    assert "123ABC02" in page.locator('[data-testid="plate-results"]').inner_text()
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.thumb')].every(i => i.complete && i.naturalWidth > 0)", timeout=5000
    )
    assert page.locator("img.thumb").count() == 2
    shot(page, f"plate-search-{size}")
    with page.expect_download() as dl:
        page.click('[data-testid="plate-export"]')
    path = dl.value.path()
    rows_csv = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    assert {r["plate"] for r in rows_csv} == {"123ABC02", "123ABCO2"}
    assert dl.value.suggested_filename.endswith(".csv")
    audit = plate_console.app.state.console.plates.stores.audit
    # the search and the CSV download are two audit records, told apart by their action
    mine = [e for e in audit.entries() if e.actor == "investigator"]
    searches = [e for e in mine if e.action == "plate_search"]
    exports = [e for e in mine if e.action == "plate_export"]
    assert len(searches) == 1 and len(exports) == 1
    assert all(e.reason.startswith("case 2025-0142") for e in searches + exports)
    page.context.close()


def test_dispatcher_gets_403_on_plate_search_in_page_and_api(browser: Any, plate_console: Console) -> None:
    seed_plates(plate_console)
    page = plate_console.login(browser, "dispatcher")
    response = page.goto(f"{plate_console.url}/plates")
    assert response is not None and response.status == 403
    assert "may not" in page.locator('[data-testid="error-message"]').inner_text()
    assert page.locator("a[href='/plates']").count() == 0  # not offered in the menu either
    page.goto(f"{plate_console.url}/feed")
    status = page.evaluate(
        """async () => {
            const csrf = document.querySelector('meta[name=csrf-token]').content;
            const r = await fetch('/api/plates/search', {method: 'POST', headers: {'Content-Type': 'application/json',
              'X-CSRF-Token': csrf}, body: JSON.stringify({plate: '123ABC02', reason: 'curious'})});
            return r.status;
        }"""
    )
    assert status == 403
    page.context.close()


# -- screenshots ------------------------------------------------------------------------------------------------------


def seed_operations_room(console: Console) -> str:
    """A realistic picture: a dozen incidents with snapshots in various states, cameras up/degraded/down."""
    store = console.store
    frames = jpeg_frames(12)
    now = datetime.now(UTC)
    places = [
        ("north-gate", "North gate", "Abay Ave / Gate 1"),
        ("plaza-2", "Central plaza", "Republic Square"),
        ("metro-7", "Metro exit 7", "Baikonur station"),
        ("park-3", "Park east", "Central Park, east path"),
    ]
    kinds = [("person_in_zone", "high"), ("loitering", "medium"), ("fire", "critical"), ("smoke", "high"),
             ("crowding", "medium"), ("line_crossing", "low")]  # fmt: skip
    ids = []
    for i in range(12):
        cam, name, loc = places[i % len(places)]
        typ, sev = kinds[i % len(kinds)]
        iid = uuid.uuid4()
        started = now - timedelta(minutes=3 * (12 - i))
        ref = console.snapshots.put(cam, iid, started, frames[i])
        inc = make_incident(incident_id=iid, camera_id=cam, camera_name=name, location=loc, type=typ, severity=sev,
                            started_at=started, snapshot=ref, confidence=0.62 + (i % 5) * 0.07)  # fmt: skip
        events = [inc]
        if i % 3 == 0:
            events.append(make_incident(incident_id=iid, camera_id=cam, camera_name=name, location=loc, type=typ,
                                        severity=sev, started_at=started, state="end", seq=4))  # fmt: skip
        store.ingest([detection_update(e) for e in events])
        ids.append(str(iid))
    disp, admin = store.user("dispatcher"), store.user("admin")
    assert disp and admin
    store.act(ids[0], Action.ACKNOWLEDGE, disp)
    store.act(ids[0], Action.NOTE, disp, note="Patrol 12 informed, ETA 4 min. <b>not bold</b>")
    store.act(ids[0], Action.RESOLVE, disp, note="Person left the zone; no further action.")
    store.act(ids[3], Action.ACKNOWLEDGE, disp)
    store.act(ids[3], Action.ASSIGN, disp, assignee="dispatcher2")
    store.act(ids[6], Action.FALSE_ALARM, admin, note="Reflection of a car's headlights.")
    store.act(ids[9], Action.ACKNOWLEDGE, disp)
    statuses = []
    cams = [("north-gate", "up"), ("plaza-2", "up"), ("metro-7", "down"), ("park-3", "degraded"), ("bridge-1", "up"),
            ("school-4", "down")]  # fmt: skip
    for j, (cam, state) in enumerate(cams):
        statuses.append(CameraStatus(camera_id=cam, state=state, worker_id=f"worker-{j % 2 + 1}",
                                     reason={"up": "frames flowing", "down": "no frames for 10 s (stall)",
                                             "degraded": "analysing 1.8 fps, expected 5.0 fps"}[state],
                                     input_fps=25.0 if state == "up" else 0.0 if state == "down" else 9.0,
                                     analysed_fps=5.0 if state == "up" else 0.0 if state == "down" else 1.8,
                                     last_frame_at=now - timedelta(seconds=0 if state == "up" else 47 + j),
                                     reconnects=j * 2 if state != "up" else 0, at=now))  # fmt: skip
    store.upsert_cameras([camera_health(s) for s in statuses])
    return ids[3]


@pytest.mark.parametrize("size", list(SIZES))
def test_screenshots_feed_detail_cameras(browser: Any, tmp_path: Path, size: str) -> None:
    console = make_console(
        tmp_path, consume=False, camera_groups={"centre": ["plaza-*", "metro-*"], "north": ["north-*"]}
    )
    try:
        detail_id = seed_operations_room(console)
        page = console.login(browser, "admin", viewport=SIZES[size])
        open_feed(page)
        page.wait_for_function("() => document.querySelectorAll('article.card').length === 12")
        page.wait_for_function(
            "() => [...document.querySelectorAll('img.snap')].every(i => i.complete && i.naturalWidth > 0)",
            timeout=5000,
        )
        shot(page, f"feed-{size}")
        page.goto(f"{console.url}/incidents/{detail_id}")
        page.wait_for_function("() => document.querySelector('img.snapshot-large')?.naturalWidth > 0")
        page.wait_for_function("() => document.querySelectorAll('#d-assign-to option').length > 1")
        page.fill("#d-note", "Caller reports a second person nearby.")
        shot(page, f"incident-detail-{size}")
        page.goto(f"{console.url}/cameras")
        page.wait_for_selector('[data-testid="camera-row"]')
        assert page.locator('[data-testid="camera-row"]').count() == 6
        first_state = page.locator('[data-testid="camera-row"] [data-testid="camera-state"]').first.inner_text()
        assert first_state == "down"  # sorted by state: worst first
        shot(page, f"camera-board-{size}")
        page.click("th[data-key=camera_id]")
        # the board sorts on the server: wait for the re-fetched page rather than read the old one
        page.wait_for_function(
            "() => document.querySelector('[data-testid=\"camera-row\"] td')?.innerText === 'bridge-1'",
            timeout=5000,
        )
        assert page.locator('[data-testid="camera-row"] td').first.inner_text() == "bridge-1"
        page.goto(f"{console.url}/incidents")
        shot(page, f"incident-list-{size}")
        page.context.close()
    finally:
        console.served.stop()
        console.store.close()
