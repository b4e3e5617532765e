"""The narrow interfaces between producers of events and the transports that carry them.

Kafka and the embedded local bus both implement :class:`Publisher` and
:class:`Subscriber`, so a worker and the console run unchanged on one box or
on a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record to publish: ``key`` is the camera id (per-camera order), ``value`` is JSON bytes."""

    topic: str
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class InRecord:
    """A record read back from a transport, with its position for commits and dedupe diagnostics."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = field(default=())


class DeliveryError(RuntimeError):
    """The transport did not acknowledge a record; the caller keeps it and retries later.

    ``retriable`` is False when retrying cannot help (the broker refuses this record itself: too large,
    invalid topic). The relay then parks the record instead of letting it block every later one.
    """

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable


class Publisher(Protocol):
    def publish(self, records: Sequence[OutRecord]) -> list[DeliveryError | None]:
        """Send all records in order and wait for every acknowledgement.

        Returns one entry per record: None when acknowledged, else the error.
        Never raises for delivery failures: the caller (the spool relay)
        decides what to retry.
        """
        ...

    def close(self) -> None: ...


class Subscriber(Protocol):
    def poll(self, timeout_s: float, max_records: int = 500) -> list[InRecord]: ...

    def commit(self) -> None:
        """Mark everything returned by poll so far as processed (at-least-once)."""
        ...

    def close(self) -> None: ...
