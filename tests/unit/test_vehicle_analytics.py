"""A COCO model's vehicles on an overview camera (no plate view): line counts per label and a plate-less
stopped_vehicle, through the real tracker and rules (CameraAnalysis), with scripted detections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from core.analytics_config import AnalyticsConfig, NoStoppingZone, Tripwire
from core.config import CameraConfig, RulesConfig, TrackingConfig, Zone
from core.detections import Detections
from core.frame import Frame
from core.labels import Label
from event_bus.events import IncidentType
from worker.analysis import AnalysisSettings, CameraAnalysis
from worker.events import CountDraft, IncidentDraft

W, H, FPS = 768, 576, 10
T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
IMAGE = np.zeros((H, W, 3), np.uint8)


def _camera() -> CameraConfig:
    return CameraConfig(
        id="overview",
        url="file:///dev/null",
        analysis_fps=FPS,
        detectors=["vehicle"],
        zones=[Zone(name="no-stopping", polygon=[(0.6, 0.4), (0.9, 0.4), (0.9, 0.9), (0.6, 0.9)])],
        analytics=AnalyticsConfig(
            # facing down the line, its "left" is the right of the picture: driving left to right is "in"
            lines=[Tripwire(name="gate", points=[(0.4, 0.0), (0.4, 1.0)], in_side="left", labels=["car", "truck"])],
            no_stopping=[NoStoppingZone(zone="no-stopping", stopped_s=3.0)],
            count_period_s=5.0,
        ),
    )


def _boxes(xs: list[float], label: Label, y: float = 0.6, size: tuple[int, int] = (120, 80)) -> list[Detections]:
    out = []
    for x in xs:
        cx, cy = x * W, y * H
        xyxy = np.array([[cx - size[0] / 2, cy - size[1] / 2, cx + size[0] / 2, cy + size[1] / 2]], np.float32)
        out.append(Detections(xyxy=xyxy, confidence=np.array([0.8], np.float32), class_id=np.array([int(label)])))
    return out


def test_vehicle_tracks_give_line_counts_and_a_plate_less_stopped_vehicle() -> None:
    labels = {Label.PERSON, Label.CAR, Label.BUS, Label.TRUCK, Label.MOTORCYCLE}
    settings = AnalysisSettings(RulesConfig(end_after_s=1.0), TrackingConfig())
    analysis = CameraAnalysis(_camera(), "vehicle", "nanodet-coco@test", labels, settings)
    empty = [Detections.empty()] * (2 * FPS)
    script = (
        empty
        + _boxes(list(np.linspace(0.1, 0.9, 4 * FPS)), Label.CAR)  # a car drives in
        + empty
        + _boxes(list(np.linspace(0.9, 0.1, 4 * FPS)), Label.TRUCK)  # a van drives out
        + empty
        + _boxes(list(np.linspace(0.1, 0.75, 3 * FPS)) + [0.75] * (6 * FPS), Label.CAR)  # stops in the zone
        + empty
        + empty
    )
    drafts: list[IncidentDraft | CountDraft] = []
    for i, det in enumerate(script):
        frame = Frame("overview", i, T0 + timedelta(seconds=i / FPS), i / FPS, False, IMAGE)
        out = analysis.process(frame, det)
        assert out.plate is None  # no plate stage for this model
        drafts += out.incidents
    drafts += analysis.close(T0 + timedelta(seconds=len(script) / FPS))

    incidents = [d.change for d in drafts if isinstance(d, IncidentDraft)]
    crossings = [c for c in incidents if c.type is IncidentType.LINE_CROSSING and c.state.value == "start"]
    got = sorted(
        (c.analytics.line_crossing.direction, c.analytics.line_crossing.label)
        for c in crossings
        if c.analytics is not None and c.analytics.line_crossing is not None
    )
    assert got == [("in", "car"), ("in", "car"), ("out", "truck")]
    totals: dict[tuple[str, str], int] = {}
    for d in drafts:
        if isinstance(d, CountDraft):
            for e in d.event.counts:
                totals[(e.direction, e.label)] = totals.get((e.direction, e.label), 0) + e.count
    assert totals[("in", "car")] == 2 and totals[("out", "truck")] == 1 and totals[("out", "car")] == 0

    stopped = [c for c in incidents if c.type is IncidentType.STOPPED_VEHICLE]
    assert stopped[0].state.value == "start" and stopped[-1].state.value == "end"
    assert len({c.incident_id for c in stopped}) == 1  # one offence, for the car that stopped
    details = [c.analytics.traffic for c in stopped if c.analytics is not None and c.analytics.traffic is not None]
    assert details and all(t.plate is None for t in details)
