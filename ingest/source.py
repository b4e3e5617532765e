"""Packet sources: the narrow seam between a camera and the decoding loop.

The runner (:mod:`ingest.camera`) needs only five things from a stream: open
it, read the next compressed packet, decode a packet, drain/reset the decoder,
close it. Keeping that surface small (the "bytewax source" style) lets unit
tests drive every fault (refused connection, stall, corrupt packet, abort)
through a fake source with no FFmpeg at all, and lets the real implementation
stay a thin layer over PyAV.

Why demux and decode are separate calls: key-frame-only mode must see every
packet's key flag *without* decoding it, and must never hand non-key packets to
the decoder. PyAV's ``container.demux()`` gives exactly that.

Credentials: :class:`PyAVSource` builds the real URL (``user:password@``) from
``CameraConfig.url`` plus ``resolve_secret(credentials)`` only inside
:meth:`PyAVSource.open`, keeps it in a local variable, and every message it
raises goes through :func:`core.redact.redact_text` plus an explicit scrub of
the secret's raw and URL-encoded forms (a password containing ``@`` or ``/``
could defeat a pattern-based redactor on its own).

Why one module over 400 lines: :class:`PyAVSource` wraps one PyAV container end to end (open with
timeouts, demux, key-frame-only decode, stall detection, error wording); the helpers around it are small
and used only by it.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import av
import av.error
import numpy as np
import numpy.typing as npt

from core.clock import Clock, SystemClock
from core.config import CameraConfig, ConfigError, IngestConfig, resolve_secret
from core.redact import redact_text, redact_url

log = logging.getLogger(__name__)

LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})


class SourceError(Exception):
    """A stream problem with an operator-readable, already-redacted message.

    ``permanent`` means retrying cannot help (a local file that is not video);
    the runner then reports the camera down and stops instead of reconnecting.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class SourceOpenError(SourceError):
    """The stream could not be opened (refused, unreachable, unauthorised, not video)."""


class SourceStalled(SourceError):
    """The connection is open but delivered no data within the read timeout."""


class SourceReadError(SourceError):
    """Reading the next packet failed (connection reset, I/O error)."""


class DecodeError(SourceError):
    """One packet could not be decoded; live streams produce these, the runner counts and goes on."""


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What the runner needs to know about an opened stream."""

    codec: str
    width: int
    height: int
    fps: float | None  # nominal frame rate from the container, None when unknown
    live: bool  # network stream (reconnect on end) vs file (end of stream is final unless looping)
    stream: Any = field(default=None, repr=False, compare=False)  # PyAV's input stream: codec template for clips


@dataclass(slots=True)
class SourcePacket:
    """One compressed video packet. ``raw`` is the implementation's packet, opaque to the runner."""

    pts_s: float | None
    keyframe: bool
    size: int
    corrupt: bool = False
    raw: Any = None


class DecodedImage(Protocol):
    """A decoded picture, converted to BGR only if the sampler wants it (conversion costs CPU too)."""

    pts_s: float | None
    keyframe: bool
    corrupt: bool  # the decoder concealed errors in it (lost or damaged data): not worth analysing

    def to_bgr(self) -> npt.NDArray[np.uint8]: ...


@dataclass(slots=True)
class PyAVImage:
    """A decoded PyAV frame, converted lazily with ``to_ndarray(format='bgr24')``."""

    pts_s: float | None
    keyframe: bool
    corrupt: bool
    frame: av.VideoFrame = field(repr=False)

    def to_bgr(self) -> npt.NDArray[np.uint8]:
        # sws_scale runs with the GIL released, like decoding itself.
        image = self.frame.to_ndarray(format="bgr24")
        return np.asarray(image, dtype=np.uint8)


@runtime_checkable
class PacketSource(Protocol):
    """The narrow interface a camera runner drives. One instance serves one connection."""

    def open(self) -> StreamInfo:
        """Connect and probe the stream. Raises :class:`SourceOpenError`."""
        ...

    def read(self) -> SourcePacket | None:
        """The next video packet, or ``None`` at end of stream.

        Raises :class:`SourceStalled` (no data within the read timeout) or :class:`SourceReadError`.
        """
        ...

    def decode(self, packet: SourcePacket | None) -> list[DecodedImage]:
        """Decode one packet (``None`` drains the decoder, after which it is reset). Raises :class:`DecodeError`."""
        ...

    def reset_decoder(self) -> None:
        """Forget decoder state, so the next packet fed must be a key frame."""
        ...

    def close(self) -> None:
        """Release the connection; safe to call twice."""
        ...


def is_live_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() in LIVE_SCHEMES


def file_path_of(url: str) -> Path:
    """The local path of a file source (a plain path or a ``file://`` URL)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    return Path(url)


class _Scrubber:
    """Removes the raw and URL-encoded forms of a secret from any text, then applies URL redaction."""

    def __init__(self, secrets: list[str]) -> None:
        forms: set[str] = set()
        for s in secrets:
            if s:
                forms.update({s, quote(s, safe="")})
        # longest first, so a substring never leaves the rest of a longer form visible
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, "***")
        return redact_text(text)


def build_stream_url(camera: CameraConfig) -> tuple[str, _Scrubber]:
    """The URL to hand to FFmpeg (credentials included) and a scrubber for messages that may echo it.

    Called only at open time, so the secret lives for the duration of one
    ``av.open`` call and is never stored on an object that might be logged.
    """
    if camera.credentials is None:
        return camera.url, _Scrubber([])
    try:
        secret = resolve_secret(camera.credentials).get_secret_value()
    except ConfigError as exc:
        raise SourceOpenError(f"credentials unavailable: {exc}") from None
    user, sep, password = secret.partition(":")
    parts = urlsplit(camera.url)
    userinfo = quote(user, safe="") + (":" + quote(password, safe="") if sep else "")
    netloc = f"{userinfo}@{parts.netloc}"
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url, _Scrubber([secret, password, userinfo])


def _ffmpeg_reason(exc: BaseException) -> str:
    """The FFmpeg error text without the filename PyAV appends (the filename is the URL)."""
    if isinstance(exc, av.error.FFmpegError):
        return str(exc.strerror or type(exc).__name__)
    return f"{type(exc).__name__}: {exc}"


class PyAVSource:
    """RTSP/HTTP streams and local files through PyAV (FFmpeg).

    Network streams: RTSP over TCP (interleaved; UDP loses packets behind NAT
    and firewalls and gives no clean stall signal), FFmpeg socket timeout and
    PyAV's ``timeout=(open_s, read_s)``: the read timeout is the stall
    watchdog's first line: PyAV's interrupt callback aborts a blocked
    ``av_read_frame`` after ``read_timeout_s`` without data, which we raise as
    :class:`SourceStalled`.

    Files: a path or ``file://`` URL; ``loop`` seeks back to the start at the
    end and keeps presentation times increasing (rules measure durations in
    stream time); ``realtime`` paces packets at their timestamps so a replay
    behaves like a camera.

    The decoder runs single-threaded: cameras are already decoded in parallel
    (one thread each, GIL released inside FFmpeg), frame threading would add
    latency (a frame comes out only after N more go in), and
    ``time.thread_time()`` can only measure decode CPU honestly if the work
    happens on the calling thread.

    Why reads are polled (``poll_s`` = 0.5 s) rather than given the whole stall
    timeout: FFmpeg's H.264 parser holds the newest frame until the next one
    starts, and releases it only when a read fails, so a single long timeout
    detects a stall after *two* timeouts; and a read blocked for the whole
    timeout would also delay ``stop()`` by as much. An interrupted wait on a
    silent socket has consumed no bytes, so re-issuing the read is safe.
    """

    _POLL_S = 0.5

    def __init__(
        self,
        camera: CameraConfig,
        ingest: IngestConfig,
        *,
        clock: Clock | None = None,
        stop_event: threading.Event | None = None,
        read_timeout_s: float | None = None,
    ) -> None:
        self._camera = camera
        self._ingest = ingest
        self._clock = clock or SystemClock()
        self._stop = stop_event or threading.Event()
        self._read_timeout_s = read_timeout_s if read_timeout_s is not None else ingest.stall_timeout_s
        # PyAV's interrupt deadline for one blocking read; reads are re-issued until read_timeout_s of silence
        self._poll_s = min(self._POLL_S, self._read_timeout_s)
        self._last_data_at = 0.0
        self._live = is_live_url(camera.url)
        self.display_url = redact_url(camera.url)
        self._scrub = _Scrubber([])
        self._container: av.container.InputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._packets: Iterator[Any] | None = None
        self._time_base: float = 1.0
        self._synth_ts = 0
        self._untimed_pending: list[float] = []  # times of untimed packets inside the decoder (a min-heap)
        # loop replay: offset added to every timestamp, and the largest end time seen in the current pass
        self._offset_s = 0.0
        self._pass_end_s = 0.0
        self._frame_dur_s = 0.04
        # realtime pacing: wall time and stream time of the first packet
        self._pace_origin: tuple[float, float] | None = None

    # -- PacketSource ---------------------------------------------------------------------------
    def open(self) -> StreamInfo:
        url, self._scrub = build_stream_url(self._camera)
        try:
            if self._live:
                self._container = self._open_live(url)
            else:
                self._container = self._open_file(url)
        finally:
            del url
        try:
            if not self._container.streams.video:
                raise SourceOpenError("input has no video stream", permanent=not self._live)
            stream = self._container.streams.video[0]
            if stream.codec_context is None:
                raise SourceOpenError(f"no decoder for codec of {self.display_url}", permanent=not self._live)
            stream.codec_context.thread_count = 1
            self._stream = stream
            self._time_base = float(stream.time_base) if stream.time_base else 1.0 / 90_000
            # guessed_rate (av_guess_frame_rate) is right where average_rate falls back to 25 (raw H.264)
            rate = stream.guessed_rate or stream.average_rate or stream.base_rate
            fps = float(rate) if rate else None
            if fps:
                self._frame_dur_s = 1.0 / fps
            self._packets = self._container.demux(stream)
            self._last_data_at = self._clock.monotonic()
            return StreamInfo(
                codec=stream.codec_context.name,
                width=int(stream.codec_context.width),
                height=int(stream.codec_context.height),
                fps=fps,
                live=self._live,
                stream=stream,
            )
        except SourceError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise SourceOpenError(self._scrub(f"cannot use stream: {_ffmpeg_reason(exc)}")) from None

    def read(self) -> SourcePacket | None:
        if self._packets is None or self._stream is None:
            raise SourceReadError("source is not open")
        while True:
            try:
                packet = next(self._packets)
            except StopIteration:
                if not self._live and self._camera.loop and self._rewind():
                    continue
                return None
            except av.error.ExitError:
                # PyAV's interrupt callback aborted a read that waited poll_s without data. Short polls keep
                # stop() prompt on a silent socket; silence is judged over the whole read timeout.
                silent = self._clock.monotonic() - self._last_data_at
                if self._stop.is_set() or silent >= self._read_timeout_s or self._container is None:
                    raise SourceStalled(f"no data for {silent:.1f} s") from None
                self._packets = self._container.demux(self._stream)
                continue
            except av.error.EOFError:
                return None
            except (av.error.FFmpegError, OSError) as exc:
                raise SourceReadError(self._scrub(f"read failed: {_ffmpeg_reason(exc)}")) from None
            if packet.size == 0:
                # PyAV's trailing "flush" packets; the runner drains the decoder itself at EOF.
                continue
            self._last_data_at = self._clock.monotonic()
            raw_ts = packet.pts if packet.pts is not None else packet.dts
            untimed = raw_ts is None
            step = int(packet.duration) if packet.duration else max(1, round(self._frame_dur_s / self._time_base))
            # Raw elementary streams (.h264) carry no timestamps: number packets at the stream's frame
            # duration (decode order); decode() hands these times to frames in display order.
            ts = self._synth_ts if raw_ts is None else int(raw_ts)
            self._synth_ts = max(self._synth_ts, ts + step)
            pts_s = self._seconds(ts)
            if pts_s is not None:
                dur = float(packet.duration) * self._time_base if packet.duration else self._frame_dur_s
                end = pts_s - self._offset_s + dur
                self._pass_end_s = max(self._pass_end_s, end)
            if self._camera.realtime and not self._live:
                self._pace(self._seconds(packet.dts if packet.dts is not None else packet.pts))
            return SourcePacket(
                pts_s=pts_s,
                keyframe=bool(packet.is_keyframe),
                size=int(packet.size),
                corrupt=bool(packet.is_corrupt),
                raw=(packet, untimed),
            )

    def decode(self, packet: SourcePacket | None) -> list[DecodedImage]:
        if self._stream is None:
            raise DecodeError("source is not open")
        ctx = self._stream.codec_context
        raw, untimed = packet.raw if packet is not None else (None, False)
        if untimed and packet is not None and packet.pts_s is not None:
            heapq.heappush(self._untimed_pending, packet.pts_s)
        try:
            frames = ctx.decode(raw)
        except av.error.EOFError:
            frames = []
        except (av.error.FFmpegError, ValueError) as exc:
            if untimed and packet is not None and packet.pts_s in self._untimed_pending:
                self._untimed_pending.remove(packet.pts_s)
                heapq.heapify(self._untimed_pending)
            raise DecodeError(self._scrub(f"decode failed: {_ffmpeg_reason(exc)}")) from None
        out: list[DecodedImage] = []
        for frame in frames:
            if frame.pts is not None:
                pts_s = self._seconds(frame.pts)
            elif self._untimed_pending:
                # frames leave the decoder in display order: the earliest outstanding packet time is theirs
                pts_s = heapq.heappop(self._untimed_pending)
            else:
                pts_s = None
            out.append(
                PyAVImage(pts_s=pts_s, keyframe=bool(frame.key_frame), corrupt=bool(frame.is_corrupt), frame=frame)
            )
        if packet is None:
            # after draining, FFmpeg's decoder accepts packets again only once flushed
            ctx.flush_buffers()
            self._untimed_pending.clear()
        return out

    def reset_decoder(self) -> None:
        if self._stream is not None:
            self._stream.codec_context.flush_buffers()
        self._untimed_pending.clear()

    def close(self) -> None:
        container, self._container = self._container, None
        self._packets = None
        self._stream = None
        if container is not None:
            try:
                container.close()
            except Exception as exc:  # closing must never raise into the runner
                log.debug("close of %s failed: %s", self.display_url, self._scrub(str(exc)))

    # -- helpers --------------------------------------------------------------------------------
    def _open_live(self, url: str) -> av.container.InputContainer:
        read_s = self._read_timeout_s
        options = {
            "timeout": str(int(read_s * 1_000_000)),  # socket I/O timeout (µs) for rtsp/http
            # Probe 1 s of stream instead of FFmpeg's 5 s: an RTSP camera's SDP already carries SPS/PPS,
            # and a shorter probe halves the time from (re)connect to the first frame.
            "analyzeduration": "1000000",
        }
        if urlsplit(self._camera.url).scheme.lower() in ("rtsp", "rtsps"):
            options["rtsp_transport"] = "tcp"
        else:
            options["rw_timeout"] = options["timeout"]
        try:
            return av.open(url, container_options=options, timeout=(self._ingest.open_timeout_s, self._poll_s))
        except av.error.ExitError:
            raise SourceOpenError(
                f"open of {self.display_url} timed out after {self._ingest.open_timeout_s:g} s"
            ) from None
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise SourceOpenError(self._scrub(f"cannot open {self.display_url}: {_ffmpeg_reason(exc)}")) from None

    def _open_file(self, url: str) -> av.container.InputContainer:
        path = file_path_of(url)
        if not path.exists():
            raise SourceOpenError(f"file not found: {path}", permanent=True)
        if not path.is_file():
            raise SourceOpenError(f"not a regular file: {path}", permanent=True)
        if path.stat().st_size == 0:
            raise SourceOpenError(f"empty file: {path}", permanent=True)
        try:
            return av.open(str(path))
        except av.error.InvalidDataError:
            raise SourceOpenError(
                f"not a readable video file (not video, truncated or corrupt): {path}", permanent=True
            ) from None
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise SourceOpenError(self._scrub(f"cannot open {path}: {_ffmpeg_reason(exc)}"), permanent=True) from None

    def _seconds(self, ts: int | None) -> float | None:
        if ts is None:
            return None
        return float(ts) * self._time_base + self._offset_s

    def _rewind(self) -> bool:
        """Start the next pass of a looping file; timestamps continue after the previous pass."""
        if self._container is None or self._stream is None:
            return False
        try:
            self._container.seek(0)
        except (av.error.FFmpegError, OSError) as exc:
            log.warning("loop rewind of %s failed: %s", self.display_url, self._scrub(_ffmpeg_reason(exc)))
            return False
        if self._pass_end_s <= 0:
            return False  # an empty pass would loop forever without producing anything
        self._offset_s += self._pass_end_s
        self._pass_end_s = 0.0
        self._synth_ts = 0  # synthesised timestamps restart with the pass; the offset keeps them increasing
        self._stream.codec_context.flush_buffers()
        self._untimed_pending.clear()
        self._packets = self._container.demux(self._stream)
        return True

    def _pace(self, ts_s: float | None) -> None:
        if ts_s is None:
            return
        now = self._clock.monotonic()
        if self._pace_origin is None:
            self._pace_origin = (now, ts_s)
            return
        wall0, ts0 = self._pace_origin
        ahead = (ts_s - ts0) - (now - wall0)
        if ahead > 1.0 / 1000:
            if isinstance(self._clock, SystemClock):
                self._stop.wait(ahead)  # a stop request ends the wait at once
            else:
                self._clock.sleep(ahead)
        elif ahead < -2.0:
            # we fell far behind (slow consumer, suspended process): re-anchor rather than burst
            self._pace_origin = (now, ts_s)
