"""Per-camera analysis after the detector: tracking, rules and zones, and what they hand on.

Each (camera, model) pair has one :class:`CameraAnalysis`; the pipeline's
analysis stage is its only caller, so it needs no lock. Person models feed a
tracker and the zone rules; a COCO model on an overview camera also tracks its
vehicles, which lines count and the traffic rules watch with no plate;
fire/smoke models feed the N-of-M rules. Out
come incident drafts (built into events by the sink, :mod:`worker.events`)
and, for plate models, the frame with its detections for the plate stage:
OCR is slow and batched across cameras, so it does not run here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from core.config import CameraConfig, RulesConfig, TrackingConfig
from core.detections import Detections
from core.frame import Frame
from core.labels import VEHICLES, Label
from detectors.tracking import CameraTracker
from event_bus.events import LineCount
from plate_reader.reader import PlateReader
from worker.alerting import AlertGate, Reviewed
from worker.analytics import AnalyticsStats, CameraAnalytics
from worker.events import CountDraft, IncidentDraft
from worker.fire_flicker import FlickerMeter
from worker.incident_change import IncidentChange
from worker.rules import FireRule, PersonZoneRule
from worker.zones import PixelZone, scale_zones


@dataclass(frozen=True)
class AnalysisSettings:
    """What every camera's analysis shares."""

    rules: RulesConfig
    tracking: TrackingConfig
    worker_id: str = "worker"
    analytics: AnalyticsStats = field(default_factory=AnalyticsStats)


@dataclass(frozen=True)
class PlateWork:
    """A frame of a plate model with its detections and stream time, for the plate stage."""

    frame: Frame
    detections: Detections
    t: float
    traffic: TrafficHook | None = None
    """The camera's traffic rules, run by the plate stage on the reader's passes after each frame."""


@dataclass
class AnalysisOut:
    incidents: list[IncidentDraft | CountDraft] = field(default_factory=list)
    plate: PlateWork | None = None


@dataclass
class TrafficHook:
    """Traffic offences of one camera on its plate reader's passes; only the plate stage's thread calls it."""

    analytics: CameraAnalytics
    draft: Callable[[IncidentChange, Frame | None], IncidentDraft]

    def on_frame(self, reader: PlateReader, frame: Frame, t: float) -> list[IncidentDraft]:
        return [self.draft(c, frame) for c in self.analytics.on_plates(t, frame.captured_at, reader)]

    def close(self, at: datetime) -> list[IncidentDraft]:
        changes, _ = self.analytics.close_traffic(at)
        return [self.draft(c, None) for c in changes]


class CameraAnalysis:
    """Tracking, zone and fire rules for one camera and one model; plate frames are passed on."""

    def __init__(
        self,
        camera: CameraConfig,
        model_name: str,
        model_version: str,
        labels: set[Label],
        settings: AnalysisSettings,
        alerts: AlertGate | None = None,
    ) -> None:
        self.camera = camera
        self._alerts = alerts  # alert / detection review: schedule, cool-down, aggregation, budget
        self.model_versions = {model_name: model_version}
        self._settings = settings
        self._analytics: CameraAnalytics | None = None
        self._traffic: TrafficHook | None = None
        self._rules_cfg = settings.rules
        self._tracking_cfg = settings.tracking
        self._tracks_people = Label.PERSON in labels
        self._tracked_ids = sorted(int(lbl) for lbl in labels & (VEHICLES | {Label.PERSON}))
        self._fire_rules = [FireRule(lbl, settings.rules) for lbl in (Label.FIRE, Label.SMOKE) if lbl in labels]
        self._flicker = FlickerMeter() if self._fire_rules else None
        self.reads_plates = Label.LICENSE_PLATE in labels
        # vehicles a plate model finds are the plate stage's; any other model's are tracked here
        self._tracks_vehicles = bool(labels & VEHICLES) and not self.reads_plates
        self._zones: list[PixelZone] | None = None
        self._person_rule: PersonZoneRule | None = None
        self._tracker: CameraTracker | None = None
        self._size: tuple[int, int] | None = None
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
        if self._tracks_people or self._tracks_vehicles:
            self._tracker = CameraTracker(self._tracking_cfg, frame_rate=self.camera.analysis_fps)
        if self._tracks_people or self.reads_plates or self._tracks_vehicles:
            if self._analytics is not None:  # a new resolution: the old geometry's counts end
                self._analytics.close_people(frame.captured_at)
            s = self._settings
            self._analytics = CameraAnalytics(
                self.camera,
                self._zones,
                *size,
                self._rules_cfg,
                s.worker_id,
                s.analytics,
                people=self._tracks_people,
                vehicles=self._tracks_vehicles,
            )
            if self.reads_plates and self._analytics.traffic is not None:
                # traffic offences from the plate stage are alerts as they are (no zone review)
                self._traffic = TrafficHook(self._analytics, lambda c, f: self._draft(Reviewed(c), f))

    def process(self, frame: Frame, detections: Detections) -> AnalysisOut:
        self._ensure_geometry(frame)
        t = self._stream_time(frame)
        changes: list[IncidentChange] = []
        counts: list[LineCount] = []
        if self._tracker is not None:
            tracked = self._tracker.update(detections[np.isin(detections.class_id, self._tracked_ids)])
            if self._person_rule is not None:
                people = tracked[tracked.class_id == int(Label.PERSON)]
                changes += self._person_rule.update(t, frame.captured_at, people)
            if self._analytics is not None:
                more, counts = self._analytics.on_tracks(t, frame.captured_at, tracked)
                changes += more
        if self._flicker is not None:  # what the fire rule's temporal check needs from the pixels
            fire = self._flicker.annotate(frame.image, detections)
            for rule in self._fire_rules:
                changes += rule.update(t, frame.captured_at, fire)
        out = AnalysisOut([self._draft(r, frame) for r in self._review(t, frame.captured_at, changes)])
        out.incidents += [CountDraft(c) for c in counts]
        if self.reads_plates:
            out.plate = PlateWork(frame, detections, t, self._traffic)
        return out

    def close(self, at: datetime) -> list[IncidentDraft | CountDraft]:
        """End every open incident (camera stopped, removed or moved to another worker).

        Traffic offences end in the plate stage (:meth:`TrafficHook.close`), after the frames queued there.
        """
        changes: list[IncidentChange] = []
        counts: list[LineCount] = []
        if self._person_rule is not None:
            changes += self._person_rule.close(at)
        for rule in self._fire_rules:
            changes += rule.close(at)
        if self._analytics is not None:
            more, counts = self._analytics.close_people(at)
            changes += more + self._analytics.close_vehicles(at)
        reviewed = self._review(self._last_t, at, changes)
        if self._alerts is not None:
            reviewed += self._alerts.close(at)
        drafts: list[IncidentDraft | CountDraft] = [self._draft(r, None) for r in reviewed]
        return drafts + [CountDraft(c) for c in counts]

    def _review(self, t: float, at: datetime, changes: list[IncidentChange]) -> list[Reviewed]:
        if self._alerts is None:
            return [Reviewed(c) for c in changes]
        return self._alerts.apply(t, at, changes)

    def _draft(self, reviewed: Reviewed, frame: Frame | None) -> IncidentDraft:
        change = reviewed.change
        zone = next((z for z in self._zones or [] if z.name == change.zone), None)
        return IncidentDraft(
            camera=self.camera,
            change=change,
            model_versions=self.model_versions,
            image=frame.image if frame is not None else None,
            zone_points=zone.points if zone is not None else None,
            review=reviewed.review,
            review_reason=reviewed.review_reason,
            object_count=reviewed.object_count,
            track_ids=reviewed.track_ids,
        )
