"""A bounded queue between two worker stages, with its overflow policy and per-camera drop counts.

Why not :class:`queue.Queue`: a stage wants (a) a policy chosen where the
queue is declared, and for some queues per item (a live camera's plate work
may be dropped, a file replay's must wait), (b) the drops counted per camera
for metrics, (c) a callback for each dropped item (so the sink learns that a
ticket will never come), and (d) ``join`` with a timeout to drain a worker.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class Overflow(StrEnum):
    """What ``put`` does when the queue is full."""

    HOLD = "hold the producer"  # block until there is room: nothing is lost, the producer slows down
    DROP_OLDEST = "drop oldest"  # evict the oldest item (counted for its camera): the producer never waits


class QueueClosedError(RuntimeError):
    """``put`` on a queue whose consumer has stopped."""


@dataclass
class QueueStats:
    """Counters of one queue, copied by :meth:`StageQueue.stats`."""

    name: str
    capacity: int
    policy: str
    depth: int = 0
    put: int = 0
    done: int = 0
    dropped: int = 0
    dropped_by_camera: Counter[str] = field(default_factory=Counter)
    held_s: float = 0.0  # producer time spent waiting for room (HOLD)


@dataclass
class _Item(Generic[T]):
    camera_id: str
    value: T


class StageQueue(Generic[T]):
    """Bounded FIFO of one stage's input; one consumer thread, any number of producers."""

    def __init__(
        self,
        name: str,
        capacity: int,
        policy: Overflow,
        on_drop: Callable[[T], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.name = name
        self.capacity = capacity
        self.policy = policy
        self._on_drop = on_drop
        self._items: deque[_Item[T]] = deque()
        self._cond = threading.Condition()
        self._unfinished = 0
        self._closed = False
        self._stats = QueueStats(name, capacity, policy.value)

    def put(self, camera_id: str, value: T, policy: Overflow | None = None, hold_at: int | None = None) -> None:
        """Queue ``value`` for ``camera_id``; ``policy`` overrides the queue's own for this item.

        ``hold_at`` (HOLD only) holds this producer already at that depth instead of at capacity: a
        producer that may run ahead of the stage (a file replayed as fast as it can be analysed) keeps
        only a short backlog, so the whole replay runs at the stage's pace and stops promptly.
        """
        policy = policy or self.policy
        limit = self.capacity if hold_at is None else max(1, min(hold_at, self.capacity))
        dropped: list[T] = []
        with self._cond:
            if policy is Overflow.HOLD and len(self._items) >= limit and not self._closed:
                t0 = time.monotonic()
                while len(self._items) >= limit and not self._closed:
                    self._cond.wait()
                self._stats.held_s += time.monotonic() - t0
            if self._closed:
                raise QueueClosedError(f"stage queue {self.name!r} is closed")
            while len(self._items) >= self.capacity:  # DROP_OLDEST
                old = self._items.popleft()
                self._unfinished -= 1
                self._stats.dropped += 1
                self._stats.dropped_by_camera[old.camera_id] += 1
                dropped.append(old.value)
            self._items.append(_Item(camera_id, value))
            self._unfinished += 1
            self._stats.put += 1
            self._cond.notify_all()
        if self._on_drop is not None:
            for value_dropped in dropped:  # outside the lock: the callback may put into another queue
                self._on_drop(value_dropped)

    def get_many(self, limit: int) -> list[T]:
        """Up to ``limit`` items, oldest first, waiting for at least one; [] once closed and empty.

        Each item taken must be acknowledged with :meth:`task_done` (``join`` waits for that).
        """
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            out = [self._items.popleft().value for _ in range(min(limit, len(self._items)))]
            if out:
                self._cond.notify_all()  # room for held producers
            return out

    def task_done(self, n: int = 1) -> None:
        with self._cond:
            self._unfinished -= n
            self._stats.done += n
            self._cond.notify_all()

    def join(self, timeout: float) -> bool:
        """Wait until every queued item has been taken and acknowledged; False on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._unfinished > 0:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        """No more puts; the consumer drains what is queued, then ``get_many`` returns []."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return self._unfinished == 0

    def stats(self) -> QueueStats:
        with self._cond:
            s = self._stats
            return QueueStats(
                s.name, s.capacity, s.policy, len(self._items), s.put, s.done, s.dropped,
                Counter(s.dropped_by_camera), s.held_s,
            )  # fmt: skip
