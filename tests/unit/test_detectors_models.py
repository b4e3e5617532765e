"""Model manifest, cache resolution and the missing-model error (no conversion run here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import ModelConfig
from detectors import ModelIntegrityError, ModelMissingError, load_detector
from detectors.errors import DetectorError, ManifestError
from detectors.manifest import load_manifest
from detectors.model_cache import cache_status, resolve_model, sha256_file


def test_packaged_manifest_is_valid() -> None:
    manifest = load_manifest()
    person = manifest.get("ssdlite-person")
    assert person.head == "ssd" and person.input.size == 300 and person.class_names == {1: "person"}
    fire = manifest.get("yolov8-fire-smoke")
    assert fire.head == "yolov8" and fire.keep_source and "fire_detector" in fire.source.pre_import
    assert set(fire.class_names.values()) == {"fire", "smoke"}
    with pytest.raises(ManifestError, match="not in the model manifest"):
        manifest.get("nope")


def test_invalid_manifest_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("schema_version: 1\nmodels:\n  - id: x\n    typo: 1\n")
    with pytest.raises(ManifestError, match="invalid"):
        load_manifest(bad)


@pytest.mark.parametrize("backend", ["onnxruntime", "ultralytics"])
def test_missing_model_file_names_file_and_build_command(tmp_path: Path, backend: str) -> None:
    cfg = ModelConfig(name="fire", manifest_id="yolov8-fire-smoke", backend=backend, labels={"fire": "fire"})
    with pytest.raises(ModelMissingError) as err:
        load_detector(cfg, tmp_path)
    msg = str(err.value)
    suffix = ".onnx" if backend == "onnxruntime" else ".pt"
    assert str(tmp_path / f"yolov8-fire-smoke{suffix}") in msg
    assert "kuzet models build" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_missing_operator_path_is_a_clear_error(tmp_path: Path) -> None:
    cfg = ModelConfig(name="mine", manifest_id="custom", backend="ultralytics", path=tmp_path / "yolo11n.pt")
    with pytest.raises(ModelMissingError, match="path"):
        load_detector(cfg, tmp_path)


def test_unknown_manifest_id_without_path(tmp_path: Path) -> None:
    cfg = ModelConfig(name="x", manifest_id="no-such-model")
    with pytest.raises(DetectorError, match="not in the model manifest"):
        load_detector(cfg, tmp_path)


def test_tampered_cache_file_is_refused(tmp_path: Path) -> None:
    onnx = tmp_path / "ssdlite-person.onnx"
    onnx.write_bytes(b"not the model")
    record = {"source": {"sha256": "0" * 64}, "output": {"sha256": "f" * 64}}
    (tmp_path / "ssdlite-person.json").write_text(json.dumps(record))
    cfg = ModelConfig(name="person", manifest_id="ssdlite-person", labels={"person": "person"})
    with pytest.raises(ModelIntegrityError, match="models build --force"):
        resolve_model(cfg, tmp_path, "onnx")
    assert sha256_file(onnx) != "f" * 64


def test_status_of_empty_cache_is_missing(tmp_path: Path) -> None:
    states = {s.id: s.state for s in cache_status(tmp_path)}
    assert states["ssdlite-person"] == "missing" and states["yolov8-fire-smoke"] == "missing"


@pytest.mark.parametrize(
    ("model_id", "missing", "extra"),
    [("yolov8-fire-smoke", "torch", "ultralytics"), ("ssdlite-person", "tf2onnx", "convert")],
)
def test_model_build_without_its_extra_says_which_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_id: str, missing: str, extra: str
) -> None:
    """torch/ultralytics and TensorFlow are extras: a build without them stops before converting, naming the extra."""
    import importlib.util

    from detectors import model_cache

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == missing else real_find_spec(name, *a)
    )
    entry = next(e for e in load_manifest().models if e.id == model_id)
    with pytest.raises(DetectorError, match=rf"kuzet\[{extra}\]"):
        model_cache.build_model(entry, tmp_path / "cache")
