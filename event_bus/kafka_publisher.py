"""Kafka transport: an idempotent producer that reports the fate of every record (topics: :mod:`event_bus.kafka_admin`).

Settings and why:

* ``acks='all'`` + ``enable_idempotence=True``: a record is acknowledged only
  once all in-sync replicas have it, and broker-side sequence numbers drop the
  duplicates the producer's own retries would otherwise create.
* ``max_in_flight_requests_per_connection <= 5``: the most the idempotent
  producer allows while keeping per-partition order.
* key = camera id: all events of a camera land on one partition, in order.
* lz4 (configurable) and a small linger: JSON compresses well; a few ms of
  batching costs nothing against the 1 s latency budget.
* ``delivery_timeout_ms`` from config bounds how long a record may sit in the
  producer; after it the record is reported failed and stays in our spool.

kafka-python's producer contacts the broker when it is built, so the
producer is built lazily on the first :meth:`KafkaPublisher.publish`: a worker
starts (and spools) while the broker is down, and a failed construction is a
per-record :class:`DeliveryError`, retried by the relay.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer
from kafka import errors as kafka_errors

from core.config import KafkaConfig
from core.redact import redact_text
from event_bus.interfaces import DeliveryError, OutRecord
from event_bus.kafka_security import client_settings

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 5


_PERMANENT_NAMES = (
    "MessageSizeTooLargeError",
    "RecordListTooLargeError",
    "InvalidTopicError",
    "InvalidRecordError",
    "UnsupportedForMessageFormatError",
)
PERMANENT_ERRORS: tuple[type[BaseException], ...] = tuple(
    cls for name in _PERMANENT_NAMES if isinstance(cls := getattr(kafka_errors, name, None), type)
)
"""Errors about the record itself: sending it again can never succeed, so the relay parks it."""


def _err(prefix: str, exc: BaseException) -> DeliveryError:
    return DeliveryError(
        redact_text(f"{prefix}: {type(exc).__name__}: {exc}"[:500]), retriable=not isinstance(exc, PERMANENT_ERRORS)
    )


class KafkaPublisher:
    """:class:`~event_bus.interfaces.Publisher` on kafka-python's ``KafkaProducer``."""

    def __init__(self, config: KafkaConfig, *, extra: dict[str, Any] | None = None) -> None:
        self.config = config
        self._extra = dict(extra or {})
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _settings(self) -> dict[str, Any]:
        delivery_ms = int(self.config.delivery_timeout_s * 1000)
        linger = self.config.linger_ms
        # kafka-python requires delivery_timeout_ms >= linger_ms + request_timeout_ms.
        request_ms = max(1000, min(30_000, delivery_ms - linger))
        delivery_ms = max(delivery_ms, request_ms + linger)
        settings: dict[str, Any] = {
            "bootstrap_servers": self.config.bootstrap_servers.split(","),
            "client_id": self.config.client_id,
            "acks": "all",
            "enable_idempotence": True,
            "compression_type": None if self.config.compression == "none" else self.config.compression,
            "linger_ms": linger,
            "retries": 2_147_483_647,
            "max_in_flight_requests_per_connection": MAX_IN_FLIGHT,
            "delivery_timeout_ms": delivery_ms,
            "request_timeout_ms": request_ms,
            "max_block_ms": delivery_ms,
            "bootstrap_timeout_ms": min(delivery_ms, 10_000),
            "reconnect_backoff_max_ms": 2000,
        }
        settings.update(client_settings(self.config))
        settings.update(self._extra)
        return settings

    def _ensure_producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(**self._settings())
        return self._producer

    def producer_config(self) -> dict[str, Any]:
        """The live producer's effective configuration (after kafka-python's own resolution).

        Builds the producer if needed, so it needs a reachable broker. Tests assert
        ``enable_idempotence`` and ``acks == -1`` ('all') on it.
        """
        with self._lock:
            return dict(self._ensure_producer().config)

    def publish(self, records: Sequence[OutRecord]) -> list[DeliveryError | None]:
        """Send all records in order, flush, and report each one; never raises for delivery failures."""
        if not records:
            return []
        with self._lock:
            try:
                producer = self._ensure_producer()
            except Exception as exc:
                err = _err("kafka producer unavailable", exc)
                return [err] * len(records)
            futures: list[Any] = []
            results: list[DeliveryError | None] = [None] * len(records)
            for i, rec in enumerate(records):
                try:
                    futures.append(
                        producer.send(
                            rec.topic,
                            value=rec.value,
                            key=rec.key.encode("utf-8"),
                            headers=list(rec.headers),
                        )
                    )
                except Exception as exc:
                    err = _err(f"send of record {i} failed", exc)
                    if not err.retriable:  # this record alone is bad (too large): it will be parked, go on
                        results[i] = err
                        futures.append(None)
                        continue
                    # Nothing after a failed send may go out ahead of it (per-key order): fail the rest.
                    for j in range(i, len(records)):
                        results[j] = err
                    break
            try:
                producer.flush(timeout=self.config.delivery_timeout_s + 5.0)
            except Exception as exc:  # KafkaTimeoutError: checked per future below
                log.warning("kafka flush did not complete", extra={"error": redact_text(str(exc))})
            for i, fut in enumerate(futures):
                if fut is None:
                    continue
                if not fut.is_done:
                    results[i] = DeliveryError("not acknowledged before the delivery timeout")
                elif fut.failed():
                    results[i] = _err("not acknowledged", fut.exception)
            if any(r is not None and r.retriable for r in results):
                self._discard()
        return results

    def _discard(self) -> None:
        """Throw the producer away after a failed delivery; the next publish builds a fresh one.

        Why: seen with kafka-python 3.0.12 against Kafka 4.1, an idempotent
        producer whose in-flight batches expired while the broker was down
        resets its producer id and then never sends again (futures stay
        pending forever, even after the broker is back). A fresh producer gets
        a new producer id and fresh connections. Its pending records are
        aborted; the spool still holds them, so nothing is lost (at worst a
        record the broker did take is sent again and deduped by consumers).
        """
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=0)
        except Exception:
            # close() gives up before force-closing when its flush times out; finish the job.
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                try:
                    sender.force_close()
                except Exception as exc:
                    log.warning("kafka producer force close failed", extra={"error": redact_text(str(exc))})

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                try:
                    self._producer.close(timeout=5)
                except Exception as exc:
                    log.warning("kafka producer close failed", extra={"error": redact_text(str(exc))})
                self._producer = None
