"""Short human lines from long-running commands: at start, every N minutes, and at stop.

The JSON logs on stderr are for machines. An operator who starts ``kuzet
worker`` or ``kuzet console serve`` by hand also needs to see, without a log
viewer, that it is listening, which cameras came up, that frames and
incidents are flowing, and what was left undelivered at the end. These lines
go to stdout, one line each, plain text (no colour, no redraw), so they read
the same in a terminal, a pipe or ``journalctl``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from event_bus.events import Incident, IncidentState

if TYPE_CHECKING:
    from dispatch.context import ConsoleContext
    from worker.runtime import Worker


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class _Ticker:
    """Calls ``tick`` every second and ``report`` every ``every_s`` on a daemon thread."""

    def __init__(self, every_s: float, tick: Callable[[], None], report: Callable[[], None]) -> None:
        self._every_s = every_s
        self._tick = tick
        self._report = report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="human-summary", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        next_report = time.monotonic() + self._every_s if self._every_s > 0 else float("inf")
        while not self._stop.wait(1.0):
            self._tick()
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + self._every_s
                self._report()


class WorkerSummary:
    """Start, periodic and stop lines for ``kuzet worker``; feed it incidents through :meth:`on_incident`."""

    def __init__(self, worker_id: str, every_s: float, out: TextIO | None = None) -> None:
        self.worker_id = worker_id
        self._out = out or sys.stdout
        self._every_s = every_s
        self._worker: Worker | None = None
        self._lock = threading.Lock()
        self._incidents = 0  # started incidents (what a dispatcher sees as new)
        self._events = 0  # every incident event: start / update / end
        self._started_at = time.monotonic()
        self._last_frames = 0
        self._last_at = self._started_at
        self._announced_up = False
        self._ticker: _Ticker | None = None

    def say(self, line: str) -> None:
        print(f"[{self.worker_id}] {line}", file=self._out, flush=True)

    def on_incident(self, incident: Incident) -> None:
        with self._lock:
            self._events += 1
            if incident.state is IncidentState.START:
                self._incidents += 1

    def started(self, worker: Worker, where: str) -> None:
        self._worker = worker
        self._started_at = self._last_at = time.monotonic()
        cams = worker.camera_ids()
        self.say(f"started: {len(cams)} camera(s) starting; events go to {where}")
        self._ticker = _Ticker(self._every_s, self._tick, self.report)
        self._ticker.start()

    def _tick(self) -> None:
        if self._announced_up or self._worker is None:
            return
        health = self._worker.camera_health()
        if any(h.state == "starting" for h in health.values()):
            return
        self._announced_up = True
        up = sorted(c for c, h in health.items() if h.state == "up")
        other = [f"{c} {h.state} ({h.reason})" for c, h in sorted(health.items()) if h.state != "up"]
        line = f"cameras up: {len(up)}/{len(health)}" + (f" ({', '.join(up)})" if up else "")
        self.say(line + (f"; not up: {'; '.join(other)}" if other else ""))

    def report(self) -> None:
        """One progress line: cameras up, analysed fps since the last line, incidents, outbox backlog."""
        if self._worker is None:
            return
        health = self._worker.camera_health()
        frames = sum(int(getattr(s, "frames_analysed", 0)) for s in self._worker.camera_stats().values())
        now = time.monotonic()
        # a camera removed at run time takes its count with it: never report a negative rate
        fps = max(0, frames - self._last_frames) / max(now - self._last_at, 1e-9)
        self._last_frames, self._last_at = frames, now
        up = sum(1 for h in health.values() if h.state == "up")
        with self._lock:
            incidents, events = self._incidents, self._events
        depth = self._worker.relay.stats().depth
        self.say(
            f"running {_duration(now - self._started_at)}: {up}/{len(health)} camera(s) up, "
            f"{fps:.1f} frames/s analysed, {incidents} incident(s) ({events} event(s)), outbox {depth}"
        )

    def stopping(self) -> None:
        """Say that the stop has begun; progress lines end here (cameras going away are not a rate of -N frames/s)."""
        if self._ticker is not None:
            self._ticker.stop()
        self.say("stopping: ending open incidents, flushing the outbox")

    def stopped(self, flushed: bool, depth: int, spool: str) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        with self._lock:
            incidents = self._incidents
        left = "outbox delivered" if flushed else f"{depth} event(s) kept in {spool}, sent on the next start"
        self.say(f"stopped after {_duration(time.monotonic() - self._started_at)}: {incidents} incident(s); {left}")


class ConsoleSummary:
    """Start, periodic and stop lines for ``kuzet console serve``."""

    def __init__(self, ctx: ConsoleContext, every_s: float, out: TextIO | None = None) -> None:
        self._ctx = ctx
        self._out = out or sys.stdout
        self._started_at = time.monotonic()
        self._ticker = _Ticker(every_s, lambda: None, self.report)

    def say(self, line: str) -> None:
        print(f"[console] {line}", file=self._out, flush=True)

    def started(self, url: str, database: str, bus: str, metrics_url: str | None) -> None:
        self._started_at = time.monotonic()
        self.say(f"listening on {url} (database {database}; reading {bus})")
        if metrics_url:
            self.say(f"metrics and probes on {metrics_url}")
        self._ticker.start()

    def report(self) -> None:
        hub = self._ctx.hub
        cams = self._ctx.store.cameras()
        up = sum(1 for c in cams if c.state == "up")
        self.say(
            f"running {_duration(time.monotonic() - self._started_at)}: {hub.connections} live browser(s), "
            f"{hub.published} feed message(s) pushed, {up}/{len(cams)} camera(s) up"
        )

    def stopped(self) -> None:
        self._ticker.stop()
        self.say(f"stopped after {_duration(time.monotonic() - self._started_at)}")
