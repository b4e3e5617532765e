"""Translate a model's own class ids onto Kuzet's canonical labels.

Built once per model as a lookup array (model class id -> canonical id or -1),
so translating a frame's detections is one fancy-indexing step, and classes
the configuration does not list are dropped rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from core.detections import Detections
from core.labels import Label


class ClassMap:
    """Model class names -> canonical labels; unlisted classes map to -1 (dropped)."""

    def __init__(self, model_classes: Mapping[int, str], labels: Mapping[str, str]) -> None:
        unknown = sorted(set(labels) - set(model_classes.values()))
        if unknown:
            raise ValueError(
                f"labels name class(es) {unknown} that the model does not have; "
                f"model classes: {sorted(model_classes.values())}"
            )
        size = max(model_classes, default=-1) + 1
        lut = np.full(max(size, 1), -1, dtype=np.int64)
        for cid, name in model_classes.items():
            if name in labels:
                lut[cid] = int(Label.parse(labels[name]))
        self.model_classes = dict(model_classes)
        self.lut = lut

    def canonical(self, model_class_ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Canonical ids for model class ids; -1 for unlisted or out-of-range ids."""
        ids = np.asarray(model_class_ids, dtype=np.int64).reshape(-1)
        out = np.full(ids.shape, -1, dtype=np.int64)
        ok = (ids >= 0) & (ids < self.lut.shape[0])
        out[ok] = self.lut[ids[ok]]
        return out

    def apply(
        self, xyxy: npt.NDArray[np.float32], scores: npt.NDArray[np.float32], model_class_ids: npt.ArrayLike
    ) -> Detections:
        """Detections with canonical class ids, dropping boxes of classes not in the map."""
        cls = self.canonical(model_class_ids)
        keep = cls >= 0
        return Detections(xyxy=xyxy[keep], confidence=scores[keep], class_id=cls[keep])
