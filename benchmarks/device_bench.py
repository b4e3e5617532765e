"""The GPU half of ``benchmarks/device.sh`` (run by it, inside the venv with the ``gpu`` extra).

Sections, each timed and recorded even when another fails:

1. engines: each model loaded on ``cuda:0`` with TensorRT FP16 (the engine
   build, cached by model sha256 + GPU + TensorRT version, is timed);
2. bare models: frames/s for person, fire and plate at batch 1-64 on 1080p
   frames, device pre-processing included;
3. NVDEC: 1080p25 H.264 decoded by parallel PyNvVideoCodec sessions, full
   and key-frame-only; streams held at 5 analysed frames/s;
4. JPEG: nvImageCodec against OpenCV, 1080p snapshots per second;
5. whole worker: N file cameras of the 1080p stream with all three detectors
   on the GPU, frames/s and GPU utilisation sampled through NVML.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.replay_cameras import replay_cameras
from core.config import CameraConfig, KuzetConfig, Zone
from detectors.registry import load_detector

MODELS = ("person", "fire", "plate")
BATCHES = (1, 2, 4, 8, 16, 32, 64)


def _cfg(cache: Path, device: str = "cuda:0", cams: list[CameraConfig] | None = None, **extra: Any) -> KuzetConfig:
    base = KuzetConfig()
    models = [m.model_copy(update={"device": device}).model_dump() for m in base.models]
    return KuzetConfig.model_validate({"models": models, "model_cache": cache, "cameras": cams or [], **extra})


def _section(result: dict[str, Any], name: str, fn: Callable[[], Any]) -> None:
    t0 = time.monotonic()
    try:
        result[name] = fn()
    except Exception as exc:  # one broken section must not lose the others' figures
        result[name] = {"error": f"{type(exc).__name__}: {exc}"}
    result.setdefault("seconds", {})[name] = round(time.monotonic() - t0, 1)
    print(f"[device] {name}: {json.dumps(result[name], default=str)[:600]}", flush=True)


def _frames(video: Path, n: int) -> list[np.ndarray]:
    import av

    out: list[np.ndarray] = []
    with av.open(str(video)) as c:
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="bgr24"))
            if len(out) >= n:
                break
    return out


def engines(cache: Path) -> dict[str, Any]:
    cfg = _cfg(cache)
    out: dict[str, Any] = {}
    frame = np.zeros((1080, 1920, 3), np.uint8)
    for m in MODELS:
        t0 = time.monotonic()
        det = load_detector(cfg.model(m), cache)
        for b in BATCHES:  # every batch shape once: TensorRT builds (or loads) its engine profile here
            det.detect([frame] * b)
        out[m] = {"load_and_build_s": round(time.monotonic() - t0, 1), "providers": det.session.get_providers()}  # type: ignore[attr-defined]
    return out


def bare(cache: Path, video: Path, seconds: float) -> dict[str, dict[str, float]]:
    cfg = _cfg(cache)
    frames = _frames(video, 64)
    out: dict[str, dict[str, float]] = {}
    for m in MODELS:
        det = load_detector(cfg.model(m), cache)
        out[m] = {}
        for b in BATCHES:
            batch = (frames * (b // len(frames) + 1))[:b]
            det.detect(batch)
            done, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                det.detect(batch)
                done += b
            out[m][str(b)] = done / (time.perf_counter() - t0)
    return out


def nvdec(video: Path, seconds: float, sessions: int) -> dict[str, Any]:
    from ingest.nvdec import NvdecDecoder

    out: dict[str, Any] = {"sessions": sessions}

    def run(counts: list[int], i: int, keyonly: bool, stop: float) -> None:
        while time.monotonic() < stop:
            dec = NvdecDecoder(str(video), keyframes_only=keyonly)
            for _ in dec.frames():
                counts[i] += 1
                if time.monotonic() >= stop:
                    return

    for mode in ("full", "keyonly"):
        counts = [0] * sessions
        stop = time.monotonic() + seconds
        args = [(counts, i, mode == "keyonly", stop) for i in range(sessions)]
        threads = [threading.Thread(target=run, args=a) for a in args]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out[f"{mode}_frames_per_s"] = sum(counts) / seconds
    # 1080p25 with a key frame every 5 frames: key-frame-only decodes 5 frames per stream-second (= 5 analysed fps);
    # full decoding needs all 25 to analyse 5 of them
    out["streams_at_5fps_keyonly"] = out["keyonly_frames_per_s"] / 5.0
    out["streams_at_5fps_full"] = out["full_frames_per_s"] / 25.0
    return out


def jpeg(video: Path, seconds: float) -> dict[str, float]:
    import cv2

    from worker.snapshot_gpu import GpuJpegEncoder

    frame = _frames(video, 1)[0]
    enc = GpuJpegEncoder()
    out: dict[str, float] = {}
    for name, fn in (("gpu", enc.encode), ("cpu", lambda f: cv2.imencode(".jpg", f)[1].tobytes())):
        fn(frame)
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn(frame)
            done += 1
        out[f"{name}_per_s"] = done / (time.perf_counter() - t0)
    return out


class _GpuSampler:
    """GPU utilisation (%) every 0.5 s through NVML while the worker runs."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nv = pynvml
        self._h = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.samples: list[tuple[int, int, int]] = []  # (gpu %, decoder %, memory MiB)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            u = self._nv.nvmlDeviceGetUtilizationRates(self._h)
            dec = self._nv.nvmlDeviceGetDecoderUtilization(self._h)[0]
            mem = self._nv.nvmlDeviceGetMemoryInfo(self._h).used // (1 << 20)
            self.samples.append((int(u.gpu), int(dec), int(mem)))

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._t.join(2)
        g = [s[0] for s in self.samples] or [0]
        return {"gpu_util_mean": float(np.mean(g)), "gpu_util_max": float(max(g)),
                "decoder_util_mean": float(np.mean([s[1] for s in self.samples] or [0])),
                "memory_mib_max": float(max((s[2] for s in self.samples), default=0))}  # fmt: skip


def worker(cache: Path, video: Path, cameras: int, seconds: float, tmp: Path) -> dict[str, Any]:
    from worker.runtime import Worker

    zone = Zone(name="all", polygon=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)])
    cams = replay_cameras("gpu", video, cameras, MODELS, zone)
    cfg = _cfg(
        cache, cams=cams, batch={"max_batch": 64, "max_wait_ms": 20},
        bus={"spool_path": tmp / "spool.sqlite3", "local_path": tmp / "bus.sqlite3"},
        storage={"local_dir": tmp / "snaps"},
    )  # fmt: skip
    w = Worker(cfg)
    w.start()
    try:
        time.sleep(10)
        sampler = _GpuSampler()
        s0, t0 = w.scheduler_stats(), time.monotonic()
        time.sleep(seconds)
        s1, elapsed = w.scheduler_stats(), time.monotonic() - t0
        util = sampler.stop()
    finally:
        w.stop(flush_timeout_s=5)
    per_model = {m: (s1[m].analysed - s0[m].analysed) / elapsed for m in MODELS}
    return {"cameras": cameras, "frames_per_s": min(per_model.values()), "per_model": per_model, **util}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for m, rows in result.get("bare", {}).items():
        if isinstance(rows, dict) and "error" not in rows:
            ax.plot([int(b) for b in rows], list(rows.values()), marker="o", label=m)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch")
    ax.set_ylabel("frames/s (1080p in, device pre-processing)")
    ax.set_title(result.get("gpu", "GPU"))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--video", type=Path, required=True, help="1080p25 H.264, a key frame every 5 frames")
    p.add_argument("--cache", type=Path, default=Path(os.environ.get("KUZET_MODEL_CACHE", "~/.cache/kuzet/models")))
    p.add_argument("--cameras", type=int, default=32)
    p.add_argument("--sessions", type=int, default=8, help="parallel NVDEC sessions")
    args = p.parse_args()
    cache = args.cache.expanduser()
    result: dict[str, Any] = {}
    from detectors.gpu.engine_cache import gpu_name, tensorrt_version

    _section(result, "gpu", lambda: gpu_name(0))
    _section(result, "tensorrt", tensorrt_version)
    _section(result, "engines", lambda: engines(cache))
    _section(result, "bare", lambda: bare(cache, args.video, 2.0))
    _section(result, "nvdec", lambda: nvdec(args.video, 15.0, args.sessions))
    _section(result, "jpeg", lambda: jpeg(args.video, 3.0))
    tmp = args.out / "worker-run"
    tmp.mkdir(parents=True, exist_ok=True)
    _section(result, "worker", lambda: worker(cache, args.video, args.cameras, 30.0, tmp))
    (args.out / "device.json").write_text(json.dumps(result, indent=2, default=str))
    plot(result, args.out / "device.png")
    print(f"[device] wrote {args.out / 'device.json'} and device.png")


if __name__ == "__main__":
    main()
