"""Live view from the pre-roll ring: the camera's newest packets as a fragmented MP4 stream for MSE.

Why from the ring: the worker already holds every compressed packet of the
camera (:mod:`ingest.packet_ring`), so a live viewer costs a remux (a copy of
the bitrate), not a second RTSP connection to the camera nor a decode. The
stream starts at the newest key frame (the least delay that still decodes)
and every frame is its own fragment (``frag_every_frame``), so a browser can
show a frame as soon as it arrives instead of waiting for a whole GOP.

With privacy masks the stream is re-encoded instead (decode, burn the
polygons in, H.264 ``zerolatency``): that is the dispatchers' view, and costs
a decode and an encode per viewer, which is why it exists only on demand.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from typing import Any

import av
import av.error
import numpy as np

from ingest.clip_writer import CodecTemplate
from ingest.masking import Polygon, mask_image
from ingest.packet_ring import PacketRing, RingPacket

LIVE = {"movflags": "empty_moov+default_base_moof+frag_every_frame", "flush_packets": "1"}
POLL_S = 0.02


class _Chunks(io.RawIOBase):
    """A write-only file the muxer writes into; what it wrote is taken out after each packet."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._buf += bytes(b)
        return len(b)

    def take(self) -> bytes:
        out = bytes(self._buf)
        self._buf.clear()
        return out


def mime_type(template: CodecTemplate) -> str:
    """The MSE type of the stream (``video/mp4; codecs="avc1.PPCCLL"``) from the H.264 parameters (avcC)."""
    extra = bytes(template.stream.codec_context.extradata or b"")
    if template.codec == "h264" and len(extra) >= 4 and extra[0] == 1:
        return f'video/mp4; codecs="avc1.{extra[1:4].hex()}"'
    return 'video/mp4; codecs="avc1.42e01e"'  # Annex-B extradata or none: baseline is what a re-encode makes


def live_fmp4(
    ring: PacketRing,
    template: CodecTemplate,
    masks: Sequence[Polygon] = (),
    *,
    alive: Callable[[], bool] = lambda: True,
    idle_s: float = 10.0,
) -> Iterator[bytes]:
    """Yield fMP4 bytes (init segment, then a fragment per frame) for as long as the camera sends and ``alive``.

    Ends when the ring is reset (the camera reconnected: new codec parameters
    need a new stream), when no packet came for ``idle_s``, or when ``alive``
    says the viewer is gone.
    """
    sink = _Chunks()
    out = av.open(sink, "w", format="mp4", options=LIVE)
    encoder = _MaskingEncoder(out, template, masks) if masks else None
    stream = encoder.stream if encoder is not None else out.add_stream_from_template(template.stream)
    generation = ring.generation
    position: int | None = None
    origin: int | None = None
    last_dts: int | None = None
    last_packet = time.monotonic()
    closed = False
    try:
        while alive() and ring.generation == generation and time.monotonic() - last_packet < idle_s:
            position, packets = ring.after(position)
            if not packets:
                time.sleep(POLL_S)
                continue
            last_packet = time.monotonic()
            for pkt in packets:
                if encoder is not None:
                    encoder.add(pkt, template.time_base)
                else:
                    origin, last_dts = _remux(out, stream, pkt, template.time_base, origin, last_dts)
                data = sink.take()
                if data:
                    yield data
        if encoder is not None:
            encoder.flush()
        out.close()
        closed = True
        tail = sink.take()  # the last fragment
        if tail:
            yield tail
    finally:
        if not closed:
            with contextlib.suppress(av.error.FFmpegError, ValueError):
                out.close()  # the viewer is gone: the tail of the stream has no reader


def _remux(
    out: Any, stream: Any, pkt: RingPacket, tb: Fraction, origin: int | None, last_dts: int | None
) -> tuple[int | None, int | None]:
    """Mux one packet with timestamps shifted to start at 0 (as :class:`~ingest.clip_writer.ClipWriter` does)."""
    pts = pkt.pts if pkt.pts is not None else pkt.dts
    dts = pkt.dts if pkt.dts is not None else pts
    if pts is None or dts is None or (origin is None and not pkt.keyframe):
        return origin, last_dts
    origin = dts if origin is None else origin
    dts, pts = dts - origin, pts - origin
    if last_dts is not None and dts <= last_dts:
        dts = last_dts + 1
    packet = av.Packet(pkt.data)
    packet.pts, packet.dts, packet.duration = max(pts, dts), dts, pkt.duration
    packet.time_base = tb
    packet.is_keyframe = pkt.keyframe
    packet.stream = stream
    out.mux(packet)
    return origin, dts


class _MaskingEncoder:
    """Decode, burn the masks in, re-encode (H.264 baseline, zero latency): the masked live view."""

    def __init__(self, out: Any, template: CodecTemplate, masks: Sequence[Polygon]) -> None:
        self._out = out
        self._masks = list(masks)
        self._decoder: Any = av.CodecContext.create(template.codec, "r")  # a video decoder
        self._decoder.extradata = template.stream.codec_context.extradata
        ctx = template.stream.codec_context
        self.stream = out.add_stream("libx264", rate=25)
        self.stream.width, self.stream.height = int(ctx.width), int(ctx.height)
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.time_base = Fraction(1, 1000)  # frame times in ms: camera jitter stays distinct
        self.stream.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline", "g": "25"}
        self._t0: float | None = None
        self._last_ms = -1

    def add(self, pkt: RingPacket, tb: Fraction) -> None:
        packet = av.Packet(pkt.data)
        packet.pts, packet.dts, packet.time_base = pkt.pts, pkt.dts, tb
        try:
            frames = self._decoder.decode(packet)
        except av.error.FFmpegError:
            return  # a damaged packet: the next key frame recovers
        for frame in frames:
            self._t0 = pkt.pts_s if self._t0 is None else self._t0
            picture = mask_image(np.asarray(frame.to_ndarray(format="bgr24")), self._masks)
            masked = av.VideoFrame.from_ndarray(picture, "bgr24")
            ms = max(self._last_ms + 1, round((pkt.pts_s - self._t0) * 1000))
            masked.pts, masked.time_base = ms, Fraction(1, 1000)
            self._last_ms = ms
            for encoded in self.stream.encode(masked):
                self._out.mux(encoded)

    def flush(self) -> None:
        """Mux what the encoder still holds (the stream is ending)."""
        for encoded in self.stream.encode(None):
            self._out.mux(encoded)
