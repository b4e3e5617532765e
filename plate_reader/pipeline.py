"""Plate boxes of one frame -> rectified crops -> OCR -> format-corrected reads.

Each box is read twice in one OCR batch: the rectified crop (usually best)
and the plainly padded box (better when the outline search latched onto the
wrong blob, e.g. a white car around a white plate). The variant whose
format fit scores higher wins, which costs one more crop in the same
``session.run`` and removes most rectification failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from plate_reader.formats import FormatBook, FormatMatch
from plate_reader.ocr import OcrRead, Recognizer, create_recognizer
from plate_reader.rectify import _pad_box, rectify

U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class PlateObservation:
    """One plate box of one frame, read: its best format matches (best first) and the raw OCR read."""

    plate_xyxy: tuple[float, float, float, float]
    detection_confidence: float
    read: OcrRead
    matches: tuple[FormatMatch, ...] = field(default=())
    crop_method: str = "box"

    @property
    def best(self) -> FormatMatch | None:
        return self.matches[0] if self.matches else None


@dataclass(frozen=True, slots=True)
class CropJob:
    """One crop variant of one plate box, waiting for the recogniser."""

    box: int  # index of the box in the frame's plate boxes
    method: str
    crop: U8


class PlateOcr:
    """Reads plate boxes: rectification, one batched OCR call, format correction."""

    def __init__(
        self,
        recognizer: Recognizer | None = None,
        formats: FormatBook | None = None,
        variants: Sequence[str] = ("rectified", "box"),
        top_k: int = 3,
        min_width_px: int = 24,
    ) -> None:
        self.recognizer = recognizer or create_recognizer("rapidocr")
        self.formats = formats or FormatBook.load()
        unknown = set(variants) - {"rectified", "box"}
        if unknown or not variants:
            raise ValueError(f"variants must be a non-empty subset of ('rectified', 'box'), got {variants}")
        self.variants = tuple(variants)
        self.top_k = top_k
        self.min_width_px = min_width_px

    def crops(self, image: U8, xyxy: npt.ArrayLike) -> list[tuple[str, U8]]:
        """The crop variants of one box, scaled to the recogniser's height."""
        h = self.recognizer.height
        out: list[tuple[str, U8]] = []
        for v in self.variants:
            if v == "rectified":
                r = rectify(image, xyxy, height=h)
                out.append((r.method, r.image))
            else:
                x1, y1, x2, y2 = _pad_box(xyxy, image.shape[1], image.shape[0], 0.06)
                crop = image[y1:y2, x1:x2]
                if crop.size == 0:
                    continue
                w = max(8, round(crop.shape[1] * h / max(1, crop.shape[0])))
                out.append(("box", np.asarray(cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8)))
        return out

    def crop_jobs(self, image: U8, boxes: npt.ArrayLike) -> list[CropJob]:
        """Every crop variant of every box worth reading (boxes under ``min_width_px`` are skipped).

        Split from :meth:`observe` so that a caller can put the crops of many
        frames (of many cameras) into one recogniser call.
        """
        xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
        jobs: list[CropJob] = []
        for i, box in enumerate(xyxy):
            if box[2] - box[0] < self.min_width_px:
                continue
            jobs += [CropJob(i, method, crop) for method, crop in self.crops(image, box)]
        return jobs

    def observe(
        self,
        boxes: npt.ArrayLike,
        confidences: npt.ArrayLike | None,
        jobs: Sequence[CropJob],
        reads: Sequence[OcrRead],
    ) -> list[PlateObservation]:
        """One observation per read box: the variant whose format fit scores higher wins."""
        xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
        conf = np.ones(len(xyxy), np.float32) if confidences is None else np.asarray(confidences, np.float32)
        best: dict[int, PlateObservation] = {}
        for job, read in zip(jobs, reads, strict=True):
            matches = tuple(self.formats.match(read.chars, self.top_k))
            obs = PlateObservation(
                tuple(float(v) for v in xyxy[job.box]),  # type: ignore[arg-type]
                float(conf[job.box]),
                read,
                matches,
                job.method,
            )
            cur = best.get(job.box)
            if cur is None or _rank(obs) > _rank(cur):
                best[job.box] = obs
        return [best[i] for i in sorted(best)]

    def read_boxes(
        self, image: U8, boxes: npt.ArrayLike, confidences: npt.ArrayLike | None = None
    ) -> list[PlateObservation]:
        """One observation per box of one image, read in one recogniser call."""
        jobs = self.crop_jobs(image, boxes)
        if not jobs:
            return []
        return self.observe(boxes, confidences, jobs, self.recognizer.read([j.crop for j in jobs]))


def _rank(obs: PlateObservation) -> float:
    return obs.best.log_score if obs.best is not None else -1e9
