"""The camera board at city size, in Chromium, fed through the real status topic.

1. 20,000 camera statuses go to ``kuzet.camera-status.v1`` on the test broker (what workers send);
   the console consumes them; the board in the browser shows one page of 100 rows, the counts per
   state, and each filter (state, zone, worker, text), the sort by last-frame age and paging give
   exactly the rows computed here from the same fleet. A screenshot of the full board is kept.
2. While the board is open and 20,000 statuses arrive (a heartbeat wave), two dispatchers' live
   feeds each receive a new incident, and neither feed is reset.

Correctness only: how long the board takes is measured by ``benchmarks/camera_board.py``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks.board_fleet import STALE_AFTER_S, Fleet, make_fleet, publish
from core.config import KafkaConfig
from dispatch.testing import make_incident, record_of
from event_bus import topics
from event_bus.events import CameraStatus
from event_bus.kafka_publisher import KafkaPublisher
from tests.browser.conftest import Console, running_kafka_console, shot
from tests.shared_broker import delete_records

pytestmark = [pytest.mark.services, pytest.mark.slow]

N = 20_000
ORDER = {"down": 0, "stale": 1, "degraded": 2, "up": 3}
ROWS = "#cameras tbody tr[data-testid=camera-row]"
# Counts the feed resets a page receives (a reset means the browser fell behind and reloaded).
RESET_PROBE = """
window.__resets = 0;
const __add = EventSource.prototype.addEventListener;
EventSource.prototype.addEventListener = function (type, fn, opts) {
  if (type === 'reset') { const inner = fn; fn = function (e) { window.__resets += 1; return inner.call(this, e); }; }
  return __add.call(this, type, fn, opts);
};
"""


@pytest.fixture
def fleet() -> Fleet:
    return make_fleet(N, f"b{uuid.uuid4().hex[:6]}-")


@pytest.fixture
def board_console(kafka_bootstrap: str, tmp_path: Path, fleet: Fleet) -> Iterator[Console]:
    """A console on the real broker whose zones are the fleet's; it reads statuses produced from now on."""
    with running_kafka_console(
        kafka_bootstrap,
        tmp_path,
        "kuzet-console-board",
        from_beginning=False,  # not the statuses of earlier tests on this broker; ours come after assignment
        camera_groups=fleet.groups,
        camera_stale_after_s=STALE_AFTER_S,
    ) as console:
        yield console


@pytest.fixture
def publisher(kafka_bootstrap: str) -> Iterator[KafkaPublisher]:
    pub = KafkaPublisher(KafkaConfig(bootstrap_servers=kafka_bootstrap, client_id="board-scale-test"))
    yield pub
    pub.close()
    delete_records(kafka_bootstrap, topics.CAMERA_STATUS)  # later consoles read statuses from the oldest


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else int(dt.timestamp() * 1000)


def expected(fleet: Fleet, now: datetime, *, sort: str = "state", **filters: str) -> list[str]:
    """The board's answer computed independently: filters, then (sort key, camera id)."""
    now_ms = _ms(now)
    assert now_ms is not None

    def keep(s: CameraStatus) -> bool:
        text = f"{s.camera_id}\n{s.worker_id}\n{s.reason}".lower()
        return (
            filters.get("state", fleet.shown(s, now)) == fleet.shown(s, now)
            and filters.get("zone", fleet.zone_of(s)) == fleet.zone_of(s)
            and filters.get("worker", s.worker_id) == s.worker_id
            and filters.get("q", "").lower() in text
        )

    def age(s: CameraStatus) -> float:
        last = _ms(s.last_frame_at)
        if last is None:
            return float("inf")
        flowing = fleet.shown(s, now) in ("up", "degraded")
        at = _ms(s.at)
        assert at is not None
        return max(0, (at if flowing else now_ms) - last)

    rows = [s for s in fleet.statuses if keep(s)]
    if sort == "last_frame_age_desc":
        rows.sort(key=lambda s: (-age(s), s.camera_id))
    else:
        rows.sort(key=lambda s: (ORDER[fleet.shown(s, now)], s.camera_id))
    return [s.camera_id for s in rows]


def shown_ids(page: Any) -> list[str]:
    return [str(x) for x in page.eval_on_selector_all(ROWS, "rows => rows.map(r => r.dataset.camera)")]


def wait_query(page: Any, must_contain: str) -> None:
    """Wait until the rows on screen answer a query containing ``must_contain``."""
    page.wait_for_function(
        "want => (document.getElementById('cameras').dataset.query || '').includes(want)", arg=must_contain
    )


def open_board(console: Console, browser: Any, fleet: Fleet) -> Any:
    page = console.login(browser, "dispatcher", viewport=(1920, 1080))
    page.goto(f"{console.url}/cameras?q={fleet.prefix}")
    page.wait_for_selector('#conn[data-state="live"]', timeout=15_000)
    return page


def test_board_at_20000_cameras_filters_sorts_and_pages_to_the_right_rows(
    browser: Any, board_console: Console, publisher: KafkaPublisher, fleet: Fleet
) -> None:
    now = datetime.now(UTC)
    publish(publisher, fleet.statuses)
    page = open_board(board_console, browser, fleet)
    page.wait_for_function(f"() => document.getElementById('cameras').dataset.matching === '{N}'", timeout=240_000)

    want = expected(fleet, now, q=fleet.prefix)
    assert page.locator(ROWS).count() == 100  # one page in the DOM, never the fleet
    assert shown_ids(page) == want[:100]
    counts = {s: 0 for s in ORDER}
    for s in fleet.statuses:
        counts[fleet.shown(s, now)] += 1
    for state, n in counts.items():
        assert page.get_by_test_id(f"count-{state}").inner_text().replace(",", "") == f"{n} {state}"
    assert page.get_by_test_id("camera-summary").inner_text() == "20,000 cameras"
    assert page.get_by_test_id("page-info").inner_text() == "1–100 of 20,000"
    ages = page.eval_on_selector_all("#cameras td.age", "tds => tds.map(t => t.textContent)")
    assert all(a.endswith(" ago") or a == "never" for a in ages) and "live" not in ages
    page.set_viewport_size({"width": 1920, "height": 1080})
    path = shot(page, "camera_board_20k")
    assert path.stat().st_size > 10_000

    page.get_by_test_id("filter-state").select_option("down")
    wait_query(page, "state=down")
    want = expected(fleet, now, q=fleet.prefix, state="down")
    assert page.get_by_test_id("page-info").inner_text().endswith(f"of {len(want):,}")
    assert shown_ids(page) == want[:100]
    assert set(page.eval_on_selector_all(f"{ROWS} [data-testid=camera-state]", "e => e.map(x => x.textContent)")) == {
        "down"
    }

    page.get_by_test_id("filter-state").select_option("")
    page.get_by_test_id("filter-zone").select_option("north")
    page.get_by_test_id("filter-worker").fill(fleet.worker(3))
    page.get_by_test_id("filter-worker").dispatch_event("change")
    wait_query(page, f"worker={fleet.worker(3)}")
    wait_query(page, "zone=north")
    want = expected(fleet, now, q=fleet.prefix, zone="north", worker=fleet.worker(3))
    assert page.get_by_test_id("page-info").inner_text().endswith(f"of {len(want):,}")
    assert want and shown_ids(page) == want[:100]
    assert set(page.eval_on_selector_all(f"{ROWS} [data-testid=camera-zones]", "e => e.map(x => x.textContent)")) == {
        "north"
    }
    shot(page, "camera_board_20k_filtered")

    page.get_by_test_id("filter-zone").select_option("")
    page.get_by_test_id("filter-worker").fill("")
    page.get_by_test_id("filter-worker").dispatch_event("change")
    needle = f"{fleet.prefix}east-0012"
    page.get_by_test_id("filter-text").fill(needle)
    page.wait_for_function(
        "want => { const q = document.getElementById('cameras').dataset.query || '';"
        " return q.includes(want) && !q.includes('zone') && !q.includes('worker'); }",
        arg=f"q={needle}",
    )
    want = expected(fleet, now, q=needle)
    assert want and shown_ids(page) == want

    page.get_by_test_id("filter-text").fill(fleet.prefix)
    page.click("#cameras th[data-key=last_frame_age]")
    page.click("#cameras th[data-key=last_frame_age]")
    wait_query(page, "order=desc")
    want = expected(fleet, now, q=fleet.prefix, sort="last_frame_age_desc")
    assert shown_ids(page) == want[:100]
    page.get_by_test_id("page-next").click()
    wait_query(page, "offset=100")
    assert shown_ids(page) == want[100:200]
    page.context.close()


def test_dispatcher_feeds_stay_live_while_the_board_is_open_during_a_20000_status_wave(
    browser: Any, board_console: Console, publisher: KafkaPublisher, fleet: Fleet
) -> None:
    board = open_board(board_console, browser, fleet)
    feeds = []
    for user in ("dispatcher", "dispatcher2"):
        feed = board_console.login(browser, "dispatcher", user=user)
        feed.add_init_script(RESET_PROBE)
        feed.goto(f"{board_console.url}/feed")
        feed.wait_for_selector('#conn[data-state="live"]', timeout=15_000)
        feeds.append(feed)

    half = N // 2
    wave = threading.Thread(target=publish, args=(publisher, fleet.statuses[half:]))
    publish(publisher, fleet.statuses[:half])
    wave.start()  # the second half arrives while the incident is on its way
    inc = make_incident(camera_id=fleet.statuses[0].camera_id, severity="critical")
    assert publisher.publish([record_of(inc)]) == [None]
    for feed in feeds:
        feed.wait_for_selector(f'article.card[data-id="{inc.incident_id}"]', timeout=60_000)
    wave.join()

    board.wait_for_function(f"() => document.getElementById('cameras').dataset.matching === '{N}'", timeout=240_000)
    assert board.locator(ROWS).count() == 100
    for feed in feeds:
        assert feed.evaluate("window.__resets") == 0  # the wave never filled a dispatcher's feed queue
        assert feed.get_attribute("#conn", "data-state") == "live"
    assert board.get_attribute("#conn", "data-state") == "live"
    board.context.close()
    for feed in feeds:
        feed.context.close()
