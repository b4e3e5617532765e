"""Line crossing and crowding from a real worker (real models) on rendered clips.

The clips are rendered with known ground truth (tests/integration/analytics_clips.py) and read as a
file camera at full analysis rate (``realtime: false``), so every analysed frame reaches the rules
and the counts can be compared exactly. Every event is checked against its exported JSON Schema.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core.config import Zone
from event_bus import schemas, topics
from event_bus.events import Incident, IncidentState, IncidentType, LineCount, PlateRead
from event_bus.kafka_publisher import KafkaPublisher
from tests.integration.analytics_clips import LINE_X, render_people_scene
from tests.integration.worker_support import camera, read_topic, worker_config
from worker.runtime import Worker

pytestmark = [pytest.mark.services, pytest.mark.slow]


class Seen:
    """What the worker spooled, collected from its observer callbacks (called from its threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.incidents: list[Incident] = []
        self.plates: list[PlateRead] = []

    def incident(self, inc: Incident) -> None:
        with self.lock:
            self.incidents.append(inc)

    def plate(self, read: PlateRead) -> None:
        with self.lock:
            self.plates.append(read)


def run_camera(kafka: str, tmp: Path, name: str, clip: Path, **camera_kw: Any) -> Seen:
    """Run a worker on ``clip`` (a file camera, every analysed frame kept) to the end of the clip."""
    cam = camera(name, str(clip), realtime=False, **camera_kw)
    cfg = worker_config(tmp, [cam], kafka=kafka, rules={"end_after_s": 1.5, "update_every_s": 2.0, "cooldown_s": 5.0})
    seen = Seen()
    worker = Worker(cfg, publisher=KafkaPublisher(cfg.bus.kafka), on_incident=seen.incident, on_plate=seen.plate)
    worker.start()
    try:
        deadline = time.monotonic() + 600
        while worker.camera_running(name) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert worker.drain(60)
    finally:
        worker.stop(flush_timeout_s=30)
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


def test_line_crossings_per_direction_and_a_crowd_from_a_worker(kafka_bootstrap: str, tmp_path: Path) -> None:
    scene = render_people_scene(tmp_path / "people.mp4")
    analytics = {
        "lines": [{"name": "gate", "points": [(LINE_X, 0.05), (LINE_X, 0.98)], "in_side": "right", "band": 0.02}],
        "crowding": [{"zone": "square", "max_persons": 3, "for_s": 2.0}],
        "count_period_s": 5.0,
    }

    seen = run_camera(kafka_bootstrap, tmp_path, "cam-lines-1", scene.path, zones=[SQUARE], analytics=analytics)
    crossings = [i for i in seen.incidents if i.type is IncidentType.LINE_CROSSING and i.state is IncidentState.START]
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

    crowd = [i for i in seen.incidents if i.type is IncidentType.CROWDING]
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
    per_period = [LineCount.model_validate(d) for d in counted]
    total = Counter()
    for p in per_period:
        for e in p.counts:
            total[e.direction] += e.count
    assert total["in"] >= scene.crossings_in - 0 and total["out"] >= scene.crossings_out
    assert total == Counter({"in": directions["in"], "out": directions["out"]}), total
