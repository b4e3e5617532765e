"""``PlateReader``: frames with vehicle/plate detections in, one ``PlateRead`` per vehicle pass out.

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
   twice. Reads below ``candidate_below`` confidence are marked candidates.

It imports only ``core``, ``detectors`` and ``event_bus`` types; the snapshot
is returned as JPEG bytes for the worker to upload before it sends the event
(the event already carries the key and sha256, as incidents do).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from core.detections import Detections
from core.frame import Frame
from core.labels import VEHICLES, Label
from core.snapshot import SnapshotRef
from detectors.registry import Detector
from event_bus.events import PlateCandidate, PlateRead, new_event_id
from plate_reader.pipeline import PlateObservation, PlateOcr
from plate_reader.voting import TrackVote, VoteResult

U8 = npt.NDArray[np.uint8]


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
    snapshot_store: Literal["s3", "local"] | None = Field(default=None, description="None: no snapshot")
    snapshot_bucket: str = Field(default="kuzet-snapshots", min_length=1, max_length=63)
    snapshot_quality: int = Field(default=85, ge=30, le=100)


@dataclass(frozen=True)
class PlateReadOut:
    """A finished pass: the event and the JPEG its ``snapshot`` points to (upload it before sending)."""

    event: PlateRead
    snapshot_jpeg: bytes | None


@dataclass
class _Pass:
    key: tuple[str, int]
    first_t: float
    first_at: datetime
    last_t: float
    last_at: datetime
    vote: TrackVote = field(default_factory=TrackVote)
    emitted: bool = False
    vehicle_box: tuple[float, float, float, float] | None = None
    plate_box: tuple[float, float, float, float] | None = None
    best_frame: Frame | None = None
    best_weight: float = -1.0
    best_vehicle_box: tuple[float, float, float, float] | None = None


def _iou(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


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

    # -- public ----------------------------------------------------------------------------------------------

    def process(self, frame: Frame, detections: Detections) -> list[PlateReadOut]:
        """Read this frame's plates; returns the passes that completed (usually none)."""
        t = self._clock(frame)
        plates = self._plate_boxes(frame, detections)
        vehicles = detections[np.isin(detections.class_id, [int(v) for v in VEHICLES])]
        keys, vboxes = self._assign(plates, vehicles, t)
        observations = self.ocr.read_boxes(frame.image, plates.xyxy, plates.confidence) if len(plates) else []
        by_box = {obs.plate_xyxy: obs for obs in observations}
        out: list[PlateReadOut] = []
        for i, key in enumerate(keys):
            p = self._passes.get(key)
            if p is None:
                p = _Pass(key, t, frame.captured_at, t, frame.captured_at)
                self._passes[key] = p
            p.last_t, p.last_at = t, frame.captured_at
            x1, y1, x2, y2 = (float(v) for v in plates.xyxy[i])
            obs = by_box.get((x1, y1, x2, y2))
            if obs is None or p.emitted:
                continue
            if p.vote.add(obs, self.cfg.min_read_confidence):
                weight = p.vote.weights[-1]
                if weight > p.best_weight:
                    p.best_weight, p.best_frame, p.best_vehicle_box = weight, frame, vboxes[i]
                if self.cfg.emit_after_reads and p.vote.count >= self.cfg.emit_after_reads:
                    out += self._emit(p)
        # vehicles seen without a readable plate keep their pass alive
        if vehicles.tracker_id is not None:
            for tid in vehicles.tracker_id:
                p = self._passes.get(("v", int(tid)))
                if p is not None:
                    p.last_t, p.last_at = t, frame.captured_at
        for key, p in list(self._passes.items()):
            if t - p.last_t > self.cfg.end_after_s or t - p.first_t > self.cfg.max_pass_s:
                out += self._emit(p)
                del self._passes[key]
        self._plate_tracks = {k: v for k, v in self._plate_tracks.items() if t - v[1] <= self.cfg.end_after_s}
        return out

    def close(self) -> list[PlateReadOut]:
        """End every open pass (camera stopped or moved to another worker)."""
        out: list[PlateReadOut] = []
        for p in self._passes.values():
            out += self._emit(p)
        self._passes.clear()
        self._plate_tracks.clear()
        return out

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
    ) -> tuple[list[tuple[str, int]], list[tuple[float, float, float, float] | None]]:
        """The pass key of each plate: its vehicle's track, its own track, or an IoU track kept here."""
        keys: list[tuple[str, int]] = []
        vboxes: list[tuple[float, float, float, float] | None] = []
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
            iou = _iou(box, last)
            if iou >= best_iou:
                best_id, best_iou = tid, iou
        if best_id < 0:
            best_id = self._next_plate_id
            self._next_plate_id += 1
        self._plate_tracks[best_id] = (box.copy(), t)
        return best_id

    def _emit(self, p: _Pass) -> list[PlateReadOut]:
        if p.emitted:
            return []
        result = p.vote.result(self.cfg.top_k)
        p.emitted = True
        if result is None:
            return []
        return [self._event(p, result)]

    def _event(self, p: _Pass, r: VoteResult) -> PlateReadOut:
        event_id = new_event_id()
        frame = p.best_frame
        observed_at = frame.captured_at if frame is not None else p.last_at
        jpeg: bytes | None = None
        ref: SnapshotRef | None = None
        if frame is not None and self.cfg.snapshot_store is not None:
            jpeg = self._snapshot(frame.image, r.best, p.best_vehicle_box)
            ref = SnapshotRef(
                store=self.cfg.snapshot_store,
                bucket=self.cfg.snapshot_bucket,
                key=f"{self.camera_id}/{observed_at:%Y/%m/%d}/{event_id}.jpg",
                sha256=hashlib.sha256(jpeg).hexdigest(),
                size=len(jpeg),
            )
        event = PlateRead(
            event_id=event_id,
            camera_id=self.camera_id,
            observed_at=observed_at,
            first_seen_at=p.first_at,
            last_seen_at=p.last_at,
            plate=r.plate,
            raw_text=r.best.read.text[:64],
            format_id=r.format_id,
            country=r.country,
            confidence=round(r.confidence, 4),
            is_candidate=r.confidence < self.cfg.candidate_below,
            candidates=[PlateCandidate(plate=c, score=min(1.0, s)) for c, s in r.candidates],
            reads=r.reads,
            track_id=p.key[1] if p.key[0] in ("v", "p") else None,
            vehicle_box=list(p.best_vehicle_box) if p.best_vehicle_box else None,
            plate_box=[round(v, 1) for v in r.best.plate_xyxy],
            snapshot=ref,
            model_versions=self.model_versions,
            worker_id=self.worker_id,
        )
        return PlateReadOut(event, jpeg)

    def _snapshot(self, image: U8, obs: PlateObservation, vehicle: tuple[float, float, float, float] | None) -> bytes:
        """The frame with the plate (and its vehicle) boxed, as JPEG."""
        img = image.copy()
        if vehicle is not None:
            x1, y1, x2, y2 = (int(v) for v in vehicle)
            cv2.rectangle(img, (x1, y1), (x2, y2), (255, 160, 0), 2)
        x1, y1, x2, y2 = (int(v) for v in obs.plate_xyxy)
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 220, 255), 2)
        text = obs.best.text if obs.best is not None else obs.read.text
        cv2.putText(img, text, (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 220, 255), 2, cv2.LINE_AA)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.cfg.snapshot_quality])
        if not ok:
            raise ValueError("snapshot JPEG encoding failed")
        return buf.tobytes()
