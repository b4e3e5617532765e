"""Live view from the ring: the newest packets as fragmented MP4, starting on a key frame, masked on demand."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from ingest.clip_writer import CodecTemplate
from ingest.live_stream import live_fmp4, mime_type
from ingest.packet_ring import PacketRing, RingPacket
from tests.unit.test_evidence_clips import pkt

MASK = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]  # top-left quarter


def test_ring_after_follows_new_packets_and_restarts_at_the_newest_key_frame() -> None:
    ring = PacketRing(pre_roll_s=3.0, max_bytes=10_000_000)
    for i in range(25):
        ring.push(pkt(i / 10, i % 10 == 0))
    pos, first = ring.after(None)
    assert first[0].keyframe and first[0].pts_s == 2.0 and len(first) == 5  # newest GOP only
    ring.push(pkt(2.5, False))
    pos2, more = ring.after(pos)
    assert [p.pts_s for p in more] == [2.5] and ring.after(pos2)[1] == []
    gen = ring.generation
    ring.reset()
    assert ring.generation == gen + 1 and ring.after(None)[1] == []


def _feed(path: Path, jitter_s: float = 0.0) -> tuple[CodecTemplate, list[RingPacket]]:
    with av.open(str(path)) as src:
        vs = src.streams.video[0]
        template = CodecTemplate(vs)
        tb = float(vs.time_base)
        packets = [
            RingPacket(
                bytes(p),
                p.pts,
                p.dts,
                int(p.duration or 0),
                bool(p.is_keyframe),
                float(p.pts) * tb + jitter_s * ((i % 3) - 1),
                0.0,
            )
            for i, p in enumerate(src.demux(vs))
            if p.size and p.pts is not None
        ][:150]
    return template, packets


def _stream(template: CodecTemplate, packets: list[RingPacket], masks: list[list[tuple[float, float]]]) -> bytes:
    ring = PacketRing(pre_roll_s=60.0, max_bytes=50_000_000)
    for p in packets[:60]:
        ring.push(p)
    stream = live_fmp4(ring, template, masks, idle_s=1.0)
    chunks = [next(stream)]  # the viewer is in: it starts from the newest key frame of what the ring held
    for p in packets[60:]:  # the camera goes on sending
        ring.push(p)
    chunks.extend(stream)  # ends once the camera sends nothing for idle_s
    assert len(chunks) > 10, "the stream comes in many small pieces (a fragment per frame)"
    return b"".join(chunks)


def _frames(data: bytes, tmp: Path) -> list[np.ndarray]:
    path = tmp / "live.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as c:
        frames = list(c.decode(c.streams.video[0]))
        assert frames[0].key_frame
        return [np.asarray(f.to_ndarray(format="bgr24")) for f in frames]


def test_live_stream_is_a_decodable_fmp4_from_the_newest_key_frame(vtest_h264: Path, tmp_path: Path) -> None:
    template, packets = _feed(vtest_h264)
    assert mime_type(template).startswith('video/mp4; codecs="avc1.')
    data = _stream(template, packets, [])
    assert data[4:8] == b"ftyp" and b"moof" in data
    frames = _frames(data, tmp_path)
    last_key = max(i for i, p in enumerate(packets[:60]) if p.keyframe)
    assert len(frames) == len(packets) - last_key  # everything from the newest key frame on, nothing lost


def test_masked_live_stream_has_the_polygon_black(vtest_h264: Path, tmp_path: Path) -> None:
    template, packets = _feed(vtest_h264)
    plain = _frames(_stream(template, packets, []), tmp_path)[-1]
    _, jittered = _feed(vtest_h264, jitter_s=0.015)  # a camera's clock is not exact: frames 10..70 ms apart
    masked_frames = _frames(_stream(template, jittered, [MASK]), tmp_path)
    masked = masked_frames[-1]
    h, w = masked.shape[:2]
    assert masked[: h // 2 - 8, : w // 2 - 8].max() <= 16, "masked pixels are black"
    assert plain[: h // 2 - 8, : w // 2 - 8].mean() > 40, "there was something to hide"
    assert abs(float(masked[h // 2 + 8 :, w // 2 + 8 :].mean()) - float(plain[h // 2 + 8 :, w // 2 + 8 :].mean())) < 8
