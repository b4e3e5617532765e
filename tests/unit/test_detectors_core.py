"""Detections validation, NMS, class maps and preprocessing geometry (no model files needed)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.detections import Detections
from core.labels import Label
from detectors.classmap import ClassMap
from detectors.nms import box_iou_matrix, nms
from detectors.preprocess import PAD_VALUE, Preprocessor, letterbox_geometry


# ------------------------------------------------------------------ Detections
def test_detections_validates_shapes_and_values() -> None:
    d = Detections(np.array([[0, 0, 10, 10]]), np.array([0.5]), np.array([0]))
    assert d.xyxy.dtype == np.float32 and d.class_id.dtype == np.int64 and len(d) == 1
    with pytest.raises(ValueError, match="N×4"):
        Detections(np.zeros((2, 3)), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="must match"):
        Detections(np.zeros((2, 4)), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        Detections(np.array([[0, 0, np.nan, 1]]), np.ones(1), np.zeros(1))
    with pytest.raises(ValueError, match="x2 >= x1"):
        Detections(np.array([[5, 0, 1, 1]]), np.ones(1), np.zeros(1))
    with pytest.raises(ValueError, match="tracker_id"):
        Detections(np.zeros((1, 4)), np.ones(1), np.zeros(1), tracker_id=np.zeros(2))
    with pytest.raises(ValueError, match="data"):
        Detections(np.zeros((1, 4)), np.ones(1), np.zeros(1), data={"x": np.zeros(2)})
    assert len(Detections.empty()) == 0


# ------------------------------------------------------------------------- NMS
def _reference_nms(xyxy, scores, iou, cls=None):
    """Plain-Python greedy NMS to check the vectorised one against."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        ok = True
        for j in keep:
            if cls is not None and cls[i] != cls[j]:
                continue
            if box_iou_matrix(xyxy[i : i + 1], xyxy[j : j + 1])[0, 0] > iou:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def test_nms_suppresses_overlaps_and_keeps_highest_first() -> None:
    xyxy = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 9]], np.float32)
    scores = np.array([0.6, 0.9, 0.5, 0.3], np.float32)
    assert nms(xyxy, scores, 0.5).tolist() == [1, 2]


def test_nms_is_class_aware() -> None:
    xyxy = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(xyxy, scores, 0.5).tolist() == [0]
    assert nms(xyxy, scores, 0.5, class_ids=np.array([0, 1])).tolist() == [0, 1]


def test_nms_matches_reference_on_random_boxes() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        n = int(rng.integers(1, 60))
        xy = rng.uniform(0, 200, (n, 2))
        wh = rng.uniform(5, 60, (n, 2))
        xyxy = np.hstack([xy, xy + wh]).astype(np.float32)
        scores = rng.uniform(0, 1, n).astype(np.float32)
        cls = rng.integers(0, 3, n)
        assert nms(xyxy, scores, 0.45).tolist() == _reference_nms(xyxy, scores, 0.45)
        assert nms(xyxy, scores, 0.45, cls).tolist() == _reference_nms(xyxy, scores, 0.45, cls)


def test_nms_agrees_with_opencv() -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 300, (80, 2))
    wh = rng.uniform(10, 80, (80, 2))
    xyxy = np.hstack([xy, xy + wh]).astype(np.float32)
    scores = rng.uniform(0.1, 1, 80).astype(np.float32)
    xywh = np.hstack([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]])
    ref = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, 0.5)).reshape(-1)
    assert sorted(nms(xyxy, scores, 0.5).tolist()) == sorted(ref.tolist())


def test_nms_empty_and_max_det() -> None:
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).size == 0
    xyxy = np.array([[i * 20, 0, i * 20 + 10, 10] for i in range(10)], np.float32)
    assert len(nms(xyxy, np.linspace(1, 0.1, 10).astype(np.float32), 0.5, max_det=3)) == 3


# ------------------------------------------------------------------- class map
def test_class_map_translates_and_drops_unlisted() -> None:
    cmap = ClassMap({0: "smoke", 1: "fire", 2: "steam"}, {"fire": "fire", "smoke": "smoke"})
    assert cmap.canonical([0, 1, 2, 7, -1]).tolist() == [int(Label.SMOKE), int(Label.FIRE), -1, -1, -1]
    det = cmap.apply(
        np.array([[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 3, 3]], np.float32),
        np.array([0.9, 0.8, 0.7], np.float32),
        np.array([2, 1, 0]),
    )
    assert det.class_id.tolist() == [int(Label.FIRE), int(Label.SMOKE)]
    assert det.confidence.tolist() == pytest.approx([0.8, 0.7])


def test_class_map_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="does not have"):
        ClassMap({1: "person"}, {"car": "car"})
    with pytest.raises(ValueError, match="unknown label"):
        ClassMap({1: "person"}, {"person": "pedestrian"})


# ------------------------------------------------------------------ preprocess
def test_stretch_preprocess_batches_frames_of_any_size() -> None:
    pre = Preprocessor(300, "stretch", "nhwc", "uint8", "rgb")
    a = np.zeros((576, 768, 3), np.uint8)
    a[..., 0] = 255  # pure blue in BGR
    b = np.full((300, 300, 3), 7, np.uint8)
    batch, trs = pre([a, b])
    assert batch.shape == (2, 300, 300, 3) and batch.dtype == np.uint8
    assert batch[0, 10, 10].tolist() == [0, 0, 255]  # now RGB
    assert (batch[1] == 7).all()
    back = trs[0].to_frame(np.array([[0, 0, 300, 300]], np.float32))
    assert back.tolist() == [[0, 0, 768, 576]]


def test_letterbox_preprocess_pads_and_maps_back() -> None:
    pre = Preprocessor(640, "letterbox", "nchw", "float32", "rgb")
    img = np.full((576, 768, 3), 200, np.uint8)
    batch, trs = pre([img])
    assert batch.shape == (1, 3, 640, 640) and batch.dtype == np.float32
    _, nw, nh, left, top = letterbox_geometry(768, 576, 640)
    assert (nw, nh, left, top) == (640, 480, 0, 80)
    assert batch[0, 0, 0, 0] == pytest.approx(PAD_VALUE / 255)  # padding
    assert batch[0, 0, 320, 320] == pytest.approx(200 / 255)  # image
    box_in = np.array([[0, 80, 640, 560]], np.float32)
    np.testing.assert_allclose(trs[0].to_frame(box_in), [[0, 0, 768, 576]], atol=0.5)


def test_preprocess_reuses_buffers_per_batch_size() -> None:
    pre = Preprocessor(64, "letterbox", "nchw", "float32")
    imgs = [np.zeros((48, 64, 3), np.uint8)] * 3
    first, _ = pre(imgs)
    second, _ = pre(imgs)
    assert first is second  # no per-call allocation
    other, _ = pre(imgs[:2])
    assert other.shape[0] == 2


def test_preprocess_rejects_bad_images() -> None:
    pre = Preprocessor(64, "stretch", "nhwc", "uint8")
    with pytest.raises(ValueError, match="uint8"):
        pre([np.zeros((10, 10), np.uint8)])
    with pytest.raises(ValueError, match="empty"):
        pre([])


def test_rect_letterbox_uses_smallest_stride_aligned_canvas() -> None:
    pre = Preprocessor(640, "letterbox", "nchw", "float32", rect_stride=32)
    img = np.full((576, 768, 3), 50, np.uint8)
    batch, trs = pre([img, img])
    assert batch.shape == (2, 3, 480, 640)  # 4:3 camera: no padding rows at all
    np.testing.assert_allclose(trs[0].to_frame(np.array([[0, 0, 640, 480]], np.float32)), [[0, 0, 768, 576]])
    odd = np.zeros((500, 700, 3), np.uint8)  # 640x457 -> canvas 640x480, 11 rows of padding each side
    batch, trs = pre([odd])
    assert batch.shape == (1, 3, 480, 640) and trs[0].pad_y == 11
    mixed, _ = pre([img, odd])  # different shapes share the square canvas
    assert mixed.shape == (2, 3, 640, 640)
