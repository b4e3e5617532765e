"""Rendered licence plates (Kazakhstan, Russia) and their placement into photos.

No plate photographs ship with Kuzet and nothing may be downloaded, so the
tests, the benchmark's test set and the plate demo draw their own plates:
the plate layouts follow the real ones closely enough for a detector trained
on real plates to fire (white plate, black border, the KZ flag band, the
region box) and the text is set in several fonts (OpenCV's Hershey fonts and
the TrueType fonts Debian ships), so that the OCR is not tested on one
typeface only. Everything takes a seeded ``numpy.random.Generator``: the same
seed gives the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

DIGITS = "0123456789"
LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
RU_LETTERS = "ABEKMHOPCTYX"
"""The twelve Cyrillic letters with Latin look-alikes that Russian plates use (written here in Latin)."""

KZ_REGIONS = [f"{i:02d}" for i in range(1, 21)]
RU_REGIONS_2 = ["01", "02", "05", "16", "23", "24", "34", "50", "54", "61", "63", "66", "74", "77", "78", "99"]
RU_REGIONS_3 = ["102", "116", "123", "150", "152", "161", "163", "174", "190", "750", "777", "790", "797", "799"]

PLATE_W, PLATE_H = 520, 112  # millimetres of a real plate; rendered at one pixel per millimetre

HERSHEY_FONTS = {
    "hershey-simplex": cv2.FONT_HERSHEY_SIMPLEX,
    "hershey-duplex": cv2.FONT_HERSHEY_DUPLEX,
    "hershey-triplex": cv2.FONT_HERSHEY_TRIPLEX,
    "hershey-complex": cv2.FONT_HERSHEY_COMPLEX,
}
TTF_CANDIDATES = {
    "dejavu-sans-condensed-bold": "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
    "liberation-sans-narrow-bold": "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Bold.ttf",
    "dejavu-sans-mono-bold": "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "liberation-sans-bold": "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "noto-sans-mono-bold": "/usr/share/fonts/truetype/noto/NotoSansMono-Bold.ttf",
}


def available_fonts() -> list[str]:
    """Hershey fonts (always there) plus the TrueType fonts installed on this machine, in a fixed order."""
    return list(HERSHEY_FONTS) + [name for name, path in TTF_CANDIDATES.items() if Path(path).exists()]


@dataclass(frozen=True, slots=True)
class PlateSpec:
    """What to render: the plate's text (normalised, no spaces) and its layout."""

    text: str
    layout: str  # "kz" (2012+), "kz_legal" (2012+, two letters), "kz_old" (1993), "ru"
    format_id: str  # the format in plate_reader/formats that should read it


def random_plate(rng: np.random.Generator, layout: str | None = None) -> PlateSpec:
    """A random plausible plate of the given layout (or of a layout drawn with realistic weights)."""
    if layout is None:
        layout = str(rng.choice(["kz", "kz", "kz", "kz_legal", "kz_old", "ru", "ru"]))

    def pick(chars: str, n: int) -> str:
        return "".join(str(rng.choice(list(chars))) for _ in range(n))

    if layout == "kz":
        return PlateSpec(pick(DIGITS, 3) + pick(LATIN, 3) + str(rng.choice(KZ_REGIONS)), "kz", "kz-2012")
    if layout == "kz_legal":
        return PlateSpec(pick(DIGITS, 3) + pick(LATIN, 2) + str(rng.choice(KZ_REGIONS)), "kz_legal", "kz-2012-legal")
    if layout == "kz_old":
        return PlateSpec(pick("ABCDEFHKLMNPRSTXZ", 1) + pick(DIGITS, 3) + pick(LATIN, 3), "kz_old", "kz-1993")
    if layout == "ru":
        if rng.random() < 0.4:
            region = str(rng.choice(RU_REGIONS_3))
            return PlateSpec(pick(RU_LETTERS, 1) + pick(DIGITS, 3) + pick(RU_LETTERS, 2) + region, "ru", "ru-3")
        region = str(rng.choice(RU_REGIONS_2))
        return PlateSpec(pick(RU_LETTERS, 1) + pick(DIGITS, 3) + pick(RU_LETTERS, 2) + region, "ru", "ru-2")
    raise ValueError(f"unknown plate layout {layout!r}")


# -- glyph rendering ------------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _glyph_mask(text: str, font: str, bold: int) -> U8:
    """Ink mask of ``text`` in ``font``, cropped tight, about 100 px high (cached: a test set reuses glyphs)."""
    if font in HERSHEY_FONTS:
        face = HERSHEY_FONTS[font]
        scale = 3.0
        thickness = 6 + bold
        (w, h), base = cv2.getTextSize(text, face, scale, thickness)
        canvas: U8 = np.zeros((h + base + 40, w + 40), np.uint8)
        cv2.putText(canvas, text, (20, h + 20), face, scale, 255, thickness, cv2.LINE_AA)
    else:
        from PIL import Image, ImageDraw, ImageFont

        pil_font = ImageFont.truetype(TTF_CANDIDATES[font], 110)
        left, top, right, bottom = pil_font.getbbox(text)
        img = Image.new("L", (int(right - left) + 40, int(bottom - top) + 40), 0)
        ImageDraw.Draw(img).text((20 - left, 20 - top), text, fill=255, font=pil_font)
        canvas = np.asarray(img, dtype=np.uint8).copy()
        if bold:
            canvas = np.asarray(cv2.dilate(canvas, np.ones((bold + 1, bold + 1), np.uint8)), np.uint8)
    ys, xs = np.nonzero(canvas > 40)
    if ys.size == 0:
        return np.zeros((1, 1), np.uint8)
    return canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _put_text(
    canvas: U8,
    text: str,
    box: tuple[int, int, int, int],
    font: str,
    color: tuple[int, int, int],
    bold: int = 0,
    spacing: float = 0.18,
) -> None:
    """Set ``text`` into ``box`` (x, y, w, h), one glyph at a time so letter spacing looks like a plate's."""
    x, y, w, h = box
    glyphs = [_glyph_mask(ch, font, bold) for ch in text if ch != " "]
    gaps = [1.0 if ch == " " else 0.0 for ch in text]
    scaled = [
        cv2.resize(g, (max(1, round(g.shape[1] * h / g.shape[0])), h), interpolation=cv2.INTER_AREA) for g in glyphs
    ]
    # glyphs like "-" are short: keep them at their own height, centred
    total = sum(g.shape[1] for g in scaled) + spacing * h * (len(scaled) - 1) + sum(gaps) * 0.35 * h
    squeeze = min(1.0, w / max(total, 1.0))
    cursor = x + (w - total * squeeze) / 2
    it = iter(scaled)
    for ch in text:
        if ch == " ":
            cursor += 0.35 * h * squeeze
            continue
        g = next(it)
        gw = max(1, round(g.shape[1] * squeeze))
        g = cv2.resize(g, (gw, h), interpolation=cv2.INTER_AREA)
        x0 = round(cursor)
        x1 = min(canvas.shape[1], x0 + gw)
        alpha = (g[:, : x1 - x0].astype(np.float32) / 255.0)[..., None]
        region = canvas[y : y + h, x0:x1].astype(np.float32)
        canvas[y : y + h, x0:x1] = (region * (1 - alpha) + np.array(color, np.float32) * alpha).astype(np.uint8)
        cursor += gw + spacing * h * squeeze


def _kz_flag(canvas: U8, x: int, y: int, w: int, h: int) -> None:
    """The Kazakh flag, simplified: sky blue with a golden sun."""
    cv2.rectangle(canvas, (x, y), (x + w, y + h), (200, 175, 0), -1)
    cv2.circle(canvas, (x + w // 2, y + h // 2), max(2, h // 4), (0, 200, 255), -1)


def _ru_flag(canvas: U8, x: int, y: int, w: int, h: int) -> None:
    for i, col in enumerate([(255, 255, 255), (170, 60, 0), (30, 30, 210)]):
        cv2.rectangle(canvas, (x, y + i * h // 3), (x + w, y + (i + 1) * h // 3), col, -1)
    cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 0, 0), 1)


def render_plate(spec: PlateSpec, font: str, rng: np.random.Generator) -> U8:
    """A frontal plate image (BGR, 112×520 px) of ``spec`` in ``font``."""
    ink = (int(rng.integers(0, 40)),) * 3
    white = tuple(int(v) for v in rng.integers(225, 256, 3))
    canvas = np.full((PLATE_H, PLATE_W, 3), white, np.uint8)
    bold = int(rng.integers(0, 3))
    t = spec.text
    if spec.layout in ("kz", "kz_legal"):
        cv2.rectangle(canvas, (3, 3), (PLATE_W - 4, PLATE_H - 4), ink, 4)
        _kz_flag(canvas, 10, 12, 52, 34)
        _put_text(
            canvas,
            "KZ",
            (10, 62, 52, 34),
            "dejavu-sans-condensed-bold" if "dejavu-sans-condensed-bold" in available_fonts() else "hershey-duplex",
            (150, 90, 0),
        )
        n_letters = 3 if spec.layout == "kz" else 2
        main = f"{t[:3]} {t[3 : 3 + n_letters]}"
        _put_text(canvas, main, (74, 16, 340, 80), font, ink, bold)
        cv2.line(canvas, (426, 8), (426, PLATE_H - 9), ink, 3)
        _put_text(canvas, t[-2:], (436, 16, 74, 80), font, ink, bold)
    elif spec.layout == "kz_old":
        cv2.rectangle(canvas, (3, 3), (PLATE_W - 4, PLATE_H - 4), ink, 4)
        _kz_flag(canvas, 10, 14, 44, 30)
        _put_text(canvas, "KZ", (12, 56, 40, 28), "hershey-duplex", ink)
        _put_text(canvas, f"{t[0]} {t[1:4]} {t[4:]}", (66, 16, 440, 80), font, ink, bold)
    elif spec.layout == "ru":
        cv2.rectangle(canvas, (3, 3), (PLATE_W - 4, PLATE_H - 4), ink, 4)
        region = t[6:]
        # letters are lower than digits on a Russian plate
        _put_text(canvas, t[0], (22, 30, 48, 62), font, ink, bold)
        _put_text(canvas, t[1:4], (80, 16, 170, 80), font, ink, bold)
        _put_text(canvas, t[4:6], (262, 30, 110, 62), font, ink, bold)
        cv2.line(canvas, (388, 6), (388, PLATE_H - 7), ink, 3)
        _put_text(canvas, region, (396, 10, 116, 62), font, ink, bold)
        _put_text(canvas, "RUS", (404, 82, 58, 18), "hershey-simplex", ink)
        _ru_flag(canvas, 470, 82, 36, 18)
    else:
        raise ValueError(f"unknown plate layout {spec.layout!r}")
    return canvas


# -- placing plates into photos -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placed:
    """A photo with one plate in it: the image, the plate's corner points and its axis-aligned box."""

    image: U8
    quad: F32  # 4×2, clockwise from top-left, frame pixels
    xyxy: tuple[float, float, float, float]


def _car_rear(plate_w: int, plate_h: int, rng: np.random.Generator) -> tuple[U8, F32]:
    """A simple bumper/boot around the plate, so the plate sits where a detector expects one."""
    bw, bh = int(plate_w * rng.uniform(2.2, 3.2)), int(plate_h * rng.uniform(3.5, 5.0))
    colour = rng.integers(20, 230, 3).astype(np.float32)
    yy = np.linspace(0.75, 1.15, bh, dtype=np.float32)[:, None, None]
    body = np.clip(colour[None, None, :] * yy * np.ones((1, bw, 1), np.float32), 0, 255).astype(np.uint8)
    cx, cy = bw // 2, int(bh * rng.uniform(0.55, 0.65))
    # bumper line and lamps give the detector the context of a real car rear
    cv2.rectangle(body, (0, cy + plate_h // 2 + 6), (bw, bh), (40, 40, 40), -1)
    lamp_w = max(6, bw // 7)
    for lx in (6, bw - lamp_w - 6):
        cv2.rectangle(body, (lx, cy - plate_h), (lx + lamp_w, cy - plate_h // 3), (20, 20, 180), -1)
    x0, y0 = cx - plate_w // 2, cy - plate_h // 2
    quad = np.array([[x0, y0], [x0 + plate_w, y0], [x0 + plate_w, y0 + plate_h], [x0, y0 + plate_h]], np.float32)
    return body, quad


def place_plate(
    background: U8,
    plate: U8,
    rng: np.random.Generator,
    width_px: tuple[int, int] = (110, 240),
    with_car: bool = True,
    center: tuple[float, float] | None = None,
) -> Placed:
    """Paste ``plate`` into a copy of ``background`` with perspective, blur, noise and a lighting change."""
    img = background.copy()
    bh, bw = img.shape[:2]
    pw = int(rng.integers(width_px[0], width_px[1] + 1))
    ph = max(8, round(pw * PLATE_H / PLATE_W))
    small = cv2.resize(plate, (pw, ph), interpolation=cv2.INTER_AREA)
    if with_car:
        patch, quad = _car_rear(pw, ph, rng)
        patch[int(quad[0, 1]) : int(quad[0, 1]) + ph, int(quad[0, 0]) : int(quad[0, 0]) + pw] = small
    else:
        patch = np.asarray(small, np.uint8)
        quad = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    h, w = patch.shape[:2]
    # perspective: rotate a little, squash one side (seen from an angle), shear
    angle = np.deg2rad(rng.uniform(-7, 7))
    yaw = rng.uniform(-0.18, 0.18)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = src.copy()
    dst[1, 1] += yaw * h
    dst[2, 1] -= yaw * h
    dst += rng.uniform(-0.03, 0.03, (4, 2)).astype(np.float32) * np.array([w, h], np.float32)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    dst = (dst - dst.mean(0)) @ rot.T
    if center is None:
        cx = rng.uniform(0.25, 0.75) * bw
        cy = rng.uniform(0.35, 0.8) * bh
    else:
        cx, cy = center[0] * bw, center[1] * bh
    dst += np.array([cx, cy], np.float32)
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(patch, m, (bw, bh), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), m, (bw, bh), flags=cv2.INTER_LINEAR)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    mixed: F32 = img.astype(np.float32) * (1 - alpha) + warped.astype(np.float32) * alpha
    plate_quad = cv2.perspectiveTransform(quad[None], m)[0]
    # lighting: global gain/offset, plus a soft shadow gradient across the frame
    gain = rng.uniform(0.55, 1.2)
    offset = rng.uniform(-25, 20)
    grad = np.linspace(rng.uniform(0.75, 1.0), rng.uniform(0.85, 1.1), bw, dtype=np.float32)[None, :, None]
    mixed = mixed * np.float32(gain) * grad + np.float32(offset)
    # blur (defocus or motion) and sensor noise
    if rng.random() < 0.5:
        sigma = rng.uniform(0.3, 1.1)
        mixed = np.asarray(cv2.GaussianBlur(mixed, (0, 0), sigma), np.float32)
    else:
        k = int(rng.integers(2, 5))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        mixed = np.asarray(cv2.filter2D(mixed, -1, kernel), np.float32)
    mixed = mixed + rng.normal(0, rng.uniform(1.5, 6.0), mixed.shape).astype(np.float32)
    out: U8 = np.clip(mixed, 0, 255).astype(np.uint8)
    quality = int(rng.integers(55, 95))
    ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if ok:
        out = np.asarray(cv2.imdecode(enc, cv2.IMREAD_COLOR), np.uint8)
    x1, y1 = plate_quad.min(0)
    x2, y2 = plate_quad.max(0)
    return Placed(out, plate_quad.astype(np.float32), (float(x1), float(y1), float(x2), float(y2)))


def backgrounds(max_video_frames: int = 40, video: Path | None = None) -> list[U8]:
    """Photos to paste plates into: ultralytics' packaged bus/zidane images and frames of the vtest clip."""
    out: list[U8] = []
    try:
        from ultralytics.utils import ASSETS

        for name in ("bus.jpg", "zidane.jpg"):
            img = cv2.imread(str(Path(ASSETS) / name), cv2.IMREAD_COLOR)
            if img is not None:
                out.append(np.asarray(img, np.uint8))
    except ImportError:  # ultralytics is a main dependency, but keep the tests' material usable without it
        pass
    clip = video or Path(__file__).resolve().parents[2] / "shared" / "data" / "vtest.avi"
    if clip.exists() and max_video_frames > 0:
        cap = cv2.VideoCapture(str(clip))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 795
        step = max(1, total // max_video_frames)
        for i in range(0, total, step):
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, frame = cap.read()
            if ok:
                out.append(np.asarray(frame, np.uint8))
            if len(out) >= max_video_frames + 2:
                break
        cap.release()
    if not out:  # a plain grey street is still a usable background
        out.append(np.full((576, 768, 3), 110, np.uint8))
    return out
