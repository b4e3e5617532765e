"""Exactly-once dead letters: one transaction holds a batch's dead letters and its offsets, or nothing lands.

Without a broker: a fake producer records the transactional calls. The real broker runs in
``tests/integration/test_poison_kafka.py`` (three workers and a restart, each record dead-lettered once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from kafka.errors import KafkaError, MessageSizeTooLargeError
from kafka.structs import TopicPartition

from event_bus.interfaces import OutRecord
from event_bus.kafka_admin import RawRecord
from event_bus.kafka_dead_letters import ExactlyOnceDeadLetters


@dataclass
class Fetched:
    """A record as kafka-python's consumer returns it (the fields the dead-letterer reads)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


class FakeProducer:
    def __init__(self, fail_commit: bool = False, too_large: bytes = b"") -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_commit = fail_commit
        self.too_large = too_large

    def begin_transaction(self) -> None:
        self.calls.append(("begin",))

    def send(self, topic: str, *, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        if self.too_large and value == self.too_large:
            raise MessageSizeTooLargeError("too large")
        self.calls.append(("send", topic, key, value))

    def send_offsets_to_transaction(self, offsets: dict[TopicPartition, Any], meta: str) -> None:
        self.calls.append(("offsets", {tp.partition: om.offset for tp, om in offsets.items()}, meta))

    def commit_transaction(self) -> None:
        if self.fail_commit:
            raise KafkaError("fenced: a newer generation owns the partitions")
        self.calls.append(("commit",))

    def abort_transaction(self) -> None:
        self.calls.append(("abort",))


class FakeConsumer:
    def group_metadata(self) -> str:
        return "generation-7"


def _check(r: RawRecord) -> OutRecord | None:
    if r.value is not None and r.value.startswith(b"bad"):
        return OutRecord("kuzet.dlq.v1", r.key.decode() if r.key else "", r.value, (("why", b"bad"),))
    return None


BATCH = {
    TopicPartition("t", 0): [Fetched(0, 4, b"a", b"good"), Fetched(0, 5, b"b", b"bad-1")],
    TopicPartition("t", 3): [Fetched(3, 9, b"c", b"bad-2")],
}


def _letters() -> ExactlyOnceDeadLetters:
    return ExactlyOnceDeadLetters("127.0.0.1:1", "t", "g.dead-letters", "w1", _check)


def test_a_batch_is_one_transaction_of_its_dead_letters_and_its_offsets() -> None:
    d, producer = _letters(), FakeProducer()
    d._step(FakeConsumer(), producer, BATCH)  # type: ignore[arg-type]
    assert producer.calls == [
        ("begin",),
        ("send", "kuzet.dlq.v1", b"b", b"bad-1"),
        ("send", "kuzet.dlq.v1", b"c", b"bad-2"),
        ("offsets", {0: 6, 3: 10}, "generation-7"),  # past every record checked, good ones included
        ("commit",),
    ]
    assert (d.checked, d.dead_lettered, d.aborted) == (3, 2, 0)
    assert d.transactional_id == "g.dead-letters.w1"


def test_a_failed_commit_aborts_so_neither_the_letters_nor_the_offsets_count() -> None:
    d, producer = _letters(), FakeProducer(fail_commit=True)
    with pytest.raises(KafkaError):
        d._step(FakeConsumer(), producer, BATCH)  # type: ignore[arg-type]
    assert producer.calls[-1] == ("abort",)
    assert (d.checked, d.dead_lettered, d.aborted) == (0, 0, 1)


def test_a_dead_letter_too_large_to_send_goes_without_its_value() -> None:
    d, producer = _letters(), FakeProducer(too_large=b"bad-1")
    d._step(FakeConsumer(), producer, BATCH)  # type: ignore[arg-type]
    assert ("send", "kuzet.dlq.v1", b"b", b"") in producer.calls and producer.calls[-1] == ("commit",)
