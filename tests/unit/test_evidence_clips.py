"""Pre-roll ring buffer and clip recording on a real H.264 file (no services).

The camera runner reads the vtest clip (10 fps, a key frame every 10 frames)
through PyAV as fast as it can; a tap injects an incident's start and end at
chosen packets, as the worker's rules would. The clip that comes out must
start on a key frame, cover pre-roll..post-roll within one GOP, and carry the
sha256 of its bytes; a camera that drops mid-incident and a worker killed
mid-clip both give a clip marked incomplete, never none.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from core.clip import ClipStatus
from core.config import CameraConfig, EvidenceConfig, IngestConfig
from event_bus.events import Incident, IncidentState, IncidentType
from ingest.camera import CameraRunner
from ingest.packet_ring import PacketRing, RingPacket
from ingest.source import SourcePacket, StreamInfo
from worker.clips import CameraClips, ClipRecorder

GOP_S = 1.0  # vtest_h264: key frame every 10 frames at 10 fps


def pkt(t: float, key: bool, size: int = 100) -> RingPacket:
    return RingPacket(b"x" * size, int(t * 90_000), int(t * 90_000), 9000, key, t, 1000.0 + t)


def test_ring_starts_on_a_key_frame_and_keeps_the_pre_roll() -> None:
    ring = PacketRing(pre_roll_s=3.0, max_bytes=10_000_000)
    ring.push(pkt(0.0, False))  # before any key frame: useless, dropped
    for i in range(1, 100):
        t = i / 10
        ring.push(pkt(t, i % 10 == 0))
    held = ring.snapshot()
    assert held[0].keyframe
    newest = held[-1].pts_s
    assert newest - held[0].pts_s >= 3.0  # covers the pre-roll ...
    assert newest - held[0].pts_s < 3.0 + GOP_S  # ... and at most one GOP more
    stats = ring.stats()
    assert stats.bytes == sum(len(p.data) for p in held) and stats.evicted_for_memory == 0


def test_ring_memory_is_bounded_and_evictions_counted() -> None:
    ring = PacketRing(pre_roll_s=60.0, max_bytes=5_000)
    for i in range(200):
        ring.push(pkt(i / 10, i % 10 == 0, size=100))
    stats = ring.stats()
    assert stats.bytes <= 5_000 and stats.evicted_for_memory > 0
    assert ring.snapshot()[0].keyframe
    ring.reset()
    assert ring.snapshot() == [] and ring.stats().bytes == 0


def incident(cam: str, state: IncidentState, iid: uuid.UUID, seq: int, at: datetime) -> Incident:
    return Incident(
        incident_id=iid,
        type=IncidentType.PERSON_IN_ZONE,
        state=state,
        camera_id=cam,
        severity="medium",
        started_at=at if state is IncidentState.START else datetime(2026, 1, 1, tzinfo=UTC),
        observed_at=at,
        ended_at=at if state is IncidentState.END else None,
        confidence=0.9,
        worker_id="w-test",
        seq=seq,
    )


class ScriptedTap:
    """Wraps the camera's clip tap and plays the worker's part: start at one packet, end at another."""

    def __init__(self, clips: CameraClips, recorder: ClipRecorder, start_at: int, end_at: int | None) -> None:
        self.clips, self.recorder = clips, recorder
        self.start_at, self.end_at = start_at, end_at
        self.n = 0
        self.iid = uuid.uuid4()
        self.start_pts: float | None = None
        self.end_pts: float | None = None

    def opened(self, info: StreamInfo) -> None:
        self.clips.opened(info)

    def packet(self, packet: SourcePacket) -> None:
        self.clips.packet(packet)
        self.n += 1
        now = datetime.now(UTC)
        if self.n == self.start_at:
            self.start_pts = packet.pts_s
            self.recorder.observe(incident(self.clips.camera_id, IncidentState.START, self.iid, 0, now))
        if self.end_at is not None and self.n == self.end_at:
            self.end_pts = packet.pts_s
            start = incident(self.clips.camera_id, IncidentState.END, self.iid, 1, now)
            self.recorder.observe(start.model_copy(update={"started_at": now}))

    def closed(self, reason: str) -> None:
        self.clips.closed(reason)


def run_camera(
    tmp: Path, vtest: Path, cfg: EvidenceConfig, start_at: int, end_at: int | None
) -> tuple[list[tuple[Incident, bytes]], ScriptedTap, ClipRecorder]:
    out: list[tuple[Incident, bytes]] = []
    recorder = ClipRecorder(cfg, tmp / "clips", lambda inc, data: out.append((inc, data)), store_kind="s3",
                            bucket="kuzet-snapshots").start()  # fmt: skip
    tap = ScriptedTap(recorder.tap("cam-1"), recorder, start_at, end_at)
    cam = CameraConfig(id="cam-1", url=str(vtest), realtime=False, analysis_fps=1.0, keyframe_only="always")
    CameraRunner(cam, IngestConfig(), packet_tap=tap).run()
    return out, tap, recorder


def test_clip_covers_pre_roll_to_post_roll_without_reencoding(tmp_path: Path, vtest_h264: Path) -> None:
    cfg = EvidenceConfig(pre_roll_s=5.0, post_roll_s=5.0)
    out, tap, recorder = run_camera(tmp_path, vtest_h264, cfg, start_at=200, end_at=400)
    assert recorder.stop(30)
    assert len(out) == 1
    event, data = out[0]
    assert event.state is IncidentState.END and event.seq == 2 and event.clip is not None
    clip = event.clip
    assert clip.status is ClipStatus.COMPLETE, clip.reason
    assert clip.sha256 == hashlib.sha256(data).hexdigest() and clip.size == len(data)
    assert clip.key == f"cam-1/{clip.started_at:%Y/%m/%d}/{tap.iid}.mp4"
    assert tap.start_pts is not None and tap.end_pts is not None
    wanted = (tap.end_pts + 5.0) - (tap.start_pts - 5.0)
    assert wanted - 0.2 <= clip.duration_s <= wanted + GOP_S + 0.2, (clip.duration_s, wanted)
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        assert vs.codec_context.name == "h264"
        first = next(c.decode(vs))
        assert first.key_frame
        frames = 1 + sum(1 for _ in c.decode(vs))
    assert abs(frames / 10.0 - clip.duration_s) <= 0.2
    assert data.find(b"moov") < data.find(b"mdat")  # faststart: the index first, so a browser can seek at once
    assert not list((tmp_path / "clips").iterdir()), "nothing left behind once spooled"
    assert recorder.stats.complete == 1 and recorder.tap_cpu_s() > 0


def test_clip_is_capped_at_max_clip_s_and_marked(tmp_path: Path, vtest_h264: Path) -> None:
    cfg = EvidenceConfig(pre_roll_s=2.0, post_roll_s=2.0, max_clip_s=6.0)
    out, _tap, recorder = run_camera(tmp_path, vtest_h264, cfg, start_at=100, end_at=500)
    assert recorder.stop(30)
    (event, _data) = out[0]
    assert event.clip is not None and event.clip.status is ClipStatus.INCOMPLETE
    assert "max_clip_s" in event.clip.reason and event.clip.duration_s <= 6.0 + GOP_S


def test_camera_drop_mid_incident_gives_an_incomplete_clip(tmp_path: Path, vtest_h264: Path) -> None:
    cfg = EvidenceConfig(pre_roll_s=3.0, post_roll_s=3.0)
    # the incident starts at packet 700 and the file (795 packets) ends before it does: the stream is gone
    out, tap, recorder = run_camera(tmp_path, vtest_h264, cfg, start_at=700, end_at=None)
    assert out == []  # not published yet: the incident has not ended
    end = incident("cam-1", IncidentState.END, tap.iid, 1, datetime.now(UTC))
    recorder.observe(end)
    assert recorder.stop(30)
    (event, data) = out[0]
    assert event.clip is not None and event.clip.status is ClipStatus.INCOMPLETE
    assert "camera stream ended" in event.clip.reason and event.clip.duration_s >= 3.0
    assert hashlib.sha256(data).hexdigest() == event.clip.sha256


def test_worker_killed_mid_clip_is_salvaged_as_incomplete(tmp_path: Path, vtest_h264: Path) -> None:
    cfg = EvidenceConfig(pre_roll_s=3.0, post_roll_s=3.0)
    out, tap, _dead = run_camera(tmp_path, vtest_h264, cfg, start_at=300, end_at=None)
    # simulate SIGKILL: the part file was never closed (its last fragment may be cut) and nothing was spooled
    part = tmp_path / "clips" / f"{tap.iid}.part"
    assert part.exists() and (tmp_path / "clips" / f"{tap.iid}.json").exists()
    data = part.read_bytes()
    part.write_bytes(data[: len(data) - 1000])  # a torn write at the end
    salvaged: list[tuple[Incident, bytes]] = []
    fresh = ClipRecorder(cfg, tmp_path / "clips", lambda i, d: salvaged.append((i, d)), store_kind="s3",
                         bucket="kuzet-snapshots")  # fmt: skip
    assert fresh.recover() == 1
    event, clip = salvaged[0]
    assert event.incident_id == tap.iid and event.state is IncidentState.END and event.seq == 1
    assert event.clip is not None and event.clip.status is ClipStatus.INCOMPLETE
    assert "worker stopped" in event.clip.reason and event.clip.duration_s > 3.0
    assert hashlib.sha256(clip).hexdigest() == event.clip.sha256
    assert out == []


@pytest.mark.parametrize("bad", [b"", b"not an mp4 at all" * 100])
def test_unreadable_part_file_is_reported_not_published(tmp_path: Path, bad: bytes) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    iid = uuid.uuid4()
    (clips / f"{iid}.part").write_bytes(bad)
    ev = incident("cam-1", IncidentState.START, iid, 0, datetime.now(UTC))
    (clips / f"{iid}.json").write_text('{"first_wall_s": null, "event": ' + ev.model_dump_json() + "}")
    got: list[tuple[Incident, bytes]] = []
    rec = ClipRecorder(EvidenceConfig(), clips, lambda i, d: got.append((i, d)), store_kind="s3", bucket="b-1")
    assert rec.recover() == 1
    assert got == [] and rec.stats.failed == 1
