"""ultralytics backend: torch (CPU or CUDA) through ``YOLO.predict`` on a list of frames.

For the packaged fire model (the ``.pt`` kept in the model cache) and for any
ultralytics detector an operator provides (``path: yolo11n.pt``). It is the
route to GPUs and TensorRT exports; on a CPU the onnxruntime backend is
faster. ``YOLO_OFFLINE`` is set before ultralytics is imported so that it
never probes the network or fetches fonts/assets.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.config import ModelConfig
from core.detections import Detections
from detectors.classmap import ClassMap
from detectors.device import Device, DeviceUnavailableError
from detectors.errors import DetectorError
from detectors.model_cache import resolve_model

log = logging.getLogger(__name__)


def _import_yolo() -> Any:
    os.environ["YOLO_OFFLINE"] = "1"
    try:
        from ultralytics import YOLO  # type: ignore[attr-defined]
    except ImportError as exc:
        raise DetectorError(
            f"the ultralytics backend needs the `ultralytics` extra (torch, ultralytics): "
            f"pip install 'kuzet[ultralytics]' ({exc})"
        ) from None
    return YOLO


class UltralyticsDetector:
    """A :class:`detectors.Detector` running an ultralytics model."""

    def __init__(
        self, cfg: ModelConfig, path: Path, version: str, class_names: dict[int, str] | None, pre_import: list[str]
    ) -> None:
        yolo = _import_yolo()  # first: sets YOLO_OFFLINE (the import probes DNS otherwise), says what is missing
        for module in pre_import:  # e.g. fire_detector registers the custom layers the pickle names
            importlib.import_module(module)
        import torch

        if cfg.device == "cpu":
            torch.set_num_threads(cfg.threads)  # process-wide: torch has no per-model pool
        self.name = cfg.name
        self.version = version
        self.cfg = cfg
        device = Device.parse(cfg.device)
        if device.is_cuda and not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"model {cfg.name!r} is configured for device {device} but torch sees no CUDA GPU; "
                "install a CUDA build of torch on a machine with an NVIDIA driver, or set device: cpu"
            )
        self.device = str(device)
        self.model = yolo(str(path), task="detect")
        names = class_names or {int(k): str(v) for k, v in self.model.names.items()}
        self.classmap = ClassMap(names, cfg.labels)

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        if len(images) == 0:
            return []
        results = self.model.predict(
            list(images),
            imgsz=self.cfg.input_size,
            conf=self.cfg.score_threshold,
            iou=self.cfg.nms_iou,
            device=self.device,
            verbose=False,
            max_det=300,
        )
        out: list[Detections] = []
        for res in results:
            boxes = res.boxes
            if boxes is None or len(boxes) == 0:
                out.append(Detections.empty())
                continue
            xyxy = boxes.xyxy.cpu().numpy().astype(np.float32)
            conf = boxes.conf.cpu().numpy().astype(np.float32)
            cls = boxes.cls.cpu().numpy().astype(np.int64)
            out.append(self.classmap.apply(xyxy, conf, cls))
        return out


def create(model_cfg: ModelConfig, cache_dir: Path) -> UltralyticsDetector:
    """Backend entry point used by :func:`detectors.load_detector`."""
    resolved = resolve_model(model_cfg, cache_dir, "pt")
    entry = resolved.entry
    names = dict(entry.class_names) if entry is not None and model_cfg.path is None else None
    pre_import = list(entry.source.pre_import) if entry is not None else []
    log.info("loading %s (%s) with ultralytics from %s", model_cfg.name, resolved.version, resolved.path)
    return UltralyticsDetector(model_cfg, resolved.path, resolved.version, names, pre_import)
