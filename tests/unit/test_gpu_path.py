"""The GPU path's parts that run without a GPU: device config, the no-CUDA error, engine keys, the pre-processing graph.

No CUDA here: these tests check that asking for it fails at once and says
why, that TensorRT engines are keyed so a stale one is never reused, and
that the on-device pre-processing graph computes what the CPU
pre-processor computes (run with onnxruntime's CPU provider).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from pydantic import ValidationError

from core.config import KuzetConfig, ModelConfig
from detectors.device import Device, DeviceUnavailableError, require_providers
from detectors.gpu.engine_cache import engine_cache_key, tensorrt_options
from detectors.gpu.preprocess_graph import FRAMES, PADS, SIZES, build_graph, geometry
from detectors.preprocess import Preprocessor
from detectors.registry import load_detector

SHA = "ab" * 32


# ------------------------------------------------------------------------------------------- device config
@pytest.mark.parametrize(("text", "kind", "index"), [("cpu", "cpu", 0), ("cuda", "cuda", 0), ("cuda:3", "cuda", 3)])
def test_device_parses(text: str, kind: str, index: int) -> None:
    d = Device.parse(text)
    assert (d.kind, d.index) == (kind, index)
    assert ModelConfig(name="m", manifest_id="x", device=text).device == text


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "CUDA", "cuda:0:1", "cuda:123", " cpu"])
def test_bad_device_is_a_config_error(bad: str) -> None:
    with pytest.raises(ValidationError, match="device"):
        ModelConfig(name="m", manifest_id="x", device=bad)
    with pytest.raises(ValueError):
        Device.parse(bad)


# --------------------------------------------------------------------------------------- no CUDA, no start
def test_cuda_model_without_cuda_fails_at_load_with_a_clear_message(tmp_path: Path) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA; the no-CUDA error cannot happen here")
    cfg = ModelConfig(name="fire", manifest_id="yolov8-fire-smoke", device="cuda:1", labels={"fire": "fire"})
    with pytest.raises(DeviceUnavailableError) as err:
        load_detector(cfg, tmp_path)  # fails before it looks for the model file
    msg = str(err.value)
    assert "'fire'" in msg and "cuda:1" in msg and "gpu extra" in msg and "device: cpu" in msg


def test_worker_with_a_cuda_model_stops_at_start(tmp_path: Path) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    from worker.runtime import Worker

    base = KuzetConfig()
    models = [m.model_copy(update={"device": "cuda"}) if m.name == "person" else m for m in base.models]
    cfg = KuzetConfig.model_validate(
        {
            "models": [m.model_dump() for m in models],
            "cameras": [{"id": "cam-1", "url": str(tmp_path / "none.mp4"), "detectors": ["person"]}],
            "bus": {"spool_path": tmp_path / "spool.sqlite3", "local_path": tmp_path / "bus.sqlite3"},
            "storage": {"local_dir": tmp_path / "snaps"},
        }
    )
    worker = Worker(cfg)
    try:
        with pytest.raises(DeviceUnavailableError, match="no CUDA provider"):
            worker.start()
        assert worker.camera_ids() == []  # no camera started on the CPU instead
    finally:
        worker.stop(flush_timeout_s=0.1)


def test_the_wheels_cuda_libraries_are_loaded_before_the_first_gpu_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``preload_dlls`` the CUDA provider of a pip install cannot find libcublasLt and every session
    drops to the CPU; the GPU backend loads the libraries once, before it resolves the model or opens a session."""
    from detectors.backends import onnxruntime_gpu_backend as gpu

    calls: list[str] = []
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "preload_dlls", lambda: calls.append("preload"), raising=False)

    def resolve(*_: object) -> None:
        calls.append("resolve")
        raise ZeroDivisionError

    monkeypatch.setattr(gpu, "resolve_model", resolve)
    gpu.load_cuda_libraries.cache_clear()
    cfg = ModelConfig(name="fire", manifest_id="yolov8-fire-smoke", device="cuda", labels={"fire": "fire"})
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            gpu.create(cfg, tmp_path)
    gpu.load_cuda_libraries.cache_clear()
    assert calls == ["preload", "resolve", "resolve"]


def test_a_session_that_dropped_cuda_is_refused() -> None:
    """onnxruntime-gpu quietly runs on the CPU when the CUDA libraries fail to load: that must not pass."""
    cuda = Device.parse("cuda")
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    require_providers(cuda, "m", available, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(DeviceUnavailableError, match="could not start CUDA"):
        require_providers(cuda, "m", available, ["CPUExecutionProvider"])
    require_providers(Device.parse("cpu"), "m", ["CPUExecutionProvider"], ["CPUExecutionProvider"])


# -------------------------------------------------------------------------------------------- engine keys
def test_engine_key_holds_model_gpu_and_tensorrt_version() -> None:
    key = engine_cache_key(SHA, "NVIDIA H200", "10.14.1.48.post1")
    assert key == f"{SHA[:16]}-nvidia-h200-trt10.14.1.48.post1"
    assert engine_cache_key(SHA, "NVIDIA H200", "10.14.1.48.post1") == key  # stable
    others = {
        engine_cache_key("cd" * 32, "NVIDIA H200", "10.14.1.48.post1"),  # another model file
        engine_cache_key(SHA, "NVIDIA H100 80GB HBM3", "10.14.1.48.post1"),  # another GPU
        engine_cache_key(SHA, "NVIDIA H200", "10.13.3.9"),  # another TensorRT
    }
    assert key not in others and len(others) == 3
    assert "/" not in engine_cache_key(SHA, "Quadro RTX 8000/PCIe", "10.0")  # a folder name, never a path


@pytest.mark.parametrize(("sha", "gpu", "trt"), [("abc", "H200", "10"), (SHA, "", "10"), (SHA, "H200", " ")])
def test_engine_key_refuses_unknown_parts(sha: str, gpu: str, trt: str) -> None:
    with pytest.raises(ValueError):
        engine_cache_key(sha, gpu, trt)


def test_tensorrt_options_turn_on_fp16_and_both_caches(tmp_path: Path) -> None:
    opts = tensorrt_options(tmp_path / "trt" / "k", 2)
    assert opts["device_id"] == 2 and opts["trt_fp16_enable"] is True
    assert opts["trt_engine_cache_enable"] is True and opts["trt_engine_cache_path"] == str(tmp_path / "trt" / "k")
    assert (tmp_path / "trt" / "k").is_dir()


# ----------------------------------------------------------------------------- pre-processing on the device
def _frames(h: int, w: int, n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return [np.ascontiguousarray(np.kron(base, np.ones((8, 8, 1), np.uint8))[:h, :w] // (i + 1)) for i in range(n)]


def _run_graph(graph: bytes, frames: list[np.ndarray], sizes: np.ndarray, pads: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {FRAMES: np.stack(frames), SIZES: sizes, PADS: pads})[0])


@pytest.mark.parametrize("rect", [None, 32])
def test_letterbox_graph_matches_the_cpu_preprocessor(rect: int | None) -> None:
    frames = _frames(576, 768)
    cpu = Preprocessor(640, "letterbox", "nchw", "float32", "rgb", rect_stride=rect)
    want, want_tr = cpu(frames)
    sizes, pads, transforms = geometry(frames, 640, "letterbox", rect)
    got = _run_graph(build_graph("letterbox", "nchw", "float32", "rgb"), frames, sizes, pads)
    assert got.shape == want.shape and got.dtype == np.float32
    assert transforms == want_tr  # boxes map back to the frame exactly as on the CPU
    assert float(np.abs(got - want).max()) <= 2.5 / 255  # the CPU path rounds to uint8 before scaling


def test_stretch_uint8_graph_matches_the_cpu_preprocessor() -> None:
    frames = _frames(576, 768)
    cpu = Preprocessor(300, "stretch", "nhwc", "uint8", "rgb", resample="tf-asymmetric")
    want, want_tr = cpu(frames)
    sizes, pads, transforms = geometry(frames, 300, "stretch")
    got = _run_graph(build_graph("stretch", "nhwc", "uint8", "rgb", "tf-asymmetric"), frames, sizes, pads)
    assert got.shape == want.shape and got.dtype == np.uint8 and transforms == want_tr
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    # OpenCV's warpAffine interpolates with 5-bit fixed-point weights: a few levels apart at most, rarely
    assert int(diff.max()) <= 4 and float(diff.mean()) < 0.3


def test_device_batches_hold_one_frame_shape() -> None:
    with pytest.raises(ValueError, match="one shape"):
        geometry([np.zeros((10, 20, 3), np.uint8), np.zeros((20, 10, 3), np.uint8)], 64, "letterbox")


# ------------------------------------------------------------------------------------------ GPU JPEG encoder
def test_gpu_jpeg_encoder_allows_gpu_backends_only_and_never_returns_a_cpu_jpeg(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nvImageCodec with every backend allowed encodes on the CPU when libnvjpeg is missing; ours must refuse."""
    import sys
    import types

    made: dict[str, object] = {}

    class Encoder:
        def __init__(self, device_id: int, backends: list[object]) -> None:
            made.update(device_id=device_id, backends=backends)

        def encode(self, image: np.ndarray, codec: str, params: object) -> bytes | None:
            made.update(shape=image.shape, codec=codec)
            return None if image.shape[0] == 2 else b"\xff\xd8jpeg"

    kinds = types.SimpleNamespace(GPU_ONLY="gpu-only")
    fake = types.SimpleNamespace(
        Encoder=Encoder,
        Backend=lambda kind: ("backend", kind),
        BackendKind=kinds,
        EncodeParams=lambda **kw: kw,
        QualityType=types.SimpleNamespace(QUALITY="quality"),
    )
    monkeypatch.setitem(sys.modules, "nvidia", types.SimpleNamespace(nvimgcodec=fake))
    monkeypatch.setitem(sys.modules, "nvidia.nvimgcodec", fake)
    from worker.snapshot_gpu import GpuJpegEncoder

    enc = GpuJpegEncoder(gpu=2)
    assert made["device_id"] == 2 and made["backends"] == [("backend", "gpu-only")]
    assert enc.encode(np.zeros((4, 6, 3), np.uint8)) == b"\xff\xd8jpeg" and made["codec"] == "jpeg"
    with pytest.raises(RuntimeError, match="nvJPEG"):
        enc.encode(np.zeros((2, 6, 3), np.uint8))
