"""Consumer side of the event contract: decode, validate, dedupe, and dead-letter what cannot be used.

Every consumer (tests, the console, the plate indexer) needs the same three
things, so they live here once:

* decode JSON and validate it against the *published* JSON Schema of the
  topic's event type, then build the pydantic model;
* drop redeliveries: the producer side is at-least-once (spool + relay
  retries), so an ``event_id`` may arrive twice; a bounded LRU of seen ids
  removes them (bounded so a long-running consumer does not grow forever;
  size it above the number of events a retry can span);
* send records that fail to ``kuzet.dlq.v1`` with their original key, the
  error and the original value, so bad input is visible and never silently
  lost nor able to crash the consumer. If the DLQ write itself fails, poll
  raises and the caller must not commit.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from core.redact import redact_text
from event_bus import schemas, topics
from event_bus.events import EVENT_TYPES, Event
from event_bus.interfaces import InRecord, OutRecord, Publisher, Subscriber
from event_bus.versions import readable_versions, upgrade

TOPIC_EVENT_TYPES: dict[str, str] = {
    topics.INCIDENTS: "incident",
    topics.CAMERA_STATUS: "camera-status",
    topics.PLATES: "plate-read",
}
"""Which event type (schema name) each topic carries."""


class DeadLetterError(RuntimeError):
    """A malformed record could not be written to the DLQ; do not commit past it."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """A valid, first-seen event with the record it came from."""

    name: str
    event: Event
    record: InRecord


@dataclass
class ConsumerStats:
    received: int = 0
    delivered: int = 0
    duplicates: int = 0
    dead_lettered: int = 0


class SeenIds:
    """Bounded LRU set of event ids."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, event_id: str) -> bool:
        """True when the id is new (and remembers it), False when it was seen."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._ids)


def decode(record: InRecord, topic_types: Mapping[str, str] = TOPIC_EVENT_TYPES) -> tuple[str, Event]:
    """Parse, schema-validate and build the event of a record; raises ValueError with a readable reason.

    A document of an older, still readable version (``event_bus.versions``) is
    validated against its own published schema and lifted to the current model.
    """
    name = topic_types.get(record.topic)
    if name is None:
        raise ValueError(f"no event type is registered for topic {record.topic}")
    try:
        doc: Any = json.loads(record.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    current = schemas.version_of(EVENT_TYPES[name])
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version in readable_versions(name):
        schemas.validate(name, doc, version)  # the contract it was produced under
        doc = upgrade(name, version, doc, current)
    else:
        schemas.validate(name, doc)  # SchemaValidationError is a ValueError
    try:
        event = EVENT_TYPES[name].model_validate(doc)
    except ValidationError as exc:
        raise ValueError(f"{name}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    return name, event


def dead_letter(record: InRecord, error: str) -> OutRecord:
    """The DLQ record for a bad input: original key, the error, and the original value (text or base64)."""
    try:
        original: dict[str, str] = {"value": record.value.decode("utf-8"), "encoding": "utf-8"}
    except UnicodeDecodeError:
        original = {"value": base64.b64encode(record.value).decode("ascii"), "encoding": "base64"}
    doc = {
        "error": redact_text(error)[:2000],
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key,
        "timestamp_ms": record.timestamp_ms,
        "original": original,
    }
    return OutRecord(
        topic=topics.DLQ,
        key=record.key or "",
        value=json.dumps(doc).encode(),
        headers=(("kuzet-error", redact_text(error)[:200].encode()), ("kuzet-source-topic", record.topic.encode())),
    )


class EventConsumer:
    """Wraps a :class:`Subscriber`: ``poll`` returns only valid, first-seen events; ``commit`` passes through."""

    def __init__(
        self,
        subscriber: Subscriber,
        dlq: Publisher | None,
        *,
        seen: SeenIds | None = None,
        topic_types: Mapping[str, str] = TOPIC_EVENT_TYPES,
        on_duplicate: Callable[[Decoded], None] | None = None,
    ) -> None:
        self.subscriber = subscriber
        self.dlq = dlq
        self.seen = seen or SeenIds()
        self.topic_types = dict(topic_types)
        self.on_duplicate = on_duplicate
        self.stats = ConsumerStats()
        self._broken: str | None = None

    def poll(self, timeout_s: float, max_records: int = 500) -> list[Decoded]:
        records = self.subscriber.poll(timeout_s, max_records)
        out: list[Decoded] = []
        bad: list[OutRecord] = []
        for rec in records:
            self.stats.received += 1
            try:
                name, event = decode(rec, self.topic_types)
            except ValueError as exc:
                bad.append(dead_letter(rec, str(exc)))
                continue
            decoded = Decoded(name, event, rec)
            event_id = str(getattr(event, "event_id", ""))
            if event_id and not self.seen.add(event_id):
                self.stats.duplicates += 1
                if self.on_duplicate is not None:
                    self.on_duplicate(decoded)
                continue
            out.append(decoded)
        if bad:
            if self.dlq is None:
                self._broken = "malformed records and no DLQ"
                raise DeadLetterError(f"{len(bad)} malformed record(s) and no DLQ publisher configured")
            results = self.dlq.publish(bad)
            failed = [r for r in results if r is not None]
            if failed:
                self._broken = f"dead-lettering failed: {failed[0]}"
                raise DeadLetterError(f"could not dead-letter {len(failed)} record(s): {failed[0]}")
            self.stats.dead_lettered += len(bad)
        self.stats.delivered += len(out)
        return out

    def commit(self) -> None:
        """Commit what poll returned; refused after a failed dead-letter write (those records must be re-read)."""
        if self._broken is not None:
            raise DeadLetterError(f"not committing: {self._broken}; restart the consumer to re-read")
        self.subscriber.commit()

    def close(self) -> None:
        self.subscriber.close()
