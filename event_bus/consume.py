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
  error and the original value (as bytes, cut to a size the broker takes), so
  bad input is visible and never silently lost nor able to crash or stall the
  consumer. If the DLQ write itself fails, poll raises and the caller must not
  commit.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from core.redact import redact_text
from event_bus import schemas, topics
from event_bus.events import EVENT_TYPES, Event
from event_bus.interfaces import DeliveryError, InRecord, OutRecord, Publisher, Subscriber
from event_bus.versions import readable_versions, upgrade

TOPIC_EVENT_TYPES: dict[str, str] = {
    topics.INCIDENTS: "incident",
    topics.CAMERA_STATUS: "camera-status",
    topics.PLATES: "plate-read",
    topics.LINE_COUNTS: "line-count",
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

    Any failure while decoding becomes a ValueError, whatever raised it: JSON nested deeply enough to
    exhaust the recursion limit raises ``RecursionError`` inside ``json.loads`` (or the validators), and a
    consumer that let that through would re-read the same record forever.
    """
    try:
        return _decode(record, topic_types)
    except ValueError:
        raise
    except RecursionError:
        raise ValueError("undecodable record: nested too deeply") from None
    except Exception as exc:  # a validator bug must not stop a consumer either: dead-letter the record
        raise ValueError(f"undecodable record: {type(exc).__name__}") from None


def _decode(record: InRecord, topic_types: Mapping[str, str]) -> tuple[str, Event]:
    name = topic_types.get(record.topic)
    if name is None:
        raise ValueError(f"no event type is registered for topic {record.topic}")
    if record.key is None:
        raise ValueError("record has no key (every event is keyed by its camera id)")
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


DLQ_MAX_VALUE_BYTES = 256 * 1024
"""Largest original value a DLQ record carries; longer ones are cut (their sha256 and length travel in headers).

Well under the broker's default 1 MiB record limit, so a dead letter always fits, whatever it copies.
"""


H_ERROR = "kuzet-error"
H_SOURCE_TOPIC = "kuzet-source-topic"
H_SOURCE_PARTITION = "kuzet-source-partition"
H_SOURCE_OFFSET = "kuzet-source-offset"
H_SOURCE_TIMESTAMP = "kuzet-source-timestamp-ms"
H_SOURCE_KEY_NULL = "kuzet-source-key-null"
H_LENGTH = "kuzet-original-length"
H_SHA256 = "kuzet-original-sha256"
H_TRUNCATED = "kuzet-truncated"
H_REDACTED = "kuzet-redacted"
H_CONSUMER = "kuzet-consumer"
"""Which consumer gave up on the record: two consumer groups that cannot use one record report it once each."""


def dead_letter(
    record: InRecord, error: str, *, consumer: str = "", max_value_bytes: int = DLQ_MAX_VALUE_BYTES
) -> OutRecord:
    """The DLQ record for a bad input: its original bytes as the value, what went wrong in headers.

    The value is the original record's bytes (not re-encoded, so no escaping can triple its size), with
    credential-looking URL parts masked (the DLQ must not become a credential store), cut to
    ``max_value_bytes``. Headers name the error, the source position, and the sha256 and length of the
    original so a truncated copy can still be matched to its source. Read one back with :func:`read_dead_letter`.
    """
    original = record.value
    value, redacted = _redact_bytes(original)
    truncated = len(value) > max_value_bytes
    if truncated:
        value = value[:max_value_bytes]
    headers = (
        (H_ERROR, redact_text(error)[:1000].encode("utf-8", errors="replace")),
        (H_SOURCE_TOPIC, record.topic.encode()),
        (H_SOURCE_PARTITION, str(record.partition).encode()),
        (H_SOURCE_OFFSET, str(record.offset).encode()),
        (H_SOURCE_TIMESTAMP, str(record.timestamp_ms).encode()),
        (H_SOURCE_KEY_NULL, b"1" if record.key is None else b"0"),
        (H_LENGTH, str(len(original)).encode()),
        (H_SHA256, hashlib.sha256(original).hexdigest().encode()),
        (H_TRUNCATED, b"1" if truncated else b"0"),
        (H_REDACTED, b"1" if redacted else b"0"),
        (H_CONSUMER, consumer.encode()),
    )
    return OutRecord(topic=topics.DLQ, key=record.key or "", value=value, headers=headers)


def _redact_bytes(value: bytes) -> tuple[bytes, bool]:
    """Mask URL credentials in any bytes: invalid UTF-8 survives byte for byte (surrogateescape)."""
    text = value.decode("utf-8", errors="surrogateescape")
    masked = redact_text(text)
    if masked == text:
        return value, False
    return masked.encode("utf-8", errors="surrogateescape"), True


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A DLQ record read back: where the bad record came from, why, and what of it was kept."""

    error: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    original_length: int
    original_sha256: str
    truncated: bool
    consumer: str


def read_dead_letter(record: InRecord) -> DeadLetter:
    """Parse a DLQ record written by :func:`dead_letter`; raises ValueError when its headers are missing."""
    h = {k: v.decode("utf-8", errors="replace") for k, v in record.headers}
    try:
        return DeadLetter(
            error=h[H_ERROR],
            topic=h[H_SOURCE_TOPIC],
            partition=int(h[H_SOURCE_PARTITION]),
            offset=int(h[H_SOURCE_OFFSET]),
            key=None if h.get(H_SOURCE_KEY_NULL) == "1" else record.key,
            value=record.value,
            original_length=int(h[H_LENGTH]),
            original_sha256=h[H_SHA256],
            truncated=h.get(H_TRUNCATED) == "1",
            consumer=h.get(H_CONSUMER, ""),
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not a Kuzet dead letter: {exc}") from None


def publish_dead_letters(dlq: Publisher, bad: Sequence[OutRecord]) -> list[DeliveryError]:
    """Publish DLQ records; one the broker refuses for good is sent again without its value (headers only).

    Returns the errors left (empty when every record landed): the caller must then not commit.
    """
    results = dlq.publish(bad)
    retry = [i for i, r in enumerate(results) if r is not None and not r.retriable]
    if retry:
        again = dlq.publish([replace(bad[i], value=b"") for i in retry])
        for i, r in zip(retry, again, strict=True):
            results[i] = r
    return [r for r in results if r is not None]


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
        name: str = "",
    ) -> None:
        self.subscriber = subscriber
        self.dlq = dlq
        self.seen = seen or SeenIds()
        self.topic_types = dict(topic_types)
        self.on_duplicate = on_duplicate
        self.name = name
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
                bad.append(dead_letter(rec, str(exc), consumer=self.name))
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
            failed = publish_dead_letters(self.dlq, bad)
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
