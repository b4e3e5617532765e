"""Indexer and watchlist matcher on a real Kafka broker: malformed reads to the DLQ, the indexer keeps going,
a watchlisted plate yields a ``watchlist_hit`` incident and an expired entry does not."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from core.config import KafkaConfig
from dispatch.testing import make_plate_read
from event_bus import topics
from event_bus.consume import read_dead_letter
from event_bus.events import PlateRead
from event_bus.interfaces import OutRecord
from event_bus.kafka_admin import ensure_topics
from event_bus.kafka_publisher import KafkaPublisher
from event_bus.kafka_subscriber import KafkaSubscriber
from services.plate_indexer import PlateIndexer
from services.watchlist_alerts import WatchlistConsumer
from storage.plates.sqlite import SqliteHistoryStore
from storage.watchlist import WatchlistMatcher, WatchlistStore, new_entry

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def publisher(kafka_bootstrap: str) -> Iterator[KafkaPublisher]:
    ensure_topics(kafka_bootstrap, [topics.PLATES, topics.DLQ, topics.INCIDENTS])
    pub = KafkaPublisher(KafkaConfig(bootstrap_servers=kafka_bootstrap, client_id="plates-test"))
    yield pub
    pub.close()


def plate_read(camera: str, plate: str, at: datetime | None = None) -> PlateRead:
    return make_plate_read(camera, plate, at, reads=4)


def send(pub: KafkaPublisher, camera: str, values: list[bytes]) -> None:
    results = pub.publish([OutRecord(topics.PLATES, camera, v) for v in values])
    assert results == [None] * len(values)


def drain(sub: KafkaSubscriber, want: int, match: Any, timeout_s: float = 60.0) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(got) < want:
        got += [r for r in sub.poll(0.5) if match(r)]
    return got


def test_indexer_dead_letters_malformed_reads_and_keeps_going(
    kafka_bootstrap: str, publisher: KafkaPublisher, tmp_path: Path
) -> None:
    camera = f"cam-{uuid4().hex[:8]}"
    good = [plate_read(camera, f"{i:03d}ABC02") for i in range(20)]
    bad = [
        b"not json at all",
        json.dumps({"event_id": str(uuid4()), "camera_id": camera}).encode(),  # schema violation
        json.dumps({**json.loads(good[0].model_dump_json()), "plate": "12'; DROP"}).encode(),
        b"\xff\xfe\x00binary",
    ]
    send(publisher, camera, [g.model_dump_json().encode() for g in good[:10]] + bad)
    store = SqliteHistoryStore(tmp_path / "plates.sqlite3")
    store.migrate()
    sub = KafkaSubscriber(kafka_bootstrap, [topics.PLATES], f"indexer-{uuid4().hex[:6]}", from_beginning=True)
    indexer = PlateIndexer(sub, store, publisher, batch_size=500, max_wait_s=0.5)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and indexer.stats.dead_lettered < len(bad):
            indexer.step()
        assert indexer.stats.dead_lettered >= len(bad)
        # the indexer carries on after bad records
        send(
            publisher, camera, [g.model_dump_json().encode() for g in good[10:]] + [good[0].model_dump_json().encode()]
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _stored(store, camera) < 20:
            indexer.step()
    finally:
        indexer.close()
    assert _stored(store, camera) == 20  # the redelivered good[0] was not stored twice
    dlq = KafkaSubscriber(kafka_bootstrap, [topics.DLQ], f"dlq-{uuid4().hex[:6]}", from_beginning=True)
    try:
        dead = drain(dlq, len(bad), lambda r: r.key == camera)
    finally:
        dlq.close()
    assert len(dead) == len(bad)
    docs = [read_dead_letter(r) for r in dead]
    assert all(d.topic == topics.PLATES and d.error for d in docs)
    assert {d.consumer for d in docs} == {"kuzet-plate-indexer"}


def _stored(store: SqliteHistoryStore, camera: str) -> int:
    with store._lock:
        return int(store._db.execute("SELECT count(*) FROM plate_reads WHERE camera_id = ?", (camera,)).fetchone()[0])


def test_watchlisted_plate_raises_an_incident_and_an_expired_one_does_not(
    kafka_bootstrap: str, publisher: KafkaPublisher, tmp_path: Path
) -> None:
    camera = f"cam-{uuid4().hex[:8]}"
    now = datetime.now(UTC)
    wl = WatchlistStore(sqlite_path=tmp_path / "plates.sqlite3")
    wl.migrate()
    live = wl.add(new_entry("123ABC02", reason="stolen", created_by="a", expires_at=now + timedelta(hours=1), now=now))
    gone = wl.add(
        new_entry("777AAA02", reason="old case", created_by="a", expires_at=now + timedelta(seconds=1), now=now)
    )
    time.sleep(1.2)  # the second entry has expired
    sub = KafkaSubscriber(kafka_bootstrap, [topics.PLATES], f"watch-{uuid4().hex[:6]}", from_beginning=True)
    consumer = WatchlistConsumer(sub, publisher, WatchlistMatcher(wl), poll_s=0.1)
    incidents = KafkaSubscriber(kafka_bootstrap, [topics.INCIDENTS], f"inc-{uuid4().hex[:6]}", from_beginning=True)
    try:
        # warm up: join the group before timing anything
        send(publisher, camera, [plate_read(camera, "000XXX00").model_dump_json().encode()])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and consumer.stats.reads < 1:
            consumer.step()
        # other tests share the topic: work through their reads too, so the count below is only ours
        while time.monotonic() < deadline and consumer.step() > 0:
            pass
        baseline = consumer.stats.reads
        t0 = time.monotonic()
        send(
            publisher,
            camera,
            [plate_read(camera, p).model_dump_json().encode() for p in ("777AAA02", "123ABC02", "555BBB05")],
        )
        while time.monotonic() < deadline and consumer.stats.reads < baseline + 3:
            consumer.step()
        matched_s = time.monotonic() - t0
        hits = drain(incidents, 1, lambda r: r.key == camera)
        time.sleep(1.0)
        hits += [r for r in incidents.poll(1.0) if r.key == camera]
    finally:
        consumer.close()
        incidents.close()
    assert len(hits) == 1, [json.loads(h.value) for h in hits]
    doc = json.loads(hits[0].value)
    assert doc["type"] == "watchlist_hit" and doc["camera_id"] == camera
    assert doc["watchlist"]["watchlist_id"] == str(live.id) != str(gone.id)
    assert doc["watchlist"]["plate"] == "123ABC02"
    assert matched_s < 1.0, f"read -> incident published took {matched_s:.2f}s"
