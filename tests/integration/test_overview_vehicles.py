"""Vehicles on an overview camera without a plate view: the COCO model (nanodet-coco) in a real worker over RTSP.

A real bus (ultralytics' sample photo, pasted whole) drives across the vtest scene
(tests/integration/analytics_clips.py render_overview_scene): the worker's tracks of the model's vehicles
give per-label line counts (incidents and kuzet.line-counts.v1) and a stopped_vehicle with no plate.
The model needs the npm tarball and a build (tests/integration/test_coco_vehicles.py's fixture does both).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.config import Zone
from event_bus import topics
from event_bus.events import IncidentState, IncidentType, LineCount
from tests.integration.analytics_clips import background_and_walkers, render_overview_scene
from tests.integration.test_analytics_worker import on_topic, run_rtsp_camera
from tests.integration.test_coco_vehicles import cache  # noqa: F401  (the fixture that builds the model)

pytestmark = [pytest.mark.services, pytest.mark.slow]

STOP_ZONE = Zone(name="no-stopping", polygon=[(0.6, 0.4), (0.9, 0.4), (0.9, 0.85), (0.6, 0.85)])
VEHICLE_MODEL = {
    "name": "vehicle",
    "manifest_id": "nanodet-coco",
    "input_size": 416,
    # lower than the adopted 0.5: a photo pasted whole onto another scene scores 0.3-0.75 as it moves
    "score_threshold": 0.25,
    "labels": {"car": "car", "bus": "bus", "truck": "truck", "motorcycle": "motorcycle"},
}


def test_vehicle_line_counts_and_a_plate_less_stopped_vehicle(
    kafka_bootstrap: str,
    rtsp_server: Any,
    tmp_path: Path,
    cache: Path,  # noqa: F811
) -> None:
    background, _ = background_and_walkers(1)
    scene = render_overview_scene(tmp_path / "overview.mp4", np.asarray(background, np.uint8))
    analytics = {
        "lines": [
            {"name": "gate", "points": [(0.45, 0.05), (0.45, 0.98)], "in_side": "right", "labels": ["bus", "truck"]}
        ],
        "no_stopping": [{"zone": "no-stopping", "stopped_s": 3.0}],
        "count_period_s": 5.0,
    }
    seen = run_rtsp_camera(
        kafka_bootstrap, rtsp_server, tmp_path, "cam-overview-1", scene.path, models=[VEHICLE_MODEL],
        detectors=["vehicle"], zones=[STOP_ZONE], analytics=analytics, analysis_fps=2.0,
    )  # fmt: skip
    incidents = seen.loop_incidents()
    why = [f"{i.type.value}/{i.state.value}@{i.started_at:%H:%M:%S} {i.analytics}" for i in seen.incidents]
    crossings = [i for i in incidents if i.type is IncidentType.LINE_CROSSING and i.state is IncidentState.START]
    directions = Counter(
        i.analytics.line_crossing.direction for i in crossings if i.analytics and i.analytics.line_crossing
    )
    assert directions == {"in": scene.crossings_in, "out": scene.crossings_out}, why

    stopped = [i for i in incidents if i.type is IncidentType.STOPPED_VEHICLE]
    assert len({i.incident_id for i in stopped}) == scene.stopped, why
    assert stopped[0].state is IncidentState.START and stopped[0].zone == "no-stopping"
    assert all(i.analytics and i.analytics.traffic and i.analytics.traffic.plate is None for i in stopped)
    assert not [i for i in incidents if i.type in (IncidentType.WRONG_WAY, IncidentType.SPEEDING)]

    docs = on_topic(kafka_bootstrap, "cam-overview-1", topics.INCIDENTS, "incident", len(seen.incidents))
    assert {str(i.event_id) for i in seen.incidents} <= {d["event_id"] for d in docs}
    counted = on_topic(kafka_bootstrap, "cam-overview-1", topics.LINE_COUNTS, "line-count", 1)
    assert seen.window is not None
    start, end = seen.window
    total: Counter[tuple[str, str]] = Counter()
    for p in (LineCount.model_validate(d) for d in counted):
        if p.period_end > start and p.period_start < end:
            for e in p.counts:
                total[(e.direction, e.label)] += e.count
    assert total[("in", "bus")] == scene.crossings_in and total[("out", "bus")] == scene.crossings_out, total
