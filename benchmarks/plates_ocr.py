"""Plate-reading accuracy and OCR cost on the generated plate test set.

    python -m benchmarks.plates_ocr [--n 360] [--seed 2024] [--backends rapidocr,easyocr] [--threads 2]

The full default pipeline runs on every image: the packaged plate detector
(ONNX, onnxruntime backend, built into the model cache if missing) -> crop
rectification -> OCR -> format correction. A plate counts as read exactly
when the detection overlapping it (IoU >= 0.3) is read as exactly its text;
a plate the detector missed counts as not read. Reported: exact-read
accuracy overall, per format and per layout, the detector's recall, reads of
boxes that hold no plate, and per OCR backend the accuracy and milliseconds
per crop (OCR call time divided by crops, measured on this machine). Writes
``artifacts/benchmarks/plates_ocr.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.plate_data.generate import DEFAULT_DIR, generate, load
from benchmarks.report import write_json
from detectors.model_cache import DEFAULT_CACHE_DIR, build_cache
from detectors.registry import load_detector
from plate_reader import PLATE_MODEL_ID, PlateOcr, plate_model_config
from plate_reader.ocr import OcrRead, create_recognizer

OUT = Path("artifacts/benchmarks/plates_ocr.json")


class TimedRecognizer:
    """Wraps a recogniser to count crops and the time spent in its ``read``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.height = inner.height
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.crops = 0

    def read(self, crops: list[np.ndarray]) -> list[OcrRead]:
        t, c = time.perf_counter(), time.process_time()
        out: list[OcrRead] = self.inner.read(crops)
        self.seconds += time.perf_counter() - t
        self.cpu_seconds += time.process_time() - c
        self.crops += len(crops)
        return out


def iou(a: list[float], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def run(n: int, seed: int, backends: list[str], threads: int, cache_dir: Path, limit: int | None) -> dict[str, Any]:
    data_dir = generate(n, seed, DEFAULT_DIR)
    rows = load(data_dir)[:limit] if limit else load(data_dir)
    build_cache(cache_dir, ids=[PLATE_MODEL_ID])
    detector = load_detector(plate_model_config(threads=threads), cache_dir)
    images = [cv2.imread(str(data_dir / str(r["file"])), cv2.IMREAD_COLOR) for r in rows]
    t0 = time.perf_counter()
    detections = [detector.detect([img])[0] for img in images]
    det_ms = (time.perf_counter() - t0) * 1000 / len(images)
    results: dict[str, Any] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": threads,
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        },
        "dataset": {"dir": str(data_dir), "images": len(rows), "seed": seed},
        "detector": {"model": detector.version, "ms_per_image": round(det_ms, 1)},
        "backends": {},
    }
    found = 0
    for r, det in zip(rows, detections, strict=True):
        found += any(iou(list(map(float, r["xyxy"])), tuple(b)) >= 0.3 for b in det.xyxy)  # type: ignore[arg-type]
    results["detector"]["recall"] = round(found / len(rows), 4)
    for backend in backends:
        rec = TimedRecognizer(create_recognizer(backend, threads=threads))
        ocr = PlateOcr(rec)  # type: ignore[arg-type]
        per_format: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        per_layout: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        per_font: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        exact, stray_reads, errors = 0, 0, []
        for r, img, det in zip(rows, images, detections, strict=True):
            obs = ocr.read_boxes(img, det.xyxy, det.confidence)
            truth = str(r["plate"])
            gt_box = list(map(float, r["xyxy"]))  # type: ignore[call-overload]
            on_plate = [o for o in obs if iou(gt_box, o.plate_xyxy) >= 0.3]
            stray_reads += sum(1 for o in obs if o not in on_plate and o.best is not None)
            read = max(on_plate, key=lambda o: o.detection_confidence) if on_plate else None
            got = read.best.text if read is not None and read.best is not None else ""
            ok = int(got == truth)
            exact += ok
            for table, key in ((per_format, r["format_id"]), (per_layout, r["layout"]), (per_font, r["font"])):
                table[str(key)][0] += ok
                table[str(key)][1] += 1
            if not ok:
                errors.append({"file": r["file"], "truth": truth, "read": got, "raw": read.read.text if read else None})
        results["backends"][backend] = {
            "exact": exact,
            "images": len(rows),
            "accuracy": round(exact / len(rows), 4),
            "ms_per_crop": round(1000 * rec.seconds / max(1, rec.crops), 1),
            "cpu_ms_per_crop": round(1000 * rec.cpu_seconds / max(1, rec.crops), 1),
            "crops": rec.crops,
            "reads_off_plate": stray_reads,
            "per_format": {k: {"exact": v[0], "n": v[1], "accuracy": round(v[0] / v[1], 4)}
                           for k, v in sorted(per_format.items())},
            "per_layout": {k: {"exact": v[0], "n": v[1], "accuracy": round(v[0] / v[1], 4)}
                           for k, v in sorted(per_layout.items())},
            "per_font": {k: {"exact": v[0], "n": v[1], "accuracy": round(v[0] / v[1], 4)}
                         for k, v in sorted(per_font.items())},
            "errors": errors[:50],
        }  # fmt: skip
    return results


def print_table(res: dict[str, Any]) -> None:
    d = res["detector"]
    ds, load_avg = res["dataset"], res["machine"]["load_average_at_start"]
    print(f"dataset: {ds['images']} images ({ds['dir']}); load average at start {load_avg}")
    print(f"plate detector {d['model']}: recall {d['recall']:.1%}, {d['ms_per_image']} ms/image")
    print(f"{'backend':<10} {'exact':>7} {'accuracy':>9} {'ms/crop':>8} {'cpu ms':>7}  per format")
    for name, b in res["backends"].items():
        fmts = "  ".join(f"{k} {v['accuracy']:.1%} ({v['n']})" for k, v in b["per_format"].items())
        head = f"{name:<10} {b['exact']:>3}/{b['images']:<3} {b['accuracy']:>9.1%}"
        print(f"{head} {b['ms_per_crop']:>8} {b['cpu_ms_per_crop']:>7}  {fmts}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=360, help="images in the generated set (>= 300 for the target)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--backends", default="rapidocr,easyocr")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N images (quick runs)")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    res = run(args.n, args.seed, [b for b in args.backends.split(",") if b], args.threads,
              args.cache_dir.expanduser(), args.limit)  # fmt: skip
    print_table(res)
    write_json(args.out, res)


if __name__ == "__main__":
    main()
