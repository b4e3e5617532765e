"""onnxruntime on an NVIDIA GPU: TensorRT (FP16, engines cached on disk) with the CUDA provider behind it.

Selected by ``device: cuda`` or ``cuda:N`` in a model's config; needs the
``gpu`` extra. What differs from the CPU module:

* providers: TensorRT first (FP16; engine cache keyed by model sha256, GPU
  name and TensorRT version, see :mod:`detectors.gpu.engine_cache`), CUDA
  for what TensorRT cannot take, and the session is checked to have really
  started on the GPU (:func:`detectors.device.require_providers`); it never
  falls back to the CPU silently;
* pre-processing on the device: the uint8 frames are copied to the GPU once
  and a small ONNX graph (:mod:`detectors.gpu.preprocess_graph`) resizes,
  pads and scales them there; its output is bound straight to the model's
  input with IO binding, so the float batch never crosses the bus;
* post-processing (decode, NMS) is the CPU module's, on the small outputs.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from core.config import ModelConfig
from core.detections import Detections
from detectors.backends.onnxruntime_backend import ModelIO, OnnxDetector, _session_options, model_io_of
from detectors.device import Device, require_providers
from detectors.gpu.engine_cache import engine_cache_key, gpu_name, tensorrt_options, tensorrt_version
from detectors.gpu.preprocess_graph import FRAMES, PADS, SIZES, build_graph, geometry
from detectors.model_cache import resolve_model, sha256_file
from detectors.preprocess import Transform

log = logging.getLogger(__name__)


@functools.cache
def load_cuda_libraries() -> None:
    """Load the CUDA, cuDNN and TensorRT libraries of the pip wheels before the first GPU session.

    onnxruntime-gpu's CUDA provider links libcublasLt, libcudnn and the rest by name, and the nvidia-*
    wheels of the ``gpu`` extra keep them under site-packages/nvidia/*/lib, where the dynamic loader
    does not look: without this step the provider fails to load ("libcublasLt.so.12: cannot open shared
    object file", seen with the extra installed here) and the session runs on the CPU, which
    :func:`require_providers` refuses, so a pip-installed GPU worker would never start.
    ``onnxruntime.preload_dlls`` loads them from those wheels (or from torch's when torch came first).
    The TensorRT provider opens libnvinfer the same way; the ``tensorrt`` package loads it from its
    ``tensorrt_libs`` wheel when imported. Once per process: loading is global.
    """
    ort.preload_dlls()
    try:
        importlib.import_module("tensorrt")
    except (ImportError, OSError) as exc:  # no TensorRT: the CUDA provider runs the models (providers() says so)
        log.info("tensorrt package not loaded: %s", exc)


def providers(device: Device, model_path: Path, cache_dir: Path) -> list[Any]:
    """TensorRT (when the TensorRT provider and library are there), then CUDA; never the CPU alone."""
    available = ort.get_available_providers()
    chain: list[Any] = []
    if "TensorrtExecutionProvider" in available:
        try:
            key = engine_cache_key(sha256_file(model_path), gpu_name(device.index), tensorrt_version())
            chain.append(("TensorrtExecutionProvider", tensorrt_options(cache_dir / "trt" / key, device.index)))
        except RuntimeError as exc:  # no TensorRT wheel: the CUDA provider runs the model, and the log says why
            log.warning("TensorRT not used for %s: %s", model_path.name, exc)
    chain.append(("CUDAExecutionProvider", {"device_id": device.index}))
    chain.append("CPUExecutionProvider")  # only for single nodes the GPU providers cannot run
    return chain


class GpuOnnxDetector(OnnxDetector):
    """The onnxruntime detector with GPU providers and on-device pre-processing."""

    def __init__(self, cfg: ModelConfig, path: Path, version: str, model_io: ModelIO, cache_dir: Path) -> None:
        self.device = Device.parse(cfg.device)
        self._providers = providers(self.device, path, cache_dir)
        super().__init__(cfg, path, version, model_io)
        spec = self._spec = model_io.spec
        graph = build_graph(spec.resize, spec.layout, spec.dtype, spec.color, spec.resample)
        cuda = [("CUDAExecutionProvider", {"device_id": self.device.index})]
        self.pre_session = ort.InferenceSession(graph, sess_options=_session_options(1), providers=cuda)
        require_providers(self.device, f"{cfg.name} pre-processing", ort.get_available_providers(),
                          self.pre_session.get_providers())  # fmt: skip
        self._outputs = [o.name for o in self.session.get_outputs()]

    def _session(self, path: Path) -> ort.InferenceSession:
        session = ort.InferenceSession(str(path), sess_options=_session_options(self.cfg.threads),
                                       providers=self._providers)  # fmt: skip
        require_providers(self.device, self.cfg.name, ort.get_available_providers(), session.get_providers())
        return session

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """Frames of one shape go to the device as one uint8 batch; mixed shapes as one batch per shape."""
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(images):
            by_shape.setdefault(img.shape, []).append(i)
        results: list[Detections] = [Detections.empty()] * len(images)
        for idx in by_shape.values():
            outputs, transforms = self._infer([images[i] for i in idx])
            for i, det in zip(idx, self._decode(outputs, transforms), strict=True):
                results[i] = det
        return results

    def _infer(self, images: Sequence[npt.NDArray[np.uint8]]) -> tuple[list[Any], list[Transform]]:
        return self._infer_uniform(images)

    def _infer_uniform(self, images: Sequence[npt.NDArray[np.uint8]]) -> tuple[list[Any], list[Transform]]:
        sizes, pads, transforms = geometry(images, self.cfg.input_size, self._spec.resize, self._spec.rect_stride)
        frames = ort.OrtValue.ortvalue_from_numpy(np.stack(images), "cuda", self.device.index)
        pre = self.pre_session.io_binding()
        pre.bind_ortvalue_input(FRAMES, frames)
        pre.bind_cpu_input(SIZES, sizes)
        pre.bind_cpu_input(PADS, pads)
        pre.bind_output("input", "cuda", self.device.index)
        self.pre_session.run_with_iobinding(pre)
        model_input = pre.get_outputs()[0]
        io = self.session.io_binding()
        io.bind_ortvalue_input(self.input_name, model_input)
        for name in self._outputs:
            io.bind_output(name, "cpu")  # detection heads are small; decode and NMS run on the host
        self.session.run_with_iobinding(io)
        return io.copy_outputs_to_cpu(), transforms


def create(model_cfg: ModelConfig, cache_dir: Path) -> GpuOnnxDetector:
    """Backend entry point, chosen by :func:`detectors.load_detector` when an onnxruntime model's device is CUDA."""
    device = Device.parse(model_cfg.device)
    require_providers(device, model_cfg.name, ort.get_available_providers())  # fail before resolving files
    load_cuda_libraries()
    resolved = resolve_model(model_cfg, cache_dir, "onnx")
    log.info("loading %s (%s) on %s from %s", model_cfg.name, resolved.version, model_cfg.device, resolved.path)
    return GpuOnnxDetector(model_cfg, resolved.path, resolved.version, model_io_of(model_cfg, resolved), cache_dir)
