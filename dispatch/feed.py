"""The live feed: bus -> workflow store -> every open browser, over Server-Sent Events.

Why it is built this way:

* The console reads ``kuzet.incidents.v1`` and ``kuzet.camera-status.v1`` in a
  consumer group of its own (Kafka) or from the embedded local bus (one box),
  through :class:`event_bus.consume.EventConsumer`, so records are schema-
  validated, deduped on ``event_id`` and malformed ones go to the DLQ. Offsets
  are committed only after the store has the events (at-least-once; the store
  is idempotent on ``seq``).
* Every change to an incident, from the bus or from a dispatcher, carries the
  store's revision. The SSE event id is ``<store uid>.<revision>``: a browser
  that reconnects with ``Last-Event-ID`` is replayed every incident changed
  since, once each, in its current state, from the database. Live messages
  older than what a connection already sent are skipped, so replay and live
  push never show a change twice.
* Fan-out runs on the event loop; the bus thread hands messages over with
  ``call_soon_threadsafe``. Each browser has a bounded queue: a browser that
  cannot keep up is sent ``reset`` and resyncs, instead of growing the
  server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from core.redact import redact_text
from event_bus import topics
from event_bus.consume import EventConsumer
from event_bus.events import CameraStatus, Incident
from event_bus.interfaces import InRecord, Publisher, Subscriber
from storage.camera_health import CameraHealth
from storage.incident_records import DetectionUpdate, IncidentRecord
from storage.workflow import WorkflowStore

log = logging.getLogger(__name__)

QUEUE_LIMIT = 2000


def _ms(dt: Any) -> int:
    return int(dt.timestamp() * 1000)


def detection_update(inc: Incident) -> DetectionUpdate:
    """The storage-side view of an incident event (storage does not import event_bus)."""
    return DetectionUpdate(
        event_id=str(inc.event_id),
        incident_id=str(inc.incident_id),
        type=inc.type.value,
        state=inc.state.value,
        seq=inc.seq,
        camera_id=inc.camera_id,
        camera_name=inc.camera_name,
        location=inc.location,
        zone=inc.zone,
        severity=inc.severity,
        started_at_ms=_ms(inc.started_at),
        observed_at_ms=_ms(inc.observed_at),
        ended_at_ms=_ms(inc.ended_at) if inc.ended_at else None,
        confidence=inc.confidence,
        snapshot=inc.snapshot.model_dump() if inc.snapshot else None,
        worker_id=inc.worker_id,
    )


def camera_health(status: CameraStatus) -> CameraHealth:
    return CameraHealth(
        camera_id=status.camera_id,
        state=status.state.value,
        reason=redact_text(status.reason),
        input_fps=status.input_fps,
        analysed_fps=status.analysed_fps,
        last_frame_at_ms=_ms(status.last_frame_at) if status.last_frame_at else None,
        reconnects=status.reconnects,
        worker_id=status.worker_id,
        at_ms=_ms(status.at),
    )


@dataclass(frozen=True, slots=True)
class FeedMessage:
    event: str  # "incident" | "camera" | "reset"
    data: str  # JSON
    rev: int | None = None  # incidents only: the store revision (the SSE id)


@dataclass(eq=False)
class _Listener:
    queue: asyncio.Queue[FeedMessage] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False


class FeedHub:
    """Fan-out of feed messages to the SSE connections of this process."""

    def __init__(self, store: WorkflowStore) -> None:
        self.store = store
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: set[_Listener] = set()
        self.published = 0
        self.overflows = 0

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def connections(self) -> int:
        return len(self._listeners)

    def publish_incidents(self, records: Sequence[IncidentRecord]) -> None:
        """Thread-safe; called after the store committed the change."""
        msgs = [FeedMessage("incident", json.dumps(r.to_json(), separators=(",", ":")), r.rev) for r in records]
        self._hand_over(msgs)

    def publish_cameras(self, cameras: Sequence[CameraHealth]) -> None:
        msgs = [FeedMessage("camera", json.dumps(c.to_json(), separators=(",", ":"))) for c in cameras]
        self._hand_over(msgs)

    def _hand_over(self, msgs: list[FeedMessage]) -> None:
        if not msgs or self._loop is None or self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop shutting down
            self._loop.call_soon_threadsafe(self._fan_out, msgs)

    def _fan_out(self, msgs: list[FeedMessage]) -> None:
        self.published += len(msgs)
        for listener in self._listeners:
            if listener.overflowed:
                continue
            for m in msgs:
                try:
                    listener.queue.put_nowait(m)
                except asyncio.QueueFull:
                    listener.overflowed = True
                    self.overflows += 1
                    break

    def _add(self) -> _Listener:
        listener = _Listener()
        self._listeners.add(listener)
        return listener

    def _remove(self, listener: _Listener) -> None:
        self._listeners.discard(listener)

    async def stream(
        self,
        last_event_id: str | None,
        *,
        kinds: frozenset[str],
        heartbeat_s: float,
        replay_limit: int,
        is_disconnected: Callable[[], Any],
    ) -> AsyncIterator[str]:
        """The SSE body of one connection: hello, replay since ``last_event_id``, then live messages and pings."""
        listener = self._add()  # before the replay query, so nothing falls between the two
        try:
            yield "retry: 1500\n\n"
            sent_rev = _parse_last_id(last_event_id, self.store.store_uid)
            current = await run_in_threadpool(self.store.current_rev)
            hello = {"store": self.store.store_uid, "rev": current, "resumed": sent_rev is not None}
            if "incidents" in kinds and sent_rev is not None:
                changed = await run_in_threadpool(self.store.changes_since, sent_rev, replay_limit + 1)
                if len(changed) > replay_limit:
                    hello["resumed"] = False  # too far behind: the browser reloads the list instead
                    sent_rev = None
                else:
                    yield _sse("hello", json.dumps(hello))
                    for rec in changed:
                        yield _sse("incident", json.dumps(rec.to_json(), separators=(",", ":")), self._id(rec.rev))
                        sent_rev = rec.rev
                    hello = {}
            if hello:
                # Fresh (or reset) connection: the id marks where the browser's list snapshot must resume from.
                yield _sse("hello", json.dumps(hello), self._id(current))
                sent_rev = current
            while True:
                if listener.overflowed:
                    yield _sse("reset", json.dumps({"reason": "browser fell behind; reloading"}))
                    return
                try:
                    msg = await asyncio.wait_for(listener.queue.get(), timeout=heartbeat_s)
                except TimeoutError:
                    if await is_disconnected():
                        return
                    yield _sse("ping", str(int(time.time() * 1000)))
                    continue
                if msg.event == "incident":
                    if "incidents" not in kinds or (
                        msg.rev is not None and sent_rev is not None and msg.rev <= sent_rev
                    ):
                        continue
                    sent_rev = msg.rev
                    yield _sse("incident", msg.data, self._id(msg.rev))
                elif msg.event == "camera" and "cameras" in kinds:
                    yield _sse("camera", msg.data)
        finally:
            self._remove(listener)

    def _id(self, rev: int | None) -> str:
        return f"{self.store.store_uid}.{rev}"


def _parse_last_id(value: str | None, store_uid: str) -> int | None:
    """The revision a browser last saw, or None when absent, malformed or from another database."""
    if not value:
        return None
    uid, _, rev = value.strip().partition(".")
    if uid != store_uid or not rev.isdigit() or len(rev) > 18:
        return None
    return int(rev)


def _sse(event: str, data: str, event_id: str | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return "\n".join(lines) + "\n\n"


class BusIngestor:
    """Background thread: bus records -> store -> hub. Never dies on bad input or a broken broker; backs off."""

    def __init__(
        self,
        make_subscriber: Callable[[], Subscriber],
        dlq: Publisher | None,
        store: WorkflowStore,
        hub: FeedHub,
        *,
        poll_timeout_s: float = 0.25,
        on_incidents: Callable[[list[Incident]], None] | None = None,
    ) -> None:
        self._make_subscriber = make_subscriber
        self._on_incidents = on_incidents  # evidence keeps each event as published (before the card changes)
        self._dlq = dlq
        self.store = store
        self.hub = hub
        self.poll_timeout_s = poll_timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-bus", daemon=True)
        self.ingested = 0
        self.errors = 0
        self.last_error: str | None = None
        self.ready = threading.Event()
        self._consumer: EventConsumer | None = None

    def assigned(self) -> bool:
        """True once the consumer owns partitions (always true for the local bus): records produced from
        now on will be read. Tests and health checks wait for this after a new consumer group starts."""
        consumer = self._consumer
        if consumer is None:
            return False
        inner = getattr(consumer.subscriber, "_consumer", None)  # KafkaSubscriber's KafkaConsumer
        return inner is None or bool(inner.assignment())

    def start(self) -> BusIngestor:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        backoff = 0.5
        consumer: EventConsumer | None = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = EventConsumer(self._make_subscriber(), self._dlq, name="kuzet-console")
                    self._consumer = consumer
                    self.ready.set()
                decoded = consumer.poll(self.poll_timeout_s, max_records=1000)
                incidents = [d.event for d in decoded if isinstance(d.event, Incident)]
                statuses = [d.event for d in decoded if isinstance(d.event, CameraStatus)]
                if incidents:
                    if self._on_incidents is not None:
                        self._on_incidents(incidents)
                    changed = self.store.ingest([detection_update(i) for i in incidents])
                    self.hub.publish_incidents(changed)
                if statuses:
                    cams = self.store.upsert_cameras([camera_health(s) for s in statuses])
                    self.hub.publish_cameras(cams)
                if decoded or consumer.stats.dead_lettered:
                    consumer.commit()
                self.ingested += len(decoded)
                backoff = 0.5
            except Exception as exc:
                self.errors += 1
                self.last_error = redact_text(f"{type(exc).__name__}: {exc}")
                log.warning("console bus consumer: %s", self.last_error)
                if consumer is not None:
                    with contextlib.suppress(Exception):  # already failing; the reconnect below is what matters
                        consumer.close()
                    consumer = None
                    self._consumer = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        if consumer is not None:
            consumer.close()


def subscriber_factory(settings: Any) -> tuple[Callable[[], Subscriber], Publisher | None]:
    """Subscriber (and DLQ publisher) for the console's settings: Kafka or the embedded local bus."""
    wanted = [topics.INCIDENTS, topics.CAMERA_STATUS]
    if settings.bus.kind == "kafka":
        from event_bus.kafka_publisher import KafkaPublisher
        from event_bus.kafka_subscriber import KafkaSubscriber

        kafka = settings.bus.kafka

        def make_kafka() -> Subscriber:
            return KafkaSubscriber(
                kafka.bootstrap_servers,
                wanted,
                settings.consumer_group,
                from_beginning=settings.from_beginning,
                client_id="kuzet-console",
                extra={"fetch_max_wait_ms": 100},
            )

        return make_kafka, KafkaPublisher(kafka)
    from event_bus.local_bus import LocalBusPublisher

    path = settings.bus.local_path

    def make_local() -> Subscriber:
        return ReopeningLocalSubscriber(path, wanted, settings.consumer_group, from_beginning=settings.from_beginning)

    return make_local, LocalBusPublisher(path)


class ReopeningLocalSubscriber:
    """A local-bus subscriber that follows the file when it is replaced (the demo recreates it on each run).

    SQLite keeps reading a deleted file through its open handle, so without this a console started before
    ``kuzet demo`` cleared ``bus.sqlite3`` would wait forever on the old, unlinked log.
    """

    def __init__(self, path: Any, topics_: Sequence[str], group: str | None, *, from_beginning: bool) -> None:
        from event_bus.local_bus import LocalBusSubscriber

        self._cls = LocalBusSubscriber
        self._args = (path, list(topics_), group)
        self._from_beginning = from_beginning
        self._path = Path(path)
        self._inner = LocalBusSubscriber(path, list(topics_), group, from_beginning=from_beginning)
        self._ino = self._inode()
        self._checked = time.monotonic()

    def _inode(self) -> int | None:
        try:
            return self._path.stat().st_ino
        except OSError:
            return None

    def poll(self, timeout_s: float, max_records: int = 500) -> list[InRecord]:
        now = time.monotonic()
        if now - self._checked > 1.0:
            self._checked = now
            ino = self._inode()
            if ino is not None and ino != self._ino:
                self._inner.close()
                self._inner = self._cls(*self._args, from_beginning=self._from_beginning)
                self._ino = self._inode()
        return self._inner.poll(timeout_s, max_records)

    def commit(self) -> None:
        self._inner.commit()

    def close(self) -> None:
        self._inner.close()
