"""Per-camera ByteTrack wrapper: ids stay on a moving box; untracked boxes keep -1."""

from __future__ import annotations

import numpy as np

from core.config import TrackingConfig
from core.detections import Detections
from core.labels import Label
from detectors.tracking import CameraTracker


def box(x: float, y: float, conf: float = 0.9, cls: int = int(Label.PERSON)) -> tuple[list[float], float, int]:
    return [x, y, x + 40, y + 90], conf, cls


def dets(*items: tuple[list[float], float, int]) -> Detections:
    if not items:
        return Detections.empty()
    return Detections(
        np.array([b for b, _, _ in items], np.float32),
        np.array([c for _, c, _ in items], np.float32),
        np.array([k for _, _, k in items]),
        data={"area_hint": np.arange(len(items))},
    )


def test_tracker_keeps_id_on_moving_box_and_keeps_fields() -> None:
    tr = CameraTracker(TrackingConfig(), frame_rate=5.0)
    ids = []
    for i in range(15):
        out = tr.update(dets(box(50 + 6 * i, 100 + 2 * i), box(400 - 5 * i, 300)))
        assert len(out) == 2 and out.tracker_id is not None
        assert out.class_id.tolist() == [int(Label.PERSON)] * 2 and "area_hint" in out.data
        ids.append(out.tracker_id.tolist())
    first, second = ids[0]
    assert first != second and first > 0 and second > 0
    assert all(pair == [first, second] for pair in ids)


def test_track_survives_a_short_gap_within_the_lost_buffer() -> None:
    tr = CameraTracker(TrackingConfig(lost_track_buffer_s=2.0), frame_rate=5.0)
    for i in range(5):
        tid = int(tr.update(dets(box(100 + 5 * i, 100))).tracker_id[0])  # type: ignore[index]
    for _ in range(4):  # 0.8 s without the person
        assert len(tr.update(dets())) == 0
    back = tr.update(dets(box(100 + 5 * 9, 100)))
    assert back.tracker_id is not None and int(back.tracker_id[0]) == tid


def test_low_confidence_box_is_returned_untracked() -> None:
    tr = CameraTracker(TrackingConfig(track_activation_threshold=0.5), frame_rate=5.0)
    out = tr.update(dets(box(10, 10, conf=0.9), box(300, 10, conf=0.2)))
    assert out.tracker_id is not None
    assert out.tracker_id[0] > 0 and out.tracker_id[1] == -1
    assert len(out) == 2


def test_reset_starts_new_ids() -> None:
    tr = CameraTracker(TrackingConfig(), frame_rate=5.0)
    a = tr.update(dets(box(10, 10))).tracker_id
    tr.reset()
    tr.update(dets())
    b = tr.update(dets(box(300, 300))).tracker_id
    assert a is not None and b is not None and a[0] > 0
