"""The worker's three models running at once on the box's cores, against each alone, per batch size.

``python -m benchmarks.models_at_once`` writes ``artifacts/benchmarks/models_at_once.json``.

The worker runs person, fire/smoke and plate inference on three threads at
once; the pipeline benchmark's limit charges each model's cost measured
alone. This measures what running them together does to that: each model
loops on its own thread for a while, and the share of the box's "alone"
capacity they used together is sum(model's frames/s x its seconds a frame
alone). Above 1: running together gains (one model alone does not fill the
cores); below 1: they get in each other's way. Both sides are measured in
the same run, per batch size.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from benchmarks.busy_scene import render_busy_clip
from benchmarks.pipeline import MODELS, bare_model, load_frames, vtest_clip
from benchmarks.report import write_json
from core.config import KuzetConfig
from detectors.registry import load_detector

OUT = Path("artifacts/benchmarks/models_at_once.json")


def at_once(cfg: KuzetConfig, frames: list[npt.NDArray[np.uint8]], batch: int, seconds: float) -> dict[str, float]:
    """Frames/s each model sustained while all of them looped on their own threads."""
    detectors = {m: load_detector(cfg.model(m), cfg.model_cache.expanduser()) for m in MODELS}
    for d in detectors.values():
        d.detect(frames[:batch])  # warm-up: session init, first allocations
    done = dict.fromkeys(MODELS, 0)
    stop = threading.Event()

    def loop(model: str) -> None:
        i = 0
        while not stop.is_set():
            start = (i * batch) % (len(frames) - batch + 1)
            detectors[model].detect(frames[start : start + batch])
            done[model] += batch
            i += 1

    threads = [threading.Thread(target=loop, args=(m,)) for m in MODELS]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {m: done[m] / elapsed for m in MODELS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=12.0, help="how long the three models run at once")
    args = parser.parse_args()
    cache = Path("~/.cache/kuzet/media").expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    frames = load_frames(
        render_busy_clip(vtest_clip(), cache / "bench-busy-10fps-g10.mp4", n_frames=200, fps=10, gop=10), 32
    )
    cfg = KuzetConfig()
    rows = []
    print("batch  " + "  ".join(f"{m + ' alone ms':>16}" for m in MODELS) + "  " +
          "  ".join(f"{m + ' together fps':>18}" for m in MODELS) + "  alone capacity used")  # fmt: skip
    for b in args.batches:
        alone = {m: bare_model(cfg, m, frames, b, seconds=3.0) for m in MODELS}
        together = at_once(cfg, frames, b, args.seconds)
        used = sum(together[m] * alone[m] for m in MODELS)
        rows.append({"batch": b, "alone_s_per_frame": alone, "together_fps": together, "alone_capacity_used": used})
        print(f"{b:>5}  " + "  ".join(f"{alone[m] * 1000:>16.1f}" for m in MODELS) + "  "
              + "  ".join(f"{together[m]:>18.2f}" for m in MODELS) + f"  {used:>19.2f}")  # fmt: skip
    write_json(OUT, {"rows": rows})


if __name__ == "__main__":
    main()
