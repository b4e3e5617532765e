"""The latest line counts of every camera, for the camera board: per line, in and out, per label.

Workers send one :class:`~event_bus.events.LineCount` per camera and count
period (default a minute, zeros included) on ``kuzet.line-counts.v1``. The
board shows the newest period of each camera ("gate 12 in / 9 out"), so this
keeps only that: the event with the latest ``period_end`` per camera wins, an
older one arriving late (a redelivery, a reader rebuilding from the topic) is
ignored. Each camera's entry is built once, when its event arrives, as the
JSON the board sends, so a board page only looks entries up.

Bounded: at most ``max_cameras`` cameras are kept; past that, the camera that
reported longest ago is dropped (a camera that sends again comes back).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from event_bus.events import LineCount

__all__ = ["LineCountBoard", "counts_json"]


def _ms(at: Any) -> int:
    return int(at.timestamp() * 1000)


def counts_json(event: LineCount) -> dict[str, Any]:
    """What the board shows of one period: lines in name order, each with its in/out totals and per-label counts."""
    lines: dict[str, dict[str, Any]] = {}
    for e in event.counts:
        line = lines.setdefault(e.line, {"line": e.line, "in": 0, "out": 0, "labels": {}})
        line[e.direction] += e.count
        label = line["labels"].setdefault(e.label, {"in": 0, "out": 0})
        label[e.direction] += e.count
    return {
        "period_start_ms": _ms(event.period_start),
        "period_end_ms": _ms(event.period_end),
        "complete": event.complete,
        "lines": [lines[name] for name in sorted(lines)],
    }


class LineCountBoard:
    """Thread-safe: the line-count reader writes, request threads read."""

    def __init__(self, max_cameras: int = 100_000) -> None:
        if max_cameras < 1:
            raise ValueError("max_cameras must be at least 1")
        self.max_cameras = max_cameras
        self._lock = threading.Lock()
        self._latest: OrderedDict[str, dict[str, Any]] = OrderedDict()  # camera id -> counts_json, oldest first
        self.dropped = 0  # cameras forgotten to stay within max_cameras

    def __len__(self) -> int:
        return len(self._latest)

    def update(self, events: Sequence[LineCount]) -> list[str]:
        """Apply count events; returns the cameras whose shown counts changed."""
        changed: list[str] = []
        with self._lock:
            for event in events:
                doc = counts_json(event)
                have = self._latest.get(event.camera_id)
                if have is not None and have["period_end_ms"] > doc["period_end_ms"]:
                    continue
                self._latest[event.camera_id] = doc
                self._latest.move_to_end(event.camera_id)
                changed.append(event.camera_id)
            while len(self._latest) > self.max_cameras:
                self._latest.popitem(last=False)
                self.dropped += 1
        return changed

    def get(self, camera_id: str) -> dict[str, Any] | None:
        """The camera's newest period as board JSON (shared: do not modify), or None: no line counts."""
        with self._lock:
            return self._latest.get(camera_id)
