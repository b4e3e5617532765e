"""A second plate test set, made independently of ``plate_reader.synthetic`` (the code the reader was tuned on).

Nothing here calls ``plate_reader.synthetic``: its own plate drawing (Pillow,
whole strings with the font's kerning instead of OpenCV glyph-by-glyph,
fonts the first set does not use, other proportions, screws, dirt, a dealer
frame, yellowed or grey plate stock, region box outlined instead of a
separator line), its own vehicles (a rounded boot with a bumper and a
reflection band) and its own photography (real photographs as backgrounds:
ultralytics' ``bus.jpg`` and ``zidane.jpg`` and matplotlib's
``grace_hopper.jpg``; widths 130-340 px; yaw/pitch perspective; Gaussian and
directional motion blur; JPEG 35-90; a quarter at night as IR-like grey
images with bright retro-reflective plates). The plate strings follow the
formats the reader knows (KZ 2012 ``123ABC02``, KZ legal ``123AB02``, KZ 1993
``A123BCD``, RU ``A123BC77`` and ``A123BC777``).

Two products: single frames (one plate each) and vehicle passes (a plate
approaching over several frames: width growing, blur and noise new in every
frame), both with their labels. Seeded: one seed gives the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))
# Faces the first set does NOT use (it uses DejaVuSansCondensed-Bold, LiberationSansNarrow-Bold,
# DejaVuSansMono-Bold, LiberationSans-Bold and the Hershey fonts).
FONTS = (
    "DejaVuSans-Bold.ttf",
    "LiberationMono-Bold.ttf",
    "DejaVuSansCondensed.ttf",
    "LiberationSansNarrow-Regular.ttf",
    "LiberationSans-Regular.ttf",
)
DIGITS = "0123456789"
KZ_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
RU_LETTERS = "ABEKMHOPCTYX"
KZ_REGIONS = [f"{i:02d}" for i in range(1, 21)]
RU_REGIONS_2 = ["02", "16", "21", "36", "47", "52", "59", "64", "72", "86", "93", "96"]
RU_REGIONS_3 = ["102", "113", "116", "125", "134", "142", "152", "159", "161", "174", "177", "197", "199", "777", "799"]


@dataclass(frozen=True, slots=True)
class Plate:
    text: str
    layout: str  # kz, kz_legal, kz_old, ru
    format_id: str


def random_plate(rng: np.random.Generator) -> Plate:
    def pick(chars: str, n: int) -> str:
        return "".join(chars[int(rng.integers(0, len(chars)))] for _ in range(n))

    layout = ["kz", "kz", "kz_legal", "kz_old", "ru", "ru", "ru"][int(rng.integers(0, 7))]
    if layout == "kz":
        return Plate(pick(DIGITS, 3) + pick(KZ_LETTERS, 3) + KZ_REGIONS[int(rng.integers(0, 20))], layout, "kz-2012")
    if layout == "kz_legal":
        text = pick(DIGITS, 3) + pick(KZ_LETTERS, 2) + KZ_REGIONS[int(rng.integers(0, 20))]
        return Plate(text, layout, "kz-2012-legal")
    if layout == "kz_old":
        return Plate(pick("ABCDEFHKLMNPRSTXZ", 1) + pick(DIGITS, 3) + pick(KZ_LETTERS, 3), layout, "kz-1993")
    if rng.random() < 0.5:
        region = RU_REGIONS_3[int(rng.integers(0, len(RU_REGIONS_3)))]
        return Plate(pick(RU_LETTERS, 1) + pick(DIGITS, 3) + pick(RU_LETTERS, 2) + region, layout, "ru-3")
    region = RU_REGIONS_2[int(rng.integers(0, len(RU_REGIONS_2)))]
    return Plate(pick(RU_LETTERS, 1) + pick(DIGITS, 3) + pick(RU_LETTERS, 2) + region, layout, "ru-2")


@lru_cache(maxsize=16)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for d in FONT_DIRS:
        if (d / name).exists():
            return ImageFont.truetype(str(d / name), size)
    return ImageFont.load_default(size)


def _text(img: Image.Image, box: tuple[int, int, int, int], text: str, font: str, ink: int) -> None:
    """Draw ``text`` as one string (the font's own spacing) stretched to fill ``box`` (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = box
    f = _font(font, 160)
    left, top, right, bottom = f.getbbox(text)
    tw, th = max(1, right - left), max(1, bottom - top)
    layer = Image.new("L", (tw + 8, th + 8), 0)
    ImageDraw.Draw(layer).text((4 - left, 4 - top), text, fill=255, font=f)
    scale = (y2 - y1) / th
    w = min(x2 - x1, round(tw * scale))
    layer = layer.resize((max(1, w), y2 - y1), Image.Resampling.LANCZOS)
    ox = x1 + (x2 - x1 - w) // 2
    ink_img = Image.new("L", layer.size, ink)
    img.paste(ink_img, (ox, y1), layer)


def render(plate: Plate, rng: np.random.Generator) -> U8:
    """A frontal plate, 600×130 px (the real plate's 520×112 mm with a wider margin), grey-level ink on stock."""
    font = FONTS[int(rng.integers(0, len(FONTS)))]
    w, h = 600, 130
    stock = int(rng.integers(200, 246))
    img = Image.new("L", (w, h), stock)
    draw = ImageDraw.Draw(img)
    ink = int(rng.integers(5, 60))
    draw.rounded_rectangle((2, 2, w - 3, h - 3), radius=12, outline=ink, width=int(rng.integers(3, 8)))
    t = plate.text
    if plate.layout in ("kz", "kz_legal"):
        draw.rectangle((14, 16, 76, 62), fill=int(stock * 0.55))  # the flag band, in grey
        _text(img, (18, 74, 72, 110), "KZ", "DejaVuSans-Bold.ttf", ink)
        n = 3 if plate.layout == "kz" else 2
        _text(img, (92, 20, 470, 112), f"{t[:3]} {t[3 : 3 + n]}", font, ink)
        draw.rectangle((486, 14, w - 14, h - 14), outline=ink, width=3)
        _text(img, (496, 26, w - 24, 104), t[-2:], font, ink)
    elif plate.layout == "kz_old":
        draw.rectangle((14, 18, 64, 58), fill=int(stock * 0.55))
        _text(img, (16, 70, 62, 104), "KZ", "LiberationSans-Regular.ttf", ink)
        _text(img, (84, 20, w - 20, 112), f"{t[0]} {t[1:4]} {t[4:]}", font, ink)
    else:
        region = t[6:]
        _text(img, (26, 44, 80, 112), t[0], font, ink)
        _text(img, (90, 20, 270, 112), t[1:4], font, ink)
        _text(img, (284, 44, 420, 112), t[4:6], font, ink)
        draw.rectangle((436, 10, w - 12, h - 12), outline=ink, width=3)
        _text(img, (446, 16, w - 22, 82), region, font, ink)
        _text(img, (452, 92, 530, 114), "RUS", "DejaVuSans-Bold.ttf", ink)
        draw.rectangle((540, 94, 576, 112), outline=ink, width=1)
    arr = np.asarray(img, np.uint8).copy()
    for sx in (int(w * 0.3), int(w * 0.7)):  # the two screws
        cv2.circle(arr, (sx, 10), 5, int(stock * 0.6), -1)
    dirt = cv2.GaussianBlur(rng.normal(0, 1, (h // 8, w // 8)).astype(np.float32), (0, 0), 1.5)
    dirt = cv2.resize(dirt, (w, h)) * rng.uniform(3, 12)
    arr = np.clip(arr.astype(np.float32) - np.abs(dirt), 0, 255).astype(np.uint8)
    tint = np.array([rng.uniform(0.8, 0.95), rng.uniform(0.92, 1.0), 1.0], np.float32)  # yellowed / grey stock
    return np.clip(arr[..., None].astype(np.float32) * tint[None, None, :], 0, 255).astype(np.uint8)


def vehicle(plate: U8, rng: np.random.Generator) -> tuple[U8, F32]:
    """A boot around the plate: rounded body, bumper, reflection band, lamps; plate corners in it."""
    ph, pw = plate.shape[:2]
    bw, bh = int(pw * rng.uniform(2.6, 3.4)), int(ph * rng.uniform(4.2, 5.6))
    colour = rng.integers(15, 240, 3).astype(np.float32)
    body = np.zeros((bh, bw, 3), np.float32)
    cv2.rectangle(body, (0, int(bh * 0.15)), (bw - 1, bh - 1), colour.tolist(), -1)
    cv2.ellipse(body, (bw // 2, int(bh * 0.16)), (bw // 2, int(bh * 0.12)), 0, 180, 360, colour.tolist(), -1)
    cv2.rectangle(body, (int(bw * 0.12), int(bh * 0.05)), (int(bw * 0.88), int(bh * 0.3)),
                  (colour * 0.35).tolist(), -1)  # rear window  # fmt: skip
    band_y = int(bh * 0.36)
    cv2.rectangle(body, (0, band_y), (bw - 1, band_y + max(2, bh // 40)), np.clip(colour * 1.5, 0, 255).tolist(), -1)
    cy = int(bh * rng.uniform(0.58, 0.66))
    cv2.rectangle(body, (0, cy + ph // 2 + int(ph * 0.4)), (bw - 1, bh - 1), (25, 25, 28), -1)  # bumper
    lamp_w = bw // 6
    for lx in (int(bw * 0.03), bw - lamp_w - int(bw * 0.03)):
        cv2.rectangle(body, (lx, int(bh * 0.38)), (lx + lamp_w, int(bh * 0.5)), (30, 40, 160), -1)
        cv2.rectangle(body, (lx + lamp_w // 3, int(bh * 0.4)), (lx + lamp_w // 2, int(bh * 0.48)), (200, 200, 200), -1)
    shade = np.linspace(1.1, 0.7, bh, dtype=np.float32)[:, None, None]
    body = np.clip(body * shade, 0, 255)
    x0, y0 = bw // 2 - pw // 2, cy - ph // 2
    body[y0 : y0 + ph, x0 : x0 + pw] = plate
    quad = np.array([[x0, y0], [x0 + pw, y0], [x0 + pw, y0 + ph], [x0, y0 + ph]], np.float32)
    return body.astype(np.uint8), quad


def photographs() -> list[U8]:
    """Real photographs shipped in installed packages (ultralytics assets, matplotlib sample data)."""
    out: list[U8] = []
    paths: list[Path] = []
    try:
        from ultralytics.utils import ASSETS

        paths += [Path(ASSETS) / "bus.jpg", Path(ASSETS) / "zidane.jpg"]
    except ImportError:
        pass
    try:
        import matplotlib

        paths.append(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    except ImportError:
        pass
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is not None:
            scale = 960 / max(img.shape[:2])
            out.append(np.asarray(cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8))
    if not out:
        raise RuntimeError("no background photographs found (ultralytics or matplotlib must be installed)")
    return out


@dataclass(frozen=True, slots=True)
class Shot:
    """How one frame is photographed."""

    width_px: int
    center: tuple[float, float]  # share of the background's width/height
    yaw: float  # -0.25..0.25: one side of the plate further away
    pitch: float
    roll_deg: float
    blur: float  # Gaussian sigma
    motion_px: int  # motion-blur length (0: none)
    motion_deg: float
    jpeg: int
    night: bool
    noise: float


def random_shot(rng: np.random.Generator, width_px: int | None = None, night: bool | None = None) -> Shot:
    return Shot(
        width_px=int(rng.integers(130, 341)) if width_px is None else width_px,
        center=(float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.45, 0.75))),
        yaw=float(rng.uniform(-0.22, 0.22)),
        pitch=float(rng.uniform(-0.1, 0.1)),
        roll_deg=float(rng.uniform(-5, 5)),
        blur=float(rng.uniform(0.0, 1.2)),
        motion_px=int(rng.choice([0, 0, 3, 5, 7])),
        motion_deg=float(rng.uniform(-20, 20)),
        jpeg=int(rng.integers(35, 91)),
        night=bool(rng.random() < 0.25) if night is None else night,
        noise=float(rng.uniform(1.0, 6.0)),
    )


def photograph(
    background: U8, plate_img: U8, shot: Shot, rng: np.random.Generator, vehicle_seed: int
) -> tuple[U8, F32]:
    """The plate on its vehicle in ``background`` as ``shot`` says; returns the image and the plate corners."""
    patch, quad = vehicle(plate_img, np.random.default_rng(vehicle_seed))
    scale = shot.width_px / plate_img.shape[1]
    patch = np.asarray(cv2.resize(patch, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8)
    quad = quad * scale
    h, w = patch.shape[:2]
    bh, bw = background.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = src.copy()
    dst[[1, 2], 1] += np.array([shot.yaw * h, -shot.yaw * h], np.float32) * 0.5  # the far side is shorter
    dst[[0, 1], 0] += np.array([shot.pitch * w, -shot.pitch * w], np.float32) * 0.5  # the top is further away
    a = np.deg2rad(shot.roll_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)
    dst = (dst - dst.mean(0)) @ rot.T + np.array([shot.center[0] * bw, shot.center[1] * bh], np.float32)
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(patch, m, (bw, bh), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), m, (bw, bh), flags=cv2.INTER_LINEAR)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    img = background.astype(np.float32) * (1 - alpha) + warped.astype(np.float32) * alpha
    plate_quad = cv2.perspectiveTransform(quad[None].astype(np.float32), m)[0]
    if shot.night:  # IR-like: grey, dark scene, the retro-reflective plate stays bright
        grey = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
        pmask = np.zeros((bh, bw), np.float32)
        cv2.fillConvexPoly(pmask, plate_quad.astype(np.int32), 1.0)
        grey = grey * (0.35 + 0.75 * pmask)
        img = np.repeat(grey[..., None], 3, axis=2)
    if shot.blur > 0.2:
        img = cv2.GaussianBlur(img, (0, 0), shot.blur)
    if shot.motion_px > 1:
        line = np.zeros((shot.motion_px, shot.motion_px), np.float32)
        line[shot.motion_px // 2, :] = 1.0 / shot.motion_px
        r = cv2.getRotationMatrix2D((shot.motion_px / 2 - 0.5, shot.motion_px / 2 - 0.5), shot.motion_deg, 1.0)
        kernel = np.asarray(cv2.warpAffine(line, r, (shot.motion_px, shot.motion_px)), np.float32)
        img = np.asarray(cv2.filter2D(img, -1, kernel / max(float(kernel.sum()), 1e-6)), np.float32)
    img = img + rng.normal(0, shot.noise, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, shot.jpeg])
    if ok:
        out = np.asarray(cv2.imdecode(enc, cv2.IMREAD_COLOR), np.uint8)
    return out, plate_quad.astype(np.float32)


@dataclass(frozen=True, slots=True)
class Sample:
    image: U8
    plate: Plate
    quad: F32
    night: bool

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        x1, y1 = self.quad.min(0)
        x2, y2 = self.quad.max(0)
        return float(x1), float(y1), float(x2), float(y2)

    @property
    def width_px(self) -> float:
        return float(self.quad[:, 0].max() - self.quad[:, 0].min())


def frames(n: int, seed: int) -> list[Sample]:
    """``n`` single frames, one plate each."""
    rng = np.random.default_rng(seed)
    bgs = photographs()
    out = []
    for _ in range(n):
        plate = random_plate(rng)
        shot = random_shot(rng)
        bg = bgs[int(rng.integers(0, len(bgs)))]
        img, quad = photograph(bg, render(plate, rng), shot, rng, int(rng.integers(0, 2**31)))
        out.append(Sample(img, plate, quad, shot.night))
    return out


def passes(n: int, frames_per_pass: int, seed: int) -> list[list[Sample]]:
    """``n`` vehicle passes: one plate approaching the camera over ``frames_per_pass`` frames."""
    rng = np.random.default_rng(seed)
    bgs = photographs()
    out = []
    for _ in range(n):
        plate = random_plate(rng)
        plate_img = render(plate, rng)
        bg = bgs[int(rng.integers(0, len(bgs)))]
        base = random_shot(rng)
        vehicle_seed = int(rng.integers(0, 2**31))
        seq = []
        for k in range(frames_per_pass):
            f = k / max(1, frames_per_pass - 1)
            shot = random_shot(rng, width_px=int(130 + 200 * f), night=base.night)
            shot = Shot(
                shot.width_px, (base.center[0] + 0.05 * f, base.center[1] + 0.1 * f), base.yaw, base.pitch,
                base.roll_deg, shot.blur, shot.motion_px, base.motion_deg, shot.jpeg, base.night, shot.noise,
            )  # fmt: skip
            img, quad = photograph(bg, plate_img, shot, rng, vehicle_seed)
            seq.append(Sample(img, plate, quad, base.night))
        out.append(seq)
    return out
