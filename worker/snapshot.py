"""Snapshot JPEGs: the frame with the incident's boxes drawn, as a dispatcher sees it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

_COLOURS = {
    "person_in_zone": (0, 200, 255),
    "loitering": (0, 140, 255),
    "fire": (0, 0, 255),
    "smoke": (160, 160, 160),
}
_JPEG_QUALITY = 85


@dataclass(frozen=True)
class Snapshot:
    jpeg: bytes
    sha256: str


def render_snapshot(
    image: npt.NDArray[np.uint8],
    boxes: list[list[float]],
    label: str,
    zone_points: npt.NDArray[np.int32] | None = None,
) -> Snapshot:
    """Draw the zone outline and the boxes on a copy of the frame and encode it as JPEG."""
    canvas = image.copy()
    colour = _COLOURS.get(label, (0, 255, 0))
    if zone_points is not None and len(zone_points) >= 3:
        cv2.polylines(canvas, [zone_points.reshape(-1, 1, 2)], isClosed=True, color=(255, 200, 0), thickness=1)
    for x1, y1, x2, y2 in boxes:
        p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(canvas, p1, p2, colour, 2)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        top = max(p1[1] - th - 4, 0)
        cv2.rectangle(canvas, (p1[0], top), (p1[0] + tw + 4, top + th + 4), colour, -1)
        cv2.putText(canvas, label, (p1[0] + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    data = buf.tobytes()
    return Snapshot(data, hashlib.sha256(data).hexdigest())
