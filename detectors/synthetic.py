"""Procedurally rendered fire, smoke and street scenes for tests, the demo and benchmarks.

No fire footage ships with Kuzet, and nothing may be downloaded, so tests of
the fire path draw their own: a dark urban background (sky gradient,
buildings with lit windows, a road), flames built from layered value noise
shaped into tongues and coloured through a black-body-like ramp
(red -> orange -> yellow -> white core), an additive glow, and an optional grey
smoke plume. Everything is seeded, so a test sees the same pixels every run.
Frame-to-frame flicker comes from moving the noise field upwards over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


def value_noise(shape: tuple[int, int], rng: np.random.Generator, octaves: int = 5, base: int = 4) -> F32:
    """Fractal value noise in 0..1: smooth random fields upsampled and summed over octaves."""
    h, w = shape
    acc = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = base * (2**o)
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        acc += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
    acc /= total
    acc -= acc.min()
    return acc / max(float(acc.max()), 1e-6)


def urban_background(width: int, height: int, seed: int = 0, night: bool = True) -> U8:
    """A dark street scene: sky gradient, building blocks with windows, road and kerb."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    top = np.array([40, 25, 20] if night else [200, 170, 140], np.float32)
    bottom = np.array([70, 60, 55] if night else [210, 200, 190], np.float32)
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    img[:] = (top * (1 - t) + bottom * t)[:, None, :].astype(np.uint8)
    horizon = int(height * 0.62)
    x = 0
    while x < width:
        bw = int(rng.integers(width // 10, width // 4))
        bh = int(rng.integers(height // 5, int(height * 0.55)))
        shade = int(rng.integers(30, 70)) if night else int(rng.integers(90, 160))
        cv2.rectangle(img, (x, horizon - bh), (x + bw, horizon), (shade, shade, shade + 5), -1)
        for wy in range(horizon - bh + 8, horizon - 10, 18):
            for wx in range(x + 6, x + bw - 10, 16):
                if rng.random() < (0.35 if night else 0.0):
                    cv2.rectangle(img, (wx, wy), (wx + 8, wy + 10), (90, 170, 200), -1)
                else:
                    cv2.rectangle(img, (wx, wy), (wx + 8, wy + 10), (shade - 15, shade - 15, shade - 10), -1)
        x += bw + int(rng.integers(0, 12))
    img[horizon:] = (45, 45, 48) if night else (110, 110, 115)
    for lx in range(0, width, 60):
        cv2.line(img, (lx, int(height * 0.8)), (lx + 30, int(height * 0.8)), (150, 150, 150), 2)
    noise = rng.normal(0, 4, img.shape).astype(np.float32)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FireSpec:
    """Where a fire is drawn: centre of its base (x, y) and its size in pixels."""

    cx: int
    base_y: int
    width: int
    height: int
    smoke: bool = True

    @property
    def box(self) -> tuple[int, int, int, int]:
        """The flame's bounding box (x1, y1, x2, y2), roughly where a detector should fire."""
        return (self.cx - self.width // 2, self.base_y - self.height, self.cx + self.width // 2, self.base_y)


def _fire_ramp(v: F32) -> F32:
    """Intensity 0..1 -> BGR colour 0..255 of a flame (dark red, orange, yellow, near-white core)."""
    stops = np.array([0.0, 0.25, 0.5, 0.75, 1.0], np.float32)
    b = np.interp(v, stops, [0, 0, 10, 60, 200])
    g = np.interp(v, stops, [0, 30, 120, 210, 250])
    r = np.interp(v, stops, [0, 170, 245, 255, 255])
    return np.stack([b, g, r], axis=-1).astype(np.float32)


def render_flame(img: U8, spec: FireSpec, t: float = 0.0, seed: int = 0, tongues: int = 7) -> U8:
    """Draw one fire (and its smoke) onto a copy of ``img``; ``t`` in seconds animates the flicker."""
    rng = np.random.default_rng(seed)
    out = img.astype(np.float32)
    h, w = spec.height, spec.width
    # a taller noise field scrolled upwards by t gives rising, flickering turbulence
    field = value_noise((h * 2, w), rng, octaves=5, base=3)
    shift = int((t * 1.7 * h) % h)
    n = field[h - shift : 2 * h - shift]
    ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]  # 0 at the top, 1 at the base
    xs = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    warped = xs + 0.35 * (n - 0.5)  # domain warping: ragged, licking edges
    intensity: F32 = np.zeros((h, w), np.float32)
    for k in range(tongues):
        # the first tongue is the fire's broad body, the others lick up around it
        x0 = 0.0 if k == 0 else float(np.clip(rng.normal(0.0, 0.28), -0.55, 0.55))
        height = float(rng.uniform(0.55, 0.75)) if k == 0 else float(rng.uniform(0.45, 1.0))
        width = 0.7 if k == 0 else float(rng.uniform(0.2, 0.45))
        phase = float(rng.uniform(0, 2 * np.pi))
        start = 1.0 - height
        rel = np.clip((ys - start) / height, 0, 1)  # 0 at the tongue's tip, 1 at the base
        sway = 0.12 * np.sin(phase + 7.0 * ys + 9.0 * t) * (1 - rel)
        half = width * rel**0.55 + 1e-3
        tongue = np.clip(1.0 - ((warped - x0 - sway) / half) ** 2, 0, 1) * (rel > 0)
        intensity = np.maximum(intensity, tongue * (0.55 + 0.45 * rel)).astype(np.float32)
    intensity = np.clip(intensity * (0.75 + 0.5 * n), 0, 1).astype(np.float32)
    intensity = cv2.GaussianBlur(intensity, (0, 0), max(0.8, w / 160)).astype(np.float32)
    x1, y1, _, _ = spec.box
    if spec.smoke:
        sh, sw = int(h * 1.6), int(w * 1.8)
        smoke_field = value_noise((sh, sw), rng, octaves=4, base=3)
        sy = np.linspace(0.0, 1.0, sh, dtype=np.float32)[:, None]  # 0 at the top of the plume
        sx = np.linspace(-1.0, 1.0, sw, dtype=np.float32)[None, :]
        drift = 0.25 * np.sin(3 * sy + t)
        plume = np.clip(1.0 - ((sx - drift) / (0.35 + 0.6 * (1 - sy))) ** 2, 0, 1) * np.clip(sy * 1.5, 0, 1)
        alpha = np.clip(plume * (0.3 + 0.7 * smoke_field), 0, 0.85).astype(np.float32)
        alpha = cv2.GaussianBlur(alpha, (0, 0), max(2.0, sw / 30))
        grey = np.float32(110) + 40 * smoke_field[..., None]
        sy1, sx1 = y1 - sh + int(h * 0.35), spec.cx - sw // 2
        _blend(out, grey.repeat(3, axis=2), alpha, sx1, sy1)
    colour = _fire_ramp(intensity)
    # glow: a wide, soft orange halo lights the surroundings
    pad = max(8, w // 2)
    padded = cv2.copyMakeBorder(intensity, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    glow = cv2.GaussianBlur(padded, (0, 0), max(3.0, w / 5)) * 0.7
    _add(out, glow[..., None] * np.array([20, 80, 190], np.float32), x1 - pad, y1 - pad)
    alpha = np.clip(intensity * 2.5, 0, 1)
    _blend(out, colour, alpha, x1, y1)
    return np.clip(out, 0, 255).astype(np.uint8)


def _clip_region(out: F32, x: int, y: int, h: int, w: int) -> tuple[slice, slice, slice, slice] | None:
    H, W = out.shape[:2]
    ox1, oy1, ox2, oy2 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if ox1 >= ox2 or oy1 >= oy2:
        return None
    return slice(oy1, oy2), slice(ox1, ox2), slice(oy1 - y, oy2 - y), slice(ox1 - x, ox2 - x)


def _blend(out: F32, layer: F32, alpha: F32, x: int, y: int) -> None:
    reg = _clip_region(out, x, y, layer.shape[0], layer.shape[1])
    if reg is None:
        return
    oy, ox, ly, lx = reg
    a = alpha[ly, lx][..., None]
    out[oy, ox] = out[oy, ox] * (1 - a) + layer[ly, lx] * a


def _add(out: F32, layer: F32, x: int, y: int) -> None:
    reg = _clip_region(out, x, y, layer.shape[0], layer.shape[1])
    if reg is None:
        return
    oy, ox, ly, lx = reg
    out[oy, ox] += layer[ly, lx]


def fire_scene(
    width: int = 768, height: int = 576, fires: list[FireSpec] | None = None, t: float = 0.0, seed: int = 0
) -> U8:
    """A BGR street scene with the given fires (one mid-size fire by default)."""
    img = urban_background(width, height, seed=seed)
    if fires is None:
        fires = [FireSpec(cx=width // 2, base_y=int(height * 0.78), width=width // 4, height=height // 3)]
    for i, spec in enumerate(fires):
        img = render_flame(img, spec, t=t, seed=seed * 101 + i)
    return img


def fire_clip(
    n_frames: int, fps: float = 5.0, width: int = 768, height: int = 576, fire_from: int = 0, seed: int = 0
) -> list[U8]:
    """Frames of one camera: background only before ``fire_from``, then a flickering fire."""
    background = urban_background(width, height, seed=seed)
    spec = FireSpec(cx=width // 2, base_y=int(height * 0.78), width=width // 4, height=height // 3)
    frames: list[U8] = []
    for i in range(n_frames):
        if i < fire_from:
            frames.append(background.copy())
        else:
            frames.append(render_flame(background, spec, t=i / fps, seed=seed * 101))
    return frames
