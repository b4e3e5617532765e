"""Simulated cameras (``sim://``): connect / up / down on a seeded outage schedule, no video, no thread each.

Why no thread per camera: a real camera needs its own decoding thread; a
simulated one only changes state a few times an hour. One
:class:`SimDriver` thread per worker keeps every simulated camera's next
state change in a heap and sleeps until the earliest, so a worker holding
1,000 simulated cameras runs one extra thread, not 1,000 (``benchmarks/
city_scale.py`` measures both).

The schedule is seeded by the URL's ``seed`` and the camera id, so a camera
behaves the same on whichever worker runs it: connect after ``connect_s``,
stay up for an exponential time of mean ``mtbf_s``, go down for an
exponential time of mean ``outage_s``, reconnect, and so on.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from core.config import CameraConfig
from core.health import CameraState
from core.sim_url import parse_sim_url
from ingest.camera import RunnerStats, StatusChange

StatusSink = Callable[[StatusChange], None]


class SimCamera:
    """The runner of one simulated camera, with the surface the worker uses of a real one (status, stats, stop)."""

    def __init__(self, camera: CameraConfig, driver: SimDriver, on_status: StatusSink) -> None:
        spec = parse_sim_url(camera.url)
        self.camera = camera
        self.spec = spec
        self._rng = random.Random(f"{spec.seed}:{camera.id}")  # a schedule, not a secret
        self._driver = driver
        self._on_status = on_status
        self.status: StatusChange | None = None
        self.reconnects = 0
        self._up = False
        self._alive = False
        self._lock = threading.Lock()  # a stopped camera reports nothing more (its next owner may have started it)

    @property
    def camera_id(self) -> str:
        return self.camera.id

    def start(self) -> None:
        self._alive = True
        self._driver.schedule(self, self.spec.connect_s)

    def stop(self, timeout: float | None = None) -> bool:
        with self._lock:
            self._alive = False
        return True

    def join(self, timeout: float | None = None) -> bool:
        return True

    def is_alive(self) -> bool:
        return self._alive

    def stats(self) -> RunnerStats:
        return RunnerStats(
            camera_id=self.camera.id,
            packets_read=0,
            key_packets_read=0,
            packets_decoded=0,
            frames_decoded=0,
            key_frames_decoded=0,
            frames_analysed=0,
            decode_errors=0,
            corrupt_packets=0,
            corrupt_frames=0,
            decode_cpu_s=0.0,
            reconnects=self.reconnects,
            callback_errors=0,
            keyframe_only=False,
            keyframe_interval_s=None,
        )

    def step(self) -> float | None:
        """The next state change (called by the driver); returns seconds until the one after, None when stopped."""
        with self._lock:
            return self._step() if self._alive else None

    def _step(self) -> float:
        if self._up:
            self._up = False
            self._report(CameraState.DOWN, "simulated outage")
            return self._rng.expovariate(1.0 / self.spec.outage_s)
        if self.status is not None:
            self.reconnects += 1
        self._up = True
        self._report(CameraState.UP, "connected (simulated)" if self.reconnects == 0 else "reconnected (simulated)")
        return self._rng.expovariate(1.0 / self.spec.mtbf_s)

    def _report(self, state: CameraState, reason: str) -> None:
        self.status = StatusChange(
            camera_id=self.camera.id,
            state=state,
            reason=reason,
            input_fps=0.0,
            analysed_fps=0.0,
            last_frame_at=None,
            reconnects=self.reconnects,
            at=datetime.now(UTC),
        )
        self._on_status(self.status)


class SimDriver:
    """One thread that steps every simulated camera of a worker at its scheduled times."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, SimCamera]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.steps = 0

    def camera(self, camera: CameraConfig, on_status: StatusSink) -> SimCamera:
        """A simulated camera driven by this driver (started by its ``start``); ValueError on a bad sim:// URL."""
        return SimCamera(camera, self, on_status)

    def schedule(self, cam: SimCamera, delay_s: float) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sim-cameras", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._seq), cam))
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._stopped:
                    return
                _due, _n, cam = heapq.heappop(self._heap)
            nxt = cam.step()  # outside the lock: it publishes a status
            self.steps += 1
            if nxt is not None:
                self.schedule(cam, nxt)
