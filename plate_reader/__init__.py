"""Licence plates: boxes -> rectified crops -> OCR -> country formats -> one read per vehicle pass.

Light to import: OCR backends and the plate detector load when first used.
"""

from __future__ import annotations

from plate_reader.formats import FormatBook, FormatMatch, PlateFormat
from plate_reader.normalize import normalise_plate
from plate_reader.pipeline import CropJob, PlateObservation, PlateOcr
from plate_reader.reader import PlateJob, PlatePass, PlateReader, PlateReaderConfig
from plate_reader.voting import TrackVote, VoteResult

PLATE_MODEL_ID = "yolov8n-license-plate"
"""Manifest id of the packaged plate detector (``detectors/manifest.yaml``)."""


def plate_model_config(name: str = "plate", threads: int = 1, score_threshold: float = 0.25, device: str = "cpu"):  # type: ignore[no-untyped-def]
    """A :class:`core.config.ModelConfig` for the packaged plate detector (for ``load_detector`` / the worker)."""
    from core.config import ModelConfig

    return ModelConfig(
        name=name,
        manifest_id=PLATE_MODEL_ID,
        backend="onnxruntime",
        input_size=640,
        score_threshold=score_threshold,
        nms_iou=0.5,
        labels={"license_plate": "license_plate"},
        threads=threads,
        device=device,
    )


__all__ = [
    "PLATE_MODEL_ID",
    "CropJob",
    "FormatBook",
    "FormatMatch",
    "PlateFormat",
    "PlateJob",
    "PlateObservation",
    "PlateOcr",
    "PlatePass",
    "PlateReader",
    "PlateReaderConfig",
    "TrackVote",
    "VoteResult",
    "normalise_plate",
    "plate_model_config",
]
