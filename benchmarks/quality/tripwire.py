"""Tripwire counts on a rendered clip with known crossings, per direction.

The clip: the vtest scene without its people (the per-pixel median of 60
frames spread over the clip), and real people cut out of vtest frames (the
labelled boxes of ``benchmarks/labels/vtest_persons.json``, their pixels
separated from that background by difference) walking across a vertical
tripwire in the middle of the picture, each at its own height, speed and
start time, some in each direction and some crossing at the same time. The
labels are the script's own: who crosses, in which direction. The clip goes
through the worker's own path for people: the person model at its configured
settings, ByteTrack, ``worker.rules_lines.LineCrossingRule``, at the
clip's own 10 frames/s (at 5 analysed frames/s walkers move 10-16 px a frame,
their ByteTrack ids change near the line and crossings are lost: in 5/8,
out 1/4 in one run).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from benchmarks.quality.persons import load_labels, read_frames
from core.analytics_config import Tripwire
from core.config import KuzetConfig
from core.labels import Label
from detectors.registry import load_detector
from detectors.tracking import CameraTracker
from worker.rules_lines import LineCrossingRule

U8 = npt.NDArray[np.uint8]
FPS = 10.0
LINE_X = 0.5


@dataclass(frozen=True)
class Walker:
    sprite: U8
    alpha: npt.NDArray[np.float32]
    foot_y: int
    start_s: float
    speed_px_s: float  # > 0: left to right


def _background(n: int = 60) -> U8:
    frames = read_frames(list(range(0, 795, 795 // n)))
    return np.median(np.stack(list(frames.values())), axis=0).astype(np.uint8)


def _sprites(bg: U8) -> list[tuple[U8, npt.NDArray[np.float32], int]]:
    """People cut out of labelled frames: pixels, soft mask from the difference to the background, foot row."""
    labels = load_labels()
    wanted = [f for f in labels["frames"] if f["frame"] in (0, 120, 216, 384, 432, 456, 600, 648)]
    frames = read_frames([int(f["frame"]) for f in wanted])
    out = []
    for f in wanted:
        img = frames[int(f["frame"])]
        hand = set(f.get("hand_boxed", []))
        for k, (x1, y1, x2, y2) in enumerate(f["boxes"]):
            if k in hand or x1 < 4 or x2 > 764 or y2 - y1 < 60:
                continue
            crop, back = img[y1:y2, x1:x2], bg[y1:y2, x1:x2]
            diff = np.abs(crop.astype(np.int16) - back.astype(np.int16)).max(axis=2).astype(np.float32)
            alpha = np.clip((diff - 18.0) / 20.0, 0, 1)
            alpha = cv2.GaussianBlur(cv2.morphologyEx(alpha, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)), (3, 3), 0)
            out.append((np.asarray(crop, np.uint8), alpha.astype(np.float32), int(y2)))
    return out


def script(bg: U8, n: int = 12, seed: int = 5) -> list[Walker]:
    rng = np.random.default_rng(seed)
    sprites = _sprites(bg)
    walkers = []
    for i in range(n):
        sprite, alpha, foot = sprites[i % len(sprites)]
        direction = 1 if i % 3 != 2 else -1  # two in, one out, repeated
        if direction < 0:
            sprite, alpha = sprite[:, ::-1].copy(), alpha[:, ::-1].copy()
        start = 2.0 * (i // 2) + float(rng.uniform(0, 0.8))  # pairs start together: simultaneous crossings
        walkers.append(Walker(sprite, alpha, foot, start, direction * float(rng.uniform(45, 80))))
    return walkers


def render(bg: U8, walkers: list[Walker], t: float) -> U8:
    out = bg.astype(np.float32)
    w = bg.shape[1]
    for wk in walkers:
        dt = t - wk.start_s
        travel = w * 0.5 + 40
        if dt < 0 or abs(wk.speed_px_s) * dt > 2 * travel:
            continue
        sh, sw = wk.sprite.shape[:2]
        cx = (
            (w * LINE_X - travel + wk.speed_px_s * dt)
            if wk.speed_px_s > 0
            else (w * LINE_X + travel + wk.speed_px_s * dt)
        )
        x1, y1 = round(cx - sw / 2), wk.foot_y - sh
        ox1, ox2 = max(0, x1), min(w, x1 + sw)
        if ox1 >= ox2:
            continue
        a = wk.alpha[:, ox1 - x1 : ox2 - x1, None]
        out[y1 : y1 + sh, ox1:ox2] = out[y1 : y1 + sh, ox1:ox2] * (1 - a) + wk.sprite[:, ox1 - x1 : ox2 - x1] * a
    return np.clip(out, 0, 255).astype(np.uint8)


def run(cfg: KuzetConfig, threads: int) -> dict[str, Any]:
    bg = _background()
    walkers = script(bg)
    duration = max(wk.start_s + (bg.shape[1] + 80) / abs(wk.speed_px_s) for wk in walkers) + 2.0
    detector = load_detector(cfg.model("person").model_copy(update={"threads": threads}), cfg.model_cache.expanduser())
    tracker = CameraTracker(cfg.tracking, frame_rate=FPS)
    line = Tripwire(name="mid", points=[(LINE_X, 0.0), (LINE_X, 1.0)], in_side="left", alert=False)
    rule = LineCrossingRule([line], bg.shape[1], bg.shape[0], period_s=3600.0)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    counts = {"in": 0, "out": 0}
    frames = int(duration * FPS)
    for i in range(frames):
        t = i / FPS
        det = detector.detect([render(bg, walkers, t)])[0]
        tracked = tracker.update(det[det.class_id == int(Label.PERSON)])
        rule.update(t, t0 + timedelta(seconds=t), tracked)
    final = rule.close(t0 + timedelta(seconds=frames / FPS))
    for period in final:
        for (_, direction, _), n in period.counts.items():
            counts[direction] += n
    # facing the line's first point (top) towards the second (bottom), the left side is the picture's right:
    # walking left to right is going in
    truth = {"in": sum(1 for w in walkers if w.speed_px_s > 0), "out": sum(1 for w in walkers if w.speed_px_s < 0)}
    per_direction = {
        d: {
            "truth": truth[d],
            "counted": counts[d],
            "accuracy": round(1 - abs(counts[d] - truth[d]) / max(1, truth[d]), 4),
        }
        for d in ("in", "out")
    }
    return {"how": __doc__.split("\n\n")[1].replace("\n", " "), "frames": frames, "per_direction": per_direction}


def print_table(res: dict[str, Any]) -> None:
    print(f"\nTRIPWIRES: labels from the script. {res['how']}")
    print(f"{'direction':<10} {'truth':>5} {'counted':>7} {'accuracy':>8}   ({res['frames']} frames at {FPS:g} fps)")
    for d, r in res["per_direction"].items():
        print(f"{d:<10} {r['truth']:>5} {r['counted']:>7} {r['accuracy']:>8.3f}")
