"""Plates on two test sets: the original generated set and an independent one, detector and OCR apart.

* original: ``benchmarks.plate_data.generate`` (``plate_reader.synthetic``, the
  renderer the reader was tuned on), read as ``benchmarks.plates_ocr`` reads it;
* independent: ``benchmarks.plate_data.independent`` (another renderer, fonts,
  layouts, vehicles, real photographs as backgrounds, night/IR grey, motion
  blur, JPEG 35-90, widths 130-340 px), single frames and vehicle passes.

Labels are the renderers' own (plate text and corners). A plate is detected
when a plate box overlaps its box at IoU >= 0.3. Reported apart: the
detector's recall (by plate width); OCR alone, reading the labelled box
(what the reader makes of a plate it is handed); end to end per frame (the
detected box read, a missed plate counts as wrong); per pass (every frame's
read of the pass voted with ``TrackVote``, as the worker does).
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.plate_data import independent
from benchmarks.plates_ocr import iou
from core.config import KuzetConfig
from detectors.model_cache import build_cache
from detectors.registry import Detector, load_detector
from plate_reader import PLATE_MODEL_ID, PlateOcr, TrackVote, plate_model_config
from plate_reader.ocr import create_recognizer

WIDTH_BUCKETS = ((130, 200), (200, 270), (270, 341))


def _read(ocr: PlateOcr, detector: Detector, sample: independent.Sample) -> dict[str, Any]:
    det = detector.detect([sample.image])[0]
    truth = sample.plate.text
    gt = list(sample.xyxy)
    on_plate = [i for i, b in enumerate(det.xyxy) if iou(gt, tuple(map(float, b))) >= 0.3]
    found = bool(on_plate)
    got, obs = "", None
    if found:
        i = max(on_plate, key=lambda k: float(det.confidence[k]))
        read = ocr.read_boxes(sample.image, det.xyxy[i : i + 1], det.confidence[i : i + 1])
        if read:
            obs = read[0]
            got = obs.best.text if obs.best is not None else ""
    oracle = ocr.read_boxes(sample.image, np.asarray([gt], np.float32))
    oracle_text = oracle[0].best.text if oracle and oracle[0].best is not None else ""
    return {
        "truth": truth, "format": sample.plate.format_id, "width": round(sample.width_px, 1), "night": sample.night,
        "found": found, "read": got, "exact": got == truth, "ocr_on_label_box": oracle_text,
        "ocr_exact": oracle_text == truth, "obs": obs,
    }  # fmt: skip


def _rates(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = max(1, len(rows))
    found = [r for r in rows if r["found"]]
    return {
        "n": len(rows),
        "detector_recall": round(len(found) / n, 4),
        "ocr_exact_on_label_box": round(sum(r["ocr_exact"] for r in rows) / n, 4),
        "ocr_exact_on_detected": round(sum(r["exact"] for r in found) / max(1, len(found)), 4),
        "exact_per_frame": round(sum(r["exact"] for r in rows) / n, 4),
    }


def independent_set(ocr: PlateOcr, detector: Detector, n_frames: int, n_passes: int, per_pass: int,
                    min_read_conf: float) -> dict[str, Any]:  # fmt: skip
    t = time.perf_counter()
    rows = [_read(ocr, detector, s) for s in independent.frames(n_frames, seed=7)]
    by_width = {f"{lo}-{hi - 1}px": _rates([r for r in rows if lo <= r["width"] < hi]) for lo, hi in WIDTH_BUCKETS}
    by_format: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_format[r["format"]].append(r)
    pass_rows = []
    for seq in independent.passes(n_passes, per_pass, seed=11):
        vote = TrackVote()
        reads = [_read(ocr, detector, s) for s in seq]
        for r in reads:
            if r["obs"] is not None:
                vote.add(r["obs"], min_read_conf)
        res = vote.result()
        truth = seq[0].plate.text
        pass_rows.append({
            "truth": truth, "voted": res.plate if res else "", "exact": bool(res and res.plate == truth),
            "frames_exact": sum(r["exact"] for r in reads), "frames": len(reads), "night": seq[0].night,
        })  # fmt: skip
    frame_rows_in_passes = sum(p["frames"] for p in pass_rows)
    errors = [{k: v for k, v in r.items() if k != "obs"} for r in rows if not r["exact"]][:40]
    return {
        "frames": _rates(rows),
        "by_width": by_width,
        "by_format": {k: _rates(v) for k, v in sorted(by_format.items())},
        "night": _rates([r for r in rows if r["night"]]),
        "day": _rates([r for r in rows if not r["night"]]),
        "passes": {
            "n": len(pass_rows),
            "frames_per_pass": per_pass,
            "exact_per_pass": round(sum(p["exact"] for p in pass_rows) / max(1, len(pass_rows)), 4),
            "exact_per_frame_in_passes": round(
                sum(p["frames_exact"] for p in pass_rows) / max(1, frame_rows_in_passes), 4
            ),
            "wrong": [p for p in pass_rows if not p["exact"]][:20],
        },
        "errors": errors,
        "seconds": round(time.perf_counter() - t, 1),
    }


def run(
    cfg: KuzetConfig, cache_dir: Path, threads: int, n_frames: int, n_passes: int, original_n: int
) -> dict[str, Any]:
    from benchmarks import plates_ocr

    build_cache(cfg.model_cache.expanduser(), ids=[PLATE_MODEL_ID])
    detector = load_detector(plate_model_config(threads=threads), cfg.model_cache.expanduser())
    ocr = PlateOcr(create_recognizer(cfg.plates.ocr_backend, threads=threads))
    out: dict[str, Any] = {
        "how": __doc__.split("\n\n")[2].replace("\n", " "),
        "independent": independent_set(ocr, detector, n_frames, n_passes, 6, cfg.plates.min_read_confidence),
    }
    orig = plates_ocr.run(original_n, 2024, [cfg.plates.ocr_backend], threads, cfg.model_cache.expanduser(), None)
    b = orig["backends"][cfg.plates.ocr_backend]
    out["original"] = {
        "n": b["images"], "detector_recall": orig["detector"]["recall"], "exact_per_frame": b["accuracy"],
        "per_format": {k: v["accuracy"] for k, v in b["per_format"].items()},
    }  # fmt: skip
    return out


def print_table(res: dict[str, Any]) -> None:
    print(f"\nPLATES: labels from the renderers. {res['how']}")
    o = res["original"]
    print(
        f"original set ({o['n']} frames): detector recall {o['detector_recall']:.3f}, "
        f"exact per frame {o['exact_per_frame']:.3f}"
    )
    ind = res["independent"]
    head = f"{'independent set':<22} {'n':>4} {'det recall':>10} {'OCR on label':>12} {'OCR on det':>10}"
    head += f" {'exact/frame':>11}"
    print(head)
    rows = [("all frames", ind["frames"]), ("day", ind["day"]), ("night (IR grey)", ind["night"])]
    rows += [(f"width {k}", v) for k, v in ind["by_width"].items()]
    rows += [(f"format {k}", v) for k, v in ind["by_format"].items()]
    for name, r in rows:
        print(
            f"{name:<22} {r['n']:>4} {r['detector_recall']:>10.3f} {r['ocr_exact_on_label_box']:>12.3f} "
            f"{r['ocr_exact_on_detected']:>10.3f} {r['exact_per_frame']:>11.3f}"
        )
    p = ind["passes"]
    print(
        f"vehicle passes: {p['n']} x {p['frames_per_pass']} frames (130->330 px): exact per pass "
        f"{p['exact_per_pass']:.3f} (per frame in those passes {p['exact_per_frame_in_passes']:.3f})"
    )
