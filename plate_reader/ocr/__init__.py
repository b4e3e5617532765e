"""OCR backends behind one interface: a batch of rectified plate crops in, one :class:`OcrRead` each out.

Both backends return characters as small probability distributions (see
:data:`plate_reader.formats.CharHyp`), not only a string: the format
correction and the voting across frames are much better when they know that
the recogniser hesitated between ``8`` and ``B``. rapidocr gives real
per-character distributions (its CTC output); EasyOCR only a string and a
confidence, which become one-character distributions.

Backends are imported lazily by name so that a worker using rapidocr never
imports torch (EasyOCR needs it).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from plate_reader.formats import CharHyp


@dataclass(frozen=True, slots=True)
class OcrRead:
    """What a recogniser read on one crop."""

    text: str
    """Raw text as the recogniser decoded it (only plate-alphabet characters kept, in reading order)."""
    confidence: float
    chars: tuple[CharHyp, ...]
    """One distribution per decoded character, in reading order."""


@runtime_checkable
class Recognizer(Protocol):
    """A text-line recogniser for plate crops (BGR uint8, already rectified and scaled)."""

    name: str
    height: int
    """The crop height the recogniser works at; the rectifier scales crops to it."""

    def read(self, crops: Sequence[npt.NDArray[np.uint8]]) -> list[OcrRead]:
        """One read per crop, in order; an empty read (text "") when nothing legible is there."""
        ...


_BACKENDS = {
    "rapidocr": "plate_reader.ocr.rapid:RapidRecognizer",
    "easyocr": "plate_reader.ocr.easy:EasyOcrRecognizer",
}


def backends() -> list[str]:
    return sorted(_BACKENDS)


def create_recognizer(name: str = "rapidocr", **options: Any) -> Recognizer:
    """The recogniser called ``name`` (``rapidocr``, the default, or ``easyocr``) built with ``options``."""
    target = _BACKENDS.get(name)
    if target is None:
        raise ValueError(f"unknown OCR backend {name!r}; known: {backends()}")
    module_name, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    recognizer: Recognizer = cls(**options)
    return recognizer


__all__ = ["OcrRead", "Recognizer", "backends", "create_recognizer"]
