"""Incidents through spool -> relay -> idempotent KafkaPublisher -> a real broker, and back.

Needs the ``kafka_bootstrap`` / ``kafka_broker`` fixtures (tests/conftest.py), which start
Apache Kafka 4.x in KRaft mode on 127.0.0.1. Run this file as a script for the child
process of the SIGKILL test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.config import KafkaConfig  # noqa: E402
from dispatch import testing  # noqa: E402
from event_bus import schemas, topics  # noqa: E402
from event_bus.consume import EventConsumer  # noqa: E402
from event_bus.events import Incident  # noqa: E402
from event_bus.interfaces import OutRecord  # noqa: E402
from event_bus.kafka_admin import ensure_topics  # noqa: E402
from event_bus.kafka_publisher import KafkaPublisher  # noqa: E402
from event_bus.kafka_subscriber import KafkaSubscriber  # noqa: E402
from event_bus.relay import Relay  # noqa: E402
from event_bus.spool import Spool  # noqa: E402

CAMERAS = ("cam-a", "cam-b", "cam-c")


def make_incident(camera: str, n: int, worker: str) -> Incident:
    return testing.make_incident(camera_id=camera, severity="medium", confidence=0.9, worker_id=worker, track_id=n)


def spool_incident(spool: Spool, inc: Incident) -> None:
    spool.append(OutRecord(topics.INCIDENTS, inc.camera_id, inc.model_dump_json().encode()))


def publisher(bootstrap: str, delivery_timeout_s: float = 10.0) -> KafkaPublisher:
    cfg = KafkaConfig(bootstrap_servers=bootstrap, client_id="kuzet-test", delivery_timeout_s=delivery_timeout_s)
    return KafkaPublisher(cfg)


def _ours(value: bytes, worker: str) -> dict[str, Any] | None:
    """The record as JSON if this run's worker wrote it; other tests share the topic (some write junk on purpose)."""
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.get("worker_id") == worker else None


def read_back(bootstrap: str, worker: str, expected: int, timeout_s: float = 90.0) -> list[Any]:
    """Every record of this run (raw, duplicates included), in partition order; each validated against the schema."""
    sub = KafkaSubscriber(bootstrap, [topics.INCIDENTS], f"test-{uuid4()}", from_beginning=True)
    got: list[Any] = []
    ids: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for rec in sub.poll(1.0):
                doc = _ours(rec.value, worker)
                if doc is None:
                    continue
                schemas.validate("incident", doc)
                assert rec.key == doc["camera_id"]
                got.append(rec)
                ids.add(doc["event_id"])
            if len(ids) >= expected:
                # drain a little longer so late duplicates are counted too
                end = time.monotonic() + 2.0
                while time.monotonic() < end:
                    got += [r for r in sub.poll(0.5) if _ours(r.value, worker) is not None]
                break
    finally:
        sub.close()
    return got


def check_exactly_once_in_order(
    produced: dict[str, list[str]], received: list[Any], allowed_unreported: int = 0
) -> dict[str, int]:
    """Every produced id arrives; after dedupe each once, in per-camera order.

    ``allowed_unreported``: a child killed between a durable append and printing its id leaves
    records that are delivered (correctly) but were never reported to the test.
    """
    first_seen: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    dupes = 0
    for rec in received:
        doc = json.loads(rec.value)
        if doc["event_id"] in seen:
            dupes += 1
            continue
        seen.add(doc["event_id"])
        first_seen[doc["camera_id"]].append(doc["event_id"])
    all_produced = {e for ids in produced.values() for e in ids}
    assert all_produced <= seen, f"missing {len(all_produced - seen)} of {len(all_produced)}"
    assert len(seen - all_produced) <= allowed_unreported, f"unexpected {len(seen - all_produced)}"
    for cam, ids in produced.items():
        assert [e for e in first_seen[cam] if e in all_produced] == ids, f"order broken for {cam}"
    figures = {"produced": len(all_produced), "received_raw": len(received), "duplicates": dupes}
    print(f"\nFIGURES {figures}")
    return figures


@pytest.mark.services
def test_incidents_roundtrip_through_spool_relay_kafka(kafka_bootstrap: str, tmp_path: Path) -> None:
    ensure_topics(kafka_bootstrap, [topics.INCIDENTS, topics.DLQ], partitions=3)
    worker = f"w-{uuid4().hex[:8]}"
    pub = publisher(kafka_bootstrap)
    cfg = pub.producer_config()
    assert cfg["enable_idempotence"] is True
    assert cfg["acks"] == -1  # 'all'
    assert cfg["max_in_flight_requests_per_connection"] <= 5
    assert cfg["compression_type"] == "lz4"
    produced: dict[str, list[str]] = defaultdict(list)
    with Spool(tmp_path / "spool.db") as spool:
        relay = Relay(spool, pub).start()
        for n in range(20):
            for cam in CAMERAS:
                inc = make_incident(cam, n, worker)
                spool_incident(spool, inc)
                produced[cam].append(str(inc.event_id))
        assert relay.flush(60)
        relay.stop()
        assert relay.stats().delivered == 60
    pub.close()
    received = read_back(kafka_bootstrap, worker, 60)
    check_exactly_once_in_order(produced, received)
    # The consumer helper sees the same events, schema-checked and deduped.
    # Other tests share the topic and some write malformed records on purpose: those go to the real DLQ.
    dlq = publisher(kafka_bootstrap)
    consumer = EventConsumer(
        KafkaSubscriber(kafka_bootstrap, [topics.INCIDENTS], f"c-{uuid4()}", from_beginning=True), dlq=dlq
    )
    mine = []
    deadline = time.monotonic() + 30
    while len(mine) < 60 and time.monotonic() < deadline:
        mine += [d for d in consumer.poll(1.0) if getattr(d.event, "worker_id", None) == worker]
    consumer.commit()
    consumer.close()
    dlq.close()
    assert len(mine) == 60 and all(d.record.key == d.event.camera_id for d in mine)  # type: ignore[attr-defined]


@pytest.mark.services
@pytest.mark.slow
def test_broker_down_30s_mid_stream(kafka_broker: Any, tmp_path: Path) -> None:
    bootstrap = kafka_broker.bootstrap
    ensure_topics(bootstrap, [topics.INCIDENTS], partitions=3)
    worker = f"w-{uuid4().hex[:8]}"
    produced: dict[str, list[str]] = defaultdict(list)
    stop = threading.Event()
    with Spool(tmp_path / "spool.db") as spool:
        relay = Relay(spool, publisher(bootstrap, delivery_timeout_s=5.0), backoff_max_s=2.0).start()

        def produce() -> None:
            n = 0
            while not stop.is_set():
                for cam in CAMERAS:
                    inc = make_incident(cam, n, worker)
                    spool_incident(spool, inc)
                    produced[cam].append(str(inc.event_id))
                n += 1
                time.sleep(0.1)

        t = threading.Thread(target=produce)
        t.start()
        time.sleep(3)
        kafka_broker.stop()
        time.sleep(30)
        depth_during_outage = spool.depth()
        kafka_broker.start()
        time.sleep(5)
        stop.set()
        t.join()
        assert relay.flush(180), f"spool not drained: {relay.stats()}"
        relay.stop()
        stats = relay.stats()
        relay.publisher.close()
    total = sum(len(v) for v in produced.values())
    print(f"\nOUTAGE depth_during_outage={depth_during_outage} relay={stats}")
    assert depth_during_outage > 0 and stats.retries > 0
    figures = check_exactly_once_in_order(produced, read_back(bootstrap, worker, total))
    assert figures["produced"] == total


def child_main(spool_path: str, bootstrap: str, worker: str, start: int, count: int, flush: bool, pause: float) -> None:
    """Worker-like child: appends incidents (printing each id once durable) while its relay delivers."""
    with Spool(spool_path) as spool:
        relay = Relay(spool, publisher(bootstrap), backoff_max_s=1.0).start()
        for n in range(start, start + count):
            cam = CAMERAS[n % len(CAMERAS)]
            inc = make_incident(cam, n, worker)
            spool_incident(spool, inc)
            print(f"{cam} {inc.event_id}", flush=True)
            time.sleep(pause)
        if flush:
            assert relay.flush(120)
            relay.stop()
            print("FLUSHED", flush=True)


@pytest.mark.services
@pytest.mark.slow
def test_relay_sigkill_and_restart_on_same_spool(kafka_bootstrap: str, tmp_path: Path) -> None:
    ensure_topics(kafka_bootstrap, [topics.INCIDENTS], partitions=3)
    worker = f"w-{uuid4().hex[:8]}"
    spool_path = str(tmp_path / "spool.db")
    produced: dict[str, list[str]] = defaultdict(list)

    def spawn(start: int, count: int, flush: bool, pause: float) -> subprocess.Popen[str]:
        args = [
            sys.executable,
            __file__,
            spool_path,
            kafka_bootstrap,
            worker,
            str(start),
            str(count),
            str(int(flush)),
            str(pause),
        ]
        return subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=ROOT)

    # The first child appends as fast as fsync allows, so it dies with a backlog and a batch in flight.
    first = spawn(0, 100_000, flush=False, pause=0.0)
    assert first.stdout is not None
    lines = 0
    while lines < 1500:
        line = first.stdout.readline()
        if not line:
            break
        cam, eid = line.split()
        produced[cam].append(eid)
        lines += 1
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    for line in first.stdout.read().splitlines():  # anything printed before death was durable
        cam, eid = line.split()
        produced[cam].append(eid)
    killed_after = sum(len(v) for v in produced.values())
    with Spool(spool_path) as sp:  # the dead child's lock is gone; what it had not delivered is still here
        pending_at_kill = sp.depth()

    second = spawn(100_000, 60, flush=True, pause=0.02)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0 and "FLUSHED" in out
    for line in out.splitlines():
        if line != "FLUSHED":
            cam, eid = line.split()
            produced[cam].append(eid)
    total = sum(len(v) for v in produced.values())
    print(f"\nSIGKILL after {killed_after} appended, {pending_at_kill} undelivered at the kill; {total} in all")
    check_exactly_once_in_order(produced, read_back(kafka_bootstrap, worker, total), allowed_unreported=1)


if __name__ == "__main__":
    child_main(
        sys.argv[1],
        sys.argv[2],
        sys.argv[3],
        int(sys.argv[4]),
        int(sys.argv[5]),
        sys.argv[6] == "1",
        float(sys.argv[7]),
    )
