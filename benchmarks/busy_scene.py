"""A busy rendered scene for the benchmarks: people walking (the vtest clip) and two cars with plates in every frame.

Every frame holds work for all three detectors and for the plate reader:
the walkers of the real clip for the person model, two rendered plates on
car rears (driving across, each frame with its own lighting, blur and noise)
for the plate model and OCR; the fire model runs on every frame too. The
clip is written as H.264 with a key frame every ``gop`` frames and cached
by its parameters.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from plate_reader.synthetic import PlateSpec, place_plate, render_plate

U8 = npt.NDArray[np.uint8]
PLATES = (PlateSpec("123ABC02", "kz", "kz-2012"), PlateSpec("A777MP77", "ru", "ru-2"))


def vtest_frames(vtest: Path, n: int) -> list[U8]:
    frames: list[U8] = []
    with av.open(str(vtest)) as container:
        for frame in container.decode(video=0):
            frames.append(np.asarray(frame.to_ndarray(format="bgr24"), np.uint8))
            if len(frames) >= n:
                break
    return frames


def render_busy_clip(vtest: Path, dst: Path, n_frames: int = 200, fps: int = 10, gop: int = 10) -> Path:
    """The busy clip at ``fps`` (cached by name); frames are distinct source frames, never repeats."""
    if dst.exists():
        return dst
    rng = np.random.default_rng(8)
    plates = [render_plate(spec, "hershey-duplex", np.random.default_rng(i)) for i, spec in enumerate(PLATES)]
    tmp = dst.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        for i, source in enumerate(vtest_frames(vtest, n_frames)):
            image = source
            if i == 0:
                stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
                stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "veryfast"}
            progress = (i % 50) / 50  # each car crosses in 50 frames, then the next pass begins
            for k, plate in enumerate(plates):
                centre = (0.15 + 0.7 * ((progress + 0.5 * k) % 1.0), 0.55 + 0.2 * k)
                image = place_plate(image, plate, rng, width_px=(120, 140), with_car=True, center=centre).image
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(dst)
    return dst
