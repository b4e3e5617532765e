"""What the pixels inside a fire or smoke box do from one analysed frame to the next.

The fire model is a single-frame colour-and-shape detector: a sodium lamp, a
sunset, a hi-vis vest or a flashing light bar can look like fire in one frame,
and N-of-M confirmation does not help when the look-alike stays in view.
Flames differ in time: their texture never repeats (tongues rise, split and
vanish), while a lamp's or a vest's texture stays the same, and a flashing
light's brightness jumps on and off rather than flickering around a level.

For every fire/smoke box this measures, against the previous analysed frame
of the same camera (at the previous frame's fire/smoke box that overlaps it
most, so a light that moves is compared with itself, not with the road it
left; at the same place when there was none):

* ``flicker``: how much the box's grey texture changed (mean absolute
  difference relative to its brightness, see :func:`texture_change`); the
  earlier patch is first scaled to the same mean, so a change of exposure or
  a lamp dimming alone does not count as flicker;
* ``luma``: the box's mean brightness now, for the rule to see on/off jumps.

The values ride on the detections (``data["flicker"]``, ``data["luma"]``) to
:class:`worker.rules.FireRule`, which decides with them over its window.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from core.detections import Detections
from core.labels import Label
from detectors.nms import box_iou_matrix

U8 = npt.NDArray[np.uint8]
PATCH = 24
"""Side of the square a box's texture is compared at: coarse enough to ignore sensor noise."""
MATCH_IOU = 0.3
"""A previous box overlapping this much is the same object (it moved or the detector's box jittered)."""


def _patch(grey: U8, box: npt.NDArray[np.float32]) -> npt.NDArray[np.float32] | None:
    h, w = grey.shape[:2]
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return cv2.resize(grey[y1:y2, x1:x2], (PATCH, PATCH), interpolation=cv2.INTER_AREA).astype(np.float32)


def texture_change(now: npt.NDArray[np.float32], before: npt.NDArray[np.float32]) -> float:
    """Mean absolute change between two patches relative to their brightness, after matching their gains.

    0 for the same texture (also when a lamp merely dims or the exposure changes), around 0.1-0.2 for the
    rising, splitting tongues of a flame, about 0.01-0.03 for a static light seen through sensor noise.
    """
    scale = float(now.mean()) / max(float(before.mean()), 1.0)
    return float(np.abs(now - before * scale).mean() / (float(now.mean()) + 1.0))


class FlickerMeter:
    """Per camera: annotates fire and smoke boxes with their flicker and brightness (see the module doc)."""

    def __init__(self) -> None:
        self._previous: U8 | None = None
        self._previous_boxes: npt.NDArray[np.float32] = np.zeros((0, 4), np.float32)

    def annotate(self, image: U8, detections: Detections) -> Detections:
        grey = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), np.uint8)
        previous = self._previous if self._previous is not None and self._previous.shape == grey.shape else None
        self._previous = grey
        n = len(detections)
        flicker = np.zeros(n, np.float32)
        luma = np.zeros(n, np.float32)
        fiery = (detections.class_id == int(Label.FIRE)) | (detections.class_id == int(Label.SMOKE))
        earlier = self._previous_boxes
        self._previous_boxes = detections.xyxy[fiery]
        overlap = box_iou_matrix(detections.xyxy, earlier) if len(earlier) else None
        for i in np.flatnonzero(fiery):
            now = _patch(grey, detections.xyxy[i])
            if now is None:
                continue
            luma[i] = float(now.mean())
            then = detections.xyxy[i]
            if overlap is not None and overlap[i].max() >= MATCH_IOU:
                then = earlier[int(overlap[i].argmax())]
            before = _patch(previous, then) if previous is not None else None
            flicker[i] = texture_change(now, before) if before is not None else np.nan
        data = {**detections.data, "flicker": flicker, "luma": luma}
        return Detections(detections.xyxy, detections.confidence, detections.class_id, detections.tracker_id, data)
