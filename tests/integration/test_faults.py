"""Faults with figures (#10): broker down 60 s under a live worker, PostgreSQL down 30 s under the plate
indexer, the spool's disk full, a damaged spool at start. (S3 down during snapshot upload:
``test_s3_snapshots.py::test_store_down_holds_events_until_objects_exist``; broker down 30 s:
``test_worker_kafka.py``.)

For each: lost (must be 0), duplicated after dedupe (must be 0), recovery time, and what an operator saw
(metrics, health, logs). Figures go to ``var/fault-figures.json`` (:mod:`tests.integration.fault_figures`).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from core.config import KafkaConfig
from dispatch.testing import make_incident, make_plate_read
from event_bus import topics
from event_bus.events import Incident, IncidentState, PlateRead
from event_bus.interfaces import OutRecord
from event_bus.kafka_publisher import KafkaPublisher
from event_bus.kafka_subscriber import KafkaSubscriber
from event_bus.relay import Relay
from event_bus.spool import Spool
from tests.integration import fault_figures
from tests.integration.worker_support import camera, check_delivery, read_topic, worker_config
from worker.metrics import WorkerMetrics
from worker.outbox import OutboxGuard
from worker.runtime import Worker

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _metric(metrics: WorkerMetrics, name: str) -> float:
    return sum(s.value for fam in metrics.registry.collect() for s in fam.samples if s.name == name)


def test_broker_down_60s_during_a_live_worker_run(kafka_broker: Any, vtest_h264: Path, tmp_path: Path) -> None:
    cam = camera("cam-fault-60", str(vtest_h264), loop=True, realtime=True)
    cfg = worker_config(
        tmp_path, [cam], kafka=kafka_broker.bootstrap, rules={"end_after_s": 1.0, "update_every_s": 1.0}
    )
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_incident(inc: Incident) -> None:
        with lock:
            seen.append(json.loads(inc.model_dump_json()))

    worker = Worker(cfg, on_incident=on_incident)
    metrics = WorkerMetrics()
    metrics.bind(worker)
    worker.start()
    try:
        deadline = time.monotonic() + 90
        while sum(e["state"] == IncidentState.START for e in list(seen)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        kafka_broker.stop()
        down_from = len(seen)
        time.sleep(60)
        during = len(seen) - down_from
        saw = {
            "kuzet_relay_consecutive_failures": _metric(metrics, "kuzet_relay_consecutive_failures"),
            "kuzet_spool_depth": _metric(metrics, "kuzet_spool_depth"),
            "relay_last_error": worker.relay.stats().last_error,
            "readyz_bus_check": "fails (relay failures in a row >= 3)"
            if worker.relay.stats().consecutive_failures >= 3
            else "passes",
        }
        kafka_broker.start()
        back = time.monotonic()
        while worker.spool.depth() > 0 and time.monotonic() < back + 120:
            time.sleep(0.2)
        recovery_s = time.monotonic() - back
        depth_after = worker.spool.depth()
    finally:
        flushed = worker.stop(flush_timeout_s=90)
    assert during > 0, "the worker produced nothing while the broker was down: the test proves nothing"
    assert depth_after == 0 and flushed, "the outbox did not drain after the broker came back"
    records = [r for r in read_topic(kafka_broker.bootstrap, topics.INCIDENTS, len(seen)) if r.key == cam.id]
    counts = check_delivery(seen, records)  # asserts: none missing, per-camera order kept after dedupe
    fault_figures.record(
        "broker_down_60s_live_worker",
        {
            "incident_events": counts["produced"],
            "spooled_while_down": during,
            "lost": 0,
            "redelivered_then_deduped": counts["duplicates"],
            "duplicated_after_dedupe": 0,
            "recovery_s_after_broker_back": round(recovery_s, 1),
            "operator_saw": saw,
        },
    )


def test_postgres_down_30s_under_the_plate_indexer(
    kafka_bootstrap: str, _postgres_session: Any, postgres_dsn: str
) -> None:
    from services.plate_indexer import IndexerStats, run_forever
    from storage.plates.postgres import PostgresHistoryStore

    store = PostgresHistoryStore(postgres_dsn)
    store.migrate()
    camera_id = f"pgf-{uuid4().hex[:6]}"
    now = datetime.now(UTC)
    store.ensure_partitions(now - timedelta(days=1), 3)
    pub = KafkaPublisher(KafkaConfig(bootstrap_servers=kafka_bootstrap, client_id="pg-fault"))
    group = f"kuzet-plate-indexer-pgfault-{camera_id}"
    stop = threading.Event()
    stats = IndexerStats()
    thread = threading.Thread(
        target=run_forever,
        args=(
            lambda: KafkaSubscriber(kafka_bootstrap, [topics.PLATES], group, from_beginning=True),
            store,
            pub,
            stop,
        ),
        kwargs={"stats": stats, "batch_size": 100, "max_backoff_s": 2.0},
        daemon=True,
    )
    reads: list[PlateRead] = []

    def produce(n: int) -> None:
        batch = [make_plate_read(camera_id, at=now + timedelta(milliseconds=len(reads) + i)) for i in range(n)]
        reads.extend(batch)
        out = [OutRecord(topics.PLATES, camera_id, r.model_dump_json().encode()) for r in batch]
        assert all(e is None for e in pub.publish(out))

    def stored() -> tuple[int, int]:
        with store._tx() as cur:
            cur.execute("SELECT count(*), count(DISTINCT event_id) FROM plate_reads WHERE camera_id = %s", (camera_id,))
            row = cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    thread.start()
    try:
        produce(50)
        deadline = time.monotonic() + 60
        while stats.stored < 50 and time.monotonic() < deadline:
            time.sleep(0.2)
        _postgres_session.stop()
        for _ in range(6):  # reads keep coming while the database is down
            produce(25)
            time.sleep(5)
        saw = {"kuzet_indexer_failures": stats.failures, "last_error": stats.last_error}
        _postgres_session.start()
        back = time.monotonic()
        total = distinct = 0
        while time.monotonic() < back + 120:
            try:
                total, distinct = stored()
            except Exception:  # the store reconnects on its next use
                time.sleep(0.5)
                continue
            if distinct >= len(reads):
                break
            time.sleep(0.5)
        recovery_s = time.monotonic() - back
    finally:
        stop.set()
        thread.join(30)
        pub.close()
    assert distinct == len(reads), f"lost {len(reads) - distinct} of {len(reads)} reads"
    assert total == distinct, "a read was stored twice"
    assert saw["kuzet_indexer_failures"] > 0 and saw["last_error"], "the outage was not visible"
    fault_figures.record(
        "postgres_down_30s_plate_indexer",
        {
            "reads": len(reads),
            "produced_while_down": 150,
            "lost": len(reads) - distinct,
            "duplicated_after_dedupe": total - distinct,
            "recovery_s_after_postgres_back": round(recovery_s, 1),
            "operator_saw": saw | {"note": "indexer metrics kuzet_indexer_failures, log 'plate indexer: ...'"},
        },
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 16 MiB tmpfs: a disk that fills up (needs root; skipped where mounting is not allowed).

    16 MiB rather than less: SQLite's write-ahead log grows to ~4 MiB before a checkpoint, and the spool
    must be able to work again once the operator frees space."""
    mount = tmp_path / "small"
    mount.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode(errors='replace').strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_under_the_spool(kafka_bootstrap: str, small_disk: Path) -> None:
    spool = Spool(small_disk / "spool.sqlite3")
    guard = OutboxGuard(spool)
    key = f"disk-{uuid4().hex[:6]}"
    publisher = KafkaPublisher(KafkaConfig(bootstrap_servers=kafka_bootstrap, client_id="disk-fault"))
    relay = Relay(spool, publisher)
    sent: list[bytes] = []
    try:
        filler = small_disk / "filler"
        with filler.open("wb") as f:  # something else fills the disk
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        accepted = 0
        for i in range(200):
            value = json.dumps({"n": i, "pad": "x" * 2000}).encode()
            sent.append(value)
            if guard.append(key, OutRecord(topics.INCIDENTS, key, value)):
                accepted += 1
        saw = {
            "camera_state": "degraded" if key in guard.failing() else "up",
            "reason": guard.failing().get(key).reason if key in guard.failing() else "",
            "kuzet_outbox_refused": sum(guard.refused().values()),
            "kuzet_outbox_waiting": guard.waiting(),
            "kuzet_outbox_dropped": sum(guard.dropped().values()),
        }
        assert saw["camera_state"] == "degraded" and guard.waiting() > 0, saw
        filler.unlink()  # the operator frees space
        freed = time.monotonic()
        while not guard.retry() and time.monotonic() < freed + 30:
            time.sleep(0.2)
        assert relay.flush(60), relay.stats()
        recovery_s = time.monotonic() - freed
        assert key not in guard.failing(), "the camera did not recover"
    finally:
        publisher.close()
        spool.close()
    got = [r.value for r in read_topic(kafka_bootstrap, topics.INCIDENTS, len(sent)) if r.key == key]
    assert got == sent, "lost, duplicated or reordered"
    fault_figures.record(
        "disk_full_under_the_spool",
        {
            "events": len(sent),
            "stored_before_full": accepted,
            "waited_in_memory": saw["kuzet_outbox_waiting"],
            "lost": len(sent) - len(set(got)),
            "duplicated_after_dedupe": len(got) - len(set(got)),
            "recovery_s_after_space_freed": round(recovery_s, 2),
            "operator_saw": saw,
        },
    )


def test_damaged_spool_at_start(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path, durability="normal")
    values = [b"%05d" % i + b"x" * 3000 for i in range(300)]
    spool.append_many([(OutRecord(topics.INCIDENTS, "cam-1", v), None, None) for v in values])
    spool.close()
    data = bytearray(path.read_bytes())
    cut = len(data) * 3 // 4
    data[cut : cut + 8192] = b"\xa5" * 8192
    path.write_bytes(bytes(data))
    started = time.monotonic()
    reopened = Spool(path, durability="normal")
    open_s = time.monotonic() - started
    try:
        q = reopened.quarantine
        assert q is not None
        kept = [r.record.value for r in reopened.peek(1000)]
        assert kept == values[: q.salvaged]
        fault_figures.record(
            "damaged_spool_at_start",
            {
                "records_in_file": len(values),
                "carried_over": q.salvaged,
                "unreadable_kept_in": os.path.basename(q.moved_to),
                "lost_silently": 0,
                "duplicated_after_dedupe": 0,
                "start_s": round(open_s, 3),
                "operator_saw": {
                    "kuzet_spool_quarantined": 1,
                    "kuzet_spool_salvaged": q.salvaged,
                    "log": "spool file damaged: moved aside, readable records carried over",
                    "reason": q.reason,
                },
            },
        )
    finally:
        reopened.close()


def test_postgres_down_30s_under_the_console(kafka_bootstrap: str, _postgres_session: Any, postgres_dsn: str) -> None:
    from dispatch.bus_ingest import BusIngestor
    from dispatch.feed import FeedHub
    from storage.workflow import open_workflow_store

    store = open_workflow_store(postgres_dsn)
    tag = uuid4().hex[:6]
    camera_id = f"pgc-{tag}"
    pub = KafkaPublisher(KafkaConfig(bootstrap_servers=kafka_bootstrap, client_id="pg-console-fault"))
    group = f"kuzet-console-pgfault-{tag}"
    ingestor = BusIngestor(
        lambda: KafkaSubscriber(kafka_bootstrap, [topics.INCIDENTS], group, from_beginning=True),
        pub,
        store,
        FeedHub(store),
    )
    incidents: list[Incident] = []

    def produce(n: int) -> None:
        now = datetime.now(UTC)
        batch = [
            make_incident(camera_id=camera_id, severity="medium", started_at=now, worker_id="w-pg") for _ in range(n)
        ]
        incidents.extend(batch)
        out = [OutRecord(topics.INCIDENTS, camera_id, i.model_dump_json().encode()) for i in batch]
        assert all(e is None for e in pub.publish(out))

    def missing() -> int:
        try:
            return sum(1 for i in incidents if store.get(str(i.incident_id)) is None)
        except Exception:  # the database is still coming back
            return len(incidents)

    ingestor.start()
    try:
        produce(20)
        deadline = time.monotonic() + 60
        while missing() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert missing() == 0
        _postgres_session.stop()
        for _ in range(6):
            produce(10)
            time.sleep(5)
        saw: dict[str, Any] = {"console_bus_errors": ingestor.errors, "console_bus_last_error": ingestor.last_error}
        _postgres_session.start()
        back = time.monotonic()
        while missing() and time.monotonic() < back + 300:
            time.sleep(0.3)
        recovery_s = time.monotonic() - back
        lost = missing()
        saw["after"] = {"errors": ingestor.errors, "last_error": ingestor.last_error, "ingested": ingestor.ingested}
        records = [store.get(str(i.incident_id)) for i in incidents]
    finally:
        ingestor.stop()
        pub.close()
    assert lost == 0, f"{lost} of {len(incidents)} incidents never reached the console"
    dup = sum(max(0, r.events - 1) for r in records if r is not None)
    assert dup == 0, "an incident event was counted twice"
    assert saw["console_bus_errors"] > 0, "the outage was not visible"
    fault_figures.record(
        "postgres_down_30s_console",
        {
            "incidents": len(incidents),
            "produced_while_down": 60,
            "lost": lost,
            "duplicated_after_dedupe": dup,
            "recovery_s_after_postgres_back": round(recovery_s, 1),
            "operator_saw": saw,
        },
    )
