"""The console's bus consumer: incidents and camera status from the bus into the store, then to the feed.

The console reads ``kuzet.incidents.v1`` and ``kuzet.camera-status.v1`` in a
consumer group of its own (Kafka) or from the embedded local bus (one box),
through :class:`event_bus.consume.EventConsumer`, so records are schema-
validated, deduped on ``event_id`` and malformed ones go to the DLQ. Offsets
are committed only after the store has the events (at-least-once; the store
is idempotent on ``seq``). Events become storage records here, because
storage does not import ``event_bus``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from core.redact import redact_text
from dispatch.bus_reader import BusReader
from dispatch.feed import FeedHub
from dispatch.settings import ConsoleSettings
from event_bus import topics
from event_bus.consume import EventConsumer
from event_bus.events import CameraStatus, Incident
from event_bus.interfaces import Publisher, Subscriber
from event_bus.transport import open_publisher, subscriber_factory
from storage.camera_health import CameraHealth
from storage.incident_records import DetectionUpdate
from storage.workflow import WorkflowStore


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
        analytics=inc.analytics.model_dump(mode="json", exclude_none=True) if inc.analytics else None,
        review=inc.review,
        object_count=inc.object_count,
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


class BusIngestor(BusReader):
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
        super().__init__(
            make_subscriber, dlq, what="console bus consumer", poll_timeout_s=poll_timeout_s, owns_dlq=False
        )
        self._on_incidents = on_incidents  # evidence keeps each event as published (before the card changes)
        self.store = store
        self.hub = hub
        self.last_ok_at: float | None = None  # monotonic time of the last poll that went through (readiness)

    def assigned(self) -> bool:
        """True once the consumer owns partitions (always true for the local bus): records produced from
        now on will be read. Tests and health checks wait for this after a new consumer group starts."""
        consumer = self.consumer
        if consumer is None:
            return False
        inner = getattr(consumer.subscriber, "_consumer", None)  # KafkaSubscriber's KafkaConsumer
        return inner is None or bool(inner.assignment())

    def _open(self, subscriber: Subscriber, dlq: Publisher | None) -> EventConsumer:
        return EventConsumer(subscriber, dlq, name="kuzet-console")

    def _step(self, consumer: EventConsumer) -> None:
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
        self.last_ok_at = time.monotonic()


def console_subscriber(settings: ConsoleSettings) -> tuple[Callable[[], Subscriber], Publisher]:
    """Subscriber factory (incidents and camera status, the console's own group) and DLQ publisher."""
    make = subscriber_factory(
        settings.bus,
        [topics.INCIDENTS, topics.CAMERA_STATUS],
        settings.consumer_group,
        from_beginning=settings.from_beginning,
        client_id="kuzet-console",
        kafka_extra={"fetch_max_wait_ms": 100},
    )
    return make, open_publisher(settings.bus)
