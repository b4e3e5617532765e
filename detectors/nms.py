"""Non-maximum suppression, vectorised in numpy.

Why our own instead of ``cv2.dnn.NMSBoxesBatched``: the candidate count after
the score threshold is small (tens to a few hundred boxes per frame), so the
per-call cost is dominated by conversions, and OpenCV's binding wants
Python-list-like xywh boxes and returns an index array whose shape differs
between versions (N×1 in 4.5, N in 4.7+). A numpy version works on our xyxy
float32 arrays directly, has one behaviour on every OpenCV, and is short
enough to unit-test exhaustively. Class-aware NMS uses the usual offset trick:
each class's boxes are shifted by ``class_id * (max_coord + 1)`` so boxes of
different classes can never overlap, and one pass handles all classes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def box_iou(box: npt.NDArray[np.float32], boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """IoU of one xyxy box against M xyxy boxes."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (box[2] - box[0]) * (box[3] - box[1])
    area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def box_iou_matrix(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """N×M IoU matrix of two xyxy box sets (used by tests and backend comparisons)."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def nms(
    xyxy: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    iou_threshold: float,
    class_ids: npt.NDArray[np.int64] | None = None,
    max_det: int = 300,
) -> npt.NDArray[np.int64]:
    """Indices of the boxes kept, highest score first.

    A box is suppressed when its IoU with a kept box of the same class (any
    class when ``class_ids`` is None) is strictly greater than
    ``iou_threshold``. At most ``max_det`` indices are returned.
    """
    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if xyxy.shape[0] != scores.shape[0]:
        raise ValueError(f"{xyxy.shape[0]} boxes but {scores.shape[0]} scores")
    if xyxy.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    boxes = xyxy
    if class_ids is not None:
        cls = np.asarray(class_ids, dtype=np.int64).reshape(-1)
        if cls.shape[0] != xyxy.shape[0]:
            raise ValueError(f"{xyxy.shape[0]} boxes but {cls.shape[0]} class ids")
        offset = float(np.abs(xyxy).max()) + 1.0
        boxes = xyxy + (cls.astype(np.float32) * offset)[:, None]
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_det:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        rest = order[1:]
        order = rest[box_iou(boxes[i], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
