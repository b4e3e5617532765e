"""``PlateReader``: frames with vehicle/plate detections in, one ``PlatePass`` per vehicle pass out.

The worker composes it after the batched detectors: it hands over each
analysed frame with that frame's detections (vehicles with tracker ids from
its tracker, and/or licence-plate boxes from the plate model run through the
same :class:`detectors.batcher.BatchScheduler` as every model). The reader
does the rest for one camera:

1. plate boxes: the ``LICENSE_PLATE`` detections, or (standalone use, tests,
   the benchmark) its own plate detector run on the frame;
2. which pass a plate belongs to: the tracked vehicle whose box holds the
   plate's centre, else the plate's own tracker id, else a small IoU tracker
   over plate boxes kept here (so it works with no tracker at all);
3. read every plate of the frame in one OCR batch and add each read to its
   pass's vote;
4. a pass is emitted when its track has not been seen for ``end_after_s``
   of stream time, or as soon as ``emit_after_reads`` reads agree, and never
   twice. A pass that ends next to a pass of the same plate (the tracker lost
   the plate for a frame and the rest went on under a new key) is folded into
   it rather than published a second time. Reads below ``candidate_below``
   confidence are marked candidates.

Steps 1-2 (:meth:`PlateReader.prepare`) and 4 (:meth:`PlateReader.finish`)
are separate from step 3 so that the worker can read the plates of many
cameras in one recogniser call (its plate stage); :meth:`PlateReader.process`
does all three for one frame.

What comes out is a domain result, :class:`PlatePass` (the voted plate, its
boxes and the best frame); the worker turns it into a ``PlateRead`` event
and renders and stores its snapshot, in the one place that builds events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from core.boxes import iou
from core.detections import Detections
from core.frame import Frame
from core.labels import VEHICLES, Label
from detectors.registry import Detector
from plate_reader.pipeline import CropJob, PlateObservation, PlateOcr
from plate_reader.voting import TrackVote, VoteResult


class PlateReaderConfig(BaseModel):
    """How plates are read and voted; the defaults suit 2-10 analysed frames a second."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ocr_backend: Literal["rapidocr", "easyocr"] = "rapidocr"
    candidate_below: float = Field(default=0.6, ge=0.0, le=1.0, description="reads under this are candidates")
    min_read_confidence: float = Field(default=0.3, ge=0.0, le=1.0, description="frame reads under this are ignored")
    end_after_s: float = Field(default=1.5, gt=0.0, le=60.0, description="a pass ends when unseen this long")
    emit_after_reads: int = Field(default=0, ge=0, le=1000, description="emit early after N reads (0: at the end)")
    max_pass_s: float = Field(default=120.0, gt=0.0, le=3600.0, description="a parked car is emitted after this")
    top_k: int = Field(default=3, ge=1, le=16)
    min_plate_width_px: int = Field(default=24, ge=4, le=1000)
    plate_score_threshold: float = Field(default=0.25, ge=0.0, le=1.0)
    iou_match: float = Field(default=0.2, gt=0.0, le=1.0, description="IoU joining untracked plate boxes")


Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PlatePass:
    """One vehicle pass, voted into one read: what the reader found, before it becomes an event."""

    camera_id: str
    plate: str
    raw_text: str
    format_id: str
    country: str
    confidence: float
    is_candidate: bool
    candidates: tuple[tuple[str, float], ...]
    reads: int
    track_id: int | None
    first_seen_at: datetime
    last_seen_at: datetime
    observed_at: datetime
    vehicle_box: Box | None
    plate_box: Box
    best: PlateObservation
    frame: Frame | None
    """The frame of the best read (for the snapshot), None when no read carried a frame."""


@dataclass(frozen=True)
class PlateJob:
    """One frame's plates, assigned to passes, with the crops the recogniser has to read."""

    frame: Frame
    t: float
    plates: Detections
    keys: list[tuple[str, int]]
    vboxes: list[Box | None]
    vehicle_tracks: list[int]
    crops: list[CropJob]


@dataclass
class _Pass:
    key: tuple[str, int]
    first_t: float
    first_at: datetime
    last_t: float
    last_at: datetime
    vote: TrackVote = field(default_factory=TrackVote)
    emitted: bool = False
    best_frame: Frame | None = None
    best_weight: float = -1.0
    best_vehicle_box: Box | None = None

    def absorb(self, fragment: _Pass) -> None:
        """Take over the reads and the time span of a fragment of this pass (see ``PlateReader._end``)."""
        if fragment.first_t < self.first_t:
            self.first_t, self.first_at = fragment.first_t, fragment.first_at
        if fragment.last_t > self.last_t:
            self.last_t, self.last_at = fragment.last_t, fragment.last_at
        self.vote.observations[:0] = fragment.vote.observations
        self.vote.weights[:0] = fragment.vote.weights
        if fragment.best_weight > self.best_weight:
            self.best_weight, self.best_frame = fragment.best_weight, fragment.best_frame
            self.best_vehicle_box = fragment.best_vehicle_box


class PlateReader:
    """Reads plates for one camera; not thread-safe (call from the thread that handles that camera's results)."""

    def __init__(
        self,
        camera_id: str,
        config: PlateReaderConfig | None = None,
        ocr: PlateOcr | None = None,
        plate_detector: Detector | None = None,
        worker_id: str = "",
        model_versions: dict[str, str] | None = None,
        clock: Callable[[Frame], float] | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.cfg = config or PlateReaderConfig()
        if ocr is None:
            from plate_reader.ocr import create_recognizer

            ocr = PlateOcr(
                create_recognizer(self.cfg.ocr_backend), top_k=self.cfg.top_k, min_width_px=self.cfg.min_plate_width_px
            )
        self.ocr = ocr
        self.detector = plate_detector
        self.worker_id = worker_id
        self.model_versions = dict(model_versions or {})
        if plate_detector is not None:
            self.model_versions.setdefault(plate_detector.name, plate_detector.version)
        self.model_versions.setdefault("ocr", self.ocr.recognizer.name)
        self._clock = clock or (lambda f: f.pts_s)
        self._passes: dict[tuple[str, int], _Pass] = {}
        self._plate_tracks: dict[int, tuple[npt.NDArray[np.float32], float]] = {}  # own id -> (last box, last t)
        self._next_plate_id = 0
        self._recent: dict[str, float] = {}  # plate -> stream time its emitted pass was last seen
        self.fragments_merged = 0
        """Passes that were the same plate as a neighbouring pass and went into it instead of out."""
        self.frame_tracks: list[tuple[tuple[str, int], tuple[float, float, float, float], float]] = []
        """The last processed frame's plates: (pass key, plate box, detector confidence); traffic rules follow them."""

    # -- public ----------------------------------------------------------------------------------------------

    def process(self, frame: Frame, detections: Detections) -> list[PlatePass]:
        """Read this frame's plates in one recogniser call; returns the passes that completed (usually none)."""
        job = self.prepare(frame, detections)
        reads = self.ocr.recognizer.read([c.crop for c in job.crops]) if job.crops else []
        return self.finish(job, self.ocr.observe(job.plates.xyxy, job.plates.confidence, job.crops, reads))

    def prepare(self, frame: Frame, detections: Detections, t: float | None = None) -> PlateJob:
        """Steps 1-2: this frame's plate boxes, their passes, and the crops to read.

        ``t`` is the frame's stream time when the caller keeps one (the worker's analysis), else the clock's.
        """
        t = self._clock(frame) if t is None else t
        plates = self._plate_boxes(frame, detections)
        vehicles = detections[np.isin(detections.class_id, [int(v) for v in VEHICLES])]
        keys, vboxes = self._assign(plates, vehicles, t)
        # Tracks unseen for end_after_s are forgotten here, with the assignment, not in finish(): the plate
        # stage prepares a whole round of frames before finishing any, and a stale track (the last car's
        # final box where the next car drives through) must not take over a later frame's plate.
        self._plate_tracks = {k: v for k, v in self._plate_tracks.items() if t - v[1] <= self.cfg.end_after_s}
        crops = self.ocr.crop_jobs(frame.image, plates.xyxy) if len(plates) else []
        tracks = [int(v) for v in vehicles.tracker_id] if vehicles.tracker_id is not None else []
        return PlateJob(frame, t, plates, keys, vboxes, tracks, crops)

    def finish(self, job: PlateJob, observations: list[PlateObservation]) -> list[PlatePass]:
        """Step 4: add the frame's reads to their passes' votes; returns the passes that completed."""
        frame, t = job.frame, job.t
        self.frame_tracks = [
            (key, (float(b[0]), float(b[1]), float(b[2]), float(b[3])), float(c))
            for key, b, c in zip(job.keys, job.plates.xyxy, job.plates.confidence, strict=True)
        ]
        by_box = {obs.plate_xyxy: obs for obs in observations}
        out: list[PlatePass] = []
        for i, key in enumerate(job.keys):
            p = self._passes.get(key)
            if p is None:
                p = _Pass(key, t, frame.captured_at, t, frame.captured_at)
                self._passes[key] = p
            p.last_t, p.last_at = t, frame.captured_at
            x1, y1, x2, y2 = (float(v) for v in job.plates.xyxy[i])
            obs = by_box.get((x1, y1, x2, y2))
            if obs is None or p.emitted:
                continue
            if p.vote.add(obs, self.cfg.min_read_confidence):
                weight = p.vote.weights[-1]
                if weight > p.best_weight:
                    p.best_weight, p.best_frame, p.best_vehicle_box = weight, frame, job.vboxes[i]
                if self.cfg.emit_after_reads and p.vote.count >= self.cfg.emit_after_reads:
                    out += self._emit(p)
        # vehicles seen without a readable plate keep their pass alive
        for tid in job.vehicle_tracks:
            p = self._passes.get(("v", tid))
            if p is not None:
                p.last_t, p.last_at = t, frame.captured_at
        gone = [p for p in self._passes.values() if t - p.last_t > self.cfg.end_after_s]
        parked = [
            p
            for p in self._passes.values()
            if t - p.last_t <= self.cfg.end_after_s and t - p.first_t > self.cfg.max_pass_s
        ]
        for p in sorted(gone, key=lambda p: p.last_t):
            del self._passes[p.key]
            out += self._end(p)
        for p in parked:  # still there: reported again after the next max_pass_s, not taken for a fragment
            del self._passes[p.key]
            out += self._emit(p, remember=False)
        # a pass open now may have begun up to max_pass_s ago, next to a pass emitted end_after_s before that
        horizon = self.cfg.end_after_s + self.cfg.max_pass_s
        self._recent = {k: v for k, v in self._recent.items() if t - v <= horizon}
        return out

    def close(self) -> list[PlatePass]:
        """End every open pass (camera stopped or moved to another worker)."""
        out: list[PlatePass] = []
        for p in sorted(self._passes.values(), key=lambda p: p.last_t):
            del self._passes[p.key]
            out += self._end(p)
        self._plate_tracks.clear()
        self._recent.clear()
        return out

    def voted(self, key: tuple[str, int]) -> VoteResult | None:
        """The vote so far of an open pass (None when it has ended or has no counted read)."""
        p = self._passes.get(key)
        return p.vote.result(self.cfg.top_k) if p is not None else None

    @property
    def open_passes(self) -> int:
        return len(self._passes)

    # -- steps -----------------------------------------------------------------------------------------------

    def _plate_boxes(self, frame: Frame, detections: Detections) -> Detections:
        plates = detections[detections.class_id == int(Label.LICENSE_PLATE)]
        if len(plates) == 0 and self.detector is not None:
            found = self.detector.detect([frame.image])[0]
            plates = found[found.class_id == int(Label.LICENSE_PLATE)]
        keep = (plates.confidence >= self.cfg.plate_score_threshold) & (
            plates.xyxy[:, 2] - plates.xyxy[:, 0] >= self.cfg.min_plate_width_px
        )
        return plates[keep]

    def _assign(
        self, plates: Detections, vehicles: Detections, t: float
    ) -> tuple[list[tuple[str, int]], list[Box | None]]:
        """The pass key of each plate: its vehicle's track, its own track, or an IoU track kept here."""
        keys: list[tuple[str, int]] = []
        vboxes: list[Box | None] = []
        centres = (plates.xyxy[:, :2] + plates.xyxy[:, 2:]) / 2
        for i in range(len(plates)):
            cx, cy = centres[i]
            vehicle = None
            if vehicles.tracker_id is not None and len(vehicles):
                inside = (
                    (vehicles.xyxy[:, 0] <= cx) & (cx <= vehicles.xyxy[:, 2])
                    & (vehicles.xyxy[:, 1] <= cy) & (cy <= vehicles.xyxy[:, 3])
                    & (vehicles.tracker_id >= 0)
                )  # fmt: skip
                if inside.any():
                    idx = np.flatnonzero(inside)
                    vehicle = int(idx[np.argmin(vehicles.area[idx])])  # the innermost box holding the plate
            if vehicle is not None and vehicles.tracker_id is not None:
                keys.append(("v", int(vehicles.tracker_id[vehicle])))
                vboxes.append(tuple(float(v) for v in vehicles.xyxy[vehicle]))  # type: ignore[arg-type]
                continue
            vboxes.append(None)
            if plates.tracker_id is not None and plates.tracker_id[i] >= 0:
                keys.append(("p", int(plates.tracker_id[i])))
                continue
            keys.append(("own", self._own_track(plates.xyxy[i], t)))
        return keys, vboxes

    def _own_track(self, box: npt.NDArray[np.float32], t: float) -> int:
        best_id, best_iou = -1, self.cfg.iou_match
        for tid, (last, _) in self._plate_tracks.items():
            overlap = iou(box, last)
            if overlap >= best_iou:
                best_id, best_iou = tid, overlap
        if best_id < 0:
            best_id = self._next_plate_id
            self._next_plate_id += 1
        self._plate_tracks[best_id] = (box.copy(), t)
        return best_id

    def _end(self, p: _Pass) -> list[PlatePass]:
        """A pass ended: emit it, unless it is a fragment of a pass of the same plate (then that one has it).

        A tracker loses a moving plate now and then (a skipped frame, an ID switch, a decode glitch at
        connect) and the rest of the pass goes on under a new key; without this both halves would be
        published as two reads. A fragment is folded into an open pass whose vote so far is the same
        plate and that began within ``end_after_s`` of the fragment's last sighting, or dropped when
        such a pass was emitted within that time (it has already been reported).
        """
        result = p.vote.result(self.cfg.top_k)
        if result is None:
            return []
        if p.emitted:  # emitted early (emit_after_reads; its vote stopped there): later fragments see its end
            self._recent[result.plate] = max(self._recent.get(result.plate, p.last_t), p.last_t)
            return []
        for other in self._passes.values():
            if other.first_t - p.last_t > self.cfg.end_after_s or p.first_t - other.last_t > self.cfg.end_after_s:
                continue
            voted = other.vote.result(self.cfg.top_k)
            if voted is not None and voted.plate == result.plate:
                other.absorb(p)
                self.fragments_merged += 1
                return []
        seen = self._recent.get(result.plate)
        if seen is not None and p.first_t - seen <= self.cfg.end_after_s:
            self.fragments_merged += 1
            self._recent[result.plate] = max(seen, p.last_t)
            return []
        return self._emit(p, result)

    def _emit(self, p: _Pass, result: VoteResult | None = None, remember: bool = True) -> list[PlatePass]:
        if p.emitted:
            return []
        result = result or p.vote.result(self.cfg.top_k)
        p.emitted = True
        if result is None:
            return []
        if remember:
            self._recent[result.plate] = p.last_t
        return [self._result(p, result)]

    def _result(self, p: _Pass, r: VoteResult) -> PlatePass:
        frame = p.best_frame
        return PlatePass(
            camera_id=self.camera_id,
            plate=r.plate,
            raw_text=r.best.read.text[:64],
            format_id=r.format_id,
            country=r.country,
            confidence=round(r.confidence, 4),
            is_candidate=r.confidence < self.cfg.candidate_below,
            candidates=tuple((c, min(1.0, s)) for c, s in r.candidates),
            reads=r.reads,
            track_id=p.key[1] if p.key[0] in ("v", "p") else None,
            first_seen_at=p.first_at,
            last_seen_at=p.last_at,
            observed_at=frame.captured_at if frame is not None else p.last_at,
            vehicle_box=p.best_vehicle_box,
            plate_box=tuple(round(v, 1) for v in r.best.plate_xyxy),  # type: ignore[arg-type]
            best=r.best,
            frame=frame,
        )
