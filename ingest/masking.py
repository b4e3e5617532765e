"""Privacy masks: burn per-camera polygons into pictures, and into a copy of a clip for viewers who need one.

Polygons are in normalised frame coordinates (0..1), like zones, so a mask
survives a resolution change. Masked areas are filled solid black: blurring
can be undone or leak shapes, a fill cannot.

Snapshots are masked in the worker before they are encoded, so an unmasked
snapshot never leaves it. Clips are stored unmasked (they are evidence);
:func:`mask_clip` re-encodes a masked copy on demand (PyAV decode -> fill ->
libx264 encode), which the console caches and serves to roles that may not
see the original.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

Polygon = Sequence[tuple[float, float]]
U8 = npt.NDArray[np.uint8]


def mask_image(image: U8, masks: Sequence[Polygon]) -> U8:
    """A copy of ``image`` (H x W x 3) with every polygon filled black; the image itself when there is none."""
    if not masks:
        return image
    h, w = image.shape[:2]
    out = image.copy()
    pts = [np.round(np.asarray(m, dtype=np.float64) * (w, h)).astype(np.int32).reshape(-1, 1, 2) for m in masks]
    cv2.fillPoly(out, pts, (0, 0, 0))
    return out


def masks_digest(masks: Sequence[Polygon]) -> str:
    """A short stable name for a set of masks (part of a masked copy's cache key)."""
    text = json.dumps([[list(p) for p in m] for m in masks], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mask_clip(data: bytes, masks: Sequence[Polygon], *, crf: int = 23) -> bytes:
    """Re-encode an MP4 clip with the masks burned into every frame (H.264, faststart, same frame times)."""
    with tempfile.TemporaryDirectory(prefix="kuzet-mask-") as tmp:
        src_path, dst_path = Path(tmp) / "in.mp4", Path(tmp) / "out.mp4"
        src_path.write_bytes(data)
        with av.open(str(src_path)) as src, av.open(str(dst_path), "w", options={"movflags": "+faststart"}) as dst:
            vs = src.streams.video[0]
            rate = vs.average_rate or vs.guessed_rate or 25
            out = dst.add_stream("libx264", rate=rate)
            out.width, out.height, out.pix_fmt = vs.codec_context.width, vs.codec_context.height, "yuv420p"
            out.time_base = vs.time_base
            out.options = {"crf": str(crf), "preset": "veryfast", "g": str(round(float(rate)))}
            for frame in src.decode(vs):
                picture = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
                masked = av.VideoFrame.from_ndarray(mask_image(picture, masks), "bgr24")
                masked.pts, masked.time_base = frame.pts, frame.time_base
                for packet in out.encode(masked):
                    dst.mux(packet)
            for packet in out.encode():
                dst.mux(packet)
        return dst_path.read_bytes()
