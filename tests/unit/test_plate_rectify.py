"""Crop rectification finds the plate outline inside a loose box (plate_reader.rectify)."""

from __future__ import annotations

import numpy as np

from plate_reader.rectify import order_corners, rectify
from plate_reader.synthetic import place_plate, random_plate, render_plate


def test_order_corners() -> None:
    pts = np.array([[10, 40], [100, 5], [0, 0], [110, 50]], np.float32)
    assert order_corners(pts).tolist() == [[0, 0], [100, 5], [110, 50], [10, 40]]


def test_rectify_recovers_the_plate_quad() -> None:
    rng = np.random.default_rng(3)
    background = np.full((400, 600, 3), 60, np.uint8)
    hits = 0
    for _ in range(6):
        plate = render_plate(random_plate(rng, "kz"), "hershey-duplex", rng)
        placed = place_plate(background, plate, rng, width_px=(160, 200), with_car=True)
        out = rectify(placed.image, placed.xyxy, height=48)
        assert out.image.shape[0] == 48 and out.image.shape[2] == 3
        assert 2.5 < out.image.shape[1] / 48 < 8.0  # a plate-like aspect ratio, whatever the method
        if out.quad is not None and np.abs(out.quad - placed.quad).max() < 8:
            hits += 1
    assert hits >= 4


def test_rectify_degenerate_box_does_not_crash() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    assert rectify(img, (50, 50, 50, 50)).image.shape[0] == 48
    assert rectify(img, (0, 0, 100, 100)).method == "box"
