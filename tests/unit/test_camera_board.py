"""The camera board's index and API: filters, counts, sort, pages, stale derivation and input validation."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dispatch.app import create_app
from dispatch.camera_board import BoardQuery, CameraBoard
from dispatch.feed import FeedHub
from dispatch.settings import ConsoleSettings
from dispatch.testing import FAST_HASHER, PASSWORDS, add_standard_users
from storage.camera_health import CameraHealth
from storage.workflow import open_workflow_store

NOW = 1_800_000_000_000
GROUPS = {"north": ["n-*"], "south": ["s-*"]}


def health(cid: str, state: str = "up", *, at: int = NOW, frame: int | None = NOW, worker: str = "w1",
           reason: str = "", reconnects: int = 0) -> CameraHealth:  # fmt: skip
    return CameraHealth(cid, state, reason, 10.0, 5.0, frame, reconnects, worker, at)


def fleet() -> CameraBoard:
    board = CameraBoard(GROUPS, stale_after_ms=20_000)
    board.update(
        [
            health("n-001", at=NOW - 1000, frame=NOW - 1200),
            health("n-002", "down", at=NOW - 5000, frame=NOW - 60_000, reason="RTSP timeout", reconnects=3),
            health("n-003", at=NOW - 30_000, frame=NOW - 30_100, worker="w2"),  # silent worker: stale
            health("s-001", "degraded", at=NOW - 500, frame=NOW - 900, worker="w2"),
            health("s-002", "down", at=NOW - 100, frame=None, worker="w2", reason="never connected"),
            health("x-001", at=NOW - 100, frame=NOW - 150),
        ]
    )
    return board


def ids(board: CameraBoard, **kw: Any) -> list[str]:
    return [i["camera_id"] for i in board.page(BoardQuery(**kw), NOW).items]


def test_default_order_is_worst_state_first_then_camera_id() -> None:
    assert ids(fleet()) == ["n-002", "s-002", "n-003", "s-001", "n-001", "x-001"]


def test_filters_combine_and_counts_ignore_only_the_state_filter() -> None:
    board = fleet()
    page = board.page(BoardQuery(group="north"), NOW)
    assert page.counts == {"down": 1, "stale": 1, "degraded": 0, "up": 1}
    assert (page.total, page.matching) == (6, 3)
    assert ids(board, group="north", state="stale") == ["n-003"]
    assert ids(board, worker="w2") == ["s-002", "n-003", "s-001"]
    assert ids(board, worker="nobody") == []
    assert ids(board, text="rtsp") == ["n-002"]  # reason, case-insensitive
    assert ids(board, text="W2", state="down") == ["s-002"]
    page = board.page(BoardQuery(worker="w2", state="down"), NOW)
    assert page.matching == 1 and page.counts == {"down": 1, "stale": 1, "degraded": 1, "up": 0}


def test_last_frame_age_is_lag_at_report_when_flowing_and_time_since_when_dark() -> None:
    items = {i["camera_id"]: i for i in fleet().page(BoardQuery(limit=10), NOW).items}
    assert items["n-001"]["last_frame_age_ms"] == 200  # up: frame 200 ms older than its report
    assert items["n-002"]["last_frame_age_ms"] == 60_000  # down: a minute without frames, up to now
    assert items["n-003"]["last_frame_age_ms"] == 30_100  # stale: counts up to now too
    assert items["s-002"]["last_frame_age_ms"] is None  # never had a frame
    assert items["n-003"]["shown"] == "stale" and items["n-003"]["stale"] is True
    assert items["n-001"]["groups"] == ["north"] and items["x-001"]["groups"] == []
    oldest_first = ["s-002", "n-002", "n-003", "s-001", "n-001", "x-001"]
    assert ids(fleet(), sort="last_frame_age", descending=True) == oldest_first


def test_pages_sorts_and_older_statuses_lose() -> None:
    board = fleet()
    assert ids(board, sort="camera_id", offset=2, limit=2) == ["n-003", "s-001"]
    assert ids(board, sort="camera_id", descending=True, limit=2) == ["x-001", "s-002"]
    assert ids(board, sort="reconnects", descending=True, limit=1) == ["n-002"]
    board.update([health("n-002", "up", at=NOW - 10_000)])  # older than what the board has: ignored
    assert board.page(BoardQuery(text="n-002"), NOW).items[0]["state"] == "down"
    board.update([health("n-002", "up", at=NOW - 10, frame=NOW - 20, worker="w9")])
    assert ids(board, worker="w9", state="up") == ["n-002"]
    assert ids(board, worker="w1", state="down") == []


def test_twenty_thousand_cameras_filter_to_the_right_rows() -> None:
    board = CameraBoard({"north": ["n-*"]}, stale_after_ms=20_000, capacity=16)  # grows as cameras arrive

    def cam(i: int) -> CameraHealth:
        return health(f"{'n' if i % 4 == 0 else 's'}-{i:05d}", "down" if i % 10 == 0 else "up", worker=f"w{i % 20:02d}")

    board.update([cam(i) for i in range(20_000)])
    page = board.page(BoardQuery(group="north", state="down", worker="w00", limit=1000), NOW)
    want = [f"n-{i:05d}" for i in range(20_000) if i % 4 == 0 and i % 10 == 0 and i % 20 == 0]
    assert [i["camera_id"] for i in page.items] == want
    assert page.total == 20_000 and page.counts["down"] == len(want)


def test_dispatcher_feed_queue_gets_no_camera_messages_and_board_gets_one_change_note() -> None:
    async def run() -> tuple[int, int, list[str]]:
        hub = FeedHub(store=None)  # type: ignore[arg-type]  # fan-out only: no replay in this test
        hub.attach(asyncio.get_running_loop())
        feed = hub._add(frozenset({"incidents"}))
        board = hub._add(frozenset({"camera_changes"}))
        hub.publish_cameras([health(f"c{i}") for i in range(5000)])
        await asyncio.sleep(0.05)
        return feed.queue.qsize(), board.queue.qsize(), [board.queue.get_nowait().event]

    # on a thread of its own: in the full suite the session's Playwright browser keeps an event loop running
    # on the main thread, where asyncio.run refuses to start another
    with ThreadPoolExecutor(1) as pool:
        feed_q, board_q, events = pool.submit(asyncio.run, run()).result()
    assert (feed_q, board_q, events) == (0, 1, ["camera_changes"])


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    store = open_workflow_store(tmp_path / "console.sqlite3", hasher=FAST_HASHER)
    add_standard_users(store)
    store.upsert_cameras([health("n-001"), health("s-001", "down")])
    settings = ConsoleSettings(
        database=str(tmp_path / "console.sqlite3"),
        consume=False,
        cookie_secure=False,
        storage={"kind": "local", "local_dir": tmp_path / "snapshots"},
        camera_groups=GROUPS,
    )
    c = TestClient(create_app(settings, store=store))
    assert c.post("/api/session", json={"username": "dispatcher", "password": PASSWORDS["dispatcher"]}).is_success
    return c


def test_api_answers_a_filtered_page(client: TestClient) -> None:
    body = client.get("/api/cameras", params={"zone": "south"}).json()
    assert [i["camera_id"] for i in body["items"]] == ["s-001"]
    assert body["total"] == 2 and body["matching"] == 1 and body["zones"] == ["north", "south"]
    assert body["counts"]["down"] == 1 and body["workers"] == ["w1"]


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "5000"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"state": "asleep"}, "state"),
        ({"sort": "password"}, "sort"),
        ({"q": "x" * 65}, "q"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_api_refuses_bad_parameters_with_422(client: TestClient, params: dict[str, str], where: str) -> None:
    res = client.get("/api/cameras", params=params)
    assert res.status_code == 422
    assert any(where in d["loc"] for d in res.json()["detail"])


def test_api_names_the_zones_for_an_unknown_one(client: TestClient) -> None:
    res = client.get("/api/cameras", params={"zone": "east"})
    assert res.status_code == 422 and "north, south" in res.json()["detail"]


def test_api_needs_a_dispatcher_role(client: TestClient) -> None:
    anonymous = TestClient(client.app)
    assert anonymous.get("/api/cameras").status_code == 401
    assert anonymous.post("/api/session", json={"username": "investigator", "password": PASSWORDS["investigator"]})
    assert anonymous.get("/api/cameras").status_code == 403


def test_board_index_follows_what_this_replica_hands_to_its_browsers() -> None:
    """With replicas a status is announced first (notifier) and reaches every replica's hub, this one's included,
    through the database's change feed (relay=False): the index takes it then, once."""
    hub = FeedHub(store=None)  # type: ignore[arg-type]  # no loop attached: nothing is streamed here
    board = CameraBoard(GROUPS, stale_after_ms=0)
    hub.camera_observers.append(board.update)
    announced: list[str] = []
    hub.notifier = lambda kind, cams=(): announced.append(kind)
    hub.publish_cameras([health("n-001")])
    assert announced == ["cameras"] and len(board) == 0
    hub.publish_cameras([health("n-001")], relay=False)
    assert len(board) == 1 and ids(board) == ["n-001"]
