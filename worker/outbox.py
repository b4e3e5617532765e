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

The caller (the analysis thread) carries on: one failed append must not stop
the camera's pipeline, and the next append may well succeed.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass

from core.redact import redact_text
from event_bus.interfaces import OutRecord
from event_bus.spool import Spool

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxRefusal:
    """The latest refused append of a camera (cleared by its next successful one)."""

    camera_id: str
    topic: str
    reason: str


class OutboxGuard:
    """Appends events to ``spool`` and tracks which cameras' events it refused."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._lock = threading.Lock()
        self._failing: dict[str, OutboxRefusal] = {}
        self._refused: Counter[str] = Counter()

    def append(self, camera_id: str, record: OutRecord, blob: bytes | None = None, blob_key: str | None = None) -> bool:
        """True when the record is durably stored; False (counted, camera degraded, logged) when refused."""
        try:
            self.spool.append(record, blob=blob, blob_key=blob_key)
        except Exception as exc:  # SpoolFull, sqlite3 errors (disk full, I/O), a closed spool: all the same here
            reason = redact_text(f"outbox refused a {record.topic} event: {type(exc).__name__}: {exc}"[:500])
            with self._lock:
                self._failing[camera_id] = OutboxRefusal(camera_id, record.topic, reason)
                self._refused[record.topic] += 1
            log.error("event not stored, camera degraded", extra={"camera": camera_id, "error": reason})
            return False
        if camera_id in self._failing:
            with self._lock:
                self._failing.pop(camera_id, None)
            log.info("outbox accepts events again", extra={"camera": camera_id})
        return True

    def failing(self) -> dict[str, OutboxRefusal]:
        """Cameras whose latest append was refused."""
        with self._lock:
            return dict(self._failing)

    def refused(self) -> dict[str, int]:
        """Refused appends since start, by topic."""
        with self._lock:
            return dict(self._refused)
