"""Pipeline benchmark: whole-worker frames/s against its unavoidable work, measured in the same run.

``python -m benchmarks.pipeline`` prints tables, writes
``artifacts/benchmarks/pipeline.json`` and ``pipeline.png``.

1. Bare model: the person detector alone on in-memory frames, per batch size.
2. Decode: CPU seconds to decode one 768x576 H.264 frame (the same clip).
3. Worker: N file-backed cameras (N = 1, 4, 16) analysing every frame, per
   batch size; frames/s over a fixed window after warm-up. Its limit is
   1 / (decode s per frame + bare inference s per frame at that batch) and the
   ratio to it is the pipeline's efficiency (DESIGN.md target: >= 0.9).
4. Key-frame-only vs full decoding: decode CPU seconds per analysed frame at
   1 analysed frame/s from a 25 fps stream with one key frame a second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from core.config import CameraConfig, IngestConfig, KuzetConfig, Zone
from detectors.registry import load_detector
from ingest.camera import CameraRunner

OUT = Path("artifacts/benchmarks")
ZONE = Zone(name="road", polygon=[(0.0, 0.3), (1.0, 0.3), (1.0, 1.0), (0.0, 1.0)])


def _vtest() -> Path:
    shared = Path(os.environ.get("KUZET_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
    return shared / "data" / "vtest.avi"


def encode(src: Path, dst: Path, fps: int, gop: int) -> Path:
    """H.264 copy of the clip at ``fps`` with a key frame every ``gop`` frames (cached by name).

    The source is 10 fps; a higher rate is made by playing it faster (every
    output frame a distinct source frame), not by repeating frames, which
    would make predicted frames nearly free to decode and flatter full decoding.
    """
    if not dst.exists():
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-i",
                str(src),
                "-vf",
                f"setpts=PTS*10/{fps}",
                "-r",
                str(fps),
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-g",
                str(gop),
                "-keyint_min",
                str(gop),
                "-sc_threshold",
                "0",
                "-pix_fmt",
                "yuv420p",
                str(dst),
            ],
            check=True,
        )
    return dst


def load_frames(clip: Path, n: int) -> list[npt.NDArray[np.uint8]]:
    frames: list[npt.NDArray[np.uint8]] = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            frames.append(np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8))
            if len(frames) >= n:
                break
    return frames


def decode_cost(clip: Path, seconds: float = 4.0) -> float:
    """CPU seconds per decoded + converted frame, decoding the clip the way ingest does."""
    frames = 0
    cpu0 = time.process_time()
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        with av.open(str(clip)) as container:
            for frame in container.decode(video=0):
                frame.to_ndarray(format="bgr24")
                frames += 1
                if time.monotonic() >= t_end:
                    break
    return (time.process_time() - cpu0) / max(frames, 1)


def bare_model(cfg: KuzetConfig, frames: list[npt.NDArray[np.uint8]], batch: int, seconds: float) -> float:
    """Seconds of wall time per frame for the detector alone at this batch size."""
    detector = load_detector(cfg.model("person"), cfg.model_cache.expanduser())
    batches = [frames[i : i + batch] for i in range(0, len(frames) - batch + 1, batch)]
    detector.detect(batches[0])  # warm-up: session init, first allocations
    done = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for b in batches:
            detector.detect(b)
            done += len(b)
    return (time.perf_counter() - t0) / done


@dataclass
class WorkerRun:
    cameras: int
    batch: int
    fps: float
    dropped: int
    mean_batch: float


def worker_fps(clip: Path, n_cameras: int, batch: int, warmup_s: float, window_s: float, tmp: Path) -> WorkerRun:
    from worker.runtime import Worker

    run_dir = tmp / f"w{n_cameras}-{batch}"
    cams = [
        CameraConfig(
            id=f"bench-{i}",
            url=str(clip),
            analysis_fps=30.0,
            loop=True,
            realtime=False,
            detectors=["person"],
            zones=[ZONE],
        )
        for i in range(n_cameras)
    ]
    cfg = KuzetConfig.model_validate(
        {
            "cameras": cams,
            "bus": {"spool_path": run_dir / "spool.sqlite3", "local_path": run_dir / "bus.sqlite3"},
            "storage": {"local_dir": run_dir / "snapshots"},
            "batch": {"max_batch": batch, "max_wait_ms": 10.0},
        }
    )
    worker = Worker(cfg)
    worker.start()
    try:
        time.sleep(warmup_s)
        s0 = worker.scheduler_stats()["person"]
        t0 = time.monotonic()
        time.sleep(window_s)
        s1 = worker.scheduler_stats()["person"]
        elapsed = time.monotonic() - t0
    finally:
        worker.stop(flush_timeout_s=5)
    analysed = s1.analysed - s0.analysed
    batches = max(s1.batches - s0.batches, 1)
    return WorkerRun(n_cameras, batch, analysed / elapsed, s1.dropped - s0.dropped, analysed / batches)


def keyframe_cost(clip25: Path) -> dict[str, float]:
    """Decode CPU seconds per analysed frame at 1 analysed frame/s, full decode vs key frames only."""
    out: dict[str, float] = {}
    for mode in ("never", "always"):
        cam = CameraConfig(id=f"kf-{mode}", url=str(clip25), analysis_fps=1.0, realtime=False, keyframe_only=mode)
        runner = CameraRunner(cam, IngestConfig())
        runner.start()
        runner.join(300)
        runner.stop()
        stats = runner.stats()
        out[mode] = stats.decode_cpu_s / max(stats.frames_analysed, 1)
        out[f"{mode}_frames_decoded"] = stats.frames_decoded
        out[f"{mode}_frames_analysed"] = stats.frames_analysed
    out["ratio_keyonly_to_full"] = out["always"] / out["never"]
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for n in sorted({r["cameras"] for r in result["worker"]}):
        rows = [r for r in result["worker"] if r["cameras"] == n]
        ax.plot([r["batch"] for r in rows], [r["ratio_to_limit"] for r in rows], marker="o", label=f"{n} cameras")
    ax.axhline(0.9, color="grey", linestyle="--", label="target 0.9")
    ax.set_xlabel("max batch size")
    ax.set_ylabel("worker fps / limit (decode + bare model)")
    ax.set_title("Pipeline efficiency (same run, same cores)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--window", type=float, default=8.0, help="seconds measured per worker run")
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    cache = Path("~/.cache/kuzet/media").expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    clip = encode(_vtest(), cache / "bench-vtest-10fps-g10.mp4", fps=10, gop=10)
    clip25 = encode(_vtest(), cache / "bench-vtest-25fps-g25-fast.mp4", fps=25, gop=25)
    cfg = KuzetConfig()

    frames = load_frames(clip, 64)
    decode_s = decode_cost(clip)
    bare = {b: bare_model(cfg, frames, b, seconds=4.0) for b in args.batches}
    print(f"decode: {decode_s * 1000:.2f} ms CPU/frame")
    print("batch  bare model fps  ms/frame")
    for b, s in bare.items():
        print(f"{b:>5}  {1 / s:>14.1f}  {s * 1000:>8.2f}")

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.cameras:
            for b in args.batches:
                run = worker_fps(clip, n, b, args.warmup, args.window, Path(tmp))
                limit = 1.0 / (decode_s + bare[b])
                rows.append(
                    {
                        **asdict(run),
                        "bare_fps": 1 / bare[b],
                        "limit_fps": limit,
                        "ratio_to_limit": run.fps / limit,
                        "ratio_to_bare": run.fps * bare[b],
                    }
                )
    print("\ncameras  batch  worker fps  bare fps  limit fps  worker/limit  worker/bare  mean batch  dropped")
    for r in rows:
        print(
            f"{r['cameras']:>7}  {r['batch']:>5}  {r['fps']:>10.1f}  {r['bare_fps']:>8.1f}  {r['limit_fps']:>9.1f}  "
            f"{r['ratio_to_limit']:>12.2f}  {r['ratio_to_bare']:>11.2f}  {r['mean_batch']:>10.1f}  {r['dropped']:>7}"
        )

    kf = keyframe_cost(clip25)
    print("\ndecode CPU per analysed frame at 1 fps from 25 fps, 1 key frame/s")
    print(f"  full decode:    {kf['never'] * 1000:8.2f} ms  ({kf['never_frames_decoded']:.0f} frames decoded)")
    print(f"  key frames only:{kf['always'] * 1000:8.2f} ms  ({kf['always_frames_decoded']:.0f} frames decoded)")
    print(f"  ratio key-only / full: {kf['ratio_keyonly_to_full']:.3f} (target <= 0.2)")

    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
        "decode_s_per_frame": decode_s,
        "bare_s_per_frame": {str(b): s for b, s in bare.items()},
        "worker": rows,
        "keyframe": kf,
    }
    (OUT / "pipeline.json").write_text(json.dumps(result, indent=2))
    plot(result, OUT / "pipeline.png")
    print(f"\nwrote {OUT / 'pipeline.json'} and {OUT / 'pipeline.png'}")


if __name__ == "__main__":
    main()
