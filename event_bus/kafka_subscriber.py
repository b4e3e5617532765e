"""Kafka consumer behind the :class:`~event_bus.interfaces.Subscriber` interface.

At-least-once: auto-commit is off and the caller commits after it has
processed what :meth:`KafkaSubscriber.poll` returned, so a crash between the
two re-delivers (consumers dedupe on ``event_id``) instead of losing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from event_bus.interfaces import InRecord
from event_bus.kafka_security import env_settings


class KafkaSubscriber:
    """One consumer in ``group_id`` (None: no group, no commits; reads assigned from where ``from_beginning`` says).

    ``since_ms`` (group-less only): read every partition of ``topics``, each from its first record at or after
    that time (the end where there is none), so a reader that needs everything recent, not a share of it
    (every console replica's line counts), starts where its state is rebuilt from and not at the oldest record.
    The partitions are those the topics have when it opens; an unknown topic raises (the caller retries).
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        group_id: str | None,
        *,
        from_beginning: bool = False,
        client_id: str = "kuzet-consumer",
        extra: dict[str, Any] | None = None,
        since_ms: int | None = None,
    ) -> None:
        if since_ms is not None and group_id is not None:
            raise ValueError("since_ms is for a reader without a consumer group")
        settings: dict[str, Any] = {
            "bootstrap_servers": bootstrap.split(","),
            "group_id": group_id,
            "client_id": client_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest" if from_beginning else "latest",
            "session_timeout_ms": 10_000,
            "heartbeat_interval_ms": 3_000,
        }
        settings.update(env_settings())  # SASL/TLS of this process; ``extra`` may override it
        settings.update(extra or {})
        self.group_id = group_id
        if since_ms is None:
            self._consumer = KafkaConsumer(*topics, **settings)
            return
        self._consumer = KafkaConsumer(**settings)
        try:
            self._seek_to_time(topics, since_ms)
        except BaseException:
            self._consumer.close(autocommit=False)
            raise

    def _seek_to_time(self, topics: Sequence[str], since_ms: int) -> None:
        tps: list[TopicPartition] = []
        for topic in topics:
            parts = self._consumer.partitions_for_topic(topic)
            if not parts:
                raise RuntimeError(f"topic {topic} not found")
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        found = self._consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        ends = self._consumer.end_offsets(tps)
        for tp in tps:
            start = found.get(tp)
            self._consumer.seek(tp, start.offset if start is not None else ends[tp])

    def poll(self, timeout_s: float, max_records: int = 500) -> list[InRecord]:
        """Records in partition order (across partitions in no particular order)."""
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        out: list[InRecord] = []
        for records in batches.values():
            for r in records:
                out.append(
                    InRecord(
                        topic=r.topic,
                        partition=r.partition,
                        offset=r.offset,
                        key=r.key.decode("utf-8", errors="replace") if r.key is not None else None,
                        # A tombstone (null value, compacted topics) reads as b"": no event is empty JSON.
                        value=bytes(r.value) if r.value is not None else b"",
                        timestamp_ms=int(r.timestamp),
                        headers=tuple((k, bytes(v) if v is not None else b"") for k, v in (r.headers or [])),
                    )
                )
        return out

    def assignment(self) -> set[tuple[str, int]]:
        """(topic, partition) pairs this member owns now; empty until the group has assigned it some.

        Records produced before assignment are read only with ``from_beginning`` (or a committed
        offset), so tests and health checks wait for a non-empty assignment after starting a group.
        """
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    @property
    def kafka_consumer(self) -> KafkaConsumer:
        """The underlying consumer, for lag metrics read from the polling thread only (it is not thread-safe)."""
        return self._consumer

    def commit(self) -> None:
        """Commit the positions of everything polled so far (synchronously); no-op without a group."""
        if self.group_id is not None:
            self._consumer.commit()

    def close(self) -> None:
        self._consumer.close(autocommit=False)
