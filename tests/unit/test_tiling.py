"""Tiled inference: tile windows, merging tile boxes back, per-camera settings in one batch, cost counting."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

from core.config import CameraConfig, CameraDetection, ConfigError, TilingConfig, load_config
from core.detections import Detections
from core.frame import Frame
from detectors.batcher import BatchScheduler
from detectors.per_camera import CameraTuning, PerCameraDetector, apply_filters, tuning_from_config
from detectors.tiling import TileGrid, merge, split


def det(boxes: list[tuple[float, float, float, float]], scores: list[float] | None = None) -> Detections:
    n = len(boxes)
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores or [0.9] * n, np.float32),
        np.zeros(n, np.int64),
    )


@pytest.mark.parametrize(("rows", "cols", "overlap"), [(2, 2, 0.25), (3, 3, 0.2), (1, 3, 0.0), (2, 3, 0.5)])
def test_windows_cover_the_frame_and_overlap(rows: int, cols: int, overlap: float) -> None:
    grid = TileGrid(rows, cols, overlap)
    wins = grid.windows(768, 576)
    assert len(wins) == rows * cols
    covered = np.zeros((576, 768), bool)
    for x1, y1, x2, y2 in wins:
        assert 0 <= x1 < x2 <= 768 and 0 <= y1 < y2 <= 576
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    if cols > 1 and overlap > 0:
        (a, _, a2, _), (b, _, _, _) = wins[0], wins[1]
        assert a2 - b == pytest.approx(overlap * (a2 - a), abs=2)
    assert grid.inferences == rows * cols + 1


def test_bad_grids_are_refused() -> None:
    with pytest.raises(ValueError, match=r"1\.\.8"):
        TileGrid(0, 2)
    with pytest.raises(ValueError, match="overlap"):
        TileGrid(2, 2, 0.95)


def test_split_gives_full_frame_first_and_views() -> None:
    img = np.arange(100 * 200 * 3, dtype=np.uint8).reshape(100, 200, 3)
    crops, wins = split(img, TileGrid(2, 2, 0.25))
    assert len(crops) == 5 and wins[0] == (0, 0, 200, 100) and crops[0] is img
    x1, y1, x2, y2 = wins[4]
    assert np.shares_memory(crops[4], img) and crops[4].shape[:2] == (y2 - y1, x2 - x1)
    only_tiles, _ = split(img, TileGrid(2, 2, 0.25, full_frame=False))
    assert len(only_tiles) == 4


def test_merge_shifts_tile_boxes_drops_cut_ones_and_suppresses_duplicates() -> None:
    grid = TileGrid(2, 2, 0.25)
    wins = [(0, 0, 200, 100), *grid.windows(200, 100)]
    (tx1, ty1, _, _) = wins[4]  # bottom-right tile
    full = det([(10, 10, 30, 50)], [0.8])  # a person the full frame found
    tile_tl = det([(10, 10, 30, 50)], [0.7])  # the same person in the top-left tile: a duplicate
    tile_tr = det([], [])
    tile_bl = det([], [])
    # in the bottom-right tile: a small person only the tile found, and one cut by the tile's left border
    tile_br = det([(40, 10, 50, 30), (0, 5, 12, 30)], [0.6, 0.9])
    out = merge([full, tile_tl, tile_tr, tile_bl, tile_br], wins, 200, 100, 0.5)
    boxes = sorted(tuple(float(v) for v in b) for b in out.xyxy)
    assert boxes == sorted([(10.0, 10.0, 30.0, 50.0), (tx1 + 40.0, ty1 + 10.0, tx1 + 50.0, ty1 + 30.0)])
    assert float(out.confidence.max()) == pytest.approx(0.8)  # the full-frame box won over its duplicate


def test_merge_keeps_boxes_at_the_frame_border() -> None:
    grid = TileGrid(1, 2, 0.25)
    wins = grid.windows(200, 100)
    right = det([(wins[1][2] - wins[1][0] - 10, 0, wins[1][2] - wins[1][0], 40)])  # touches the frame's right edge
    out = merge([det([]), right], wins, 200, 100, 0.5)
    assert len(out) == 1 and float(out.xyxy[0, 2]) == 200.0


def test_merge_refuses_mismatched_parts() -> None:
    with pytest.raises(ValueError, match="windows"):
        merge([det([])], [], 10, 10, 0.5)


class CountingDetector:
    """Finds one box per input and records the batches it was given."""

    name = "person"
    version = "fake@0"

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        self.batches.append([(img.shape[0], img.shape[1]) for img in images])
        return [det([(1, 1, 9, 30)], [0.5]) for _ in images]


def frame(cam: str, h: int = 120, w: int = 160) -> Frame:
    return Frame(cam, 0, datetime(2026, 1, 1, tzinfo=UTC), 0.0, True, np.zeros((h, w, 3), np.uint8))


def test_per_camera_detector_tiles_only_configured_cameras_in_one_batch() -> None:
    inner = CountingDetector()
    tuning = {"wide": CameraTuning(grid=TileGrid(2, 2, 0.25)), "door": None}
    pcd = PerCameraDetector(inner, tuning.get)
    results, inputs = pcd.detect_frames([frame("wide"), frame("door"), frame("wide")])
    assert len(inner.batches) == 1  # tiles of every camera share one model call
    assert inputs == 5 + 1 + 5 and len(inner.batches[0]) == 11
    assert len(results) == 3 and len(results[1]) == 1
    assert pcd.name == "person" and pcd.version == "fake@0"
    assert len(pcd.detect([np.zeros((8, 8, 3), np.uint8)])) == 1 and inner.batches[-1] == [(8, 8)]


def test_per_camera_filters_raise_threshold_and_drop_short_boxes() -> None:
    d = det([(0, 0, 10, 40), (0, 0, 10, 8), (0, 0, 10, 40)], [0.9, 0.9, 0.35])
    assert len(apply_filters(d, CameraTuning(min_score=0.5))) == 2
    assert len(apply_filters(d, CameraTuning(min_height_px=20))) == 2
    assert len(apply_filters(d, CameraTuning(min_score=0.5, min_height_px=20))) == 1
    assert apply_filters(d, None) is d


def test_batcher_counts_model_inputs_per_analysed_frame() -> None:
    inner = CountingDetector()
    tuning = {"wide": CameraTuning(grid=TileGrid(3, 3, 0.2))}
    seen: list[str] = []
    sched = BatchScheduler(PerCameraDetector(inner, tuning.get), 8, 0.0, lambda f, d: seen.append(f.camera_id))
    sched.start()
    try:
        sched.submit(frame("wide"), wait=True)
        sched.submit(frame("door"), wait=True)
        assert sched.wait_idle(10.0)
    finally:
        sched.stop()
    stats = sched.stats()
    assert sorted(seen) == ["door", "wide"]
    assert stats.analysed == 2 and stats.model_inputs == 10 + 1


def test_camera_config_tiling_and_its_validation() -> None:
    cam = CameraConfig(
        id="c1", url="rtsp://h/s", detectors=["person"],
        detection={"person": CameraDetection(tiling=TilingConfig(rows=3, cols=3), min_score=0.4, min_height_px=12)},
    )  # fmt: skip
    t = tuning_from_config(cam.detection["person"])
    assert t is not None and t.grid == TileGrid(3, 3, 0.25) and t.min_score == 0.4 and t.min_height_px == 12
    assert tuning_from_config(None) is None
    assert tuning_from_config(CameraDetection()) == CameraTuning()
    with pytest.raises(ConfigError, match="does not run"):
        load_config(overrides={"cameras": [{"id": "c2", "url": "rtsp://h/s", "detection": {"fire": {}}}]})
    with pytest.raises(ConfigError, match="rows"):
        load_config(overrides={"cameras": [{"id": "c3", "url": "rtsp://h/s",
                                            "detection": {"person": {"tiling": {"rows": 0}}}}]})  # fmt: skip
