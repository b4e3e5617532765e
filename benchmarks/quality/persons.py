"""Person detection on hand-labelled vtest frames: full frame against tiled, at the configured settings.

Labels: ``benchmarks/labels/vtest_persons.json`` (how they were made: the
README beside it). A detection matches a labelled person when their IoU is at
least ``MATCH_IOU`` (greedy, highest score first, each label used once).
Reported per setting: recall, precision, count error (mean absolute and mean
signed difference between the detected and the labelled number of people per
frame), model inputs per frame and the measured inference time per frame, both
as a ratio to the full frame.

The model's raw output (score threshold 0.05, no second NMS) for every model
input is cached on disk keyed by the model version, so re-running with other
thresholds, NMS or minimum sizes costs no inference.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from core.config import KuzetConfig
from core.detections import Detections
from detectors.nms import box_iou_matrix, nms
from detectors.registry import Detector, load_detector
from detectors.tiling import TileGrid, merge, split

LABELS = Path(__file__).resolve().parents[1] / "labels" / "vtest_persons.json"
MATCH_IOU = 0.5
RAW_THRESHOLD = 0.05
U8 = npt.NDArray[np.uint8]


def vtest_path() -> Path:
    import os

    shared = Path(os.environ.get("KUZET_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
    return shared / "data" / "vtest.avi"


def read_frames(indices: list[int], clip: Path | None = None) -> dict[int, U8]:
    """The given frames of vtest (decoded in order: seeking in the AVI is not frame-exact everywhere)."""
    cap = cv2.VideoCapture(str(clip or vtest_path()))
    want, out, i = set(indices), {}, 0
    while want - set(out):
        ok, frame = cap.read()
        if not ok:
            break
        if i in want:
            out[i] = np.asarray(frame, np.uint8)
        i += 1
    cap.release()
    missing = sorted(want - set(out))
    if missing:
        raise RuntimeError(f"vtest has no frames {missing[:5]}...")
    return out


def load_labels(path: Path = LABELS) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


@dataclass(frozen=True)
class Setting:
    name: str
    grid: TileGrid | None
    score: float
    nms_iou: float
    min_height_px: float = 0.0


class RawCache:
    """Raw detections (low threshold, no second NMS) per (frame, window), on disk per model version."""

    def __init__(self, detector: Detector, frames: dict[int, U8], cache_dir: Path) -> None:
        self.detector = detector
        self.frames = frames
        self.path = cache_dir / f"persons-raw-{detector.version}.json"
        self.data: dict[str, list[list[float]]] = {}
        if self.path.exists():
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
        self.seconds_per_input: float | None = None

    def get(self, index: int, window: tuple[int, int, int, int]) -> Detections:
        key = f"{index}:{','.join(map(str, window))}"
        rows = self.data.get(key)
        if rows is None:
            x1, y1, x2, y2 = window
            t = time.perf_counter()
            det = self.detector.detect([self.frames[index][y1:y2, x1:x2]])[0]
            self._timed(time.perf_counter() - t)
            rows = [[*map(float, b), float(c)] for b, c in zip(det.xyxy, det.confidence, strict=True)]
            self.data[key] = rows
        arr = np.asarray(rows, np.float32).reshape(-1, 5)
        return Detections(arr[:, :4], arr[:, 4], np.zeros(len(arr), np.int64))

    def _timed(self, s: float) -> None:
        self.seconds_per_input = s if self.seconds_per_input is None else 0.9 * self.seconds_per_input + 0.1 * s

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data), encoding="utf-8")


def detect(raw: RawCache, index: int, s: Setting) -> tuple[Detections, int]:
    """Detections of one frame under setting ``s`` and the number of model inputs it cost."""
    img = raw.frames[index]
    h, w = img.shape[:2]
    windows = [(0, 0, w, h)] if s.grid is None else split(img, s.grid)[1]
    parts = []
    for win in windows:
        d = raw.get(index, win)
        d = d[d.confidence >= s.score]
        d = d[nms(d.xyxy, d.confidence, s.nms_iou)] if s.nms_iou < 1.0 else d
        parts.append(d)
    det = parts[0] if s.grid is None else merge(parts, windows, w, h, s.grid.nms_iou)
    if s.min_height_px > 0:
        det = det[(det.xyxy[:, 3] - det.xyxy[:, 1]) >= s.min_height_px]
    return det, len(windows)


def match(pred: npt.NDArray[np.float32], scores: npt.NDArray[np.float32], truth: npt.NDArray[np.float32]) -> set[int]:
    """The labels found: greedy one-to-one matching at IoU >= MATCH_IOU, highest score first."""
    used: set[int] = set()
    if len(pred) == 0 or len(truth) == 0:
        return used
    iou = box_iou_matrix(pred, truth)
    for i in np.argsort(-scores):
        cand = [(iou[i, j], j) for j in range(len(truth)) if j not in used and iou[i, j] >= MATCH_IOU]
        if cand:
            used.add(max(cand)[1])
    return used


def evaluate(raw: RawCache, labels: dict[str, Any], s: Setting) -> dict[str, Any]:
    tp = fp = fn = inputs = fn_hand = 0
    abs_err, signed = [], []
    for item in labels["frames"]:
        idx = int(item["frame"])
        truth = np.asarray(item["boxes"], np.float32).reshape(-1, 4)
        det, n_in = detect(raw, idx, s)
        inputs += n_in
        found = match(det.xyxy, det.confidence, truth)
        k = len(found)
        tp, fp, fn = tp + k, fp + len(det) - k, fn + len(truth) - k
        fn_hand += len(set(item.get("hand_boxed", [])) - found)
        abs_err.append(abs(len(det) - len(truth)))
        signed.append(len(det) - len(truth))
    n = len(labels["frames"])
    return {
        "setting": s.name,
        "score_threshold": s.score,
        "ssd_second_nms_iou": s.nms_iou,
        "tiles": None if s.grid is None else f"{s.grid.rows}x{s.grid.cols} overlap {s.grid.overlap}",
        "min_height_px": s.min_height_px,
        "labelled_people": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "fn_hidden_or_overlapped": fn_hand,
        "recall": round(tp / max(1, tp + fn), 4),
        "precision": round(tp / max(1, tp + fp), 4),
        "count_mae": round(float(np.mean(abs_err)), 3),
        "count_bias": round(float(np.mean(signed)), 3),
        "inputs_per_frame": round(inputs / n, 2),
    }


def settings(model_score: float, model_nms: float) -> list[Setting]:
    """The configured full frame, the second-NMS and threshold variants, and tilings (2x2, 3x3)."""
    g22 = TileGrid(2, 2, 0.25)
    g33 = TileGrid(3, 3, 0.25)
    g33w = TileGrid(3, 3, 0.4)
    return [
        Setting("full frame (configured)", None, model_score, model_nms),
        Setting("full frame, second NMS 0.6", None, model_score, 0.6),
        Setting("full frame, no second NMS", None, model_score, 1.0),
        Setting("full frame, score 0.2", None, 0.2, model_nms),
        Setting("full frame, min height 30 px", None, model_score, model_nms, 30.0),
        Setting("tiled 2x2 ov.25 + full", g22, model_score, model_nms),
        Setting("tiled 2x2 ov.25 + full, s.35", g22, 0.35, model_nms),
        Setting("tiled 3x3 ov.25 + full", g33, model_score, model_nms),
        Setting("tiled 3x3 ov.25 + full, s.35", g33, 0.35, model_nms),
        Setting("tiled 3x3 ov.4 + full", g33w, model_score, model_nms),
        Setting("tiled 3x3 ov.4 + full, s.35", g33w, 0.35, model_nms),
        Setting("tiled 3x3 ov.4 + full, s.35, h30", g33w, 0.35, model_nms, 30.0),
        Setting("tiled 3x3 ov.4 + full, s.2", g33w, 0.2, model_nms),
    ]


def run(cfg: KuzetConfig, cache_dir: Path, threads: int) -> dict[str, Any]:
    labels = load_labels()
    model = cfg.model("person").model_copy(
        update={"score_threshold": RAW_THRESHOLD, "nms_iou": 1.0, "threads": threads}
    )
    detector = load_detector(model, cfg.model_cache.expanduser())
    frames = read_frames([int(f["frame"]) for f in labels["frames"]])
    raw = RawCache(detector, frames, cache_dir)
    conf = cfg.model("person")
    rows = [evaluate(raw, labels, s) for s in settings(conf.score_threshold, conf.nms_iou)]
    raw.save()
    # measured cost: time one full frame and one tiled frame through the real per-camera path
    timing = _time_full_vs_tiled(detector, frames)
    base = rows[0]
    for r in rows:
        r["cost_ratio_inputs"] = round(r["inputs_per_frame"] / base["inputs_per_frame"], 2)
    return {
        "labels": {"file": str(LABELS.name), "how": labels["how"], "frames": len(labels["frames"])},
        "match_iou": MATCH_IOU,
        "settings": rows,
        "timing": timing,
    }


def _time_full_vs_tiled(detector: Detector, frames: dict[int, U8], rounds: int = 2) -> dict[str, float]:
    imgs = list(frames.values())[:8]
    grids = {"full": None, "tiled 2x2 + full": TileGrid(2, 2, 0.25), "tiled 3x3 + full": TileGrid(3, 3, 0.25)}
    out: dict[str, float] = {}
    for name, grid in grids.items():
        batch = imgs if grid is None else [c for img in imgs for c in split(img, grid)[0]]
        best = float("inf")
        for _ in range(rounds):
            t = time.perf_counter()
            detector.detect(batch)
            best = min(best, time.perf_counter() - t)
        out[f"{name} ms/frame"] = round(1000 * best / len(imgs), 1)
    out["tiled 2x2 + full time ratio"] = round(out["tiled 2x2 + full ms/frame"] / out["full ms/frame"], 2)
    out["tiled 3x3 + full time ratio"] = round(out["tiled 3x3 + full ms/frame"] / out["full ms/frame"], 2)
    return out


def print_table(res: dict[str, Any]) -> None:
    print(f"\nPERSONS: {res['labels']['frames']} vtest frames labelled by eye; {res['labels']['how']}")
    print(f"match: IoU >= {res['match_iou']}, greedy one-to-one")
    head = f"{'setting':<32} {'recall':>7} {'prec':>6} {'TP':>4} {'FP':>4} {'FN':>4} {'cnt MAE':>7} {'bias':>6}"
    head += f" {'inputs':>6} {'cost':>5} {'FN hidden':>9}"
    print(head)
    for r in res["settings"]:
        print(
            f"{r['setting']:<32} {r['recall']:>7.3f} {r['precision']:>6.3f} {r['tp']:>4} {r['fp']:>4} {r['fn']:>4} "
            f"{r['count_mae']:>7.2f} {r['count_bias']:>+6.2f} {r['inputs_per_frame']:>6.1f} "
            f"{r['cost_ratio_inputs']:>4.1f}x {r['fn_hidden_or_overlapped']:>9}"
        )
    print(
        "measured inference (8 frames, one batch, best of 2): "
        + ", ".join(f"{k} {v}" for k, v in res["timing"].items())
    )
