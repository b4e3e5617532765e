"""Every onnxruntime session the worker runs on the CPU sleeps between operators instead of spinning.

Several sessions (one per model, plus the plate recogniser) share a few cores in one worker; a spinning
intra-op pool takes the core another stage needs (measured in ``benchmarks/pipeline.py``'s worker).
"""

from __future__ import annotations

from pathlib import Path

from core.config import KuzetConfig
from detectors.registry import load_detector
from plate_reader.ocr.rapid import RapidRecognizer

KEY = "session.intra_op.allow_spinning"


def test_detector_sessions_do_not_spin() -> None:
    cfg = KuzetConfig()
    for name in ("person", "fire", "plate"):
        det = load_detector(cfg.model(name), Path(cfg.model_cache).expanduser())
        session = det.session  # type: ignore[attr-defined]
        assert session.get_session_options().get_session_config_entry(KEY) == "0", name


def test_plate_recogniser_session_does_not_spin() -> None:
    assert RapidRecognizer().session.get_session_options().get_session_config_entry(KEY) == "0"
