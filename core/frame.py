"""A decoded video frame as it travels from ingest to the detectors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Frame:
    """One analysed frame of one camera.

    The image is held by reference: ingest, the batch scheduler and the rules
    all run as threads of one worker process (PyAV and onnxruntime release the
    GIL while they work), so a frame is never copied between stages.
    ``seq`` counts analysed frames per camera connection; ``pts_s`` is the
    stream time in seconds, used by rules so that file sources replayed faster
    than real time keep their real durations.
    """

    camera_id: str
    seq: int
    captured_at: datetime
    pts_s: float
    keyframe: bool
    image: npt.NDArray[np.uint8]

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"frame image must be H×W×3 uint8, got {self.image.shape} {self.image.dtype}")
        if self.captured_at.tzinfo is None:
            raise ValueError("captured_at must be timezone-aware (UTC)")

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])
