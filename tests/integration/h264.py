"""Writing test clips: one H.264 encoder for the integration tests that generate their own video."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_h264(frames: list[np.ndarray], path: Path, fps: int, *, crf: int | None = None) -> Path:
    """BGR frames -> an H.264 mp4 with a key frame every second (RTSP servers loop it from any key frame)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        options: dict[str, object] = {"g": str(fps)}
        if crf is not None:
            options["crf"] = str(crf)
        stream.options = options
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
