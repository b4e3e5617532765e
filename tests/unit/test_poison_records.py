"""Poison records: every consumer dead-letters each bad record (as bytes, bounded) and commits past it.

Each test here failed before the fix: deep nesting raised ``RecursionError`` out of ``decode`` and
``decode_record``, the dead letter was a JSON re-encoding up to 3x the original's size, the watchlist
matcher dropped bad reads without a trace, and the outbox let one unpublishable record block the rest.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from benchmarks.poison_data import KINDS, bad_record
from event_bus import topics
from event_bus.consume import (
    DLQ_MAX_VALUE_BYTES,
    EventConsumer,
    dead_letter,
    decode,
    publish_dead_letters,
    read_dead_letter,
)
from event_bus.interfaces import DeliveryError, InRecord, OutRecord
from event_bus.local_bus import LocalBusPublisher, LocalBusSubscriber
from event_bus.relay import Relay
from event_bus.spool import Spool
from services.plate_indexer import PlateIndexer
from services.watchlist_alerts import WatchlistConsumer
from storage.plates.sqlite import SqliteHistoryStore
from storage.watchlist import WatchlistMatcher, WatchlistStore
from worker.registry import InvalidCameraRecord, decode_record

DEEP = b"[" * 100_000 + b"]" * 100_000


def _rec(value: bytes, key: str | None = "cam-1", topic: str = topics.INCIDENTS, offset: int = 0) -> InRecord:
    return InRecord(topic=topic, partition=0, offset=offset, key=key, value=value, timestamp_ms=0)


def test_deep_nesting_is_a_value_error_not_a_recursion_error() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        decode(_rec(DEEP))


def test_registry_decode_refuses_deep_nesting_as_an_invalid_record() -> None:
    with pytest.raises(InvalidCameraRecord, match="nested too deeply"):
        decode_record(b"cam-1", b'{"camera": ' + DEEP + b"}")


def test_dead_letter_keeps_original_bytes_bounded_with_hash_and_length() -> None:
    value = json.dumps({"pad": "\U0001f600" * 300_000}, ensure_ascii=False).encode()  # 1.2 MB, 4-byte chars
    dl = dead_letter(_rec(value, key=None, offset=7), "schema: too big", consumer="kuzet-console")
    assert len(dl.value) == DLQ_MAX_VALUE_BYTES and value.startswith(dl.value)
    back = read_dead_letter(
        InRecord(topics.DLQ, 0, 0, dl.key, dl.value, 0, dl.headers)  # as a consumer of the DLQ sees it
    )
    assert back.truncated and back.original_length == len(value)
    assert back.original_sha256 == hashlib.sha256(value).hexdigest()
    assert (back.topic, back.offset, back.key, back.consumer) == (topics.INCIDENTS, 7, None, "kuzet-console")
    assert back.error == "schema: too big"


def test_dead_letter_of_invalid_utf8_is_byte_exact_and_credentials_are_masked() -> None:
    raw = b"\xff\xfe rtsp://admin:hunter2@10.0.0.1/x \x80"
    dl = dead_letter(_rec(raw), "not JSON")
    assert b"hunter2" not in dl.value
    assert dl.value.startswith(b"\xff\xfe rtsp://***@10.0.0.1/x") and dl.value.endswith(b"\x80")


class _TooLarge:
    """Publisher that refuses records over a size for good, as Kafka does, and takes the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.delivered: list[OutRecord] = []

    def publish(self, records: Sequence[OutRecord]) -> list[DeliveryError | None]:
        out: list[DeliveryError | None] = []
        for r in records:
            if len(r.value) > self.limit:
                out.append(DeliveryError("MessageSizeTooLargeError: too large", retriable=False))
            else:
                self.delivered.append(r)
                out.append(None)
        return out

    def close(self) -> None:
        pass


def test_a_dead_letter_the_broker_refuses_goes_again_without_its_value() -> None:
    dlq = _TooLarge(0)  # a DLQ that refuses any record with a value
    assert publish_dead_letters(dlq, [dead_letter(_rec(b"x" * 10), "bad")]) == []
    assert len(dlq.delivered) == 1 and dict(dlq.delivered[0].headers)["kuzet-original-length"] == b"10"


def _produce(db: Path, topic: str, n: int) -> list[bytes]:
    """n bad records of each kind on ``topic`` of a local bus; returns their values."""
    pub = LocalBusPublisher(db)
    values = []
    out = []
    for kind in KINDS:
        for i in range(n):
            key, value = bad_record(kind, topic, i)
            values.append(value)
            out.append((key, value))
    # the local bus publisher takes OutRecords (str keys); null keys go in directly
    for key, value in out:
        if key is None:
            pub._db.execute(  # a null key cannot be expressed as an OutRecord
                "INSERT INTO log (topic, key, value, headers, ts_ms) VALUES (?, NULL, ?, '[]', 0)", (topic, value)
            )
        else:
            pub.publish([OutRecord(topic, key.decode(), value)])
    pub.close()
    return values


def _dead_letters(db: Path, consumer: str) -> list[str]:
    sub = LocalBusSubscriber(db, [topics.DLQ], None, from_beginning=True)
    got = [read_dead_letter(r) for r in sub.poll(1.0, 100_000)]
    sub.close()
    return [d.original_sha256 for d in got if d.consumer == consumer]


def _expect(values: list[bytes]) -> list[str]:
    return sorted(hashlib.sha256(v).hexdigest() for v in values)


def test_console_consumer_dead_letters_every_kind_once_and_commits(tmp_path: Path) -> None:
    db = tmp_path / "bus.sqlite3"
    values = _produce(db, topics.INCIDENTS, 3)
    consumer = EventConsumer(LocalBusSubscriber(db, [topics.INCIDENTS], "console"), LocalBusPublisher(db), name="c")
    for _ in range(100):
        assert consumer.poll(0.1, 7) == []
        if consumer.stats.received == len(values):
            break
    assert consumer.stats.dead_lettered == len(values)
    consumer.commit()
    assert sorted(_dead_letters(db, "c")) == _expect(values)
    again = EventConsumer(LocalBusSubscriber(db, [topics.INCIDENTS], "console"), LocalBusPublisher(db), name="c")
    assert again.poll(0.1) == [] and again.stats.received == 0, "committed past every bad record"


def test_indexer_dead_letters_every_kind_once_and_commits(tmp_path: Path) -> None:
    db = tmp_path / "bus.sqlite3"
    values = _produce(db, topics.PLATES, 3)
    store = SqliteHistoryStore(tmp_path / "plates.sqlite3")
    store.migrate()
    indexer = PlateIndexer(
        LocalBusSubscriber(db, [topics.PLATES], "kuzet-plate-indexer"), store, LocalBusPublisher(db), batch_size=5
    )
    while indexer.step():
        pass
    assert indexer.stats.dead_lettered == len(values) and indexer.stats.stored == 0
    assert sorted(_dead_letters(db, "kuzet-plate-indexer")) == _expect(values)


def test_watchlist_matcher_dead_letters_every_kind_once_and_commits(tmp_path: Path) -> None:
    db = tmp_path / "bus.sqlite3"
    values = _produce(db, topics.PLATES, 3)
    wl = WatchlistStore(sqlite_path=tmp_path / "plates.sqlite3")
    wl.migrate()
    watch = WatchlistConsumer(
        LocalBusSubscriber(db, [topics.PLATES], "kuzet-watchlist"), LocalBusPublisher(db), WatchlistMatcher(wl)
    )
    while watch.step():
        pass
    assert sorted(_dead_letters(db, "kuzet-watchlist")) == _expect(values)


def test_registry_decode_refuses_every_kind_with_a_reason() -> None:
    for kind in KINDS:
        for i in range(3):
            key, value = bad_record(kind, topics.CAMERAS, i)
            with pytest.raises(InvalidCameraRecord):
                decode_record(key, value)


def test_outbox_parks_an_unpublishable_record_and_delivers_the_rest(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3", durability="normal")
    spool.append(OutRecord(topics.DLQ, "cam-1", b"x" * 2000))
    spool.append(OutRecord(topics.INCIDENTS, "cam-1", b"incident-1"))
    spool.append(OutRecord(topics.INCIDENTS, "cam-2", b"incident-2"))
    pub = _TooLarge(1000)
    relay = Relay(spool, pub)
    assert relay.step() == 2
    assert [r.value for r in pub.delivered] == [b"incident-1", b"incident-2"]
    assert spool.depth() == 0 and spool.stats().parked == 1 and relay.stats().parked == 1
    assert relay.stats().consecutive_failures == 0
    spool.close()
    reopened = Spool(tmp_path / "spool.sqlite3", durability="normal")
    assert reopened.stats().parked == 1, "parked records are kept, never dropped"
    reopened.close()


def test_watch_service_loop_survives_a_failing_publisher(tmp_path: Path) -> None:
    from services.watchlist_alerts import run_forever

    db = tmp_path / "bus.sqlite3"
    _produce(db, topics.PLATES, 1)
    wl = WatchlistStore(sqlite_path=tmp_path / "plates.sqlite3")
    wl.migrate()
    stop = threading.Event()
    calls = []

    class Down:
        def publish(self, records: Sequence[OutRecord]) -> list[DeliveryError | None]:
            calls.append(len(records))
            if len(calls) >= 3:
                stop.set()
            return [DeliveryError("broker down")] * len(records)

        def close(self) -> None:
            pass

    run_forever(
        lambda: LocalBusSubscriber(db, [topics.PLATES], "kuzet-watchlist"),
        Down(),
        WatchlistMatcher(wl),
        stop,
        backoff_s=0.01,
    )
    assert len(calls) >= 3, "the loop retried instead of dying on the first failure"
