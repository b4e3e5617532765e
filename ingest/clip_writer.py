"""Remux ring packets into MP4 without re-encoding: crash-tolerant while recording, faststart when done.

Two files per clip, because a clip must survive the worker dying mid-way and
still play well in a browser once finished:

* while recording, packets go to ``<name>.part`` as *fragmented* MP4 (a
  fragment per key frame, header first): everything up to the last complete
  fragment stays readable if the process is killed;
* when the clip is done, :func:`finalize` remuxes the part file into a plain
  MP4 with the index at the front (``movflags=faststart``) so a ``<video>``
  element can start and seek at once, and hashes it.

Neither step decodes or encodes a picture: packets are copied with new
timestamps (shifted so the clip starts at 0), which costs a few milliseconds
per minute of video. The codec parameters come from a
:class:`CodecTemplate` taken when the connection opened, so a clip can be
written after the camera's input container has gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from ingest.packet_ring import RingPacket

log = logging.getLogger(__name__)

FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
FASTSTART = {"movflags": "+faststart"}
PART_PROBE = {"probesize": "32", "analyzeduration": "0", "fpsprobesize": "0", "skip_frame": "all"}
"""Opening a part file: its codec parameters are in the header we wrote. By default opening also decodes
pictures to probe the stream (``skip_frame`` reaches that probe's decoder), which cost about half of a clip's
finishing CPU for nothing: only packets are copied, and the remuxed bytes are the same either way."""


class ClipWriteError(RuntimeError):
    """A clip could not be written or read back (the message names the file, never a stream URL)."""


class CodecTemplate:
    """The codec parameters of one connection's video stream, detached from its input container.

    ``add_stream_from_template`` copies the parameters at call time into a
    stream of a never-written in-memory container; clip writers copy them from
    there, on any thread, whenever they start.
    """

    def __init__(self, stream: Any) -> None:
        self._holder = av.open(io.BytesIO(), "w", format="mp4")
        self.stream = self._holder.add_stream_from_template(stream)
        self.time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90_000)
        self.codec = str(stream.codec_context.name)


@dataclass(frozen=True, slots=True)
class ClipFacts:
    """What a finished clip file holds: the bytes' identity and the time it covers."""

    path: Path
    data: bytes = field(repr=False)
    size: int
    sha256: str
    packets: int
    first_is_keyframe: bool
    duration_s: float


class ClipWriter:
    """Writes one clip's packets to a fragmented MP4 part file as they arrive."""

    def __init__(self, path: Path, template: CodecTemplate) -> None:
        self.path = path
        self.time_base = template.time_base
        self._file = path.open("wb")
        try:
            self._out = av.open(self._file, "w", format="mp4", options=FRAGMENTED)
            self._stream = self._out.add_stream_from_template(template.stream)
        except Exception:
            self._file.close()
            raise
        self._origin: int | None = None
        self._last_dts: int | None = None
        self.packets = 0
        self.bytes = 0
        self.first: RingPacket | None = None
        self.last: RingPacket | None = None
        self.closed = False

    def add(self, pkt: RingPacket) -> None:
        """Mux one packet; packets before the first key frame are skipped (a clip starts on a key frame)."""
        if self.closed:
            return
        if self._origin is None:
            if not pkt.keyframe:
                return
            start = pkt.dts if pkt.dts is not None else pkt.pts
            self._origin = start if start is not None else 0
            self.first = pkt
        pts = pkt.pts if pkt.pts is not None else pkt.dts
        dts = pkt.dts if pkt.dts is not None else pts
        if pts is None or dts is None:
            return  # no timing at all: cannot be placed in the clip
        dts -= self._origin
        pts -= self._origin
        if self._last_dts is not None and dts <= self._last_dts:
            dts = self._last_dts + 1  # the muxer refuses non-increasing dts (camera clock glitches)
        pts = max(pts, dts)
        packet = av.Packet(pkt.data)
        packet.pts, packet.dts, packet.duration = pts, dts, pkt.duration
        packet.time_base = self.time_base
        packet.is_keyframe = pkt.keyframe
        packet.stream = self._stream
        try:
            self._out.mux(packet)
        except (av.error.FFmpegError, ValueError) as exc:
            log.warning("clip %s: packet not muxed: %s", self.path.name, exc)
            return
        self._last_dts = dts
        self.packets += 1
        self.bytes += len(pkt.data)
        self.last = pkt

    @property
    def span_s(self) -> float:
        """Stream seconds from the first to the last packet written."""
        if self.first is None or self.last is None:
            return 0.0
        return max(0.0, self.last.pts_s - self.first.pts_s)

    def close(self) -> None:
        """Write the last fragment and close the part file (safe to call twice)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._out.close()
        except (av.error.FFmpegError, ValueError) as exc:
            log.warning("clip %s: closing failed: %s", self.path.name, exc)
        finally:
            self._file.close()


def finalize(part: Path, out: Path) -> ClipFacts:
    """Remux a (possibly truncated) part file into a faststart MP4 at ``out`` and describe it.

    Reads packets until the end or the first damaged fragment (a part file
    cut by a crash), so the same call finishes a clip and salvages one.
    Raises :class:`ClipWriteError` when not a single packet can be read.
    """
    try:
        src = av.open(str(part), options=PART_PROBE)
    except (av.error.FFmpegError, OSError) as exc:
        raise ClipWriteError(f"clip {part.name} is unreadable: {exc}") from None
    packets = 0
    first_key = False
    first_ts: float | None = None
    end_ts = 0.0
    try:
        if not src.streams.video:
            raise ClipWriteError(f"clip {part.name} has no video")
        vs = src.streams.video[0]
        tb = float(vs.time_base or Fraction(1, 90_000))
        dst = av.open(str(out), "w", format="mp4", options=FASTSTART)
        try:
            ostream = dst.add_stream_from_template(vs)
            demux = src.demux(vs)
            while True:
                try:
                    pkt = next(demux)
                except StopIteration:
                    break
                except (av.error.FFmpegError, OSError) as exc:
                    log.warning("clip %s: stops at a damaged fragment: %s", part.name, exc)
                    break
                if pkt.size == 0 or pkt.dts is None:
                    continue
                if packets == 0:
                    first_key = bool(pkt.is_keyframe)
                ts = float(pkt.pts if pkt.pts is not None else pkt.dts) * tb
                first_ts = ts if first_ts is None else min(first_ts, ts)
                end_ts = max(end_ts, ts + float(pkt.duration or 0) * tb)
                pkt.stream = ostream
                dst.mux(pkt)
                packets += 1
        finally:
            if packets:
                dst.close()
            else:
                with contextlib.suppress(av.error.FFmpegError, ValueError, OSError):
                    dst.close()  # nothing was written: closing is only cleanup
    finally:
        src.close()
    if packets == 0:
        out.unlink(missing_ok=True)
        raise ClipWriteError(f"clip {part.name} holds no readable packet")
    data = out.read_bytes()  # read once: hashed here, handed to the outbox by the caller
    return ClipFacts(
        path=out,
        data=data,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        packets=packets,
        first_is_keyframe=first_key,
        duration_s=max(0.0, end_ts - (first_ts or 0.0)),
    )
