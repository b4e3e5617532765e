"""Cross-camera batch scheduler: frames of many cameras -> one inference call.

Split in two so the policy can be tested without threads or real time:

* :class:`BatchFormer` — pure state: at most one pending frame per camera
  (a newer frame replaces the pending one, newest wins, the drop counted for
  that camera), and ``take(now)`` releasing up to ``max_batch`` frames, oldest
  pending first, once the batch is full, or every camera feeding the model
  already has its frame pending (the batch cannot grow: waiting would only
  add latency), or the oldest has waited ``max_wait_s``.
* :class:`BatchScheduler` — a thin worker thread around it, calling the
  detector and handing each result to ``on_result``.

Why newest-wins with one slot per camera: under overload a live system must
analyse the present, not work through a backlog; a bounded slot per camera
also bounds memory at one frame per camera. A replaced frame keeps its
camera's place in the queue (and its arrival time), otherwise a fast camera
would be sent to the back on every new frame and starve behind slow ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from core.clock import Clock, SystemClock
from core.detections import Detections
from core.frame import Frame
from detectors.per_camera import FrameDetector
from detectors.registry import Detector

log = logging.getLogger(__name__)

ResultCallback = Callable[[Frame, Detections], None]
FailureCallback = Callable[[Frame, BaseException], None]


@dataclass
class _Pending:
    frame: Frame
    since: float  # monotonic time the camera's slot became pending


@dataclass
class BatchStats:
    """Counters of one scheduler; a snapshot copy is returned by :meth:`BatchScheduler.stats`."""

    submitted: int = 0
    analysed: int = 0
    failed: int = 0
    dropped: int = 0
    dropped_by_camera: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)
    inference_s: float = 0.0
    model_inputs: int = 0  # images sent to the model: frames plus tiles (tiled cameras cost more than one)
    errors: int = 0  # detector calls that raised
    callback_errors: int = 0  # on_result / on_failure calls that raised

    def copy(self) -> BatchStats:
        return BatchStats(
            submitted=self.submitted,
            analysed=self.analysed,
            failed=self.failed,
            dropped=self.dropped,
            dropped_by_camera=Counter(self.dropped_by_camera),
            batches=self.batches,
            batch_sizes=Counter(self.batch_sizes),
            inference_s=self.inference_s,
            model_inputs=self.model_inputs,
            errors=self.errors,
            callback_errors=self.callback_errors,
        )

    @property
    def mean_batch(self) -> float:
        return (self.analysed + self.failed) / self.batches if self.batches else 0.0


class BatchFormer:
    """Batching policy without threads: feed it frames and the time, ask it for batches."""

    def __init__(self, max_batch: int, max_wait_s: float) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must not be negative")
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: dict[str, _Pending] = {}  # insertion order == oldest pending first
        self._sources: set[str] = set()  # cameras known to feed this model; empty: unknown, wait for max_batch

    def add_source(self, camera_id: str) -> None:
        """A camera that will feed this model: once each known camera has a frame pending, the batch is due."""
        self._sources.add(camera_id)

    def remove_source(self, camera_id: str) -> None:
        self._sources.discard(camera_id)

    def __len__(self) -> int:
        return len(self._pending)

    def offer(self, frame: Frame, now: float) -> Frame | None:
        """Queue ``frame``; returns the older frame of the same camera it replaced (a drop), if any."""
        slot = self._pending.get(frame.camera_id)
        if slot is None:
            self._pending[frame.camera_id] = _Pending(frame, now)
            return None
        replaced = slot.frame
        slot.frame = frame  # newest wins; the slot keeps its place and its waiting time
        return replaced

    def holds(self, camera_id: str) -> bool:
        """Whether a frame of this camera is waiting for a batch."""
        return camera_id in self._pending

    def deadline(self) -> float | None:
        """Monotonic time at which the oldest pending frame must go, None when nothing is pending."""
        if not self._pending:
            return None
        return next(iter(self._pending.values())).since + self.max_wait_s

    def full(self) -> bool:
        """No more frames can join: ``max_batch`` pending, or one pending for every known camera."""
        n = len(self._pending)
        if n >= self.max_batch:
            return True
        return bool(self._sources) and n >= len(self._sources) and self._sources.issubset(self._pending.keys())

    def ready(self, now: float) -> bool:
        if not self._pending:
            return False
        if self.full():
            return True
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def clear(self) -> list[Frame]:
        """Remove and return every pending frame (oldest first)."""
        frames = [p.frame for p in self._pending.values()]
        self._pending.clear()
        return frames

    def take(self, now: float, force: bool = False) -> list[Frame]:
        """The next batch (oldest pending first) if one is due at ``now`` (or ``force``), else []."""
        if not self._pending or not (force or self.ready(now)):
            return []
        batch: list[Frame] = []
        for cam in list(self._pending)[: self.max_batch]:
            batch.append(self._pending.pop(cam).frame)
        return batch


class BatchScheduler:
    """Runs one detector over frames from many cameras in batches, on its own thread.

    ``submit`` never blocks on inference. Results arrive on the scheduler's
    thread through ``on_result(frame, detections)``; keep that callback short
    (hand off to a queue) or it delays the next batch. When the detector
    raises, the error is logged and counted, each frame of that batch goes to
    ``on_failure(frame, exc)`` if given, and the thread carries on.
    """

    def __init__(
        self,
        detector: Detector | FrameDetector,
        max_batch: int,
        max_wait_s: float,
        on_result: ResultCallback,
        clock: Clock | None = None,
        on_failure: FailureCallback | None = None,
        name: str | None = None,
    ) -> None:
        self.detector = detector
        self.on_result = on_result
        self.on_failure = on_failure
        self.clock: Clock = clock or SystemClock()
        self.name = name or f"batcher-{detector.name}"
        self._former = BatchFormer(max_batch, max_wait_s)
        self._stats = BatchStats()
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the batch thread (and wait_idle) wait here for frames and stop
        # submit(wait=True) callers wait here for their camera's slot: a separate condition on the same lock,
        # so a new frame wakes the batch thread, not every held decoder (64 cameras: 64x fewer wake-ups)
        self._slot_free = threading.Condition(lock)
        self._running = False
        self._in_flight = 0
        self._thread: threading.Thread | None = None

    # -- producer side -------------------------------------------------------------------------

    def submit(self, frame: Frame, *, wait: bool = False) -> None:
        """Queue a frame for analysis; replaces (and counts as dropped) this camera's pending frame.

        With ``wait`` (a file replayed as fast as possible, where every frame is
        wanted) it first waits until the camera's pending frame has gone into a
        batch, so the decoder is held back instead of frames being dropped.
        """
        with self._cond:
            while wait and self._running and self._former.holds(frame.camera_id):
                self._slot_free.wait()
            if not self._running:
                raise RuntimeError(f"{self.name} is not running; call start() first")
            self._stats.submitted += 1
            replaced = self._former.offer(frame, self.clock.monotonic())
            if replaced is not None:
                self._stats.dropped += 1
                self._stats.dropped_by_camera[frame.camera_id] += 1
            self._cond.notify_all()  # the batch thread (held decoders wait on _slot_free)

    def add_source(self, camera_id: str) -> None:
        """Declare a camera that feeds this model, so a batch holding all of them goes without waiting."""
        with self._cond:
            self._former.add_source(camera_id)
            self._cond.notify_all()

    def remove_source(self, camera_id: str) -> None:
        with self._cond:
            self._former.remove_source(camera_id)
            self._cond.notify_all()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, drain: bool = True, timeout: float | None = 10.0) -> None:
        """Stop the thread; with ``drain`` the frames still pending are analysed first, else dropped."""
        with self._cond:
            if not self._running:
                return
            self._running = False
            if not drain:
                for frame in self._former.clear():
                    self._stats.dropped += 1
                    self._stats.dropped_by_camera[frame.camera_id] += 1
            self._cond.notify_all()
            self._slot_free.notify_all()  # held decoders see that it stopped
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is pending or in flight (end of a file, tests); False on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while len(self._former) or self._in_flight:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    @property
    def running(self) -> bool:
        return self._running

    def stats(self) -> BatchStats:
        with self._cond:
            return self._stats.copy()

    def pending(self) -> int:
        with self._cond:
            return len(self._former)

    # -- worker thread -------------------------------------------------------------------------

    def _next_batch(self) -> list[Frame]:
        """Wait for a due batch; [] when stopped and drained."""
        with self._cond:
            while True:
                now = self.clock.monotonic()
                batch = self._former.take(now, force=not self._running)
                if batch:
                    self._in_flight = len(batch)
                    self._slot_free.notify_all()  # cameras waiting in submit(wait=True) may go on
                    return batch
                if not self._running:
                    return []
                deadline = self._former.deadline()
                # wake at the oldest frame's deadline, or when submit()/stop() notifies
                self._cond.wait(None if deadline is None else max(0.0, deadline - now))

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return
            try:
                self._process(batch)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _process(self, batch: list[Frame]) -> None:
        started = time.perf_counter()
        try:
            if isinstance(self.detector, FrameDetector):  # per-camera tiling and filters
                results, inputs = self.detector.detect_frames(batch)
            else:
                results, inputs = self.detector.detect([f.image for f in batch]), len(batch)
            if len(results) != len(batch):
                raise RuntimeError(f"detector returned {len(results)} results for {len(batch)} frames")
        except Exception as exc:
            elapsed = time.perf_counter() - started
            log.exception("detector %s failed on a batch of %d frames", self.detector.name, len(batch))
            with self._cond:
                self._stats.errors += 1
                self._stats.failed += len(batch)
                self._stats.batches += 1
                self._stats.batch_sizes[len(batch)] += 1
                self._stats.inference_s += elapsed
            if self.on_failure is not None:
                for frame in batch:
                    self._call(self.on_failure, frame, exc)
            return
        elapsed = time.perf_counter() - started
        with self._cond:
            self._stats.analysed += len(batch)
            self._stats.model_inputs += inputs
            self._stats.batches += 1
            self._stats.batch_sizes[len(batch)] += 1
            self._stats.inference_s += elapsed
        for frame, det in zip(batch, results, strict=True):
            self._call(self.on_result, frame, det)

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s: result callback failed", self.name)
            with self._cond:
                self._stats.callback_errors += 1
