"""One thread per camera: connect, demux, decode what analysis needs, report health, reconnect.

Concurrency: every camera has its own thread. PyAV releases the GIL inside
FFmpeg for the blocking and CPU-heavy calls (``av_read_frame``,
``avcodec_send_packet``/``receive_frame`` and the ``sws_scale`` colour
conversion), so one camera waiting on a silent socket or decoding a large
key frame never blocks another camera's thread; only the thin Python glue
between those calls takes the GIL.

Health, as the dispatchers see it (:class:`StatusChange`, emitted only when the
state changes, plus the first one):

* ``up``: analysed frames are flowing;
* ``degraded``: for a whole health window the analysed rate stayed below
  ``degraded_ratio`` x the expected rate (``min(analysis_fps, stream fps)``);
* ``down``: the stream cannot be opened, a read failed, the connection is open
  but silent (stall watchdog), the server ended a live stream, or a file reached
  its end (reason ``"end of stream"``; the runner then stops: a finished file
  is not a camera to reconnect to).

Stall watchdog: a read on a silent connection is polled with PyAV's interrupt
timeout and given up after ``stall_timeout_s`` without data (see
:class:`ingest.source.PyAVSource`); a connection that
does deliver packets but no decodable frames is caught by the loop's own check
of the time since the last frame. Either way the camera is reported down and
the connection is re-opened after a capped, jittered back-off
(:mod:`core.backoff`), whose attempt counter resets once a connection has
delivered frames again.

Why one module over 400 lines: :class:`CameraRunner` is one thread's state machine (connect, read,
sample, stall watchdog, back-off, status, packet tap); its parts share the runner's state and lock, and
the pieces that stand alone (back-off, sampling, sources) already live in their own modules.
"""

from __future__ import annotations

import enum
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.backoff import Backoff
from core.clock import Clock, SystemClock
from core.config import CameraConfig, IngestConfig
from core.frame import Frame
from core.health import CameraState
from core.redact import redact_text
from ingest.sampler import KeyframePolicy, RateSampler
from ingest.source import (
    DecodedImage,
    DecodeError,
    PacketSource,
    PyAVSource,
    SourceError,
    SourcePacket,
    SourceStalled,
    StreamInfo,
)

log = logging.getLogger(__name__)


class PacketTap(Protocol):
    """Sees every packet of a camera before any decoding decision (the evidence ring buffer's hook).

    Called on the camera thread, so it must be cheap (a copy into a ring);
    an exception in it is logged and counted, never fatal to the camera.
    """

    def opened(self, info: StreamInfo) -> None: ...

    def packet(self, packet: SourcePacket) -> None: ...

    def closed(self, reason: str) -> None: ...


FrameCallback = Callable[[Frame], None]
StatusCallback = Callable[["StatusChange"], None]
SourceFactory = Callable[[], PacketSource]

END_OF_STREAM = "end of stream"


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A camera's health changed (or was reported for the first time). ``reason`` is already redacted."""

    camera_id: str
    state: CameraState
    reason: str
    input_fps: float
    analysed_fps: float
    last_frame_at: datetime | None
    reconnects: int
    at: datetime


@dataclass(frozen=True, slots=True)
class RunnerStats:
    """Counters of one runner since it was created (approximate while running, exact after ``stop``).

    ``decode_cpu_s`` is thread CPU time (``time.thread_time()``) spent inside
    decoding and the BGR conversion of analysed frames: the decoder runs on the
    camera's own thread, so this is the whole decode cost, not an estimate.
    """

    camera_id: str
    packets_read: int
    key_packets_read: int
    packets_decoded: int
    frames_decoded: int
    key_frames_decoded: int
    frames_analysed: int
    decode_errors: int
    corrupt_packets: int
    corrupt_frames: int
    decode_cpu_s: float
    reconnects: int
    callback_errors: int
    keyframe_only: bool
    keyframe_interval_s: float | None

    @property
    def decode_cpu_s_per_analysed_frame(self) -> float | None:
        return self.decode_cpu_s / self.frames_analysed if self.frames_analysed else None


class _Outcome(enum.Enum):
    RETRY = "retry"
    FINISHED = "finished"
    STOPPED = "stopped"


class _RateMeter:
    """Events per second over a sliding window, in half-second buckets (bounded memory at any rate)."""

    _BUCKET_S = 0.5

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._buckets: deque[list[float]] = deque()  # [bucket start, count]

    def add(self, now: float, n: int = 1) -> None:
        start = math.floor(now / self._BUCKET_S) * self._BUCKET_S
        if self._buckets and self._buckets[-1][0] == start:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([start, float(n)])
        self._prune(now)

    def rate(self, now: float, since: float) -> float:
        """Rate over the window, or over the time since ``since`` if that is shorter (a fresh connection)."""
        self._prune(now)
        span = min(self.window_s, max(now - since, 1e-9))
        total = sum(c for s, c in self._buckets if s + self._BUCKET_S > now - span)
        return total / span if span >= self._BUCKET_S else 0.0

    def clear(self) -> None:
        self._buckets.clear()

    def _prune(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] + self._BUCKET_S <= now - self.window_s:
            self._buckets.popleft()


@dataclass(slots=True)
class _Session:
    """State of one connection."""

    info: StreamInfo
    opened_at: float
    progress_at: float
    health_window_s: float
    expected_fps: float
    primed: bool = False  # a key frame has been fed: decoding non-key packets now makes sense
    key_only: bool = False
    seq: int = 0
    delivered: int = 0
    last_pts: float | None = None
    next_health_at: float = 0.0


class CameraRunner:
    """Runs one camera on its own thread and reports frames and health through callbacks.

    ``on_frame`` and ``on_status`` run on the camera's thread: keep them short
    (hand the frame to a queue); an exception in them is logged and counted,
    never fatal to the camera.

    ``source_factory`` (tests, custom inputs) returns a fresh
    :class:`~ingest.source.PacketSource` per connection attempt; by default a
    :class:`~ingest.source.PyAVSource` for ``camera.url``. ``clock`` and ``rng``
    make health timing and back-off deterministic under test.
    """

    def __init__(
        self,
        camera: CameraConfig,
        ingest: IngestConfig | None = None,
        on_frame: FrameCallback | None = None,
        on_status: StatusCallback | None = None,
        *,
        source_factory: SourceFactory | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        health_window_s: float = 5.0,
        packet_tap: PacketTap | None = None,
    ) -> None:
        self.camera = camera
        self._tap = packet_tap
        self.ingest = ingest or IngestConfig()
        self._on_frame = on_frame or (lambda _f: None)
        self._on_status = on_status or (lambda _s: None)
        self._clock: Clock = clock or SystemClock()
        self._stop = threading.Event()
        self._factory: SourceFactory = source_factory or self._default_source
        self._backoff = Backoff(self.ingest.backoff_initial_s, self.ingest.backoff_max_s, rng)
        self._sampler = RateSampler(camera.analysis_fps)
        self._policy = KeyframePolicy(camera.keyframe_only, camera.analysis_fps)
        self._health_window_s = health_window_s
        self._input_meter = _RateMeter(health_window_s)
        self._analysed_meter = _RateMeter(health_window_s)
        self._thread: threading.Thread | None = None
        self._status: StatusChange | None = None
        self._last_frame_at: datetime | None = None
        # counters (written only by the camera thread)
        self._packets_read = 0
        self._key_packets_read = 0
        self._packets_decoded = 0
        self._frames_decoded = 0
        self._key_frames_decoded = 0
        self._frames_analysed = 0
        self._decode_errors = 0
        self._corrupt_packets = 0
        self._corrupt_frames = 0
        self._decode_cpu_s = 0.0
        self._reconnects = 0
        self._callback_errors = 0
        self._key_only_now = False

    # -- public API ---------------------------------------------------------------------------------
    @property
    def camera_id(self) -> str:
        return self.camera.id

    @property
    def status(self) -> StatusChange | None:
        """The last status emitted (None before the first)."""
        return self._status

    def stats(self) -> RunnerStats:
        return RunnerStats(
            camera_id=self.camera.id,
            packets_read=self._packets_read,
            key_packets_read=self._key_packets_read,
            packets_decoded=self._packets_decoded,
            frames_decoded=self._frames_decoded,
            key_frames_decoded=self._key_frames_decoded,
            frames_analysed=self._frames_analysed,
            decode_errors=self._decode_errors,
            corrupt_packets=self._corrupt_packets,
            corrupt_frames=self._corrupt_frames,
            decode_cpu_s=self._decode_cpu_s,
            reconnects=self._reconnects,
            callback_errors=self._callback_errors,
            keyframe_only=self._key_only_now,
            keyframe_interval_s=self._policy.keyframe_interval_s,
        )

    def start(self) -> None:
        """Start the camera thread (daemon: a stuck FFmpeg call must not keep the process alive)."""
        if self._thread is not None:
            raise RuntimeError(f"camera {self.camera.id} already started")
        self._thread = threading.Thread(target=self.run, name=f"camera-{self.camera.id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the thread to stop and join it; True when it has ended.

        Waits (back-off, realtime pacing) end at once; a read blocked on a silent
        socket returns within PyAV's poll interval (0.5 s); an open in progress
        within ``open_timeout_s``, which the default join timeout covers.
        The container is always closed by the camera thread itself: closing it
        from here while FFmpeg reads from it would be a use-after-free.
        """
        self._stop.set()
        if self._thread is None:
            return True
        if self._thread is threading.current_thread():
            return False  # called from a callback on the camera thread: it ends when the callback returns
        if timeout is None:
            timeout = max(self.ingest.stall_timeout_s, self.ingest.open_timeout_s) + 2.0
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end by itself (a file reaching its end); True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """The camera loop (the thread's body; tests may call it directly with a fake source and clock)."""
        while not self._stop.is_set():
            outcome = self._session()
            if outcome is not _Outcome.RETRY or self._stop.is_set():
                break
            self._wait(self._backoff.next_delay())
            if self._stop.is_set():
                break
            self._reconnects += 1

    # -- one connection -----------------------------------------------------------------------------
    def _default_source(self) -> PacketSource:
        return PyAVSource(self.camera, self.ingest, clock=self._clock, stop_event=self._stop)

    def _session(self) -> _Outcome:
        try:
            source = self._factory()
        except Exception as exc:
            return self._internal_error(exc)
        try:
            try:
                info = source.open()
            except SourceError as exc:
                if self._stop.is_set():
                    return _Outcome.STOPPED
                self._set_state(CameraState.DOWN, str(exc))
                return _Outcome.FINISHED if exc.permanent else _Outcome.RETRY
            self._call_tap("opened", info)
            try:
                return self._pump(source, info)
            finally:
                down = self._status is not None and self._status.state is CameraState.DOWN
                self._call_tap("closed", self._status.reason if down and self._status else "camera stopped")
        except Exception as exc:
            return self._internal_error(exc)
        finally:
            try:
                source.close()
            except Exception as exc:
                log.warning("camera %s: close failed: %s", self.camera.id, redact_text(str(exc)))

    def _internal_error(self, exc: Exception) -> _Outcome:
        # A bug must cost one camera a reconnect, never the worker; the traceback goes to the (redacting) log.
        log.error("camera %s: internal error: %s", self.camera.id, redact_text(repr(exc)), exc_info=True)
        self._set_state(CameraState.DOWN, f"internal error: {type(exc).__name__}")
        return _Outcome.RETRY

    def _pump(self, source: PacketSource, info: StreamInfo) -> _Outcome:
        now = self._clock.monotonic()
        expected = min(self.camera.analysis_fps, info.fps) if info.fps else self.camera.analysis_fps
        window = max(self._health_window_s, 3.0 / expected)
        sess = _Session(info=info, opened_at=now, progress_at=now, health_window_s=window, expected_fps=expected)
        self._sampler.reset()
        self._policy.reset()
        self._input_meter = _RateMeter(window)
        self._analysed_meter = _RateMeter(window)
        stall_s = self.ingest.stall_timeout_s
        while not self._stop.is_set():
            try:
                packet = source.read()
            except SourceError as exc:
                if self._stop.is_set():
                    return _Outcome.STOPPED  # the read was cut short for stop(): not a camera fault
                self._set_state(CameraState.DOWN, f"stalled: {exc}" if isinstance(exc, SourceStalled) else str(exc))
                return _Outcome.RETRY
            if packet is None:
                return self._end_of_stream(source, sess)
            self._handle_packet(source, packet, sess)
            now = self._clock.monotonic()
            if now - sess.progress_at > stall_s:
                self._set_state(
                    CameraState.DOWN, f"stalled: no frames for {now - sess.progress_at:.1f} s{self._damage()}"
                )
                return _Outcome.RETRY
            if now >= sess.next_health_at:
                self._evaluate_health(sess, now)
        return _Outcome.STOPPED

    def _end_of_stream(self, source: PacketSource, sess: _Session) -> _Outcome:
        if not sess.key_only and sess.primed:
            # frames held back by the decoder (B-frame reordering) come out on drain
            for image in self._timed_decode(source, None):
                self._on_decoded(image, sess, sample=True)
        if sess.info.live:
            self._set_state(CameraState.DOWN, "stream ended by server")
            return _Outcome.RETRY
        if sess.delivered == 0:
            self._set_state(CameraState.DOWN, f"{END_OF_STREAM}: no decodable frames{self._damage()}")
        else:
            self._set_state(CameraState.DOWN, f"{END_OF_STREAM}{self._damage()}")
        return _Outcome.FINISHED

    def _damage(self) -> str:
        parts = []
        if self._decode_errors:
            parts.append(f"{self._decode_errors} packets could not be decoded")
        if self._corrupt_frames:
            parts.append(f"{self._corrupt_frames} corrupt frames skipped")
        return f" ({', '.join(parts)})" if parts else ""

    def _call_tap(self, what: str, arg: object) -> None:
        if self._tap is None:
            return
        try:
            getattr(self._tap, what)(arg)
        except Exception as exc:
            self._callback_errors += 1
            log.error("camera %s: packet tap %s failed: %s", self.camera.id, what, redact_text(repr(exc)))

    def _handle_packet(self, source: PacketSource, packet: SourcePacket, sess: _Session) -> None:
        if self._tap is not None:
            self._call_tap("packet", packet)
        now = self._clock.monotonic()
        self._packets_read += 1
        self._input_meter.add(now)
        if packet.corrupt:
            self._corrupt_packets += 1
        pts = packet.pts_s if packet.pts_s is not None else self._estimate_pts(sess)
        if packet.keyframe:
            self._key_packets_read += 1
            self._policy.observe(True, pts)
            key_only = self._policy.keyframe_only()
            if key_only and not sess.key_only and sess.primed:
                # leaving full decoding: release frames the decoder still holds before it sees only key frames
                for image in self._timed_decode(source, None):
                    self._on_decoded(image, sess, sample=True)
            sess.key_only = key_only
            self._key_only_now = key_only
            sess.primed = True
        if not sess.primed:
            return  # no key frame yet on this connection: non-key packets would only decode to errors
        if sess.key_only:
            if not packet.keyframe:
                return  # never decoded: this is the whole point of key-frame-only mode
            if not self._sampler.take(pts):
                sess.progress_at = now  # key frames are arriving; we just do not need this one
                return
            images = self._timed_decode(source, packet)
            if not images:
                # a decoder with reordering delay holds the picture back: drain it (and reset) now
                images = self._timed_decode(source, None)
            for image in images:
                self._on_decoded(image, sess, sample=False, fallback_pts=pts)
            return
        for image in self._timed_decode(source, packet):
            self._on_decoded(image, sess, sample=True)

    def _timed_decode(self, source: PacketSource, packet: SourcePacket | None) -> list[DecodedImage]:
        t0 = time.thread_time()
        try:
            if packet is not None:
                self._packets_decoded += 1
            return source.decode(packet)
        except DecodeError as exc:
            self._decode_errors += 1
            if self._decode_errors in (1, 10, 100) or self._decode_errors % 1000 == 0:
                log.warning("camera %s: %s (%d so far)", self.camera.id, redact_text(str(exc)), self._decode_errors)
            return []
        finally:
            self._decode_cpu_s += time.thread_time() - t0

    def _on_decoded(
        self, image: DecodedImage, sess: _Session, *, sample: bool, fallback_pts: float | None = None
    ) -> None:
        now = self._clock.monotonic()
        self._frames_decoded += 1
        if image.keyframe:
            self._key_frames_decoded += 1
        if image.corrupt:
            # FFmpeg concealed lost/damaged data with smeared blocks: analysing it invites false alarms,
            # and it is no proof the stream works, so it neither feeds the sampler nor the watchdog
            self._corrupt_frames += 1
            return
        sess.progress_at = now
        pts = image.pts_s if image.pts_s is not None else fallback_pts
        if pts is None:
            pts = self._estimate_pts(sess)
        sess.last_pts = pts if sess.last_pts is None else max(sess.last_pts, pts)
        if sample and not self._sampler.take(pts):
            return
        t0 = time.thread_time()
        try:
            bgr = image.to_bgr()
        except Exception as exc:
            self._decode_errors += 1
            log.warning("camera %s: frame conversion failed: %s", self.camera.id, redact_text(str(exc)))
            return
        finally:
            self._decode_cpu_s += time.thread_time() - t0
        captured_at = self._clock.now()
        frame = Frame(
            camera_id=self.camera.id,
            seq=sess.seq,
            captured_at=captured_at,
            pts_s=pts,
            keyframe=image.keyframe,
            image=bgr,
        )
        sess.seq += 1
        sess.delivered += 1
        self._frames_analysed += 1
        self._analysed_meter.add(now)
        self._last_frame_at = captured_at
        if sess.delivered == 1:
            self._backoff.reset()  # this connection works: the next failure starts the back-off afresh
            self._set_state(CameraState.UP, "frames flowing", sess, now)
            sess.next_health_at = now + sess.health_window_s
        try:
            self._on_frame(frame)
        except Exception as exc:
            self._callback_errors += 1
            log.error("camera %s: on_frame failed: %s", self.camera.id, redact_text(repr(exc)), exc_info=True)
        # Time the consumer held the frame (a file replayed with back-pressure) is not the stream's silence.
        sess.progress_at = self._clock.monotonic()

    def _estimate_pts(self, sess: _Session) -> float:
        """A timestamp for a packet or frame without one: one frame after the last."""
        step = 1.0 / sess.info.fps if sess.info.fps else 1.0 / self.camera.analysis_fps
        return 0.0 if sess.last_pts is None else sess.last_pts + step

    # -- health -------------------------------------------------------------------------------------
    def _evaluate_health(self, sess: _Session, now: float) -> None:
        sess.next_health_at = now + 0.5
        if sess.delivered == 0 or now - sess.opened_at < sess.health_window_s:
            return
        expected = sess.expected_fps
        interval = self._policy.keyframe_interval_s
        if sess.key_only and interval:
            expected = min(expected, 1.0 / interval)
        analysed = self._analysed_meter.rate(now, sess.opened_at)
        if analysed < self.ingest.degraded_ratio * expected:
            self._set_state(
                CameraState.DEGRADED,
                f"analysing {analysed:.2f} fps, expected {expected:.2f} fps",
                sess,
                now,
            )
        else:
            self._set_state(CameraState.UP, "frames flowing", sess, now)

    def _set_state(
        self, state: CameraState, reason: str, sess: _Session | None = None, now: float | None = None
    ) -> None:
        if self._status is not None and self._status.state == state:
            return
        if now is None:
            now = self._clock.monotonic()
        since = sess.opened_at if sess is not None else now
        change = StatusChange(
            camera_id=self.camera.id,
            state=state,
            reason=redact_text(reason),
            input_fps=round(self._input_meter.rate(now, since), 3) if sess is not None else 0.0,
            analysed_fps=round(self._analysed_meter.rate(now, since), 3) if sess is not None else 0.0,
            last_frame_at=self._last_frame_at,
            reconnects=self._reconnects,
            at=self._clock.now(),
        )
        self._status = change
        level = logging.INFO if state is CameraState.UP else logging.WARNING
        log.log(level, "camera %s is %s: %s", self.camera.id, state.value, change.reason)
        try:
            self._on_status(change)
        except Exception as exc:
            self._callback_errors += 1
            log.error("camera %s: on_status failed: %s", self.camera.id, redact_text(repr(exc)), exc_info=True)

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if isinstance(self._clock, SystemClock):
            self._stop.wait(seconds)  # a stop request ends the wait at once
        else:
            self._clock.sleep(seconds)
