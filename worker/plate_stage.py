"""The plate stage: plate crops of many cameras read in one recogniser call, then voted per camera.

Every :class:`plate_reader.PlateReader` of the worker lives here and is only
touched by this stage's thread. A round takes what is queued (any cameras),
prepares each frame (plate boxes, passes, crop variants), reads all crops in
one batched ``session.run`` of the recogniser, and finishes each frame in
queue order, so each camera's reads stay in order. Slow OCR only makes this
stage's queue longer; the inference stage never waits for it (see
:mod:`worker.pipeline` for the queue policies).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ingest.masking import Polygon
from plate_reader.ocr import OcrRead
from plate_reader.pipeline import PlateOcr
from plate_reader.reader import PlateJob, PlatePass, PlateReader
from worker.analysis import PlateWork, TrafficHook
from worker.events import IncidentDraft

log = logging.getLogger(__name__)

PlateRound = tuple[list[PlatePass], dict[str, str], list[IncidentDraft]]
"""Per task: the passes it finished, the model versions, and the traffic offences its frame raised."""

ReaderFactory = Callable[[str, str, dict[str, str], PlateOcr], PlateReader]
"""(camera id, model name, model versions, the shared OCR) -> the camera's plate reader."""


@dataclass(frozen=True)
class PlateTask:
    """One frame of one camera's plate model to read (``work``), or the end of that camera (``work`` None)."""

    camera_id: str
    model: str
    model_versions: dict[str, str]
    work: PlateWork | None
    masks: tuple[Polygon, ...] = ()  # the camera's privacy masks, burned into its plate-read snapshots


class PlateStage:
    """Plate readers of every camera, and one OCR call per round across them."""

    def __init__(self, make_ocr: Callable[[], PlateOcr], make_reader: ReaderFactory, max_crops: int = 64) -> None:
        self._make_ocr = make_ocr
        self._ocr: PlateOcr | None = None  # loaded with the first plate camera (an ONNX session)
        self._make_reader = make_reader
        self.max_crops = max_crops
        self._readers: dict[tuple[str, str], PlateReader] = {}
        self._traffic: dict[tuple[str, str], TrafficHook] = {}
        self.rounds = 0
        self.crops_read = 0

    @property
    def ocr(self) -> PlateOcr:
        if self._ocr is None:
            self._ocr = self._make_ocr()
        return self._ocr

    def _reader(self, task: PlateTask) -> PlateReader:
        key = (task.camera_id, task.model)
        reader = self._readers.get(key)
        if reader is None:
            reader = self._make_reader(task.camera_id, task.model, task.model_versions, self.ocr)
            self._readers[key] = reader
        return reader

    def run(self, tasks: list[PlateTask]) -> list[PlateRound]:
        """Read and vote a round of tasks; one (finished passes, model versions, offences) per task, in order."""
        jobs: list[PlateJob | None] = []
        for task in tasks:
            work = task.work
            jobs.append(None if work is None else self._reader(task).prepare(work.frame, work.detections, work.t))
        crops = [c.crop for job in jobs if job is not None for c in job.crops]
        reads: list[OcrRead] = []
        for i in range(0, len(crops), self.max_crops):  # one recogniser call per max_crops, across cameras
            reads += self.ocr.recognizer.read(crops[i : i + self.max_crops])
        if crops:
            self.rounds += 1
            self.crops_read += len(crops)
        out: list[PlateRound] = []
        at = 0
        for task, job in zip(tasks, jobs, strict=True):
            key = (task.camera_id, task.model)
            if job is None:
                closing = self._readers.pop(key, None)
                traffic = self._traffic.pop(key, None)
                ended = traffic.close(datetime.now(UTC)) if traffic is not None else []
                out.append((closing.close(), closing.model_versions, ended) if closing is not None else ([], {}, ended))
                continue
            reader = self._reader(task)
            mine = reads[at : at + len(job.crops)]
            at += len(job.crops)
            observations = self.ocr.observe(job.plates.xyxy, job.plates.confidence, job.crops, mine)
            passes = reader.finish(job, observations)
            offences: list[IncidentDraft] = []
            if task.work is not None and task.work.traffic is not None:
                self._traffic[key] = task.work.traffic
                offences = task.work.traffic.on_frame(reader, job.frame, job.t)
            out.append((passes, reader.model_versions, offences))
        return out
