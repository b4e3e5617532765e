"""The one detection type every stage takes and returns.

A struct of parallel numpy arrays (after supervision's ``sv.Detections``): one
allocation per field instead of one object per box, so that filtering, NMS,
tracking and zone tests stay vectorised on the hot path. Shapes and dtypes are
checked on construction so a malformed backend output fails where it is made,
not three stages later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Detections:
    """N boxes for one frame.

    ``xyxy`` is float32 N×4 in pixel coordinates of the frame they belong to;
    ``class_id`` holds canonical label ids (:mod:`core.labels`); ``tracker_id``
    is filled in by the tracker and is -1 where no track is assigned.
    ``data`` carries extra per-box arrays (each of length N).
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    tracker_id: IntArray | None = None
    data: Mapping[str, npt.NDArray[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must be N×4, got shape {xyxy.shape}")
        n = xyxy.shape[0]
        conf = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        cls = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        if conf.shape[0] != n or cls.shape[0] != n:
            raise ValueError(f"confidence ({conf.shape[0]}) and class_id ({cls.shape[0]}) must match N={n}")
        if not np.all(np.isfinite(xyxy)):
            raise ValueError("xyxy holds NaN or infinite coordinates")
        if n and np.any(xyxy[:, 2] < xyxy[:, 0]) | np.any(xyxy[:, 3] < xyxy[:, 1]):
            raise ValueError("xyxy boxes must have x2 >= x1 and y2 >= y1")
        trk = None
        if self.tracker_id is not None:
            trk = np.asarray(self.tracker_id, dtype=np.int64).reshape(-1)
            if trk.shape[0] != n:
                raise ValueError(f"tracker_id length {trk.shape[0]} != N={n}")
        data: dict[str, npt.NDArray[Any]] = {}
        for key, value in self.data.items():
            arr = np.asarray(value)
            if arr.shape[:1] != (n,):
                raise ValueError(f"data[{key!r}] has length {arr.shape[:1]}, expected {n}")
            data[key] = arr
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "class_id", cls)
        object.__setattr__(self, "tracker_id", trk)
        object.__setattr__(self, "data", data)

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int64),
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: npt.NDArray[np.bool_] | npt.NDArray[np.int64] | slice) -> Detections:
        """Select boxes by boolean mask, index array or slice; every field follows."""
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
            data={k: v[index] for k, v in self.data.items()},
        )

    def with_tracker_id(self, tracker_id: npt.ArrayLike) -> Detections:
        return Detections(self.xyxy, self.confidence, self.class_id, np.asarray(tracker_id), self.data)

    def scaled(self, sx: float, sy: float) -> Detections:
        """Boxes rescaled from model-input pixels to frame pixels."""
        factor = np.array([sx, sy, sx, sy], dtype=np.float32)
        return Detections(self.xyxy * factor, self.confidence, self.class_id, self.tracker_id, self.data)

    def clipped(self, width: int, height: int) -> Detections:
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
        return Detections(xyxy, self.confidence, self.class_id, self.tracker_id, self.data)

    @property
    def bottom_center(self) -> FloatArray:
        """Feet point of each box: where a person stands, used for zone tests."""
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, self.xyxy[:, 3]], axis=1).astype(np.float32)

    @property
    def area(self) -> FloatArray:
        return ((self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])).astype(np.float32)

    @staticmethod
    def merge(parts: list[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Detections.empty()
        trk = None
        if all(p.tracker_id is not None for p in parts):
            trk = np.concatenate([p.tracker_id for p in parts if p.tracker_id is not None])
        keys = set.intersection(*(set(p.data) for p in parts))
        return Detections(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            tracker_id=trk,
            data={k: np.concatenate([p.data[k] for p in parts]) for k in keys},
        )
