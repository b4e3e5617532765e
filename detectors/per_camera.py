"""Per-camera detection settings around a shared model: tiling, score threshold, minimum box size.

One model (one session, one batch thread) serves every camera of a worker, but
cameras differ: a wide campus view with 40 px walkers wants tiles, a doorway
camera does not; a camera looking at a tree wants a higher threshold. This
wrapper takes whole frames, so it knows each frame's camera, expands tiled
cameras into their tiles, runs ONE ``detect`` call for the whole batch (every
tile is one batch item, whatever camera it came from), merges each camera's
boxes back and applies that camera's filters. It counts model inputs so the
cost of tiling is visible (inputs per analysed frame) in the benchmark and in
the worker's metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from core.config import CameraDetection
from core.detections import Detections
from core.frame import Frame
from detectors.registry import Detector
from detectors.tiling import TileGrid, Window, merge, split


@dataclass(frozen=True, slots=True)
class CameraTuning:
    """How one camera's frames are detected on top of the model's own settings.

    ``min_score`` can only raise the model's threshold (the model already dropped what is below its own);
    ``min_height_px`` drops boxes shorter than that in frame pixels (specks, distant posts).
    """

    grid: TileGrid | None = None
    min_score: float = 0.0
    min_height_px: float = 0.0


@runtime_checkable
class FrameDetector(Protocol):
    """A detector that wants the frames themselves (their camera ids), not only the images."""

    name: str
    version: str

    def detect_frames(self, frames: Sequence[Frame]) -> tuple[list[Detections], int]:
        """One Detections per frame, and how many model inputs the batch cost."""
        ...


class PerCameraDetector:
    """Applies each camera's :class:`CameraTuning` around one shared :class:`Detector`."""

    def __init__(self, inner: Detector, tuning: Callable[[str], CameraTuning | None]) -> None:
        self.inner = inner
        self.name = inner.name
        self.version = inner.version
        self._tuning = tuning

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """Plain images (no camera): the model as configured, no tiling."""
        return self.inner.detect(images)

    def detect_frames(self, frames: Sequence[Frame]) -> tuple[list[Detections], int]:
        inputs: list[npt.NDArray[np.uint8]] = []
        plans: list[tuple[int, list[Window] | None, CameraTuning | None]] = []
        for frame in frames:
            tuning = self._tuning(frame.camera_id)
            start = len(inputs)
            if tuning is not None and tuning.grid is not None:
                crops, windows = split(frame.image, tuning.grid)
                inputs += crops
                plans.append((start, windows, tuning))
            else:
                inputs.append(frame.image)
                plans.append((start, None, tuning))
        raw = self.inner.detect(inputs)
        if len(raw) != len(inputs):
            raise RuntimeError(f"detector returned {len(raw)} results for {len(inputs)} inputs")
        out: list[Detections] = []
        for frame, (start, wins, tuning) in zip(frames, plans, strict=True):
            if wins is None or tuning is None or tuning.grid is None:
                det = raw[start]
            else:
                det = merge(raw[start : start + len(wins)], wins, frame.width, frame.height, tuning.grid.nms_iou)
            out.append(apply_filters(det, tuning))
        return out, len(inputs)


def apply_filters(det: Detections, tuning: CameraTuning | None) -> Detections:
    """The camera's score threshold and minimum box height."""
    if tuning is None or (tuning.min_score <= 0.0 and tuning.min_height_px <= 0.0) or not len(det):
        return det
    keep = (det.confidence >= tuning.min_score) & (det.xyxy[:, 3] - det.xyxy[:, 1] >= tuning.min_height_px)
    return det[keep]


def tuning_from_config(settings: CameraDetection | None) -> CameraTuning | None:
    """A camera's configured settings for one model as the detector applies them (None: model as is)."""
    if settings is None:
        return None
    t = settings.tiling
    grid = None if t is None else TileGrid(t.rows, t.cols, t.overlap, t.full_frame, t.nms_iou)
    return CameraTuning(grid, settings.min_score, settings.min_height_px)
