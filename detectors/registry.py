"""Detector protocol and the backend registry.

Backends are plugin modules found by name, imported only when a model asks
for them: a worker running only onnxruntime models never imports torch (about
a second and a few hundred MB), and a new backend is one module exposing
``create(model_cfg, cache_dir) -> Detector`` plus one :func:`register_backend`
call.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt

from core.config import ModelConfig
from core.detections import Detections
from detectors.device import Device
from detectors.errors import DetectorError


@runtime_checkable
class Detector(Protocol):
    """A loaded model: one call per batch of frames of any sizes (BGR uint8).

    Not thread-safe: a detector reuses its preprocessing buffers between calls,
    so exactly one thread (its :class:`detectors.batcher.BatchScheduler`) calls it.
    """

    name: str
    """The configured model name (``ModelConfig.name``)."""
    version: str
    """Manifest id plus the short sha256 of the model file, e.g. ``ssdlite-person@7a23982e``; goes into events."""

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """One Detections per image, in that image's pixel coordinates, canonical labels."""
        ...


BackendFactory = Callable[[ModelConfig, Path], Detector]

_BACKENDS: dict[str, str] = {
    "onnxruntime": "detectors.backends.onnxruntime_backend",
    "ultralytics": "detectors.backends.ultralytics_backend",
}
# Backends with a separate module for CUDA devices (the GPU one builds on the CPU one, never the reverse).
_CUDA_BACKENDS: dict[str, str] = {"onnxruntime": "detectors.backends.onnxruntime_gpu_backend"}


def register_backend(name: str, module: str) -> None:
    """Make ``module`` (exposing ``create(model_cfg, cache_dir)``) the backend called ``name``."""
    _BACKENDS[name] = module


def backends() -> list[str]:
    return sorted(_BACKENDS)


def load_detector(model_cfg: ModelConfig, cache_dir: Path) -> Detector:
    """Load the configured model from the model cache (or the operator's ``path``).

    Raises :class:`detectors.ModelMissingError` when the file is not there
    (the message names the file and says ``kuzet models build`` makes it),
    :class:`detectors.ModelIntegrityError` when it is not the file the cache
    recorded.
    """
    module_name = _BACKENDS.get(model_cfg.backend)
    if module_name is None:
        raise DetectorError(f"model {model_cfg.name!r}: unknown backend {model_cfg.backend!r}; known: {backends()}")
    if model_cfg.backend in _CUDA_BACKENDS and Device.parse(model_cfg.device).is_cuda:
        module_name = _CUDA_BACKENDS[model_cfg.backend]
    module = importlib.import_module(module_name)
    factory = cast(BackendFactory, module.create)
    return factory(model_cfg, Path(cache_dir).expanduser())
