"""Fire/smoke on rendered flames and rendered hard negatives, per frame and per incident, before and after
the temporal check.

Positives: ``detectors.synthetic.fire_clip`` (flickering flames on a night
street; several seeds and sizes), each clip should give exactly one fire
incident. Hard negatives: ``detectors.synthetic_negatives`` (headlights, tail
lights, sodium lamps, sunset, hi-vis vests, flashing emergency lights), each
clip should give none. Labels are the renderer's own: a positive frame holds
one flame at a known box, a negative frame holds none.

Per frame: a positive frame is found when a fire box at the configured
threshold overlaps the flame's box; every fire box on a negative frame (or
off the flame) is a false positive. Per incident: the clip goes through the
worker's own per-camera path for fire (``FlickerMeter`` then ``FireRule``)
once with the temporal check off (N-of-M alone, "before") and once with the
configured check ("after"). The model's output per frame is cached on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.config import KuzetConfig, RulesConfig
from core.detections import Detections
from core.labels import Label
from detectors.registry import load_detector
from detectors.synthetic import FireSpec, render_flame, urban_background
from detectors.synthetic_negatives import KINDS, negative_clip
from event_bus.events import IncidentState
from worker.fire_flicker import FlickerMeter
from worker.rules import FireRule

U8 = npt.NDArray[np.uint8]
FPS = 5.0
FRAMES = 15


@dataclass(frozen=True)
class Clip:
    name: str
    positive: bool
    frames: list[U8]
    flame_box: tuple[int, int, int, int] | None


def positive_clips() -> list[Clip]:
    out = []
    for seed in (1, 2, 3):
        for label, wf, hf in (("large", 4, 3), ("medium", 6, 4), ("small", 9, 6)):
            bg = urban_background(768, 576, seed=seed)
            spec = FireSpec(cx=768 // 2 + 60 * (seed - 2), base_y=int(576 * 0.8), width=768 // wf, height=576 // hf)
            frames = [render_flame(bg, spec, t=i / FPS, seed=seed * 101) for i in range(FRAMES)]
            out.append(Clip(f"flame-{label}-s{seed}", True, frames, spec.box))
    return out


def negative_clips() -> list[Clip]:
    return [
        Clip(f"{k}-s{seed}", False, negative_clip(k, FRAMES, FPS, seed=seed), None) for k in KINDS for seed in (1, 2)
    ]


def _overlaps(a: npt.NDArray[np.float32], b: tuple[int, int, int, int]) -> bool:
    return bool(min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1]))


def incidents(dets: list[Detections], frames: list[U8], rules: RulesConfig) -> int:
    """Fire incidents started on one clip through FlickerMeter + FireRule (the worker's per-camera path)."""
    rule = FireRule(Label.FIRE, rules)
    meter = FlickerMeter()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    starts = 0
    for i, (img, det) in enumerate(zip(frames, dets, strict=True)):
        annotated = meter.annotate(img, det)
        for change in rule.update(i / FPS, t0 + timedelta(seconds=i / FPS), annotated):
            starts += change.state is IncidentState.START
    return starts


def run(cfg: KuzetConfig, cache_dir: Path, threads: int) -> dict[str, Any]:
    model = cfg.model("fire").model_copy(update={"threads": threads})
    detector = load_detector(model, cfg.model_cache.expanduser())
    cache_path = cache_dir / f"fire-raw-{detector.version}-{model.score_threshold}.json"
    cache: dict[str, list[list[list[float]]]] = (
        json.loads(cache_path.read_text(encoding="utf-8")) if cache_path.exists() else {}
    )
    clips = positive_clips() + negative_clips()
    per_clip = []
    before_rules = cfg.rules.model_copy(update={"fire_min_flicker": 0.0})
    after_rules = cfg.rules
    for clip in clips:
        if clip.name not in cache:
            cache[clip.name] = [
                [[*map(float, b), float(c), float(k)] for b, c, k in zip(d.xyxy, d.confidence, d.class_id, strict=True)]
                for d in (detector.detect([f])[0] for f in clip.frames)
            ]
        dets = []
        for rows in cache[clip.name]:
            arr = np.asarray(rows, np.float32).reshape(-1, 6)
            dets.append(Detections(arr[:, :4], arr[:, 4], arr[:, 5].astype(np.int64)))
        fire = [d[d.class_id == int(Label.FIRE)] for d in dets]
        fire = [d[d.confidence >= cfg.rules.fire_min_confidence] for d in fire]
        hit_frames = sum(
            1 for d in fire if clip.flame_box is not None and any(_overlaps(b, clip.flame_box) for b in d.xyxy)
        )
        fp_boxes = sum(
            sum(1 for b in d.xyxy if clip.flame_box is None or not _overlaps(b, clip.flame_box)) for d in fire
        )
        per_clip.append({
            "clip": clip.name, "positive": clip.positive, "frames": len(clip.frames),
            "frames_with_flame_found": hit_frames, "false_fire_boxes": fp_boxes,
            "frames_with_false_fire": sum(
                1 for d in fire if any(clip.flame_box is None or not _overlaps(b, clip.flame_box) for b in d.xyxy)
            ),
            "incidents_before": incidents(fire, clip.frames, before_rules),
            "incidents_after": incidents(fire, clip.frames, after_rules),
        })  # fmt: skip
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cache_path.write_text(json.dumps(cache), encoding="utf-8")
    return {"how": __doc__.split("\n\n")[1].replace("\n", " "), "clips": per_clip, "summary": summarise(per_clip)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    pos = [r for r in rows if r["positive"]]
    neg = [r for r in rows if not r["positive"]]
    pos_frames = sum(r["frames"] for r in pos)
    found = sum(r["frames_with_flame_found"] for r in pos)
    fp_frames = sum(r["frames_with_false_fire"] for r in rows)
    out: dict[str, Any] = {
        "positive_clips": len(pos),
        "negative_clips": len(neg),
        "frame_recall": round(found / max(1, pos_frames), 4),
        "frame_precision": round(found / max(1, found + fp_frames), 4),
        "negative_frames_with_fire": sum(r["frames_with_false_fire"] for r in neg),
        "negative_frames": sum(r["frames"] for r in neg),
    }
    for when in ("before", "after"):
        tp = sum(1 for r in pos if r[f"incidents_{when}"] >= 1)
        extra = sum(max(0, r[f"incidents_{when}"] - 1) for r in pos)
        fp = sum(r[f"incidents_{when}"] for r in neg) + extra
        out[f"incident_recall_{when}"] = round(tp / max(1, len(pos)), 4)
        out[f"incident_precision_{when}"] = round(tp / max(1, tp + fp), 4)
        out[f"negative_incidents_{when}"] = sum(r[f"incidents_{when}"] for r in neg)
        out[f"positive_clips_with_exactly_one_{when}"] = sum(1 for r in pos if r[f"incidents_{when}"] == 1)
    return out


def print_table(res: dict[str, Any]) -> None:
    print(f"\nFIRE/SMOKE: labels from the renderer. {res['how']}")
    print(f"{'clip':<26} {'pos':>3} {'found/frames':>12} {'false frames':>12} {'inc before':>10} {'inc after':>9}")
    for r in res["clips"]:
        print(
            f"{r['clip']:<26} {'y' if r['positive'] else 'n':>3} {r['frames_with_flame_found']:>5}/{r['frames']:<6} "
            f"{r['frames_with_false_fire']:>12} {r['incidents_before']:>10} {r['incidents_after']:>9}"
        )
    s = res["summary"]
    print(
        f"per frame: recall {s['frame_recall']:.3f}, precision {s['frame_precision']:.3f} "
        f"({s['negative_frames_with_fire']}/{s['negative_frames']} hard-negative frames with a fire box)"
    )
    for when in ("before", "after"):
        print(
            f"per incident {when:<6}: recall {s[f'incident_recall_{when}']:.3f}, precision "
            f"{s[f'incident_precision_{when}']:.3f}, incidents from hard negatives {s[f'negative_incidents_{when}']}, "
            f"flame clips with exactly one {s[f'positive_clips_with_exactly_one_{when}']}/{s['positive_clips']}"
        )
