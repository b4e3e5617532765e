"""Snapshot JPEGs: the frame with the incident's or the plate's boxes drawn, as a dispatcher sees it.

Only the encoding is here; the sha256 and the object key are computed once,
by the store's ``ref_for`` in :mod:`worker.events`.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

_COLOURS = {
    "person_in_zone": (0, 200, 255),
    "loitering": (0, 140, 255),
    "fire": (0, 0, 255),
    "smoke": (160, 160, 160),
}
_PLATE_COLOUR = (0, 220, 255)
_VEHICLE_COLOUR = (255, 160, 0)
_JPEG_QUALITY = 85

U8 = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float] | list[float]


def _encode(canvas: U8) -> bytes:
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf.tobytes())


def render_snapshot(
    image: U8,
    boxes: list[list[float]],
    label: str,
    zone_points: npt.NDArray[np.int32] | None = None,
) -> bytes:
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
    return _encode(canvas)


def render_plate_snapshot(image: U8, plate_box: Box, text: str, vehicle_box: Box | None) -> bytes:
    """The frame with the plate (and its vehicle) boxed and the read text written above it, as JPEG."""
    canvas = image.copy()
    if vehicle_box is not None:
        x1, y1, x2, y2 = (int(v) for v in vehicle_box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), _VEHICLE_COLOUR, 2)
    x1, y1, x2, y2 = (int(v) for v in plate_box)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), _PLATE_COLOUR, 2)
    cv2.putText(canvas, text, (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, _PLATE_COLOUR, 2, cv2.LINE_AA)
    return _encode(canvas)
