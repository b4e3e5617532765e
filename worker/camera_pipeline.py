"""Per-camera analysis after the detector: tracking, rules, snapshot, and the events they make.

Each (camera, model) pair has one :class:`RuleSet`; it is only ever called
from the batch thread of its model, so it needs no lock of its own. Person
models feed a tracker and the zone rules; fire/smoke models feed the
N-of-M rules; plate models feed the plate reader (OCR and voting per pass).
What comes out is a list of :class:`Outgoing` events, each with the topic it
goes to and the snapshot bytes it points to (uploaded before it is sent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from core.config import CameraConfig, PlatesConfig, RulesConfig, TrackingConfig
from core.detections import Detections
from core.frame import Frame
from core.labels import Label
from core.snapshot import SnapshotRef
from detectors.tracking import CameraTracker
from event_bus.events import Incident, IncidentState, PlateRead, new_event_id
from event_bus.topics import INCIDENTS, PLATES
from ingest.masking import mask_image
from plate_reader.reader import PlateReader, PlateReaderConfig
from worker.rules import FireRule, IncidentChange, PersonZoneRule
from worker.snapshot import render_snapshot
from worker.zones import PixelZone, scale_zones

# The store's ``ref_for``: the reference of a snapshot, computed without I/O (the upload happens in the relay).
SnapshotRefFn = Callable[[str, UUID, datetime, bytes], SnapshotRef]


@dataclass(frozen=True)
class Outgoing:
    """An event ready for the outbox, with its topic and the snapshot it references (if new)."""

    topic: str
    event: Incident | PlateRead
    snapshot_jpeg: bytes | None


@dataclass(frozen=True)
class RuleContext:
    """What every RuleSet of a worker shares: settings, identity, and where snapshots go."""

    rules: RulesConfig
    tracking: TrackingConfig
    plates: PlatesConfig
    worker_id: str
    store_kind: str
    store_bucket: str
    snapshot_ref: SnapshotRefFn


class RuleSet:
    """Tracking and rules for one camera and one model."""

    def __init__(
        self, camera: CameraConfig, model_name: str, model_version: str, labels: set[Label], ctx: RuleContext
    ) -> None:
        self.camera = camera
        self._model = {model_name: model_version}
        self._rules_cfg = ctx.rules
        self._tracking_cfg = ctx.tracking
        self._worker_id = ctx.worker_id
        self._snapshot_ref = ctx.snapshot_ref
        self._tracks_people = Label.PERSON in labels
        self._fire_rules = [FireRule(lbl, ctx.rules) for lbl in (Label.FIRE, Label.SMOKE) if lbl in labels]
        self._plates: PlateReader | None = None
        if Label.LICENSE_PLATE in labels:
            self._plates = PlateReader(
                camera.id,
                PlateReaderConfig(
                    ocr_backend=ctx.plates.ocr_backend,
                    candidate_below=ctx.plates.candidate_below,
                    min_read_confidence=ctx.plates.min_read_confidence,
                    end_after_s=ctx.plates.end_after_s,
                    snapshot_store="s3" if ctx.store_kind == "s3" else "local",
                    snapshot_bucket=ctx.store_bucket,
                ),
                worker_id=ctx.worker_id,
                model_versions=self._model,
                clock=lambda _frame: self._last_t,
            )
        self._zones: list[PixelZone] | None = None
        self._person_rule: PersonZoneRule | None = None
        self._tracker: CameraTracker | None = None
        self._size: tuple[int, int] | None = None
        self._snapshot_refs: dict[UUID, SnapshotRef] = {}
        self._t_offset = 0.0
        self._last_t = float("-inf")

    def _stream_time(self, frame: Frame) -> float:
        """Stream seconds, kept monotonic across reconnects and file loops (pts restarts at 0 there)."""
        t = frame.pts_s + self._t_offset
        if t < self._last_t:
            self._t_offset += self._last_t - t + 1.0 / self.camera.analysis_fps
            t = frame.pts_s + self._t_offset
        self._last_t = t
        return t

    def _ensure_geometry(self, frame: Frame) -> None:
        size = (frame.width, frame.height)
        if self._size == size:
            return
        self._size = size
        self._zones = scale_zones(self.camera.zones, *size)
        if self._tracks_people:
            self._person_rule = PersonZoneRule(self._zones, self._rules_cfg)
            self._tracker = CameraTracker(self._tracking_cfg, frame_rate=self.camera.analysis_fps)

    def process(self, frame: Frame, detections: Detections) -> list[Outgoing]:
        self._ensure_geometry(frame)
        t = self._stream_time(frame)
        changes: list[IncidentChange] = []
        if self._person_rule is not None and self._tracker is not None:
            people = self._tracker.update(detections[detections.class_id == int(Label.PERSON)])
            changes += self._person_rule.update(t, frame.captured_at, people)
        for rule in self._fire_rules:
            changes += rule.update(t, frame.captured_at, detections)
        out = [self._outgoing(change, frame) for change in changes]
        if self._plates is not None:
            out += [Outgoing(PLATES, r.event, r.snapshot_jpeg) for r in self._plates.process(frame, detections)]
        return out

    def close(self, at: datetime) -> list[Outgoing]:
        """End every open incident (camera stopped, removed or moved to another worker)."""
        changes: list[IncidentChange] = []
        if self._person_rule is not None:
            changes += self._person_rule.close(at)
        for rule in self._fire_rules:
            changes += rule.close(at)
        out = [self._outgoing(c, None) for c in changes]
        if self._plates is not None:
            out += [Outgoing(PLATES, r.event, r.snapshot_jpeg) for r in self._plates.close()]
        return out

    def _outgoing(self, change: IncidentChange, frame: Frame | None) -> Outgoing:
        event_id = new_event_id()
        jpeg: bytes | None = None
        ref = self._snapshot_refs.get(change.incident_id)
        if change.state is IncidentState.START and frame is not None:
            zone = next((z for z in self._zones or [] if z.name == change.zone), None)
            image = mask_image(frame.image, [m.polygon for m in self.camera.privacy_masks])  # before it leaves
            snap = render_snapshot(image, change.boxes, change.type.value, zone.points if zone else None)
            jpeg = snap.jpeg
            ref = self._snapshot_ref(self.camera.id, event_id, change.observed_at, jpeg)
            self._snapshot_refs[change.incident_id] = ref
        if change.state is IncidentState.END:
            self._snapshot_refs.pop(change.incident_id, None)
        incident = Incident(
            event_id=event_id,
            incident_id=change.incident_id,
            type=change.type,
            state=change.state,
            camera_id=self.camera.id,
            camera_name=self.camera.name,
            location=self.camera.location,
            zone=change.zone,
            severity=change.severity,  # type: ignore[arg-type]
            started_at=change.started_at,
            observed_at=change.observed_at,
            ended_at=change.ended_at,
            track_id=change.track_id,
            boxes=change.boxes,
            confidence=min(max(change.confidence, 0.0), 1.0),
            snapshot=ref,
            model_versions=self._model,
            worker_id=self._worker_id,
            seq=change.seq,
        )
        return Outgoing(INCIDENTS, incident, jpeg)
