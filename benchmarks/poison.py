"""Poison records against every consumer on a real Kafka: each keeps going, each bad record is dead-lettered once.

``python -m benchmarks.poison`` starts its own broker (so a thousand huge
records do not linger in a shared registry topic), produces ``--per-kind``
records of each kind in :mod:`benchmarks.poison_data` to the topics of the four
consumers, runs the consumers as the services run them, and checks the DLQ:

* console ingest (:class:`dispatch.feed.BusIngestor`) on ``kuzet.incidents.v1``;
* plate indexer (:func:`services.plate_indexer.run_forever`) and
* watchlist matcher (:func:`services.watchlist_alerts.run_forever`) on ``kuzet.plates.v1``;
* worker registry consumer (:class:`worker.assignment.CameraAssignment`: its
  registry view skips and counts, its dead-lettering group member,
  :mod:`worker.registry_dead_letters`, writes the dead letters) on ``kuzet.cameras.v1``;
  ``--registry-workers`` (3) run in one group, all reading every record; then one of them is
  restarted and one more bad record of each kind goes in. Each record must still be dead-lettered once.

(The registry topic is compacted: the broker itself refuses null-key records there, so that kind is
produced to the three other consumers only.) After the bad records, one good record per topic goes in: a consumer that
processes it has provably committed past every bad one. The report gives, per
consumer, records sent, dead letters found for them (by sha256 of the
original), duplicates and misses (both must be 0), truncated copies, whether
the consumer's thread was still alive, the seconds from the consumer's start to
the good record being processed, and dead letters per second over that time.
It is written to ``artifacts/benchmarks/poison.json``; ``--consumers`` runs a
subset, ``--per-kind`` sets the size (1,000 by default: run it with ``nice``).
``tests/integration/test_poison_kafka.py`` runs the same code with a few records per kind on the
session's broker.

Why one module over 400 lines: one benchmark that drives four real consumers the way their services run
them, plus the DLQ accounting they share; the CI test imports its runners.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.poison_data import KINDS, bad_record
from event_bus import topics
from event_bus.consume import read_dead_letter
from event_bus.interfaces import InRecord

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "artifacts" / "benchmarks" / "poison.json"


@dataclass
class ConsumerReport:
    consumer: str
    sent: int
    dead_letters: int
    missing: int
    duplicated: int
    truncated: int
    good_processed: bool
    alive: bool
    """The consumer's thread was still running when its good record was processed (it never died on one)."""
    seconds: float
    dead_letters_per_s: float
    """Bad records dead-lettered per second, from the consumer's start to its good record being processed."""


def _produce(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]], partitions: list[int] | None = None
) -> None:
    """Send ``records`` (to ``partitions[i]`` for record ``i`` when given, else where the key hashes)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", max_request_size=2_000_000)
    try:
        for start in range(0, len(records), 100):  # in chunks: a slow, shared box needs no giant flush
            futures = [
                producer.send(topic, key=k, value=v, partition=partitions[start + i] if partitions else None)
                for i, (k, v) in enumerate(records[start : start + 100])
            ]
            producer.flush(600)
            for f in futures:
                f.get(60)
    finally:
        producer.close(10)


def _partitions(bootstrap: str, topic: str) -> list[int]:
    """The topic's partitions. A shared broker may have made a topic with several (tests create some with 3)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + 30
        parts = consumer.partitions_for_topic(topic)
        while not parts and time.monotonic() < deadline:
            time.sleep(0.2)
            parts = consumer.partitions_for_topic(topic)
        return sorted(parts or {0})
    finally:
        consumer.close(autocommit=False)


def _records(topic: str, per_kind: int, tag: str, first: int = 0) -> list[tuple[bytes | None, bytes]]:
    """Records ``first`` .. ``first + per_kind - 1`` of each kind."""
    # A compacted topic (the registry) cannot hold a record without a key: the broker refuses it with
    # InvalidRecordError, so "null key" never reaches the registry consumer (decode_record refuses it anyway).
    kinds = [k for k in KINDS if not (topic == topics.CAMERAS and k == "null_key")]
    return [bad_record(kind, topic, i, tag) for kind in kinds for i in range(first, first + per_kind)]


def _sha(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def _dead_letters(bootstrap: str, wanted: set[str], timeout_s: float) -> list[Any]:
    """Every dead letter whose original sha256 is in ``wanted`` (read from the start of the DLQ)."""
    from kafka import KafkaConsumer, TopicPartition

    # read_committed: the registry's dead letters are written in transactions (an aborted one is not a copy)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    found = []
    try:
        parts = consumer.partitions_for_topic(topics.DLQ) or set()
        tps = [TopicPartition(topics.DLQ, p) for p in parts]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in tps):
            for recs in consumer.poll(timeout_ms=500, max_records=5000).values():
                for r in recs:
                    rec = InRecord(
                        r.topic,
                        r.partition,
                        r.offset,
                        r.key.decode() if r.key is not None else None,
                        bytes(r.value or b""),
                        r.timestamp,
                        tuple((k, bytes(v or b"")) for k, v in (r.headers or [])),
                    )
                    try:
                        dead = read_dead_letter(rec)
                    except ValueError:
                        continue
                    if dead.original_sha256 in wanted:
                        found.append(dead)
    finally:
        consumer.close(autocommit=False)
    return found


def _report(
    name: str, bootstrap: str, sent: list[bytes], consumer: str, good: bool, alive: bool, seconds: float
) -> ConsumerReport:
    wanted = {_sha(v) for v in sent}
    deadline = time.monotonic() + 60
    dead: list[Any] = []
    while time.monotonic() < deadline:
        dead = [d for d in _dead_letters(bootstrap, wanted, 60) if d.consumer == consumer]
        if len({d.original_sha256 for d in dead}) >= len(wanted):
            break
        time.sleep(1)
    counts = Counter(d.original_sha256 for d in dead)
    return ConsumerReport(
        consumer=name,
        sent=len(sent),
        dead_letters=len(dead),
        missing=len(wanted - set(counts)),
        duplicated=sum(c - 1 for c in counts.values() if c > 1),
        truncated=sum(1 for d in dead if d.truncated),
        good_processed=good,
        alive=alive,
        seconds=round(seconds, 2),
        dead_letters_per_s=round(len(counts) / seconds, 1) if seconds > 0 else 0.0,
    )


def _wait(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def _good_incident() -> tuple[str, str, bytes]:
    from benchmarks.poison_data import TEMPLATES

    camera = f"good-{uuid.uuid4().hex[:8]}"
    doc = TEMPLATES[topics.INCIDENTS](camera)
    return camera, str(doc["incident_id"]), json.dumps(doc).encode()


def _good_plate() -> tuple[str, bytes]:
    from benchmarks.poison_data import TEMPLATES

    camera = f"good-{uuid.uuid4().hex[:8]}"
    return camera, json.dumps(TEMPLATES[topics.PLATES](camera)).encode()


def run_console(bootstrap: str, per_kind: int, workdir: Path, timeout_s: float) -> ConsumerReport:
    from core.config import KafkaConfig
    from dispatch.bus_ingest import BusIngestor
    from dispatch.feed import FeedHub
    from event_bus.kafka_publisher import KafkaPublisher
    from event_bus.kafka_subscriber import KafkaSubscriber
    from storage.workflow import open_workflow_store

    tag = uuid.uuid4().hex[:6]
    bad = _records(topics.INCIDENTS, per_kind, tag)
    _produce(bootstrap, topics.INCIDENTS, bad)
    # Order holds only within a partition, and the bad records spread over all of them: one good record
    # behind them on every partition, so "done" (every good one stored) means every bad one was handled.
    parts = _partitions(bootstrap, topics.INCIDENTS)
    goods = [_good_incident() for _ in parts]
    store = open_workflow_store(workdir / f"console-{tag}.sqlite3")
    group = f"kuzet-console-poison-{tag}"
    dlq = KafkaPublisher(KafkaConfig(bootstrap_servers=bootstrap, client_id=group))
    ingestor = BusIngestor(
        lambda: KafkaSubscriber(bootstrap, [topics.INCIDENTS], group, from_beginning=True, client_id=group),
        dlq,
        store,
        FeedHub(store),
    )
    start = time.monotonic()
    ingestor.start()
    try:
        _produce(bootstrap, topics.INCIDENTS, [(cam.encode(), doc) for cam, _, doc in goods], parts)
        ok = _wait(lambda: all(store.get(iid) is not None for _, iid, _ in goods), timeout_s)
        seconds = time.monotonic() - start
        alive = ingestor.alive()
    finally:
        ingestor.stop()
        dlq.close()
        store.close()
    return _report("console", bootstrap, [v for _, v in bad], "kuzet-console", ok, alive, seconds)


def run_plates(bootstrap: str, per_kind: int, workdir: Path, timeout_s: float) -> list[ConsumerReport]:
    """Indexer and watchlist matcher side by side on the same bad plate reads (each its own group)."""
    from core.config import KafkaConfig
    from event_bus.kafka_publisher import KafkaPublisher
    from event_bus.kafka_subscriber import KafkaSubscriber
    from services import plate_indexer as indexer_mod
    from services import watchlist_alerts as watch_mod
    from storage.plates.sqlite import SqliteHistoryStore
    from storage.watchlist import WatchlistMatcher, WatchlistStore

    tag = uuid.uuid4().hex[:6]
    bad = _records(topics.PLATES, per_kind, tag)
    _produce(bootstrap, topics.PLATES, bad)
    parts = _partitions(bootstrap, topics.PLATES)  # one good read behind the bad ones on every partition
    goods = [_good_plate() for _ in parts]
    history = SqliteHistoryStore(workdir / f"plates-{tag}.sqlite3")
    history.migrate()
    wl = WatchlistStore(sqlite_path=workdir / f"plates-{tag}.sqlite3")
    wl.migrate()
    pub = KafkaPublisher(KafkaConfig(bootstrap_servers=bootstrap, client_id="poison-plates"))
    stop = threading.Event()
    idx_stats = indexer_mod.IndexerStats()
    watch_stats = watch_mod.WatchStats()
    suffix = f"-poison-{tag}"

    def sub(group: str) -> Callable[[], KafkaSubscriber]:
        return lambda: KafkaSubscriber(bootstrap, [topics.PLATES], group, from_beginning=True, client_id=group)

    # the consumers name themselves by their service group in dead letters; the test groups differ by suffix
    threads = [
        threading.Thread(
            target=indexer_mod.run_forever,
            args=(sub(indexer_mod.GROUP + suffix), history, pub, stop),
            kwargs={"stats": idx_stats, "batch_size": 200},
            daemon=True,
        ),
        threading.Thread(
            target=watch_mod.run_forever,
            args=(sub(watch_mod.GROUP + suffix), pub, WatchlistMatcher(wl), stop),
            kwargs={"stats": watch_stats},
            daemon=True,
        ),
    ]
    start = time.monotonic()
    for t in threads:
        t.start()
    try:
        _produce(bootstrap, topics.PLATES, [(cam.encode(), doc) for cam, doc in goods], parts)
        ok_idx = _wait(lambda: idx_stats.stored >= len(goods), timeout_s)
        t_idx = time.monotonic() - start
        ok_watch = _wait(lambda: watch_stats.reads >= len(goods), timeout_s)
        t_watch = time.monotonic() - start
        alive_idx, alive_watch = (t.is_alive() for t in threads)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        pub.close()
        history.close()
    values = [v for _, v in bad]
    return [
        _report("indexer", bootstrap, values, indexer_mod.GROUP, ok_idx, alive_idx, t_idx),
        _report("watch", bootstrap, values, watch_mod.GROUP, ok_watch, alive_watch, t_watch),
    ]


class _Worker:
    """Just enough of a worker for the registry consumer: it records the cameras it is told to run."""

    def __init__(self, worker_id: str = "poison-worker") -> None:
        self.worker_id = worker_id
        self.running: dict[str, Any] = {}

    def add_camera(self, camera: Any) -> None:
        self.running[camera.id] = camera

    def remove_camera(self, camera_id: str) -> None:
        self.running.pop(camera_id, None)

    def update_camera(self, camera: Any) -> None:
        self.running[camera.id] = camera

    def camera_ids(self) -> list[str]:
        return sorted(self.running)


def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close(autocommit=False)


class _GroupProgress:
    """Whether a consumer group has committed past given offsets (the registry's dead-lettering group)."""

    def __init__(self, bootstrap: str, group: str) -> None:
        from kafka.admin import KafkaAdminClient

        self.group = group
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="poison-progress")

    def past(self, ends: dict[int, int]) -> bool:
        try:
            offsets = self._admin.list_group_offsets(self.group).get(self.group, {})
        except Exception:  # a group still forming answers with an error: not there yet
            return False
        committed = {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topics.CAMERAS}
        return all(committed.get(p, 0) >= end for p, end in ends.items())

    def close(self) -> None:
        self._admin.close()


def run_registry(
    bootstrap: str, per_kind: int, workdir: Path, timeout_s: float, *, workers: int = 1, restart: bool = False
) -> ConsumerReport:
    """``workers`` members of one worker group read the same bad registry records; with ``restart``, one of
    them is then stopped and started again (its view re-reads every record) and one more bad record of each
    kind goes in. Every bad record must still have exactly one dead letter."""
    from core.config import CameraConfig, KafkaConfig
    from event_bus.kafka_publisher import KafkaPublisher
    from event_bus.relay import Relay
    from event_bus.spool import Spool
    from worker.assignment import AssignmentSettings, CameraAssignment
    from worker.registry import CameraRegistry
    from worker.registry_dead_letters import GROUP_SUFFIX

    tag = uuid.uuid4().hex[:6]
    registry = CameraRegistry(bootstrap)
    registry.ensure_topic()
    bad = _records(topics.CAMERAS, per_kind, tag)
    _produce(bootstrap, topics.CAMERAS, bad)
    good_id = f"poison{tag}-good"
    registry.put([CameraConfig(id=good_id, url=f"rtsp://127.0.0.1/{good_id}")])
    ends = _end_offsets(bootstrap, topics.CAMERAS)
    spool = Spool(workdir / f"worker-{tag}.sqlite3", durability="normal")
    relay = Relay(spool, KafkaPublisher(KafkaConfig(bootstrap_servers=bootstrap, client_id="poison-worker"))).start()
    group = f"kuzet-workers-poison-{tag}"
    progress = _GroupProgress(bootstrap, group + GROUP_SUFFIX)

    def sink(records: Any) -> None:  # the pending-camera statuses
        spool.append_many([(r, None, None) for r in records])
        relay.poke()

    def member(i: int) -> tuple[_Worker, CameraAssignment]:
        worker = _Worker(f"poison-worker-{i}")
        return worker, CameraAssignment(worker, AssignmentSettings(bootstrap=bootstrap, group_id=group), sink=sink)

    members = [member(i) for i in range(workers)]
    start = time.monotonic()
    for _, a in members:
        a.start()

    def done(expected: int) -> bool:
        running = any(good_id in w.running for w, _ in members)
        return running and all(a.invalid_records >= expected for _, a in members) and progress.past(ends)

    try:
        ok = _wait(lambda: done(len(bad)), timeout_s)
        seconds = time.monotonic() - start
        if restart:
            members[0][1].stop()
            members[0] = member(0)
            members[0][1].start()
            # the restarted member owns registry partitions again before more bad records go in
            ok = ok and _wait(lambda: members[0][1].dead_letters.partitions > 0, timeout_s)
            more = _records(topics.CAMERAS, 1, tag, first=per_kind)
            _produce(bootstrap, topics.CAMERAS, more)
            bad += more
            ends = _end_offsets(bootstrap, topics.CAMERAS)
            ok = ok and _wait(lambda: done(len(bad)), timeout_s)
        alive = all(a.alive() for _, a in members)
    finally:
        for _, a in members:
            a.stop()
        relay.stop()
        spool.close()
        progress.close()
        # tombstones, so later users of a shared broker do not load these records
        keyed = [k.decode() for k, _ in bad if k is not None]
        registry.remove([good_id, *keyed])
        registry.close()
    return _report("worker registry", bootstrap, [v for _, v in bad], group, ok, alive, seconds)


CONSUMERS = ("console", "plates", "registry")
"""Groups of consumers the command can run (``plates`` is the indexer and the watchlist matcher together)."""


def run_all(
    bootstrap: str,
    per_kind: int,
    workdir: Path,
    timeout_s: float = 600.0,
    consumers: tuple[str, ...] = CONSUMERS,
    on_report: Callable[[ConsumerReport], None] | None = None,
    registry_workers: int = 1,
    registry_restart: bool = False,
) -> list[ConsumerReport]:
    """Run the named consumer groups one after another; ``on_report`` sees each report as soon as it is in."""
    runners: dict[str, Callable[[], list[ConsumerReport]]] = {
        "console": lambda: [run_console(bootstrap, per_kind, workdir, timeout_s)],
        "plates": lambda: run_plates(bootstrap, per_kind, workdir, timeout_s),
        "registry": lambda: [
            run_registry(bootstrap, per_kind, workdir, timeout_s, workers=registry_workers, restart=registry_restart)
        ],
    }
    out: list[ConsumerReport] = []
    for name in consumers:
        for report in runners[name]():
            out.append(report)
            if on_report is not None:
                on_report(report)
    return out


def _print_row(r: ConsumerReport) -> None:
    print(
        f"{r.consumer:16} {r.sent:6d} {r.dead_letters:6d} {r.missing:8d} {r.duplicated:5d} "
        f"{r.truncated:5d} {r.good_processed!s:>5} {r.alive!s:>5} {r.seconds:8.1f} {r.dead_letters_per_s:7.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=1000, help="bad records of each kind per topic")
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="how long each consumer may take")
    parser.add_argument(
        "--registry-workers", type=int, default=3, help="workers in one group reading the registry's bad records"
    )
    parser.add_argument(
        "--no-registry-restart",
        action="store_true",
        help="skip restarting one registry worker (and the bad record of each kind sent after it)",
    )
    parser.add_argument(
        "--consumers", default=",".join(CONSUMERS), help=f"comma-separated subset of {', '.join(CONSUMERS)}"
    )
    args = parser.parse_args()
    chosen = tuple(c.strip() for c in args.consumers.split(",") if c.strip())
    unknown = set(chosen) - set(CONSUMERS)
    if unknown:
        parser.error(f"unknown consumers {sorted(unknown)}; known: {', '.join(CONSUMERS)}")
    print(
        f"{'consumer':16} {'sent':>6} {'DLQ':>6} {'missing':>8} {'dup':>5} {'cut':>5} {'good':>5} {'alive':>5} "
        f"{'s':>8} {'DLQ/s':>7}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="kuzet-poison-") as tmp:
        service = None
        bootstrap = args.bootstrap
        if bootstrap is None:
            from deploy.services.kafka import KafkaService

            service = KafkaService(Path(tmp) / "kafka")
            service.start()
            bootstrap = service.bootstrap
        try:
            reports = run_all(
                bootstrap,
                args.per_kind,
                Path(tmp),
                args.timeout_s,
                chosen,
                _print_row,
                registry_workers=args.registry_workers,
                registry_restart=not args.no_registry_restart,
            )
        finally:
            if service is not None:
                service.stop()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "per_kind": args.per_kind,
                "kinds": KINDS,
                "registry_workers": args.registry_workers,
                "registry_restart": not args.no_registry_restart,
                "consumers": [asdict(r) for r in reports],
            }
        )
    )


if __name__ == "__main__":
    main()
