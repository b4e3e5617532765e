"""onnxruntime backend (the default): one session per model, one run per batch.

Heads:
* ``ssd``: TF Object Detection API outputs (detection_boxes normalised
  ymin/xmin/ymax/xmax, detection_scores, detection_classes 1-based,
  num_detections). The graph already ran its own NMS; ours with the configured
  IoU is applied again, which is cheap and makes ``nms_iou`` mean the same for
  every model.
* ``yolov8``: raw ``[N, 4 + nc, anchors]`` (cx, cy, w, h in input pixels, then
  per-class scores): decoded, thresholded on the best class score (one label
  per box, as ultralytics does), class-aware NMS.
* ``centernet`` / ``nanodet``: the raw heads of the COCO-80 TF.js detectors
  (decoded in :mod:`detectors.coco_heads`, only for the classes the model's
  ``labels`` keep), class-aware NMS. NanoDet's graph reshapes to batch 1, so a
  model whose input batch axis is fixed at 1 runs one frame per call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from core.config import ModelConfig
from core.detections import Detections
from detectors.classmap import ClassMap
from detectors.coco_heads import Decoded, decode_centernet, decode_nanodet
from detectors.errors import DetectorError
from detectors.manifest import InputSpec
from detectors.model_cache import ResolvedModel, resolve_model
from detectors.nms import nms
from detectors.preprocess import Preprocessor, Transform

log = logging.getLogger(__name__)

MAX_DET = 300


NO_SPIN = ("session.intra_op.allow_spinning", "0")
"""Intra-op pool threads sleep between operators instead of busy-waiting.

A worker runs one session per model in its own thread, and the plate
recogniser beside them, on a few cores. onnxruntime's default (spinning)
has each idle pool burn the core another stage needs: the whole worker on the
busy scene ran 2.9-3.2x the frames/s with spinning off (1 camera, batch 1,
same run on a loaded box, ``benchmarks/pipeline.py``'s worker with both
settings); on an idle box its ratio to the limit went from 0.61 to 1.00
(docs/capacity.md).
"""


def _session_options(threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1  # one model graph at a time; extra pools only contend on few cores
    so.add_session_config_entry(*NO_SPIN)
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return so


def _names_from_metadata(session: ort.InferenceSession) -> dict[int, str] | None:
    """Class names an ultralytics export stores in the ONNX metadata (operator models not in the manifest)."""
    raw = session.get_modelmeta().custom_metadata_map.get("names")
    if not raw:
        return None
    try:  # ultralytics writes a Python dict literal: {0: 'person', ...}
        import ast

        parsed = ast.literal_eval(raw)
        return {int(k): str(v) for k, v in parsed.items()}
    except (ValueError, SyntaxError):
        try:
            return {int(k): str(v) for k, v in json.loads(raw).items()}
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class ModelIO:
    """How a model is fed and read: its output head, its input spec and its class names (None: the ONNX metadata's)."""

    head: str
    spec: InputSpec
    class_names: dict[int, str] | None


class OnnxDetector:
    """A :class:`detectors.Detector` running an ONNX model with onnxruntime on the CPU.

    The GPU variant (:mod:`detectors.backends.onnxruntime_gpu_backend`) replaces the session's
    providers and the pre-processing step and keeps the post-processing here.
    """

    def __init__(self, cfg: ModelConfig, path: Path, version: str, model_io: ModelIO) -> None:
        self.name = cfg.name
        self.version = version
        self.cfg = cfg
        self.head = model_io.head
        self.session = self._session(path)
        self.input_name = self.session.get_inputs()[0].name
        self.fixed_batch_of_one = self.session.get_inputs()[0].shape[0] == 1
        names = model_io.class_names or _names_from_metadata(self.session)
        if not names:
            raise DetectorError(f"model {cfg.name!r}: class names unknown (not in the manifest nor the ONNX metadata)")
        self.classmap = ClassMap(names, cfg.labels)
        spec = model_io.spec
        self.pre = Preprocessor(
            cfg.input_size, spec.resize, spec.layout, spec.dtype, spec.color, spec.resample, spec.rect_stride
        )

    def _session(self, path: Path) -> ort.InferenceSession:
        return ort.InferenceSession(
            str(path), sess_options=_session_options(self.cfg.threads), providers=["CPUExecutionProvider"]
        )

    def _infer(self, images: Sequence[npt.NDArray[np.uint8]]) -> tuple[list[Any], list[Transform]]:
        """Pre-processing and the model call: raw outputs and the per-frame transforms."""
        batch, transforms = self.pre(images)
        if self.fixed_batch_of_one and len(batch) > 1:
            runs = [self.session.run(None, {self.input_name: batch[i : i + 1]}) for i in range(len(batch))]
            return [np.concatenate(parts) for parts in zip(*runs, strict=True)], transforms
        return self.session.run(None, {self.input_name: batch}), transforms

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        if len(images) == 0:
            return []
        outputs, transforms = self._infer(images)
        return self._decode(outputs, transforms)

    def _decode(self, outputs: list[Any], transforms: list[Transform]) -> list[Detections]:
        """Post-processing of raw outputs into per-frame detections in frame pixels."""
        if self.head == "ssd":
            return self._ssd(outputs, transforms)
        if self.head == "centernet":
            return self._coco(self._centernet(outputs), transforms)
        if self.head == "nanodet":
            return self._coco(self._nanodet(outputs, len(transforms)), transforms)
        return self._yolov8(outputs[0], transforms)

    def _wanted_classes(self) -> npt.NDArray[np.int64]:
        return np.flatnonzero(self.classmap.lut >= 0).astype(np.int64)

    def _centernet(self, outputs: list[Any]) -> list[Decoded]:
        heat, ltrb = (np.asarray(o) for o in outputs[:2])  # the manifest lists keypoints first, then wh
        size = self.pre.size
        return decode_centernet(heat, ltrb, size, self._wanted_classes(), self.cfg.score_threshold, MAX_DET)

    def _nanodet(self, outputs: list[Any], frames: int) -> list[Decoded]:
        arrays = [np.asarray(o) for o in outputs]
        scores = {a.shape[1]: a for a in arrays if a.shape[2] != 4 * 11}
        dists = {a.shape[1]: a for a in arrays if a.shape[2] == 4 * 11}
        if len(scores) != len(arrays) // 2 or scores.keys() != dists.keys():
            raise DetectorError(f"model {self.name!r}: unexpected nanodet outputs {[a.shape for a in arrays]}")
        wanted = self._wanted_classes()
        return [
            decode_nanodet(
                [(scores[c][i], dists[c][i]) for c in sorted(scores)],
                self.pre.size,
                wanted,
                self.cfg.score_threshold,
                MAX_DET,
            )
            for i in range(frames)
        ]

    def _coco(self, decoded: list[Decoded], transforms: list[Transform]) -> list[Detections]:
        results: list[Detections] = []
        for (xyxy, sc, cls), tr in zip(decoded, transforms, strict=True):
            kept = nms(xyxy, sc, self.cfg.nms_iou, cls, MAX_DET)
            results.append(self.classmap.apply(tr.to_frame(xyxy[kept]), sc[kept], cls[kept]))
        return results

    def _ssd(self, outputs: list[Any], transforms: list[Transform]) -> list[Detections]:
        boxes, scores, classes, num = (np.asarray(o) for o in outputs[:4])
        results: list[Detections] = []
        for i, tr in enumerate(transforms):
            k = int(num[i])
            sc = scores[i, :k].astype(np.float32)
            keep = sc >= self.cfg.score_threshold
            if not keep.any():
                results.append(Detections.empty())
                continue
            b = boxes[i, :k][keep]
            # normalised (ymin, xmin, ymax, xmax) of the stretched input == normalised frame coordinates
            xyxy = np.stack([b[:, 1] * tr.width, b[:, 0] * tr.height, b[:, 3] * tr.width, b[:, 2] * tr.height], axis=1)
            xyxy = np.clip(xyxy, 0, [tr.width, tr.height, tr.width, tr.height]).astype(np.float32)
            xyxy[:, 2:] = np.maximum(xyxy[:, 2:], xyxy[:, :2])
            cls = classes[i, :k][keep].astype(np.int64)
            sc = sc[keep]
            kept = nms(xyxy, sc, self.cfg.nms_iou, cls, MAX_DET)
            results.append(self.classmap.apply(xyxy[kept], sc[kept], cls[kept]))
        return results

    def _yolov8(self, raw: npt.NDArray[np.float32], transforms: list[Transform]) -> list[Detections]:
        if raw.ndim != 3 or raw.shape[1] < 5:
            raise DetectorError(f"model {self.name!r}: expected a [N, 4+nc, anchors] output, got {raw.shape}")
        results: list[Detections] = []
        for i, tr in enumerate(transforms):
            pred = raw[i]  # (4 + nc, A)
            cls_scores = pred[4:]
            best = cls_scores.max(axis=0)
            cand = np.flatnonzero(best >= self.cfg.score_threshold)
            if cand.size == 0:
                results.append(Detections.empty())
                continue
            sc = best[cand].astype(np.float32)
            cls = cls_scores[:, cand].argmax(axis=0).astype(np.int64)
            cx, cy, w, h = pred[0, cand], pred[1, cand], pred[2, cand], pred[3, cand]
            xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
            kept = nms(xyxy, sc, self.cfg.nms_iou, cls, MAX_DET)
            frame_xyxy = tr.to_frame(xyxy[kept])
            results.append(self.classmap.apply(frame_xyxy, sc[kept], cls[kept]))
        return results


def model_io_of(model_cfg: ModelConfig, resolved: ResolvedModel) -> ModelIO:
    """How to feed and read a resolved model, for the CPU and the GPU backend alike.

    A manifest entry says it all; a model outside the manifest is taken to be an operator's ONNX export of an
    ultralytics detector (letterboxed NCHW float input, class names from the ONNX metadata).
    """
    entry = resolved.entry
    if entry is not None:
        return ModelIO(entry.head, entry.input, dict(entry.class_names))
    spec = InputSpec(size=model_cfg.input_size, resize="letterbox", layout="nchw", dtype="float32")
    return ModelIO("yolov8", spec, None)


def create(model_cfg: ModelConfig, cache_dir: Path) -> OnnxDetector:
    """Backend entry point used by :func:`detectors.load_detector` for CPU devices (``device: cuda[:N]`` loads
    :mod:`detectors.backends.onnxruntime_gpu_backend` instead)."""
    resolved = resolve_model(model_cfg, cache_dir, "onnx")
    log.info("loading %s (%s) with onnxruntime from %s", model_cfg.name, resolved.version, resolved.path)
    return OnnxDetector(model_cfg, resolved.path, resolved.version, model_io_of(model_cfg, resolved))
