"""What evidence clips cost a camera: ring buffer + remux CPU against the camera's decode CPU, in one run.

    python -m benchmarks.evidence_clips [--seconds 60] [--fps 25] [--gop 50] [--repeats 3]

The vtest clip is re-encoded to H.264 at ``--fps`` with a key frame every
``--gop`` frames (cached), looped to ``--seconds`` of stream, and read by the
worker's own ``CameraRunner`` as fast as it goes (no real-time pacing), three
ways on the same file in the same process:

* ``full decode``: every frame decoded (analysis at 5 fps from full decoding);
* ``key-frame-only``: only key frames decoded (analysis at 1 fps);
* ``ring``: key-frame-only plus the evidence tap with no incident (the
  always-on cost: every packet copied into the ring);
* ``clips``: key-frame-only analysis plus the evidence tap, with one incident
  open for the whole run, so *every* packet is copied into the ring and muxed
  into a part file (the worst case: a camera that always has an incident),
  then the faststart remux and sha256 of the finished clip.

Reported per camera, as CPU seconds per second of stream (thread CPU of the
camera thread, ``time.thread_time``; the finisher's CPU for the clip is
added): decode cost, clip cost, and the ratio clip / decode (target < 5 % of
full decode). Best of ``--repeats``. Writes ``artifacts/benchmarks/evidence_clips.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av

from core.config import CameraConfig, EvidenceConfig, IngestConfig
from deploy.services.media import encode_h264, media_cache, vtest_source
from event_bus.events import Incident, IncidentState, IncidentType
from ingest.camera import CameraRunner
from ingest.source import SourcePacket, StreamInfo
from worker.clips import CameraClips, ClipRecorder

OUT = Path("artifacts/benchmarks/evidence_clips.json")


def stream_file(fps: float, gop: int) -> Path:
    path = media_cache() / f"vtest-h264-{fps:g}fps-g{gop}.mp4"
    if not path.exists():
        encode_h264(vtest_source(), path, gop=gop, fps=fps)
    return path


def file_seconds(path: Path) -> float:
    with av.open(str(path)) as c:
        return float(c.duration or 1) / 1e6


class WholeRunIncident:
    """Opens one incident at the first key frame and ends it at the last packet, as rules would."""

    def __init__(self, clips: CameraClips, recorder: ClipRecorder, packets: int) -> None:
        self.clips, self.recorder, self.packets = clips, recorder, packets
        self.n = 0
        self.iid = uuid.uuid4()

    def opened(self, info: StreamInfo) -> None:
        self.clips.opened(info)

    def packet(self, packet: SourcePacket) -> None:
        self.clips.packet(packet)
        self.n += 1
        if self.n in (1, self.packets):
            state = IncidentState.START if self.n == 1 else IncidentState.END
            now = datetime.now(UTC)
            self.recorder.observe(
                Incident(
                    incident_id=self.iid,
                    type=IncidentType.PERSON_IN_ZONE,
                    state=state,
                    camera_id="bench",
                    severity="low",
                    started_at=now,
                    observed_at=now,
                    ended_at=now if self.n > 1 else None,
                    confidence=1.0,
                    worker_id="bench",
                    seq=int(self.n > 1),
                )
            )

    def closed(self, reason: str) -> None:
        self.clips.closed(reason)


def camera(path: Path, mode: str) -> CameraConfig:
    fps = 5.0 if mode == "full" else 1.0
    key = "never" if mode == "full" else "always"
    return CameraConfig(id="bench", url=str(path), realtime=False, loop=True, analysis_fps=fps, keyframe_only=key)


class Counting:
    """Passes packets to the evidence tap under test (if any) and stops the looping file after ``packets``."""

    def __init__(self, inner: CameraClips | WholeRunIncident | None, packets: int) -> None:
        self.inner, self.packets, self.n = inner, packets, 0
        self.runner: CameraRunner | None = None
        self.ring_bytes = 0

    def opened(self, info: StreamInfo) -> None:
        if self.inner is not None:
            self.inner.opened(info)

    def packet(self, packet: SourcePacket) -> None:
        if self.inner is not None:
            self.inner.packet(packet)
        self.n += 1
        if self.n > self.packets and self.runner is not None:
            if isinstance(self.inner, CameraClips):
                self.ring_bytes = self.inner.ring.stats().bytes  # the connection's ring is emptied when it closes
            self.runner.stop()

    def closed(self, reason: str) -> None:
        if self.inner is not None:
            self.inner.closed(reason)


def run_once(path: Path, mode: str, seconds: float, stream_fps: float, tmp: Path) -> dict[str, Any]:
    """One run: ``full`` / ``keyframe`` decode only, ``ring`` adds the always-on tap, ``clips`` records throughout."""
    packets = int(seconds * stream_fps)
    sizes: list[int] = []
    cfg = EvidenceConfig(pre_roll_s=10.0, post_roll_s=0.0, max_clip_s=seconds + 60)
    recorder = ClipRecorder(cfg, tmp / "clips", lambda _i, d: sizes.append(len(d)), store_kind="local", bucket="bench")
    recorder.start()
    clips = recorder.tap("bench")
    inner: CameraClips | WholeRunIncident | None = None
    if mode == "ring":
        inner = clips
    elif mode == "clips":
        inner = WholeRunIncident(clips, recorder, packets)
    tap = Counting(inner, packets)
    runner = CameraRunner(camera(path, mode), IngestConfig(), packet_tap=tap)
    tap.runner = runner
    runner.run()
    assert recorder.stop(120)
    stats = runner.stats()
    return {
        "decode_cpu_s": stats.decode_cpu_s,
        "packets": stats.packets_read,
        "frames_decoded": stats.frames_decoded,
        "tap_cpu_s": clips.tap_cpu_s,
        "finalize_cpu_s": recorder.stats.finalize_cpu_s,
        "clips": recorder.stats.complete + recorder.stats.incomplete,
        "clip_bytes": sizes,
        "ring_bytes": tap.ring_bytes,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="stream seconds per run")
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--gop", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    path = stream_file(args.fps, args.gop)
    runs: dict[str, list[dict[str, Any]]] = {"full": [], "keyframe": [], "ring": [], "clips": []}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(args.repeats):
            for mode, results in runs.items():
                results.append(run_once(path, mode, args.seconds, args.fps, Path(d)))
    full = min(r["decode_cpu_s"] for r in runs["full"])
    key = min(r["decode_cpu_s"] for r in runs["keyframe"])
    clip = min(r["tap_cpu_s"] + r["finalize_cpu_s"] for r in runs["clips"])
    ring = min(r["tap_cpu_s"] for r in runs["ring"])
    per_s = {k: v / args.seconds for k, v in {"full": full, "keyframe": key, "clip": clip, "ring": ring}.items()}
    res = {
        "stream": {
            "file": path.name,
            "fps": args.fps,
            "gop": args.gop,
            "seconds": args.seconds,
            "bytes_per_s": round(path.stat().st_size / file_seconds(path)),
        },
        "cpu_s_per_stream_s": {k: round(v, 6) for k, v in per_s.items()},
        "ring_vs_full_decode": round(ring / full, 4),
        "clip_vs_full_decode": round(clip / full, 4),
        "clip_vs_keyframe_decode": round(clip / key, 4),
        "target_clip_vs_decode": 0.05,
        "clip_bytes": runs["clips"][0]["clip_bytes"],
        "ring_bytes_at_end": runs["ring"][0]["ring_bytes"],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"decode, full:           {per_s['full'] * 1000:.2f} ms CPU per stream second")
    print(f"decode, key-frame-only: {per_s['keyframe'] * 1000:.2f} ms CPU per stream second")
    print(f"ring only (always on):  {per_s['ring'] * 1000:.2f} ms CPU per stream second")
    print(f"ring + recording + remux, incident open all the time: {per_s['clip'] * 1000:.2f} ms per stream second")
    print(f"ring / full decode = {res['ring_vs_full_decode']:.2%}   clip / full decode = "
          f"{res['clip_vs_full_decode']:.2%}   clip / key-frame decode = {res['clip_vs_keyframe_decode']:.2%}"
          "   (target < 5 % of decode)")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
