"""Rendered scenes that look like fire to a colour-happy detector but are not: the fire hard negatives.

A city camera sees orange and red light all night: headlights and their glare,
red tail lights, sodium street lamps, a sunset sky, orange high-visibility
vests, flashing emergency lights. None of it may become a fire incident. Each
kind here is a short clip (a list of BGR frames at a given analysis rate),
drawn with OpenCV on the street background of :mod:`detectors.synthetic`, so a
benchmark and a test can check that none of them confirms as fire while the
rendered flames still do. Seeded: the same arguments give the same pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

from detectors.synthetic import urban_background

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
Box = tuple[float, float, float, float]
Scene = tuple[U8, list[Box]]
"""A frame and the boxes of the things in it that look like fire (where a fooled detector would fire)."""

KINDS = ("headlights", "tail_lights", "sodium_lamps", "sunset", "hivis_vests", "emergency_lights")


def _glow(out: F32, cx: float, cy: float, radius: float, colour: tuple[float, float, float], gain: float) -> Box:
    """Add a soft light: a saturated core plus a wide halo, as a lamp looks to a camera; returns the lit box."""
    h, w = out.shape[:2]
    r = int(radius * 6) + 2
    x1, y1, x2, y2 = max(0, int(cx) - r), max(0, int(cy) - r), min(w, int(cx) + r), min(h, int(cy) + r)
    rr = 2.5 * radius
    lit = (max(0.0, cx - rr), max(0.0, cy - rr), min(float(w), cx + rr), min(float(h), cy + rr))
    if x1 >= x2 or y1 >= y2:
        return lit
    yy, xx = np.mgrid[y1:y2, x1:x2].astype(np.float32)
    d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / max(radius, 1.0) ** 2
    core = np.exp(-d2 * 1.5)
    halo = 0.35 * np.exp(-d2 / 9.0)
    light = gain * (core + halo)
    out[y1:y2, x1:x2] += light[..., None] * np.array(colour, np.float32)[None, None, :]
    # the core saturates toward white, as a real over-exposed lamp does
    out[y1:y2, x1:x2] += (gain * 0.6 * core)[..., None] * 255.0
    return lit


def _car(out: F32, x: float, y: float, w: float, shade: int) -> None:
    cv2.rectangle(out, (int(x), int(y - w * 0.35)), (int(x + w), int(y)), (shade, shade, shade + 4), -1)
    cv2.rectangle(out, (int(x + w * 0.2), int(y - w * 0.55)), (int(x + w * 0.8), int(y - w * 0.35)),
                  (shade - 8, shade - 8, shade - 4), -1)  # fmt: skip


def _headlights(bg: U8, i: int, fps: float, rng: np.random.Generator) -> Scene:
    out = bg.astype(np.float32)
    boxes: list[Box] = []
    h, w = out.shape[:2]
    for lane, speed, cw in ((0.80, 60.0, w * 0.22), (0.95, -80.0, w * 0.32)):
        x = (0.1 * w + speed * i / fps) % (w * 1.2) - 0.1 * w
        _car(out, x, h * lane, cw, 35)
        front = x + cw if speed > 0 else x
        back = -1 if speed > 0 else 1  # the far headlight sits a little behind the near one
        boxes += [_glow(out, front, h * lane - cw * 0.12, cw * 0.07, (120, 210, 255), 1.0)]
        boxes += [_glow(out, front + back * cw * 0.06, h * lane - cw * 0.12, cw * 0.07, (110, 200, 255), 1.0)]
        # glare on the road ahead of the car
        _glow(out, front - back * cw * 0.3, h * lane + cw * 0.02, cw * 0.12, (60, 90, 110), 0.5)
    return _finish(out, rng), _inside(boxes, out.shape[1], out.shape[0])


def _tail_lights(bg: U8, i: int, fps: float, rng: np.random.Generator) -> Scene:
    out = bg.astype(np.float32)
    boxes: list[Box] = []
    h, w = out.shape[:2]
    # a queue of cars seen from behind, braking now and then (lights brighten)
    for k, cx in enumerate((0.25, 0.55, 0.8)):
        cw = w * (0.30 - 0.05 * k)
        y = h * (0.95 - 0.06 * k)
        x = w * cx - cw / 2 + 4 * np.sin(i / fps + k)
        _car(out, x, y, cw, 30)
        brake = 1.3 if (i // int(max(1, fps * 2)) + k) % 2 else 0.8
        for side in (0.08, 0.92):
            boxes += [_glow(out, x + cw * side, y - cw * 0.2, cw * 0.07, (20, 40, 240), brake)]
    return _finish(out, rng), _inside(boxes, out.shape[1], out.shape[0])


def _sodium_lamps(bg: U8, i: int, fps: float, rng: np.random.Generator) -> Scene:
    out = bg.astype(np.float32)
    boxes: list[Box] = []
    h, w = out.shape[:2]
    for k, cx in enumerate(np.linspace(0.1, 0.9, 5)):
        x, top = w * cx, h * (0.30 + 0.03 * (k % 2))
        cv2.line(out, (int(x), int(top)), (int(x), int(h * 0.75)), (50, 50, 55), 3)
        hum = 1.0 + 0.03 * np.sin(2 * np.pi * 0.7 * i / fps + k)  # mains hum, slow and small
        boxes += [_glow(out, x, top, w * 0.02, (30, 140, 255), 1.0 * hum)]
        # the orange pool of light on the road below
        pool = np.zeros(out.shape[:2], np.float32)
        cv2.ellipse(pool, (int(x), int(h * 0.8)), (int(w * 0.07), int(h * 0.03)), 0, 0, 360, 1.0, -1)
        pool = np.asarray(cv2.GaussianBlur(pool, (0, 0), 12), np.float32)
        out += pool[..., None] * np.array([10, 60, 120], np.float32)
    return _finish(out, rng), _inside(boxes, out.shape[1], out.shape[0])


def _sunset(bg: U8, i: int, fps: float, rng: np.random.Generator) -> Scene:
    out = bg.astype(np.float32)
    boxes: list[Box] = []
    h, w = out.shape[:2]
    horizon = int(h * 0.62)
    t = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None]
    sky = (1 - t) * np.array([110, 70, 60], np.float32) + t * np.array([30, 110, 250], np.float32)
    out[:horizon] = sky[:, None, :]
    sun_x = w * 0.6 + 3 * i / fps
    boxes += [_glow(out, sun_x, horizon - h * 0.06, w * 0.045, (40, 150, 255), 1.3)]
    # lit clouds drifting slowly
    for k in range(5):
        cx = int((w * (0.1 + 0.2 * k) + 6 * i / fps) % w)
        cy = int(h * (0.1 + 0.08 * (k % 3)))
        cloud = np.zeros(out.shape[:2], np.float32)
        cv2.ellipse(cloud, (cx, cy), (int(w * 0.1), int(h * 0.03)), 0, 0, 360, 1.0, -1)
        boxes.append((cx - w * 0.1, cy - h * 0.03, cx + w * 0.1, cy + h * 0.03))
        cloud = np.asarray(cv2.GaussianBlur(cloud, (0, 0), 9), np.float32)
        out += cloud[..., None] * np.array([10, 100, 200], np.float32)
    # the city against the sky: dark silhouettes with a few lit windows
    srng = np.random.default_rng(5)
    x = 0
    while x < w:
        bw, bh = int(srng.integers(w // 14, w // 6)), int(srng.integers(h // 8, int(h * 0.4)))
        cv2.rectangle(out, (x, horizon - bh), (x + bw, horizon), (28, 24, 26), -1)
        for _ in range(bw * bh // 900):
            wx, wy = x + int(srng.integers(2, max(3, bw - 8))), horizon - int(srng.integers(8, bh))
            cv2.rectangle(out, (wx, wy), (wx + 5, wy + 6), (80, 170, 220), -1)
        x += bw + int(srng.integers(0, 10))
    return _finish(out, rng), _inside(boxes, out.shape[1], out.shape[0])


def _hivis_vests(bg: U8, i: int, fps: float, rng: np.random.Generator) -> Scene:
    out = bg.astype(np.float32)
    boxes: list[Box] = []
    h, w = out.shape[:2]
    # road workers in fluorescent orange vests with silver reflective bands, lit by a work lamp
    for k, (cx, speed) in enumerate(((0.3, 25.0), (0.55, -18.0), (0.75, 10.0))):
        x = w * cx + speed * i / fps
        y = h * (0.97 - 0.06 * k)
        ph = h * (0.5 - 0.08 * k)
        bw = ph * 0.32
        cv2.ellipse(out, (int(x), int(y - ph * 0.9)), (int(bw * 0.3), int(bw * 0.35)), 0, 0, 360, (90, 120, 160), -1)
        boxes.append((x - bw / 2, y - ph * 0.78, x + bw / 2, y - ph * 0.4))
        cv2.rectangle(out, (int(x - bw / 2), int(y - ph * 0.78)), (int(x + bw / 2), int(y - ph * 0.4)),
                      (0, 110, 255), -1)  # fmt: skip
        for band in (0.62, 0.5):
            yb = int(y - ph * band)
            cv2.rectangle(
                out, (int(x - bw / 2), yb), (int(x + bw / 2), yb + max(2, int(ph * 0.03))), (225, 230, 230), -1
            )
        legs = (40, 40, 45)
        swing = bw * 0.15 * np.sin(2 * np.pi * i / fps + k)
        cv2.line(
            out,
            (int(x - bw * 0.2), int(y - ph * 0.4)),
            (int(x - bw * 0.2 + swing), int(y)),
            legs,
            max(2, int(bw * 0.2)),
        )
        cv2.line(
            out,
            (int(x + bw * 0.2), int(y - ph * 0.4)),
            (int(x + bw * 0.2 - swing), int(y)),
            legs,
            max(2, int(bw * 0.2)),
        )
    boxes += [_glow(out, w * 0.08, h * 0.45, w * 0.02, (150, 220, 255), 0.8)]
    return _finish(out, rng), _inside(boxes, out.shape[1], out.shape[0])


def _emergency_lights(bg: U8, i: int, fps: float, rng: np.random.Generator) -> Scene:
    out = bg.astype(np.float32)
    boxes: list[Box] = []
    h, w = out.shape[:2]
    x, y, cw = w * 0.25, h * 0.95, w * 0.5
    _car(out, x, y, cw, 60)
    # light bar: red and blue (and amber) flashing alternately at 2-3 Hz, sampled at the analysis rate
    phase = (i / fps) * 2.5
    on_left = int(phase * 2) % 2 == 0
    bar_y = y - cw * 0.58
    boxes += [_glow(out, x + cw * 0.3, bar_y, cw * 0.05, (30, 30, 255), 1.4 if on_left else 0.1)]
    boxes += [_glow(out, x + cw * 0.7, bar_y, cw * 0.05, (255, 60, 20), 0.1 if on_left else 1.4)]
    boxes += [_glow(out, x + cw * 0.5, bar_y, cw * 0.035, (0, 170, 255), 1.0 if int(phase * 3) % 2 else 0.2)]
    boxes.append((x + cw * 0.2, bar_y - cw * 0.1, x + cw * 0.8, bar_y + cw * 0.1))  # the whole light bar
    # the flashes light the wet road under the car
    road = np.zeros(out.shape[:2], np.float32)
    cv2.ellipse(road, (int(x + cw / 2), int(y + h * 0.03)), (int(cw * 0.6), int(h * 0.03)), 0, 0, 360, 1.0, -1)
    road = np.asarray(cv2.GaussianBlur(road, (0, 0), 10), np.float32)
    tint = (20, 20, 120) if on_left else (120, 30, 10)
    out += road[..., None] * np.array(tint, np.float32)
    return _finish(out, rng), _inside(boxes, out.shape[1], out.shape[0])


def _inside(boxes: list[Box], w: int, h: int) -> list[Box]:
    """Boxes clipped to the frame; those left with no area are dropped."""
    out = []
    for x1, y1, x2, y2 in boxes:
        b = (max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2))
        if b[2] - b[0] >= 4 and b[3] - b[1] >= 4:
            out.append(b)
    return out


def _finish(out: F32, rng: np.random.Generator) -> U8:
    out += rng.normal(0, 3, out.shape).astype(np.float32)  # sensor noise, new every frame
    return np.clip(out, 0, 255).astype(np.uint8)


_RENDERERS: dict[str, Callable[[U8, int, float, np.random.Generator], Scene]] = {
    "headlights": _headlights,
    "tail_lights": _tail_lights,
    "sodium_lamps": _sodium_lamps,
    "sunset": _sunset,
    "hivis_vests": _hivis_vests,
    "emergency_lights": _emergency_lights,
}


def negative_scenes(
    kind: str, n_frames: int, fps: float = 5.0, width: int = 768, height: int = 576, seed: int = 0
) -> list[Scene]:
    """``n_frames`` frames of one hard-negative scene (``kind`` from :data:`KINDS`) at ``fps``, each with the
    boxes of its fire look-alikes (lamps, lights, vests, sun and lit clouds)."""
    if kind not in _RENDERERS:
        raise ValueError(f"unknown hard-negative kind {kind!r}; known: {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    bg = urban_background(width, height, seed=seed + 17, night=kind != "hivis_vests")
    render = _RENDERERS[kind]
    return [render(bg, i, fps, rng) for i in range(n_frames)]


def negative_clip(
    kind: str, n_frames: int, fps: float = 5.0, width: int = 768, height: int = 576, seed: int = 0
) -> list[U8]:
    """The frames of :func:`negative_scenes`."""
    return [frame for frame, _ in negative_scenes(kind, n_frames, fps, width, height, seed)]
