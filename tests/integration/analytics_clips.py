"""Rendered clips with known ground truth for the analytics integration tests.

People: walkers cut out of the vtest clip (the difference to its median
background gives each one's silhouette), pasted onto that empty background
and moved along scripted paths, so the number of crossings per direction and
the size of a crowd are known exactly and the real person detector sees real
people. Traffic: cars with rendered plates (plate_reader.synthetic) driven at
known pixel speeds, so section speeds are known from the geometry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from plate_reader.synthetic import PlateSpec, available_fonts, place_plate, render_plate
from tests.integration.h264 import write_h264

U8 = npt.NDArray[np.uint8]
VTEST = Path(__file__).resolve().parents[3] / "shared" / "data" / "vtest.avi"
FPS = 10
LEAD_IN = 5 * FPS
"""Empty frames before anything happens: the worker connects while they play."""


def write_clip(frames: list[U8], path: Path, fps: int = FPS) -> Path:
    """H.264 mp4, a key frame every second (the RTSP server loops it)."""
    return write_h264(frames, path, fps, crf=18)


# -- people ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sprite:
    image: U8
    alpha: npt.NDArray[np.float32]  # H×W in 0..1


def _vtest_frames(step: int = 8) -> list[U8]:
    cap = cv2.VideoCapture(str(VTEST))
    frames: list[U8] = []
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % step == 0:
            frames.append(np.asarray(frame, np.uint8))
        i += 1
    cap.release()
    if not frames:
        raise FileNotFoundError(f"cannot read {VTEST}")
    return frames


def background_and_walkers(count: int = 5) -> tuple[U8, list[Sprite]]:
    """The vtest scene without its walkers (per-pixel median) and ``count`` walkers cut out of it.

    The median keeps the people who stand still on the lawn for most of the clip (left), so the scenes
    put their action on the right. The third-tallest cut-out drags a piece of the lawn with it, which the
    person model splits into two boxes; it is left out.
    """
    frames = _vtest_frames()
    background = np.median(np.stack(frames), axis=0).astype(np.uint8)
    found: list[tuple[int, Sprite]] = []
    for frame in frames[::3]:
        diff = cv2.absdiff(frame, background).max(axis=2)
        mask = cv2.morphologyEx((diff > 35).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((7, 5), np.uint8))
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        for x, y, w, h, area in stats[1:n]:
            if 80 <= h <= 160 and 0.25 <= w / h <= 0.6 and area > 0.35 * w * h and y + h < frame.shape[0] - 2:
                alpha = cv2.GaussianBlur(mask[y : y + h, x : x + w].astype(np.float32), (3, 3), 0)
                found.append((int(h), Sprite(frame[y : y + h, x : x + w].copy(), np.clip(alpha, 0, 1))))
    found.sort(key=lambda hs: -hs[0])
    walkers = [s for i, (_, s) in enumerate(found[: count + 1]) if i != 2]
    if len(walkers) < count:
        raise RuntimeError(f"found only {len(walkers)} walkers in {VTEST}")
    return background, walkers


def paste(canvas: U8, sprite: Sprite, feet_x: float, feet_y: float) -> None:
    """Paste ``sprite`` with its bottom centre at (feet_x, feet_y) pixels (clipped to the frame)."""
    h, w = sprite.alpha.shape
    x0, y0 = round(feet_x - w / 2), round(feet_y - h)
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + w, canvas.shape[1]), min(y0 + h, canvas.shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return
    a = sprite.alpha[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0, None]
    src = sprite.image[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0].astype(np.float32)
    dst = canvas[fy0:fy1, fx0:fx1].astype(np.float32)
    canvas[fy0:fy1, fx0:fx1] = (dst * (1 - a) + src * a).astype(np.uint8)


LINE_X = 0.45


@dataclass(frozen=True)
class PeopleScene:
    """What the crossings-and-crowd clip holds: crossings per direction and the crowd's size."""

    path: Path
    crossings_in: int
    crossings_out: int
    crowd_size: int
    crowd_seconds: float
    seconds: float


def render_people_scene(path: Path) -> PeopleScene:
    """Walkers cross a vertical line at x = 0.45 one at a time, then a group stands in the lower right.

    The line runs top to bottom with ``in_side: right``, so walking right to left is "in". Three walk in,
    two walk out (one of them lingers on the line, wobbling across it, before going on); then five people
    stand still in the "square" zone (x > 0.5, y > 0.6) for 8 s.
    """
    background, walkers = background_and_walkers(5)
    width, height = background.shape[1], background.shape[0]
    frames: list[U8] = [background.copy() for _ in range(LEAD_IN)]
    # (walker, start x, end x, feet y, jitter on the line)
    walks = [
        (0, 0.8, 0.3, 0.66, False),
        (1, 0.3, 0.8, 0.67, False),
        (2, 0.8, 0.3, 0.65, False),
        (3, 0.3, 0.8, 0.66, True),
        (4, 0.8, 0.3, 0.67, False),
    ]
    rng = np.random.default_rng(15)
    for who, x0, x1, y, jitter in walks:
        steps = 8 * FPS  # slowly (8 s for half the picture), so a worker that drops frames under load still tracks
        xs = list(np.linspace(x0, x1, steps))
        if jitter:  # stop on the line for 3 s, the feet wobbling up to 6 px either side of it at random
            wobble = [LINE_X + float(rng.uniform(-6, 6)) / width for _ in range(3 * FPS)]
            xs = [x for x in xs if x < LINE_X] + wobble + [x for x in xs if x > LINE_X]
        for x in xs:
            canvas = background.copy()
            paste(canvas, walkers[who], x * width, y * height)
            frames.append(canvas)
        frames += [background.copy() for _ in range(FPS)]  # each walker leaves before the next comes
    crowd_at = [(0.58, 0.72), (0.66, 0.95), (0.76, 0.70), (0.84, 0.93), (0.93, 0.78)]
    crowd_seconds = 12.0
    group = background.copy()
    for sprite, (x, y) in zip(walkers, crowd_at, strict=False):
        paste(group, sprite, x * width, y * height)
    frames += [group.copy() for _ in range(int(crowd_seconds * FPS))]
    frames += [background.copy() for _ in range(6 * FPS)]
    write_clip(frames, path)
    return PeopleScene(path, 3, 2, len(crowd_at), crowd_seconds, len(frames) / FPS)


# -- traffic ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Car:
    plate: PlateSpec
    path: list[float]  # x of the plate centre per frame (fraction of width); NaN = not in the picture


@dataclass(frozen=True)
class TrafficScene:
    path: Path
    cars: dict[str, Car]
    width: int
    seconds: float


PLATE_Y = 0.62


def _drive(x0: float, x1: float, seconds: float) -> list[float]:
    return list(np.linspace(x0, x1, max(2, round(seconds * FPS))))


def render_traffic_scene(path: Path, background: U8) -> TrafficScene:
    """Five cars, one after another, each made to commit or avoid one offence.

    With the speed section from x 0.3 to x 0.7 (0.4 of the width): ``FAST`` drives left to right across
    the picture in 6 s (2.7 s in the section), ``SLOW`` the same way in 12 s (5.3 s); ``WRONG`` drives
    right to left in 12 s (the lane goes left to right); ``PARKED`` comes in slowly (4.6 s in the section),
    stops 6 s at x 0.75 in the no-stopping zone (x 0.6-0.9) and leaves; ``WAITS`` stops 6 s at x 0.2,
    outside the zone and before the section, then drives on slowly. Cars move slowly enough that a loaded
    worker analysing under one frame a second still follows each plate from frame to frame.
    """
    cars = {
        "FAST": Car(PlateSpec("123ABC02", "kz", "kz-2012"), _drive(0.05, 0.95, 6.0)),
        "SLOW": Car(PlateSpec("505KLM17", "kz", "kz-2012"), _drive(0.05, 0.95, 12.0)),
        "WRONG": Car(PlateSpec("777XYZ01", "kz", "kz-2012"), _drive(0.95, 0.05, 12.0)),
        "PARKED": Car(
            PlateSpec("318PQR05", "kz", "kz-2012"),
            _drive(0.05, 0.75, 8.0) + [0.75] * (6 * FPS) + _drive(0.75, 0.95, 2.0),
        ),
        "WAITS": Car(
            PlateSpec("246DEF11", "kz", "kz-2012"),
            _drive(0.05, 0.2, 2.0) + [0.2] * (6 * FPS) + _drive(0.2, 0.95, 8.0),
        ),
    }
    font = "hershey-duplex" if "hershey-duplex" in available_fonts() else available_fonts()[0]
    frames: list[U8] = [background.copy() for _ in range(LEAD_IN)]
    for i, car in enumerate(cars.values()):
        plate = render_plate(car.plate, font, np.random.default_rng(100 + i))
        for x in car.path:
            # the same seed every frame: the car keeps its look, only its position changes
            placed = place_plate(background, plate, np.random.default_rng(300 + i), (200, 200), True, (x, PLATE_Y))
            frames.append(placed.image)
        frames += [background.copy() for _ in range(3 * FPS)]  # the last pass ends (1.5 s unseen) first
    frames += [background.copy() for _ in range(8 * FPS)]
    write_clip(frames, path)
    return TrafficScene(path, cars, background.shape[1], len(frames) / FPS)


# -- vehicles on an overview camera (no plate view) -----------------------------------------------------------

BUS_JPG = "ultralytics/assets/bus.jpg"
BUS_BOX = (8, 230, 805, 740)
"""The bus in ultralytics' sample photo, as labelled by eye in benchmarks/labels/vehicles.json."""


@dataclass(frozen=True)
class OverviewScene:
    path: Path
    crossings_in: int
    crossings_out: int
    stopped: int
    seconds: float


def _bus_sprite(width: int) -> U8:
    import importlib.metadata as md

    path = Path(str(md.distribution("ultralytics").locate_file(BUS_JPG)))
    photo = cv2.imread(str(path))
    if photo is None:
        raise FileNotFoundError(path)
    x0, y0, x1, y1 = BUS_BOX
    crop = photo[y0:y1, x0:x1]
    return np.asarray(cv2.resize(crop, (width, round(crop.shape[0] * width / crop.shape[1])), cv2.INTER_AREA))


def _paste_box(canvas: U8, sprite: U8, cx: float, cy: float) -> None:
    h, w = sprite.shape[:2]
    x0, y0 = round(cx - w / 2), round(cy - h / 2)
    fx0, fx1 = max(x0, 0), min(x0 + w, canvas.shape[1])
    if fx1 > fx0:
        canvas[y0 : y0 + h, fx0:fx1] = sprite[:, fx0 - x0 : fx1 - x0]


def render_overview_scene(path: Path, background: U8) -> OverviewScene:
    """A real bus (the photo's pixels, pasted whole) drives across an overview camera with no plate view.

    The vertical line at x = 0.45 has ``in_side: right`` (right to left is "in"). The bus drives left to
    right (out), then mirrored right to left (in), then left to right again and stops 8 s with its centre
    at x 0.75, inside the no-stopping zone (x 0.6-0.9, y 0.4-0.85), before it leaves (out). Slowly (10 s for
    the width), so a worker analysing 2 frames a second follows it. Real pixels because the COCO model does
    not take the plate renderer's car rears for cars (0 of 40, benchmarks/vehicles.py).
    """
    width, height = background.shape[1], background.shape[0]
    bus = _bus_sprite(round(0.55 * width))
    mirrored = np.ascontiguousarray(bus[:, ::-1])
    frames: list[U8] = [background.copy() for _ in range(LEAD_IN)]
    passes = [
        (bus, _drive(0.05, 0.95, 10.0)),
        (mirrored, _drive(0.95, 0.05, 10.0)),
        (bus, _drive(0.05, 0.75, 8.0) + [0.75] * (8 * FPS) + _drive(0.75, 0.95, 3.0)),
    ]
    for sprite, xs in passes:
        for x in xs:
            canvas = background.copy()
            _paste_box(canvas, sprite, x * width, 0.62 * height)
            frames.append(canvas)
        frames += [background.copy() for _ in range(3 * FPS)]
    frames += [background.copy() for _ in range(5 * FPS)]
    write_clip(frames, path)
    return OverviewScene(path, crossings_in=1, crossings_out=2, stopped=1, seconds=len(frames) / FPS)
