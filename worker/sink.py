"""The sink stage: events leave the worker here, in each camera's order.

Incidents come straight from the analysis stage, plate reads later from the
plate stage; both carry a per-camera ticket handed out by the analysis stage
in the order it saw that camera's frames. The sink writes a camera's items
in ticket order (a later ticket waits for an earlier one still being read),
so a slow OCR can delay a camera's events but never reorder them. Each
draft becomes an event (snapshot rendered, reference computed) and is
written; the write is the spool append, the slow part on a busy disk.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.events import Draft, EventBuilder, Outgoing

log = logging.getLogger(__name__)


@dataclass(order=True)
class SinkItem:
    """The drafts of one ticket of one camera (possibly none: the ticket still has to be passed)."""

    ticket: int
    camera_id: str = field(compare=False)
    drafts: list[Draft] = field(compare=False, default_factory=list)
    done: threading.Event | None = field(compare=False, default=None)
    """Set once this item is written (the end of a camera: its last ticket)."""


class Sink:
    """Orders, builds and writes; only the sink thread calls :meth:`take`."""

    def __init__(self, builder: EventBuilder, write: Callable[[Outgoing], None]) -> None:
        self._builder = builder
        self._write = write
        self._next: dict[str, int] = {}
        self._waiting: dict[str, list[SinkItem]] = {}
        self.written = 0
        self.failed = 0

    def take(self, item: SinkItem) -> None:
        """Accept an item; write it and every waiting item of its camera that is now in turn."""
        heap = self._waiting.setdefault(item.camera_id, [])
        heapq.heappush(heap, item)
        nxt = self._next.get(item.camera_id, 0)
        while heap and heap[0].ticket == nxt:
            self._write_item(heapq.heappop(heap))
            nxt += 1
        self._next[item.camera_id] = nxt
        if not heap:
            del self._waiting[item.camera_id]

    def waiting(self) -> int:
        """Items held back behind an earlier ticket of their camera."""
        return sum(len(h) for h in self._waiting.values())

    def _write_item(self, item: SinkItem) -> None:
        for draft in item.drafts:
            try:
                self._write(self._builder.build(draft))
                self.written += 1
            except Exception:  # one bad event must not stop the camera's later ones; the failure is counted
                self.failed += 1
                log.exception("camera %s: building or writing an event failed", item.camera_id)
        if item.done is not None:
            item.done.set()
