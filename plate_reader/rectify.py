"""Plate crops made frontal and scaled: what a text-line recogniser wants to see.

The detector's box is axis-aligned and loose: a plate seen from an angle is
a rotated, foreshortened quadrilateral inside it, with car body around. The
plate itself is the largest bright, roughly rectangular blob near the box
centre, so a threshold plus a morphological close (to fill the characters in)
plus the largest contour gives its outline; its corners (a four-point
polygon when the outline has one, the minimum-area rectangle otherwise) are
warped to an upright rectangle of the plate's own aspect ratio and scaled to
the recogniser's height. When no plausible outline is found (dark plate,
glare, a box that cuts the plate) the padded box itself is used, which is
what the recogniser would have seen without this step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

MIN_FILL = 0.25
"""A candidate outline must cover at least this share of the (padded) box to be the plate."""
MIN_ASPECT, MAX_ASPECT = 1.6, 6.5
"""Plausible plate width/height ratios (square-ish two-line plates up to long single-line ones)."""
MAX_PLATE_SATURATION = 90
"""HSV saturation above which a bright pixel is paint, not plate."""


@dataclass(frozen=True, slots=True)
class Rectified:
    """The upright crop, the plate's corners in frame pixels (when found) and how they were found."""

    image: U8
    quad: F32 | None
    method: str  # "contour-quad", "min-area-rect" or "box"


def order_corners(pts: npt.ArrayLike) -> F32:
    """Four points ordered top-left, top-right, bottom-right, bottom-left (by sums and differences)."""
    p = np.asarray(pts, np.float32).reshape(4, 2)
    s = p.sum(axis=1)
    d = np.diff(p, axis=1).ravel()
    return np.array([p[s.argmin()], p[d.argmin()], p[s.argmax()], p[d.argmax()]], np.float32)


def _pad_box(xyxy: npt.ArrayLike, width: int, height: int, pad: float) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (float(v) for v in np.asarray(xyxy, np.float32).reshape(4))
    bw, bh = x2 - x1, y2 - y1
    return (
        max(0, int(x1 - pad * bw)),
        max(0, int(y1 - pad * bh * 2)),
        min(width, int(np.ceil(x2 + pad * bw))),
        min(height, int(np.ceil(y2 + pad * bh * 2))),
    )


def find_plate_quad(crop: U8) -> tuple[F32, str] | None:
    """Corners of the plate inside ``crop`` (crop pixels), or None when no plausible outline is there."""
    h, w = crop.shape[:2]
    if h < 8 or w < 16:
        return None
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    grey = cv2.GaussianBlur(grey, (3, 3), 0)
    _, bright = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if crop.ndim == 3:  # plates are white or near-grey: drop bright but coloured car paint around them
        sat = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)[:, :, 1]
        bright[sat > MAX_PLATE_SATURATION] = 0
    k = max(3, h // 5) | 1  # fills character strokes so the plate is one blob
    closed = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    contours, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    best: tuple[float, npt.NDArray[Any]] | None = None
    cx, cy = w / 2, h / 2
    for c in contours:
        area = cv2.contourArea(c)
        if area < MIN_FILL * w * h:
            continue
        x, y, bw, bh = cv2.boundingRect(c)
        if not (x <= cx <= x + bw and y <= cy <= y + bh):
            continue
        if best is None or area > best[0]:
            best = (area, c)
    if best is None:
        return None
    contour = best[1]
    rect = cv2.minAreaRect(contour)
    (rw, rh) = rect[1]
    if min(rw, rh) < 4:
        return None
    aspect = max(rw, rh) / min(rw, rh)
    if not (MIN_ASPECT <= aspect <= MAX_ASPECT):
        return None
    hull = cv2.convexHull(contour)
    peri = cv2.arcLength(hull, True)
    for eps in (0.02, 0.04, 0.06):
        poly = cv2.approxPolyDP(hull, eps * peri, True)
        if len(poly) == 4 and cv2.isContourConvex(poly):
            if cv2.contourArea(poly) >= 0.85 * rw * rh:
                return order_corners(poly), "contour-quad"
            break
    return order_corners(cv2.boxPoints(rect)), "min-area-rect"


def rectify(
    image: U8, xyxy: npt.ArrayLike, height: int = 48, pad: float = 0.06, trim: tuple[float, float] = (0.012, 0.05)
) -> Rectified:
    """The plate in ``xyxy`` of ``image`` warped upright and scaled to ``height`` pixels.

    ``trim`` (fractions of width and height) shaves the plate's painted border
    off, which recognisers otherwise read as ``I`` or ``1`` at the ends.
    """
    x1, y1, x2, y2 = _pad_box(xyxy, image.shape[1], image.shape[0], pad)
    crop = image[y1:y2, x1:x2]
    if crop.size == 0:
        return Rectified(np.zeros((height, height * 4, 3), np.uint8), None, "box")
    found = find_plate_quad(crop)
    if found is None:
        out_w = max(8, round(crop.shape[1] * height / max(1, crop.shape[0])))
        resized = np.asarray(cv2.resize(crop, (out_w, height), interpolation=cv2.INTER_LINEAR), np.uint8)
        return Rectified(resized, None, "box")
    quad, method = found
    top = float(np.linalg.norm(quad[1] - quad[0]))
    bottom = float(np.linalg.norm(quad[2] - quad[3]))
    left = float(np.linalg.norm(quad[3] - quad[0]))
    right = float(np.linalg.norm(quad[2] - quad[1]))
    aspect = float(np.clip((top + bottom) / max(left + right, 1e-3), MIN_ASPECT, MAX_ASPECT))
    # warp at a generous size first, then trim and scale: keeps thin strokes through the resample
    big_h = max(height, int(max(left, right)))
    big_w = max(8, round(big_h * aspect))
    dst = np.array([[0, 0], [big_w - 1, 0], [big_w - 1, big_h - 1], [0, big_h - 1]], np.float32)
    m = cv2.getPerspectiveTransform(quad, dst)
    warped = cv2.warpPerspective(crop, m, (big_w, big_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    tx, ty = round(trim[0] * big_w), round(trim[1] * big_h)
    warped = warped[ty : big_h - ty, tx : big_w - tx]
    out_w = max(8, round(warped.shape[1] * height / max(1, warped.shape[0])))
    interp = cv2.INTER_AREA if warped.shape[0] > height else cv2.INTER_CUBIC
    out = np.asarray(cv2.resize(warped, (out_w, height), interpolation=interp), np.uint8)
    return Rectified(out, (quad + np.array([x1, y1], np.float32)).astype(np.float32), method)
