"""The one place a worker builds its events and their snapshot references.

Rules produce :class:`worker.incident_change.IncidentChange`, the plate reader
produces :class:`plate_reader.PlatePass`; both are domain results without
ids, keys or hashes. The sink stage hands them here as drafts, and
:class:`EventBuilder` renders the snapshot, asks the store for its
reference (key layout and sha256 computed once, by the store) and builds
the versioned event. An incident's snapshot is taken when it starts; its
updates and its end carry the same reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

import numpy as np
import numpy.typing as npt

from core.config import CameraConfig
from core.snapshot import SnapshotRef
from event_bus.events import Incident, IncidentState, LineCount, PlateCandidate, PlateRead, new_event_id
from event_bus.topics import INCIDENTS, LINE_COUNTS, PLATES
from ingest.masking import Polygon, mask_image
from plate_reader.reader import PlatePass
from worker.incident_change import IncidentChange
from worker.snapshot import render_plate_snapshot, render_snapshot

SnapshotRefFn = Callable[[str, UUID, datetime, bytes], SnapshotRef]
"""A store's ``ref_for``: the reference of a snapshot, computed without I/O (the relay uploads it later)."""


@dataclass(frozen=True)
class IncidentDraft:
    """An incident change of one camera, with what its snapshot needs (the frame, for a start)."""

    camera: CameraConfig
    change: IncidentChange
    model_versions: dict[str, str]
    image: npt.NDArray[np.uint8] | None = None
    zone_points: npt.NDArray[np.int32] | None = None
    review: Literal["alert", "detection"] = "alert"  # worker.alerting: a feed card, or recorded only
    review_reason: str | None = None
    object_count: int | None = None
    track_ids: list[int] | None = None


@dataclass(frozen=True)
class PlateDraft:
    """A finished vehicle pass of one camera."""

    result: PlatePass
    model_versions: dict[str, str] = field(default_factory=dict)
    masks: tuple[Polygon, ...] = ()  # the camera's privacy masks: burned in like an incident snapshot's


@dataclass(frozen=True)
class CountDraft:
    """A line-count period of one camera: already an event (no snapshot, nothing to add)."""

    event: LineCount


Draft = IncidentDraft | PlateDraft | CountDraft


@dataclass(frozen=True)
class Outgoing:
    """An event ready for the outbox, with its topic and the snapshot it references (if new)."""

    topic: str
    event: Incident | PlateRead | LineCount
    snapshot_jpeg: bytes | None


class EventBuilder:
    """Builds every event of one worker; call it from one thread (the sink), it keeps incidents' snapshot refs."""

    def __init__(self, worker_id: str, snapshot_ref: SnapshotRefFn | None) -> None:
        self._worker_id = worker_id
        self._snapshot_ref = snapshot_ref
        self._incident_refs: dict[UUID, SnapshotRef] = {}

    def build(self, draft: Draft) -> Outgoing:
        if isinstance(draft, IncidentDraft):
            return self.incident(draft)
        if isinstance(draft, CountDraft):
            return Outgoing(LINE_COUNTS, draft.event, None)
        return self.plate_read(draft)

    def _snapshot(self, camera_id: str, event_id: UUID, at: datetime, jpeg: bytes) -> SnapshotRef | None:
        return self._snapshot_ref(camera_id, event_id, at, jpeg) if self._snapshot_ref is not None else None

    def incident(self, draft: IncidentDraft) -> Outgoing:
        change, camera = draft.change, draft.camera
        event_id = new_event_id()
        jpeg: bytes | None = None
        ref = self._incident_refs.get(change.incident_id)
        if change.state is IncidentState.START and draft.image is not None and self._snapshot_ref is not None:
            image = mask_image(draft.image, [m.polygon for m in camera.privacy_masks])  # before it leaves
            jpeg = render_snapshot(image, change.boxes, change.type.value, draft.zone_points)
            ref = self._snapshot(camera.id, event_id, change.observed_at, jpeg)
            if ref is not None:
                self._incident_refs[change.incident_id] = ref
        if change.state is IncidentState.END:
            self._incident_refs.pop(change.incident_id, None)
        incident = Incident(
            event_id=event_id,
            incident_id=change.incident_id,
            type=change.type,
            state=change.state,
            camera_id=camera.id,
            camera_name=camera.name,
            location=camera.location,
            zone=change.zone,
            severity=change.severity,  # type: ignore[arg-type]
            started_at=change.started_at,
            observed_at=change.observed_at,
            ended_at=change.ended_at,
            track_id=change.track_id,
            boxes=change.boxes,
            confidence=min(max(change.confidence, 0.0), 1.0),
            snapshot=ref,
            model_versions=draft.model_versions,
            worker_id=self._worker_id,
            seq=change.seq,
            analytics=change.analytics,
            review=draft.review,
            review_reason=draft.review_reason,
            object_count=draft.object_count,
            track_ids=draft.track_ids,
        )
        return Outgoing(INCIDENTS, incident, jpeg)

    def plate_read(self, draft: PlateDraft) -> Outgoing:
        r = draft.result
        event_id = new_event_id()
        jpeg: bytes | None = None
        ref: SnapshotRef | None = None
        if r.frame is not None and self._snapshot_ref is not None:
            text = r.best.best.text if r.best.best is not None else r.best.read.text
            image = mask_image(r.frame.image, draft.masks)  # before it leaves the worker
            jpeg = render_plate_snapshot(image, r.best.plate_xyxy, text, r.vehicle_box)
            ref = self._snapshot(r.camera_id, event_id, r.observed_at, jpeg)
        event = PlateRead(
            event_id=event_id,
            camera_id=r.camera_id,
            observed_at=r.observed_at,
            first_seen_at=r.first_seen_at,
            last_seen_at=r.last_seen_at,
            plate=r.plate,
            raw_text=r.raw_text,
            format_id=r.format_id,
            country=r.country,
            confidence=r.confidence,
            is_candidate=r.is_candidate,
            candidates=[PlateCandidate(plate=c, score=s) for c, s in r.candidates],
            reads=r.reads,
            track_id=r.track_id,
            vehicle_box=list(r.vehicle_box) if r.vehicle_box else None,
            plate_box=list(r.plate_box),
            snapshot=ref,
            model_versions=draft.model_versions,
            worker_id=self._worker_id,
        )
        return Outgoing(PLATES, event, jpeg)
