"""Line crossing, crowding and traffic offences from a real worker (real models) on rendered clips over RTSP.

The clips are rendered with known ground truth (tests/integration/analytics_clips.py) and served by the
RTSP test server, which loops them at real-time pace. The worker connects during a loop's empty lead-in
(or waits for the next loop), and only what it saw of that one whole loop is counted: a time window from
the loop's first frame to its last, both on an empty picture, so a late or slow worker shifts nothing
into or out of it. Every event is checked against its exported JSON Schema.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from core.config import Zone
from event_bus import schemas, topics
from event_bus.events import Incident, IncidentState, IncidentType, LineCount, PlateRead
from event_bus.kafka_publisher import KafkaPublisher
from kuzet.demo import DEMO_CLIP
from tests.integration.analytics_clips import FPS, LEAD_IN, LINE_X, PLATE_Y, render_people_scene, render_traffic_scene
from tests.integration.worker_support import camera, read_topic, worker_config
from worker.runtime import Worker

pytestmark = [pytest.mark.services, pytest.mark.slow]


class Seen:
    """What the worker spooled, collected from its observer callbacks (called from its threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.incidents: list[Incident] = []
        self.plates: list[PlateRead] = []
        self.window: tuple[datetime, datetime] | None = None
        """Wall-clock span of the one whole loop of the clip that counts (capture times inside it)."""

    def incident(self, inc: Incident) -> None:
        with self.lock:
            self.incidents.append(inc)

    def plate(self, read: PlateRead) -> None:
        with self.lock:
            self.plates.append(read)

    def inside(self, at: datetime) -> bool:
        assert self.window is not None
        return self.window[0] <= at < self.window[1]

    def loop_incidents(self) -> list[Incident]:
        return [i for i in self.incidents if self.inside(i.started_at)]

    def loop_plates(self) -> list[PlateRead]:
        return [r for r in self.plates if self.inside(r.first_seen_at)]


def _stream(rtsp: Any, name: str) -> dict[str, Any]:
    return next(s for s in rtsp.streams() if s["name"] == name)


def run_rtsp_camera(
    kafka: str,
    rtsp: Any,
    tmp: Path,
    name: str,
    clip: Path,
    models: list[dict[str, Any]] | None = None,
    **camera_kw: Any,
) -> Seen:
    """Serve ``clip`` over RTSP, run a worker on it, and keep the events of one whole loop of the clip.

    The loop that counts is the first one whose lead-in the worker is connected for (with a key frame to
    spare): its first frame left the server ``frame / FPS`` seconds before the server reported ``frame``.
    The worker runs until a few seconds into the next loop's empty lead-in, so every pass of the loop has
    ended by then however far the worker lags.
    """
    rtsp.add_stream(name, clip)
    cam = camera(name, rtsp.url(name), **camera_kw)
    rules = {"end_after_s": 1.5, "update_every_s": 2.0, "cooldown_s": 5.0}
    cfg = worker_config(tmp, [cam], kafka=kafka, rules=rules, models=models)
    seen = Seen()
    worker = Worker(cfg, publisher=KafkaPublisher(cfg.bus.kafka), on_incident=seen.incident, on_plate=seen.plate)
    worker.start()
    try:
        deadline = time.monotonic() + 600
        while (stats := worker.camera_stats().get(name)) is None or stats.frames_analysed < 1:
            assert time.monotonic() < deadline, "the worker never analysed a frame of the stream"
            time.sleep(0.2)
        while True:  # a loop's lead-in, with at least two key frames (1 s apart) still to come before the cars
            frame = _stream(rtsp, name)["frame"]
            if 0 <= frame < LEAD_IN - 2 * FPS:
                break
            assert time.monotonic() < deadline, "never caught a loop's lead-in"
            time.sleep(0.05)
        first = datetime.now(UTC) - timedelta(seconds=frame / FPS)
        while True:  # to the server's wrap into the next loop (its clock, not ours: under load it runs late)
            previous, frame = frame, _stream(rtsp, name)["frame"]
            if frame < previous:
                break
            assert time.monotonic() < deadline, "the loop never ended"
            time.sleep(0.05)
        seen.window = (first, datetime.now(UTC) - timedelta(seconds=frame / FPS))
        time.sleep(3.0)  # into the next loop's empty lead-in: the last passes end (1.5 s unseen) meanwhile
        worker.drain(30)
    finally:
        worker.stop(flush_timeout_s=30)
        rtsp.remove_stream(name)
    return seen


def on_topic(kafka: str, camera_id: str, topic: str, kind: str, at_least: int) -> list[dict[str, Any]]:
    """The camera's records on ``topic``, each validated against the exported JSON Schema of ``kind``."""
    docs = []
    for rec in read_topic(kafka, topic, expect_at_least=at_least):
        if rec.key != camera_id:
            continue
        doc = json.loads(rec.value)
        schemas.validate(kind, doc)
        docs.append(doc)
    return docs


SQUARE = Zone(name="square", polygon=[(0.5, 0.6), (1.0, 0.6), (1.0, 1.0), (0.5, 1.0)])


def test_line_crossings_per_direction_and_a_crowd_from_a_worker(
    kafka_bootstrap: str, rtsp_server: Any, tmp_path: Path
) -> None:
    scene = render_people_scene(tmp_path / "people.mp4")
    analytics = {
        "lines": [{"name": "gate", "points": [(LINE_X, 0.05), (LINE_X, 0.98)], "in_side": "right", "band": 0.02}],
        "crowding": [{"zone": "square", "max_persons": 3, "for_s": 2.0}],
        "count_period_s": 5.0,
    }

    seen = run_rtsp_camera(
        kafka_bootstrap, rtsp_server, tmp_path, "cam-lines-1", scene.path, zones=[SQUARE], analytics=analytics
    )
    incidents = seen.loop_incidents()
    crossings = [i for i in incidents if i.type is IncidentType.LINE_CROSSING and i.state is IncidentState.START]
    directions = Counter(
        i.analytics.line_crossing.direction for i in crossings if i.analytics and i.analytics.line_crossing
    )
    assert directions == {"in": scene.crossings_in, "out": scene.crossings_out}, [
        (i.track_id, i.analytics) for i in crossings
    ]
    assert all(i.track_id is not None for i in crossings)
    assert len({i.track_id for i in crossings}) == len(crossings), "one walker counted twice"
    counts = sorted(i.analytics.line_crossing.count for i in crossings if i.analytics and i.analytics.line_crossing)
    assert counts[0] == 1

    crowd = [i for i in incidents if i.type is IncidentType.CROWDING]
    assert crowd[0].state is IncidentState.START and crowd[-1].state is IncidentState.END
    assert len({c.incident_id for c in crowd}) == 1, "one crowd, one incident"
    details = crowd[-1].analytics.crowd  # type: ignore[union-attr]
    assert details is not None and details.limit == 3
    assert details.peak == scene.crowd_size, f"peak {details.peak}, {scene.crowd_size} people stood there"

    docs = on_topic(kafka_bootstrap, "cam-lines-1", topics.INCIDENTS, "incident", len(seen.incidents))
    ids = {d["event_id"] for d in docs}
    assert {str(i.event_id) for i in seen.incidents} <= ids
    counted = on_topic(kafka_bootstrap, "cam-lines-1", topics.LINE_COUNTS, "line-count", 1)
    assert counted, "no line-count event"
    assert seen.window is not None
    start, end = seen.window
    per_period = [LineCount.model_validate(d) for d in counted]
    total: Counter[str] = Counter()
    for p in per_period:
        if p.period_end > start and p.period_start < end:  # periods of the loop (its edges are empty road)
            for e in p.counts:
                total[e.direction] += e.count
    assert total == Counter({"in": scene.crossings_in, "out": scene.crossings_out}), total


def _road() -> np.ndarray:
    with av.open(str(DEMO_CLIP)) as container:
        frame = next(container.decode(video=0))
        return np.asarray(frame.to_ndarray(format="bgr24"), np.uint8)


STOP_ZONE = Zone(name="no-stopping", polygon=[(0.6, 0.4), (0.9, 0.4), (0.9, 0.85), (0.6, 0.85)])
ROAD = Zone(name="lane-east", polygon=[(0.0, 0.4), (1.0, 0.4), (1.0, 0.85), (0.0, 0.85)])
SECTION_M = 60.0
ENTRY_X, EXIT_X = 0.3, 0.7


def test_traffic_offences_from_plate_tracks(kafka_bootstrap: str, rtsp_server: Any, tmp_path: Path) -> None:
    scene = render_traffic_scene(tmp_path / "traffic.mp4", _road())
    analytics = {
        "no_stopping": [{"zone": "no-stopping", "stopped_s": 3.0}],
        "lanes": [{"name": "east", "zone": "lane-east", "direction": (1.0, 0.0), "min_frames": 3}],
        "speed_sections": [
            {
                "name": "s1",
                "entry": [(ENTRY_X, 0.3), (ENTRY_X, 0.95)],
                "exit": [(EXIT_X, 0.3), (EXIT_X, 0.95)],
                "distance_m": SECTION_M,
                "limit_kmh": 60.0,
            },
        ],
    }
    wanted = {car.plate.text for car in scene.cars.values()}

    seen = run_rtsp_camera(
        kafka_bootstrap, rtsp_server, tmp_path, "cam-traffic-1", scene.path, detectors=["plate"],
        zones=[STOP_ZONE, ROAD], analytics=analytics, analysis_fps=2.0,
    )  # fmt: skip
    plates = seen.loop_plates()
    assert wanted <= {r.plate for r in plates}, [r.plate for r in plates]
    offences = [i for i in seen.loop_incidents() if i.state is IncidentState.START]
    by_plate: dict[str, list[Incident]] = {}
    for inc in offences:
        traffic = inc.analytics.traffic if inc.analytics else None
        assert traffic is not None and traffic.plate is not None, f"{inc.type}: no plate attached"
        assert traffic.plate_confidence is not None and traffic.plate_confidence > 0
        by_plate.setdefault(traffic.plate, []).append(inc)
    kinds = {plate: sorted(i.type.value for i in incs) for plate, incs in by_plate.items()}
    why = (kinds, [f"{i.type.value}/{i.state.value}@{i.started_at:%H:%M:%S}" for i in seen.incidents], seen.window)
    c = scene.cars
    assert kinds.get(c["FAST"].plate.text) == ["speeding"], why
    assert kinds.get(c["WRONG"].plate.text) == ["wrong_way"], why
    assert kinds.get(c["PARKED"].plate.text) == ["stopped_vehicle"], why
    for negative in ("SLOW", "WAITS"):  # under the limit; stopped outside the zone
        assert c[negative].plate.text not in kinds, why

    speeding = by_plate[c["FAST"].plate.text][0].analytics.traffic  # type: ignore[union-attr]
    assert speeding is not None and speeding.entered_at is not None and speeding.exited_at is not None
    path = c["FAST"].path
    px_per_s = (path[1] - path[0]) * 10  # the clip's 10 fps
    truth_kmh = SECTION_M / ((EXIT_X - ENTRY_X) / px_per_s) * 3.6
    print(f"section speed: measured {speeding.speed_kmh:.2f} km/h, rendered {truth_kmh:.2f} km/h")
    assert speeding.speed_kmh == pytest.approx(truth_kmh, rel=0.05), (speeding.speed_kmh, truth_kmh)
    recomputed = SECTION_M / (speeding.exited_at - speeding.entered_at).total_seconds() * 3.6
    assert recomputed == pytest.approx(speeding.speed_kmh, rel=1e-4)
    assert speeding.distance_m == SECTION_M and speeding.limit_kmh == 60.0
    parked = by_plate[c["PARKED"].plate.text][0]
    assert parked.zone == "no-stopping" and abs((parked.boxes[0][1] + parked.boxes[0][3]) / 2 / 576 - PLATE_Y) < 0.1

    docs = on_topic(kafka_bootstrap, "cam-traffic-1", topics.INCIDENTS, "incident", len(seen.incidents))
    assert {str(i.event_id) for i in seen.incidents} <= {d["event_id"] for d in docs}
