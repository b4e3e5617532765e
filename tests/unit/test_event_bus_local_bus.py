"""Embedded bus: publish/subscribe/commit, across two processes; consumer helper dedupes and dead-letters."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatch.testing import make_incident
from event_bus import topics
from event_bus.consume import DeadLetterError, EventConsumer, SeenIds, read_dead_letter
from event_bus.events import Incident
from event_bus.interfaces import DeliveryError, OutRecord
from event_bus.local_bus import LocalBusPublisher, LocalBusSubscriber
from tests.unit.child_script import child_script


def incident(camera: str = "cam-1", seq: int = 0) -> Incident:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    return make_incident(camera_id=camera, seq=seq, severity="medium", started_at=t, confidence=0.9, worker_id="w1")


def out(inc: Incident) -> OutRecord:
    return OutRecord(topics.INCIDENTS, inc.camera_id, inc.model_dump_json().encode())


def test_publish_poll_commit_resume(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    pub = LocalBusPublisher(db)
    batch = [OutRecord("a", "k1", b"1", (("h", b"v"),)), OutRecord("b", "k2", b"2"), OutRecord("a", "k1", b"3")]
    assert pub.publish(batch) == [None] * 3
    sub = LocalBusSubscriber(db, ["a"], "g1")
    got = sub.poll(0.1)
    assert [r.value for r in got] == [b"1", b"3"] and got[0].headers == (("h", b"v"),) and got[0].key == "k1"
    assert got[0].offset < got[1].offset
    sub.commit()
    pub.publish([OutRecord("a", "k1", b"4")])
    assert [r.value for r in sub.poll(0.1)] == [b"4"]  # not committed
    sub.close()
    sub2 = LocalBusSubscriber(db, ["a"], "g1")
    assert [r.value for r in sub2.poll(0.1)] == [b"4"]  # resumes after the last commit
    assert [r.value for r in LocalBusSubscriber(db, ["a", "b"], "other").poll(0.1)] == [b"1", b"2", b"3", b"4"]
    late = LocalBusSubscriber(db, ["a"], None, from_beginning=False)
    assert late.poll(0.05) == []
    pub.publish([OutRecord("a", "k", b"5")])
    assert [r.value for r in late.poll(0.5)] == [b"5"]


def test_across_processes(tmp_path: Path) -> None:
    """A child process publishes; this process consumes and commits; a second child resumes after the commit."""
    db = tmp_path / "bus.db"
    producer = child_script(
        f"""
        from event_bus.interfaces import OutRecord
        from event_bus.local_bus import LocalBusPublisher
        pub = LocalBusPublisher({str(db)!r})
        for i in range(int(sys.argv[1]), int(sys.argv[2])):
            assert pub.publish([OutRecord("t", "cam-%d" % (i % 3), str(i).encode())]) == [None]
        """
    )
    consumer = child_script(
        f"""
        from event_bus.local_bus import LocalBusSubscriber
        sub = LocalBusSubscriber({str(db)!r}, ["t"], "g")
        print(",".join(r.value.decode() for r in sub.poll(1.0, 1000)))
        """
    )
    subprocess.run([sys.executable, "-c", producer, "0", "100"], check=True)
    sub = LocalBusSubscriber(db, ["t"], "g")
    got = []
    while len(got) < 100:
        got += [int(r.value) for r in sub.poll(2.0)]
    assert got == list(range(100))
    sub.commit()
    subprocess.run([sys.executable, "-c", producer, "100", "150"], check=True)
    res = subprocess.run([sys.executable, "-c", consumer], check=True, capture_output=True, text=True)
    assert [int(x) for x in res.stdout.strip().split(",")] == list(range(100, 150))


def test_consumer_validates_dedupes_and_dead_letters(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    pub = LocalBusPublisher(db)
    good = incident()
    bad_schema = json.loads(good.model_dump_json()) | {"confidence": 7}
    pub.publish(
        [
            out(good),
            out(good),  # redelivery
            OutRecord(topics.INCIDENTS, "cam-2", b"\xff not json"),
            OutRecord(topics.INCIDENTS, "cam-3", json.dumps(bad_schema).encode()),
            out(incident("cam-4")),
        ]
    )
    consumer = EventConsumer(LocalBusSubscriber(db, [topics.INCIDENTS], "console"), pub, seen=SeenIds(10))
    got = consumer.poll(0.5)
    assert [d.event.camera_id for d in got] == ["cam-1", "cam-4"]  # type: ignore[attr-defined]
    assert consumer.stats.duplicates == 1 and consumer.stats.dead_lettered == 2
    consumer.commit()
    dlq = LocalBusSubscriber(db, [topics.DLQ], "ops").poll(0.5)
    assert [r.key for r in dlq] == ["cam-2", "cam-3"]
    doc0, doc1 = (read_dead_letter(r) for r in dlq)
    assert "not JSON" in doc0.error and doc0.value == b"\xff not json"  # the original bytes, as they were
    assert "confidence" in doc1.error and json.loads(doc1.value)["confidence"] == 7
    assert doc1.topic == topics.INCIDENTS and not doc1.truncated


def test_dlq_failure_blocks_commit(tmp_path: Path) -> None:
    class DeadDlq:
        def publish(self, records):
            return [DeliveryError("down")] * len(records)

        def close(self) -> None:
            pass

    db = tmp_path / "bus.db"
    LocalBusPublisher(db).publish([OutRecord(topics.INCIDENTS, "cam-1", b"{}")])
    consumer = EventConsumer(LocalBusSubscriber(db, [topics.INCIDENTS], "g"), DeadDlq())
    with pytest.raises(DeadLetterError):
        consumer.poll(0.2)
    with pytest.raises(DeadLetterError):
        consumer.commit()


def test_seen_ids_bounded() -> None:
    seen = SeenIds(3)
    assert all(seen.add(x) for x in "abcd")
    assert len(seen) == 3 and seen.add("a")  # evicted, so new again
    assert not seen.add("d")
