"""Camera-status heartbeats: every running camera's state, re-sent on a fixed period.

Why: a camera runner reports a status only when its state changes, so a
worker that dies (or is stopped) leaves its cameras' last "up" on the bus
forever, and the camera board kept showing them live. With a heartbeat every
``worker.status_interval_s`` the console can mark a camera stale once no
status has come for two intervals, and ``kuzet status`` always has a recent
state and rate to show, whichever command (``kuzet worker`` or
``kuzet scale-worker``) runs the camera.

Rates in a heartbeat are counted over the interval from the runner's
counters (read-only here), not from the runner's own meters, which only its
camera thread may touch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from core.health import CameraState
from event_bus.events import CameraStatus
from ingest.camera import StatusChange
from worker.camera_status import camera_status

_STATES = {s.value for s in CameraState}


class _Health(Protocol):
    @property
    def state(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def last_analysed_at(self) -> float | None: ...


class _Counters(Protocol):
    @property
    def packets_read(self) -> int: ...
    @property
    def frames_analysed(self) -> int: ...
    @property
    def reconnects(self) -> int: ...


class HeartbeatSource(Protocol):
    """What the heartbeat reads from a worker (``worker.runtime.Worker`` fits)."""

    worker_id: str

    def camera_health(self) -> Mapping[str, _Health]: ...
    def camera_stats(self) -> Mapping[str, _Counters]: ...


@dataclass
class _Seen:
    at: float
    packets: int
    analysed: int


class StatusHeartbeat:
    """Builds a :class:`CameraStatus` per running camera every ``interval_s`` and hands them to ``emit``."""

    def __init__(self, source: HeartbeatSource, interval_s: float, emit: Callable[[list[CameraStatus]], None]) -> None:
        if interval_s <= 0:
            raise ValueError("heartbeat interval must be positive")
        self._source = source
        self.interval_s = interval_s
        self._emit = emit
        self._seen: dict[str, _Seen] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StatusHeartbeat:
        self._thread = threading.Thread(target=self._run, name="status-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            statuses = self.beat()
            if statuses:
                self._emit(statuses)

    def beat(
        self, now: float | None = None, *, state: CameraState | None = None, reason: str = ""
    ) -> list[CameraStatus]:
        """One status per camera that has reported at least once; ``state``/``reason`` override (final "down")."""
        now = time.time() if now is None else now
        health = self._source.camera_health()
        stats = self._source.camera_stats()
        out: list[CameraStatus] = []
        for cid, h in sorted(health.items()):
            if h.state not in _STATES:
                continue  # still starting: its first status change is on its way
            s = stats.get(cid)
            packets = s.packets_read if s is not None else 0
            analysed = s.frames_analysed if s is not None else 0
            prev = self._seen.get(cid)
            span = now - prev.at if prev is not None else 0.0
            in_fps = (packets - prev.packets) / span if prev is not None and span > 0 else 0.0
            an_fps = (analysed - prev.analysed) / span if prev is not None and span > 0 else 0.0
            self._seen[cid] = _Seen(now, packets, analysed)
            last = datetime.fromtimestamp(h.last_analysed_at, UTC) if h.last_analysed_at else None
            change = StatusChange(
                camera_id=cid,
                state=state or CameraState(h.state),
                reason=reason or h.reason or "heartbeat",
                input_fps=round(max(in_fps, 0.0), 3),
                analysed_fps=round(max(an_fps, 0.0), 3),
                last_frame_at=last,
                reconnects=s.reconnects if s is not None else 0,
                at=datetime.fromtimestamp(now, UTC),
            )
            out.append(camera_status(change, self._source.worker_id))
        for gone in set(self._seen) - set(health):
            del self._seen[gone]
        return out
