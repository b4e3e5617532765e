"""The fire rule's temporal check on rendered clips, against a worst-case stand-in detector.

The stand-in "detects" fire on every look-alike the renderer drew (each lamp, light, vest, the sun and
lit clouds, in every frame) and on the flame's box: N-of-M alone confirms every such clip, so what keeps
the hard negatives out here is the temporal check alone. The real model's figures are in
benchmarks/detection_quality.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest

from core.config import RulesConfig
from core.detections import Detections
from core.labels import Label
from detectors.synthetic import FireSpec, render_flame, urban_background
from detectors.synthetic_negatives import KINDS, negative_scenes
from event_bus.events import IncidentState
from worker.fire_flicker import FlickerMeter, texture_change
from worker.rules import FireRule

FPS = 5.0
Scene = tuple[npt.NDArray[np.uint8], list[tuple[float, float, float, float]]]


def as_fire(boxes: list[tuple[float, float, float, float]]) -> Detections:
    arr = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Detections(arr, np.full(len(arr), 0.8, np.float32), np.full(len(arr), int(Label.FIRE), np.int64))


def fire_starts(scenes: list[Scene], rules: RulesConfig) -> int:
    rule, meter = FireRule(Label.FIRE, rules), FlickerMeter()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    starts = 0
    for i, (img, boxes) in enumerate(scenes):
        changes = rule.update(i / FPS, t0 + timedelta(seconds=i / FPS), meter.annotate(img, as_fire(boxes)))
        starts += sum(c.state is IncidentState.START for c in changes)
    return starts


def flame_scenes(seed: int, size: tuple[int, int], n: int = 15) -> list[Scene]:
    bg = urban_background(768, 576, seed=seed)
    spec = FireSpec(cx=384, base_y=460, width=size[0], height=size[1])
    return [(render_flame(bg, spec, t=i / FPS, seed=seed * 101), [spec.box]) for i in range(n)]


@pytest.mark.parametrize("kind", KINDS)
def test_hard_negatives_give_no_fire_with_the_temporal_check(kind: str) -> None:
    for seed in (1, 2):
        assert fire_starts(negative_scenes(kind, 15, FPS, seed=seed), RulesConfig()) == 0


def test_without_the_check_the_stand_in_confirms_every_hard_negative() -> None:
    off = RulesConfig(fire_min_flicker=0.0)
    assert all(fire_starts(negative_scenes(k, 15, FPS, seed=1), off) > 0 for k in KINDS)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("size", [(192, 192), (128, 144), (85, 96)])
def test_rendered_flames_still_give_one_fire_each(seed: int, size: tuple[int, int]) -> None:
    assert fire_starts(flame_scenes(seed, size), RulesConfig()) == 1


def test_texture_change_of_same_dimmed_and_unrelated_patches() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 255, (24, 24)).astype(np.float32)
    assert texture_change(a, a) == pytest.approx(0.0, abs=1e-5)
    assert texture_change(a, a * 0.5) == pytest.approx(0.0, abs=1e-5)  # a lamp dimming is not flicker
    assert texture_change(a, rng.uniform(0, 255, (24, 24)).astype(np.float32)) > 0.3


def test_flicker_meter_annotates_fire_boxes_only() -> None:
    img = np.zeros((60, 80, 3), np.uint8)
    d = Detections(
        np.array([[0, 0, 20, 20], [30, 30, 50, 50]], np.float32),
        np.array([0.9, 0.9], np.float32),
        np.array([int(Label.FIRE), int(Label.PERSON)], np.int64),
    )
    meter = FlickerMeter()
    first = meter.annotate(img, d)
    assert np.isnan(first.data["flicker"][0]) and first.data["flicker"][1] == 0.0
    second = meter.annotate(img, d)
    assert second.data["flicker"][0] == 0.0 and second.data["luma"].shape == (2,)
