"""Dead-lettering a topic that many processes read, exactly once per bad record (Kafka transactions).

Why: every worker reads the *whole* compacted camera registry, and again
after each restart or reconnect (it is never committed: the registry is state,
not a queue). If each reader dead-lettered each invalid record it read, the
DLQ would hold N copies for N workers, plus one per restart. So readers only
count and log invalid records, and one dead-letterer per record writes the DLQ:

* every worker runs a :class:`ExactlyOnceDeadLetters`, a member of one
  consumer group on the topic (``<worker group>.dead-letters``). Kafka gives
  each partition to exactly one member at a time, and the group's committed
  offsets say how far each partition has been checked, so a restarted or
  rejoining worker continues where the last owner stopped instead of
  re-reading from the beginning;
* the dead letters of a batch and the batch's offsets are written in one Kafka
  transaction (KIP-98, with the consumer group's metadata, KIP-447): either
  both land or neither does. A worker killed between the two, or fenced by a
  rebalance (a "zombie" that lost its partitions while working), leaves only
  an aborted transaction, which ``read_committed`` readers never see; the
  partition's next owner re-checks from the last committed offset.

So a reader of ``kuzet.dlq.v1`` that must see every dead letter exactly once
reads with ``isolation_level="read_committed"``.

The transactional id is ``<group>.<worker id>``: a restarted worker with the
same id fences its predecessor's open transaction when it starts.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import MessageSizeTooLargeError
from kafka.structs import OffsetAndMetadata, TopicPartition

from core.backoff import backoff_delay
from core.redact import redact_text
from event_bus.interfaces import OutRecord
from event_bus.kafka_admin import RawRecord
from event_bus.kafka_security import env_settings

log = logging.getLogger(__name__)

Check = Callable[[RawRecord], OutRecord | None]
"""A record's dead letter when the record is bad, None when it is fine."""

MAX_RECORDS_PER_TRANSACTION = 2000
"""Records checked per transaction (one poll). A transaction costs several broker round trips (0.3-0.4 s a
commit on the loaded box), so small ones dominated: at 200 the registry's 13,000 records took 76 transactions
and 63 s, at 2,000 22 transactions and 19 s. The bytes of one poll stay bounded by the consumer's fetch size."""


class ExactlyOnceDeadLetters:
    """A consumer-group member that checks its share of ``topic`` and dead-letters bad records exactly once."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        member_id: str,
        check: Check,
        *,
        client_id: str = "kuzet-dead-letters",
        poll_timeout_ms: int = 500,
        security: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group_id = group_id
        self.transactional_id = f"{group_id}.{member_id}"
        self.check = check
        self.client_id = client_id
        self.poll_timeout_ms = poll_timeout_ms
        self._security = security
        self.checked = 0
        self.dead_lettered = 0
        self.aborted = 0
        self.partitions = 0  # of ``topic`` this member owns now
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()

    def start(self) -> ExactlyOnceDeadLetters:
        self._thread = threading.Thread(target=self._run, name="dead-letters", daemon=True)
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._member()
                failures = 0
            except Exception as exc:  # broker trouble, fencing: re-join and continue from the committed offsets
                failures += 1
                self.error = redact_text(f"{type(exc).__name__}: {exc}")[:300]
                delay = backoff_delay(failures - 1, 0.5, 15.0, self._rng)
                log.warning("dead-lettering %s: %s; again in %.1f s", self.topic, self.error, delay)
                self._stop.wait(delay)

    def _member(self) -> None:
        security = env_settings() if self._security is None else self._security
        consumer = KafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap.split(","),
            client_id=self.client_id,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=MAX_RECORDS_PER_TRANSACTION,
            **security,
        )
        producer: KafkaProducer | None = None
        try:
            producer = KafkaProducer(
                bootstrap_servers=self.bootstrap.split(","),
                client_id=f"{self.client_id}-producer",
                transactional_id=self.transactional_id,
                acks="all",
                enable_idempotence=True,
                compression_type="lz4",
                linger_ms=5,
                **security,
            )
            producer.init_transactions()
            self.error = None
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=self.poll_timeout_ms)
                self.partitions = len(consumer.assignment())
                if batch:
                    self._step(consumer, producer, batch)
        finally:
            self.partitions = 0
            if producer is not None:
                producer.close(timeout=5)
            consumer.close(autocommit=False)

    def _step(
        self, consumer: KafkaConsumer, producer: KafkaProducer, batch: dict[TopicPartition, Sequence[Any]]
    ) -> None:
        """One transaction: the batch's dead letters and its offsets, or (on any failure) neither."""
        letters: list[OutRecord] = []
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, records in batch.items():
            for r in records:
                raw = RawRecord(r.partition, r.offset, r.key, r.value, r.timestamp)
                letter = self.check(raw)
                if letter is not None:
                    letters.append(letter)
            offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
        producer.begin_transaction()
        try:
            for letter in letters:
                _send(producer, letter)
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            producer.commit_transaction()
        except Exception:
            self.aborted += 1
            try:
                producer.abort_transaction()
            except Exception as exc:  # a fenced producer cannot abort; the coordinator aborts for it
                log.debug("abort after a failed transaction: %s", exc)
            raise  # re-join: the next owner of these partitions starts from their committed offsets
        self.checked += sum(len(rs) for rs in batch.values())
        self.dead_lettered += len(letters)


def _send(producer: KafkaProducer, letter: OutRecord) -> None:
    """Send one dead letter; one too large for the producer goes again without its value (headers only)."""
    try:
        producer.send(letter.topic, key=letter.key.encode(), value=letter.value, headers=list(letter.headers))
    except MessageSizeTooLargeError:
        producer.send(letter.topic, key=letter.key.encode()[:1024], value=b"", headers=list(letter.headers))
