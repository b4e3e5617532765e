"""Detection: models, backends, cross-camera batching, tracking.

Imports here stay light (no torch, no onnxruntime) so that a worker which only
needs the batch scheduler does not pay for a backend it does not use; the
backends are imported when :func:`load_detector` selects them.
"""

from __future__ import annotations

from detectors.errors import DetectorError, ManifestError, ModelIntegrityError, ModelMissingError
from detectors.registry import Detector, load_detector

__all__ = [
    "Detector",
    "DetectorError",
    "ManifestError",
    "ModelIntegrityError",
    "ModelMissingError",
    "load_detector",
]
