"""The console's line counts: the latest-period store, its reader on the (local) bus, and the board rows.

The reader runs on the embedded local bus (one SQLite file, no broker); the
same reader on Kafka is covered by tests/browser/test_camera_board_line_counts.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dispatch.camera_board import BoardQuery, CameraBoard
from dispatch.feed import FeedHub
from dispatch.line_count_ingest import CONSUMER_NAME, LineCountIngestor, line_count_subscriber
from dispatch.line_counts import LineCountBoard
from dispatch.settings import ConsoleSettings
from event_bus import topics
from event_bus.analytics_events import LineCountEntry
from event_bus.consume import read_dead_letter
from event_bus.events import LineCount
from event_bus.interfaces import OutRecord
from event_bus.kafka_subscriber import KafkaSubscriber
from event_bus.local_bus import LocalBusPublisher, LocalBusSubscriber
from event_bus.records import to_record
from storage.camera_health import CameraHealth

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def period(camera: str, minute: int, counts: dict[tuple[str, str, str], int], *, complete: bool = True) -> LineCount:
    return LineCount(
        camera_id=camera,
        period_start=T0 + timedelta(minutes=minute),
        period_end=T0 + timedelta(minutes=minute + 1),
        complete=complete,
        counts=[LineCountEntry(line=k[0], direction=k[1], label=k[2], count=n) for k, n in counts.items()],  # type: ignore[arg-type]
        worker_id="w1",
    )


GATE = {("gate", "in", "person"): 3, ("gate", "out", "person"): 2, ("gate", "in", "car"): 1, ("gate", "out", "car"): 0}


def test_a_period_is_summed_per_line_and_kept_per_label() -> None:
    board = LineCountBoard()
    assert board.update([period("c1", 0, {**GATE, ("north", "in", "person"): 7, ("north", "out", "person"): 9})]) == [
        "c1"
    ]
    doc = board.get("c1")
    assert doc is not None
    assert doc["complete"] is True
    assert doc["period_end_ms"] - doc["period_start_ms"] == 60_000
    assert [(line["line"], line["in"], line["out"]) for line in doc["lines"]] == [("gate", 4, 2), ("north", 7, 9)]
    assert doc["lines"][0]["labels"] == {"person": {"in": 3, "out": 2}, "car": {"in": 1, "out": 0}}
    assert board.get("no-lines") is None


def test_the_newest_period_wins_and_a_late_older_one_is_ignored() -> None:
    board = LineCountBoard()
    board.update([period("c1", 5, {("gate", "in", "person"): 5})])
    assert board.update([period("c1", 4, {("gate", "in", "person"): 99})]) == []
    assert board.get("c1")["lines"][0]["in"] == 5  # type: ignore[index]
    board.update([period("c1", 6, {("gate", "in", "person"): 1}, complete=False)])
    doc = board.get("c1")
    assert doc is not None and doc["lines"][0]["in"] == 1 and doc["complete"] is False


def test_memory_is_bounded_by_dropping_the_camera_heard_from_longest_ago() -> None:
    board = LineCountBoard(max_cameras=2)
    board.update([period("a", 0, GATE), period("b", 0, GATE)])
    board.update([period("a", 1, GATE)])  # a reported again: b is now the oldest
    board.update([period("c", 0, GATE)])
    assert (board.get("a") is not None, board.get("b"), board.get("c") is not None) == (True, None, True)
    assert (len(board), board.dropped) == (2, 1)
    with pytest.raises(ValueError, match="max_cameras"):
        LineCountBoard(max_cameras=0)


def test_board_rows_carry_their_cameras_line_counts_and_others_none() -> None:
    counts = LineCountBoard()
    board = CameraBoard({}, stale_after_ms=0, line_counts=counts)
    now = int(T0.timestamp() * 1000)
    board.update([CameraHealth(c, "up", "", 10.0, 5.0, now, 0, "w1", now) for c in ("c1", "c2")])
    counts.update([period("c1", 0, GATE)])
    items = {i["camera_id"]: i for i in board.page(BoardQuery(), now).items}
    assert items["c1"]["line_counts"]["lines"][0]["in"] == 4
    assert items["c2"]["line_counts"] is None


def _settings(tmp_path: Path, lookback_s: float = 180.0) -> ConsoleSettings:
    return ConsoleSettings(
        database=str(tmp_path / "console.sqlite3"),
        bus={"kind": "local", "local_path": tmp_path / "bus.sqlite3"},
        line_counts_lookback_s=lookback_s,
    )


def _wait(cond: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)
    assert cond(), "condition not met in time"  # type: ignore[operator]


def test_reader_dead_letters_bad_records_and_moves_on(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    bus = LocalBusPublisher(settings.bus.local_path)
    board = LineCountBoard()
    changed: list[str] = []

    def on_change(cameras: list[str]) -> None:
        changed.extend(cameras)

    make, dlq = line_count_subscriber(settings)
    reader = LineCountIngestor(make, dlq, board, on_change).start()
    try:
        _wait(reader.ready.is_set)
        bad_schema = period("c1", 0, GATE).model_dump(mode="json")
        bad_schema["counts"][0]["count"] = -1
        records = [
            to_record(period("c1", 0, GATE)),
            OutRecord(topics.LINE_COUNTS, "c2", b"{not json"),
            OutRecord(topics.LINE_COUNTS, "c1", json.dumps(bad_schema).encode()),
            to_record(period("c2", 0, {("lane", "in", "car"): 12, ("lane", "out", "car"): 9})),
        ]
        assert bus.publish(records) == [None] * 4
        _wait(lambda: board.get("c2") is not None)
        assert board.get("c1")["lines"][0]["in"] == 4  # type: ignore[index]
        assert board.get("c2")["lines"] == [  # type: ignore[index]
            {"line": "lane", "in": 12, "out": 9, "labels": {"car": {"in": 12, "out": 9}}}
        ]
        assert set(changed) == {"c1", "c2"} and reader.errors == 0
        consumer = reader.consumer
        assert consumer is not None and consumer.stats.dead_lettered == 2
    finally:
        reader.stop()
        bus.close()
    dead = [read_dead_letter(r) for r in LocalBusSubscriber(settings.bus.local_path, [topics.DLQ], None).poll(1.0)]
    assert [(d.topic, d.consumer) for d in dead] == [(topics.LINE_COUNTS, CONSUMER_NAME)] * 2
    assert "not JSON" in dead[0].error and "count" in dead[1].error


def test_a_restarted_reader_rebuilds_the_counts_from_the_recent_records_only(tmp_path: Path) -> None:
    bus_path = tmp_path / "bus.sqlite3"
    bus = LocalBusPublisher(bus_path)
    bus.publish([to_record(period("old", 0, GATE))])
    time.sleep(1.2)
    bus.publish([to_record(period("c1", 0, GATE)), to_record(period("c1", 1, {("gate", "in", "person"): 6}))])
    bus.close()
    board = LineCountBoard()
    make, dlq = line_count_subscriber(_settings(tmp_path, lookback_s=10.0))
    # a lookback that ends between the two writes: only the second is read (the first is as if expired)
    since = int(time.time() * 1000) - 1000
    sub = LocalBusSubscriber(bus_path, [topics.LINE_COUNTS], None, since_ms=since)
    assert {r.key for r in sub.poll(1.0)} == {"c1"}
    sub.close()
    reader = LineCountIngestor(make, dlq, board, lambda _c: None).start()
    try:
        _wait(lambda: board.get("c1") is not None and board.get("old") is not None)  # both inside 10 s
        assert board.get("c1")["lines"][0]["in"] == 6  # type: ignore[index]  # the newest of the two periods
    finally:
        reader.stop()
    with pytest.raises(ValueError, match="without a consumer group"):
        LocalBusSubscriber(bus_path, [topics.LINE_COUNTS], "grp", since_ms=since)
    with pytest.raises(ValueError, match="without a consumer group"):  # refused before any connection is tried
        KafkaSubscriber("127.0.0.1:1", [topics.LINE_COUNTS], "grp", since_ms=since)


def test_new_counts_send_one_change_note_to_boards_and_nothing_to_incident_feeds() -> None:
    async def run() -> tuple[int, list[str]]:
        hub = FeedHub(store=None)  # type: ignore[arg-type]  # fan-out only: no replay in this test
        hub.attach(asyncio.get_running_loop())
        feed = hub._add(frozenset({"incidents", "cameras"}))
        board = hub._add(frozenset({"camera_changes"}))
        for _ in range(3):  # three reader batches before the browser fetched: still one note
            hub.announce_camera_changes()
        await asyncio.sleep(0.05)
        return feed.queue.qsize(), [board.queue.get_nowait().event for _ in range(board.queue.qsize())]

    with ThreadPoolExecutor(1) as pool:  # see test_camera_board: the session's Playwright may own the main loop
        assert pool.submit(asyncio.run, run()).result() == (0, ["camera_changes"])
