"""Tiled inference: a frame -> the full frame plus overlapping tiles, and the boxes merged back.

Why: a 300×300 person model sees a 768×576 camera at 0.39× (a 60 px walker
becomes 23 px), so small and distant people are missed. Cutting the frame into
overlapping tiles gives each tile the model's whole input, at the price of one
more inference per tile. Every tile is an ordinary image for the detector, so
tiles of many cameras share one batch like any frame.

Merging: a tile box that touches a tile border lying inside the frame is a
person cut by that border; it is dropped, because the full frame (or the
neighbouring tile, through the overlap) sees that person whole. What remains
of the tiles and the full-frame boxes goes through one class-aware NMS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.detections import Detections
from detectors.nms import nms

U8 = npt.NDArray[np.uint8]
Window = tuple[int, int, int, int]
"""A tile in frame pixels: x1, y1, x2, y2 (end exclusive)."""

EDGE_MARGIN_PX = 2.0
"""A tile box within this many pixels of an inner tile border counts as cut by it."""


@dataclass(frozen=True, slots=True)
class TileGrid:
    """``rows`` × ``cols`` tiles overlapping by ``overlap`` of a tile's size, plus the full frame if asked."""

    rows: int = 2
    cols: int = 2
    overlap: float = 0.25
    full_frame: bool = True
    nms_iou: float = 0.5

    def __post_init__(self) -> None:
        if not (1 <= self.rows <= 8 and 1 <= self.cols <= 8):
            raise ValueError(f"tile grid must be 1..8 × 1..8, got {self.rows}×{self.cols}")
        if not 0.0 <= self.overlap < 0.9:
            raise ValueError(f"tile overlap must be in [0, 0.9), got {self.overlap}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {self.nms_iou}")

    @property
    def inferences(self) -> int:
        """Model inputs one frame costs: the tiles plus the full frame."""
        return self.rows * self.cols + int(self.full_frame)

    def windows(self, width: int, height: int) -> list[Window]:
        """The tiles of a ``width`` × ``height`` frame, row by row; together they cover it."""
        return [
            (x1, y1, x2, y2)
            for y1, y2 in _spans(height, self.rows, self.overlap)
            for x1, x2 in _spans(width, self.cols, self.overlap)
        ]


def _spans(length: int, n: int, overlap: float) -> list[tuple[int, int]]:
    """``n`` intervals of equal size over ``[0, length)``, neighbours overlapping by ``overlap`` of a size."""
    if n == 1:
        return [(0, length)]
    size = length / (n - (n - 1) * overlap)
    step = size * (1.0 - overlap)
    out = []
    for i in range(n):
        start = round(i * step)
        end = length if i == n - 1 else min(length, round(i * step + size))
        out.append((start, end))
    return out


def split(image: U8, grid: TileGrid) -> tuple[list[U8], list[Window]]:
    """The model inputs of one frame (full frame first when the grid asks for it) and their windows.

    Tiles are views into ``image`` (no copy): the preprocessor resizes each into the batch array.
    """
    h, w = image.shape[:2]
    wins = grid.windows(w, h)
    crops = [image[y1:y2, x1:x2] for x1, y1, x2, y2 in wins]
    if grid.full_frame:
        return [image, *crops], [(0, 0, w, h), *wins]
    return crops, wins


def _cut_by_inner_border(xyxy: npt.NDArray[np.float32], win: Window, width: int, height: int) -> npt.NDArray[np.bool_]:
    x1, y1, x2, y2 = win
    m = EDGE_MARGIN_PX
    cut = np.zeros(len(xyxy), bool)
    if x1 > 0:
        cut |= xyxy[:, 0] <= x1 + m
    if y1 > 0:
        cut |= xyxy[:, 1] <= y1 + m
    if x2 < width:
        cut |= xyxy[:, 2] >= x2 - m
    if y2 < height:
        cut |= xyxy[:, 3] >= y2 - m
    return cut


def merge(
    parts: Sequence[Detections], windows: Sequence[Window], width: int, height: int, nms_iou: float
) -> Detections:
    """Detections of each model input (in that input's pixels) -> one set in frame pixels.

    Tile boxes are shifted by their window's origin; those cut by an inner tile border are dropped
    (a window covering the whole frame keeps everything); the rest go through class-aware NMS.
    """
    if len(parts) != len(windows):
        raise ValueError(f"{len(parts)} detection sets for {len(windows)} windows")
    shifted: list[Detections] = []
    for det, win in zip(parts, windows, strict=True):
        if not len(det):
            continue
        xyxy = det.xyxy + np.array([win[0], win[1], win[0], win[1]], np.float32)
        moved = Detections(xyxy, det.confidence, det.class_id, det.tracker_id, det.data)
        shifted.append(moved[~_cut_by_inner_border(xyxy, win, width, height)])
    union = Detections.merge(shifted)
    if len(union) == 0:
        return union
    keep = nms(union.xyxy, union.confidence, nms_iou, union.class_id)
    return union[keep]
