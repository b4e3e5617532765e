"""Check that a local file is usable video before a camera (demo, benchmark, replay) is built on it.

A camera runner already copes with bad files (it reports the camera down with
a reason and does not crash); this helper gives the operator the same verdict
up front, as one exception with a clear message, e.g. from ``kuzet demo
--clip`` or a benchmark's set-up, instead of a camera that goes down later.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from ingest.source import file_path_of


class ProbeError(ValueError):
    """The file is missing, not video, or its video cannot be decoded."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    path: Path
    codec: str
    width: int
    height: int
    fps: float | None
    duration_s: float | None
    keyframe_interval_s: float | None  # from the first key frames seen, None if only one was seen
    frames_decoded: int


def probe_video(source: str | Path, *, max_packets: int = 400) -> ProbeResult:
    """Open ``source`` (a path or ``file://`` URL), decode its first frames and describe the stream.

    Reads at most ``max_packets`` video packets; raises :class:`ProbeError` when
    the file does not exist, is empty, is not a media file, has no video
    stream, or yields no cleanly decoded frame within those packets.
    """
    path = file_path_of(str(source))
    if not path.is_file():
        raise ProbeError(f"video file not found: {path}")
    if path.stat().st_size == 0:
        raise ProbeError(f"video file is empty: {path}")
    try:
        container = av.open(str(path))
    except av.error.InvalidDataError:
        raise ProbeError(f"not a readable video file (not video, truncated or corrupt): {path}") from None
    except (av.error.FFmpegError, OSError) as exc:
        raise ProbeError(f"cannot open {path}: {getattr(exc, 'strerror', None) or exc}") from None
    with container:
        if not container.streams.video:
            raise ProbeError(f"no video stream in {path}")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        rate = stream.guessed_rate or stream.average_rate
        time_base = float(stream.time_base) if stream.time_base else None
        duration = float(container.duration) / 1_000_000 if container.duration else None
        decoded = 0
        errors = 0
        key_pts: list[float] = []
        try:
            for n, packet in enumerate(container.demux(stream)):
                if n >= max_packets:
                    break
                if packet.is_keyframe and packet.pts is not None and time_base:
                    key_pts.append(float(packet.pts) * time_base)
                try:
                    frames = ctx.decode(packet)
                except av.error.FFmpegError:
                    errors += 1
                    continue
                decoded += sum(1 for f in frames if not f.is_corrupt)
                if decoded >= 1 and len(key_pts) >= 3:
                    break
        except av.error.FFmpegError as exc:
            raise ProbeError(f"reading {path} failed: {exc.strerror or type(exc).__name__}") from None
        if decoded == 0:
            detail = f" ({errors} packets failed to decode)" if errors else ""
            raise ProbeError(f"no decodable video frame in the first {max_packets} packets of {path}{detail}")
        gaps = [b - a for a, b in itertools.pairwise(key_pts) if b > a]
        return ProbeResult(
            path=path,
            codec=ctx.name,
            width=int(ctx.width),
            height=int(ctx.height),
            fps=float(rate) if rate else None,
            duration_s=duration,
            keyframe_interval_s=max(gaps) if gaps else None,
            frames_decoded=decoded,
        )
