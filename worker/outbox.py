"""The worker's side of the outbox: append an event, and make a refusal impossible to miss.

Why this exists: the spool can refuse an append (it is full after a long
broker outage, the disk is full, the file is damaged). The event then exists
nowhere else, so a log line alone is not enough: an operator must see it where
they look. A refusal therefore

* marks the camera ``degraded`` with the reason (``Worker.camera_health``, so
  ``/status``, ``kuzet status`` and the ``kuzet_camera_state`` metric show it)
  until an append for that camera succeeds again;
* counts in ``kuzet_outbox_refused`` (by event kind), which the alert rule
  ``KuzetOutboxRefusing`` watches;
* is logged at error level with the camera and the reason (redacted).

The refused record itself is not dropped: it waits in a bounded in-memory
backlog (:data:`BACKLOG_RECORDS` records, :data:`BACKLOG_BYTES` bytes) and is
retried, oldest first and before anything newer, on every later append and
by :meth:`OutboxGuard.retry` (the worker calls it every second), so once the
disk has room again every event still reaches the spool in order. Only when
the backlog itself is full is a record dropped, and that is counted
(``kuzet_outbox_dropped``) and alerted on like a refusal. A process killed
while records wait in the backlog loses them: that is the price of not
blocking the cameras, and the degraded state says it is being paid.

The caller (the analysis thread) carries on: one failed append must not stop
the camera's pipeline.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass

from core.redact import redact_text
from event_bus.interfaces import OutRecord
from event_bus.spool import Spool

log = logging.getLogger(__name__)

BACKLOG_RECORDS = 10_000
BACKLOG_BYTES = 256 * 1024**2

_Item = tuple[str, OutRecord, bytes | None, str | None]


@dataclass(frozen=True, slots=True)
class OutboxRefusal:
    """The latest refused append of a camera (cleared by its next successful one)."""

    camera_id: str
    topic: str
    reason: str


class OutboxGuard:
    """Appends events to ``spool``; what it refuses waits in a bounded backlog and the camera shows degraded."""

    def __init__(self, spool: Spool, *, max_records: int = BACKLOG_RECORDS, max_bytes: int = BACKLOG_BYTES) -> None:
        self.spool = spool
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        self._failing: dict[str, OutboxRefusal] = {}
        self._refused: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._backlog: deque[_Item] = deque()
        self._backlog_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval_s: float = 1.0) -> None:
        """Retry waiting records every ``interval_s`` even when no new event comes to push them."""

        def run() -> None:
            while not self._stop.wait(interval_s):
                if self.waiting():
                    self.retry()

        self._thread = threading.Thread(target=run, name="kuzet-outbox-retry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop retrying, after one last try (what still waits is logged)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if not self.retry():
            log.error("outbox: events still waiting at shutdown are lost", extra={"count": self.waiting()})

    def append(self, camera_id: str, record: OutRecord, blob: bytes | None = None, blob_key: str | None = None) -> bool:
        """True when the record (and every older waiting one) is durably stored; False when it had to wait."""
        with self._lock:
            self._backlog.append((camera_id, record, blob, blob_key))
            self._backlog_bytes += _size(record, blob)
            self._drain()
            if not self._backlog:
                return True
            if len(self._backlog) > self.max_records or self._backlog_bytes > self.max_bytes:
                cam, dropped, dblob, _ = self._backlog.pop()  # the newest: older events keep their place
                self._backlog_bytes -= _size(dropped, dblob)
                self._dropped[dropped.topic] += 1
                log.error("outbox backlog full: event dropped", extra={"camera": cam, "topic": dropped.topic})
            return False

    def retry(self) -> bool:
        """Try the waiting records again; True when none is left waiting."""
        with self._lock:
            self._drain()
            return not self._backlog

    def _drain(self) -> None:
        while self._backlog:
            camera_id, record, blob, blob_key = self._backlog[0]
            try:
                self.spool.append(record, blob=blob, blob_key=blob_key)
            except Exception as exc:  # SpoolFull, sqlite3 errors (disk full, I/O), a closed spool: all the same here
                reason = redact_text(f"outbox refused a {record.topic} event: {type(exc).__name__}: {exc}"[:500])
                if camera_id not in self._failing:
                    log.error("event not stored, camera degraded", extra={"camera": camera_id, "error": reason})
                self._failing[camera_id] = OutboxRefusal(camera_id, record.topic, reason)
                self._refused[record.topic] += 1
                return
            self._backlog.popleft()
            self._backlog_bytes -= _size(record, blob)
            if camera_id in self._failing and not any(item[0] == camera_id for item in self._backlog):
                self._failing.pop(camera_id, None)
                log.info("outbox accepts events again", extra={"camera": camera_id})

    def waiting(self) -> int:
        """Records in the in-memory backlog."""
        with self._lock:
            return len(self._backlog)

    def failing(self) -> dict[str, OutboxRefusal]:
        """Cameras with events waiting because the outbox refused them."""
        with self._lock:
            return dict(self._failing)

    def refused(self) -> dict[str, int]:
        """Refused append attempts since start, by topic."""
        with self._lock:
            return dict(self._refused)

    def dropped(self) -> dict[str, int]:
        """Records dropped because the backlog was full, by topic."""
        with self._lock:
            return dict(self._dropped)


def _size(record: OutRecord, blob: bytes | None) -> int:
    return len(record.value) + len(record.key) + (len(blob) if blob else 0)
