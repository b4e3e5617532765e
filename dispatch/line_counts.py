"""The latest line counts of every camera, for the camera board: per line, in and out, per label.

Workers send one :class:`~event_bus.events.LineCount` per camera and count
period (default a minute, zeros included) on ``kuzet.line-counts.v1``. The
board shows the newest period of each camera ("gate 12 in / 9 out"), so this
keeps only that: the event with the latest ``period_end`` per camera wins, an
older one arriving late (a redelivery, a reader rebuilding from the topic) is
ignored. Entries are kept compact (tuples, interned names) and turned into
the board's JSON only for the rows of the page asked for.

Bounded: at most ``max_cameras`` cameras are kept; past that, the camera that
reported longest ago is dropped (a camera that sends again comes back).
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from event_bus.events import LineCount

__all__ = ["LineCountBoard", "counts_json"]


def _ms(at: Any) -> int:
    return int(at.timestamp() * 1000)


# One camera's newest period, compact (about 40 % of the memory of its JSON; names are interned, since every
# camera repeats the same few line and label names): (period_start_ms, period_end_ms, complete, lines), where
# lines is ((line, in, out, ((label, in, out), ...)), ...) in name order.
_Labels = tuple[tuple[str, int, int], ...]
_Period = tuple[int, int, bool, tuple[tuple[str, int, int, _Labels], ...]]


def _compact(event: LineCount) -> _Period:
    per_line: dict[str, dict[str, list[int]]] = {}
    for e in event.counts:
        label = per_line.setdefault(sys.intern(e.line), {}).setdefault(sys.intern(e.label), [0, 0])
        label[0 if e.direction == "in" else 1] += e.count
    lines = []
    for name in sorted(per_line):
        labels = tuple((label, n[0], n[1]) for label, n in per_line[name].items())
        lines.append((name, sum(n[1] for n in labels), sum(n[2] for n in labels), labels))
    return _ms(event.period_start), _ms(event.period_end), event.complete, tuple(lines)


def _json(period: _Period) -> dict[str, Any]:
    start, end, complete, lines = period
    return {
        "period_start_ms": start,
        "period_end_ms": end,
        "complete": complete,
        "lines": [
            {"line": name, "in": n_in, "out": n_out, "labels": {lb: {"in": i, "out": o} for lb, i, o in labels}}
            for name, n_in, n_out, labels in lines
        ],
    }


def counts_json(event: LineCount) -> dict[str, Any]:
    """What the board shows of one period: lines in name order, each with its in/out totals and per-label counts."""
    return _json(_compact(event))


class LineCountBoard:
    """Thread-safe: the line-count reader writes, request threads read."""

    def __init__(self, max_cameras: int = 100_000) -> None:
        if max_cameras < 1:
            raise ValueError("max_cameras must be at least 1")
        self.max_cameras = max_cameras
        self._lock = threading.Lock()
        self._latest: OrderedDict[str, _Period] = OrderedDict()  # camera id -> newest period, oldest report first
        self.dropped = 0  # cameras forgotten to stay within max_cameras

    def __len__(self) -> int:
        return len(self._latest)

    def update(self, events: Sequence[LineCount]) -> list[str]:
        """Apply count events; returns the cameras whose shown counts changed."""
        changed: list[str] = []
        with self._lock:
            for event in events:
                period = _compact(event)
                have = self._latest.get(event.camera_id)
                if have is not None and have[1] > period[1]:
                    continue
                self._latest[event.camera_id] = period
                self._latest.move_to_end(event.camera_id)
                changed.append(event.camera_id)
            while len(self._latest) > self.max_cameras:
                self._latest.popitem(last=False)
                self.dropped += 1
        return changed

    def get(self, camera_id: str) -> dict[str, Any] | None:
        """The camera's newest period as board JSON, or None: no line counts (built per call: one page's rows)."""
        with self._lock:
            period = self._latest.get(camera_id)
        return None if period is None else _json(period)
