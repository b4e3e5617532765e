"""Alert floods: five minutes of the busy vtest road zone, aggregated and grouped, cut the feed's cards >= 10x.

Everything is real: the vtest clip (H.264) looped as a file source and replayed as fast as the worker
can analyse it (no real-time pacing), the SSDLite person model, tracking and zone rules, Kafka, and the
console consuming ``kuzet.incidents.v1`` into its workflow store.

The road zone is set to ``review: aggregate`` (core.alerting), so each zone episode is one alert with
its people counted, and the console folds alerts of one camera within ``feed_group_window_s`` into one
card. Without those controls every person's incident would be a card of its own: that count, from the
same run, is the baseline. Every underlying per-person event must still be on Kafka and in the
console's incident history (as a detection).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.config import CameraConfig, Zone
from dispatch.app import create_app
from dispatch.settings import ConsoleSettings
from dispatch.testing import FAST_HASHER, PASSWORDS, add_standard_users
from event_bus import topics
from event_bus.events import Incident, IncidentState
from event_bus.kafka_admin import ensure_topics
from storage.workflow import open_workflow_store
from tests.integration.worker_support import read_topic, worker_config
from worker.runtime import Worker

pytestmark = [pytest.mark.services, pytest.mark.slow]

REPLAY_S = 300.0  # five minutes of stream time
FPS = 2.0  # analysed frames a second: 600 frames in all, a few minutes of CPU on a shared 2-core box
AGGREGATE = {"rules": {"person_in_zone": {"review": "aggregate"}, "loitering": {"review": "aggregate"}}}
ROAD = Zone(
    name="road", polygon=[(0.0, 0.3), (1.0, 0.3), (1.0, 1.0), (0.0, 1.0)], severity="medium", alerting=AGGREGATE
)
ARTIFACT = Path(__file__).resolve().parents[2] / "artifacts" / "alert_floods.json"


def test_busy_zone_replayed_for_five_minutes_cuts_feed_cards_tenfold(
    kafka_bootstrap: str, vtest_h264: Path, tmp_path: Path
) -> None:
    ensure_topics(kafka_bootstrap)
    cam_id = f"flood-{int(time.time() * 1000) % 10**9}"
    cam = CameraConfig(
        id=cam_id, url=str(vtest_h264), analysis_fps=FPS, detectors=["person"], zones=[ROAD], loop=True, realtime=False
    )
    cfg = worker_config(tmp_path / "worker", [cam], kafka=kafka_bootstrap, worker_id="worker-flood")
    seen: list[Incident] = []
    worker = Worker(cfg, on_incident=seen.append)
    t0 = time.monotonic()
    worker.start()
    try:
        while worker.camera_stats()[cam_id].frames_analysed < REPLAY_S * FPS:
            time.sleep(0.5)
    finally:
        worker.stop()
    wall_s = time.monotonic() - t0

    # -- what the worker made -----------------------------------------------------------------------------------
    per_person = {e.incident_id for e in seen if e.review == "detection"}
    alerts = {e.incident_id for e in seen if e.review == "alert"}
    assert per_person and alerts
    assert all(e.object_count is not None for e in seen if e.review == "alert")
    assert max(e.object_count or 0 for e in seen if e.review == "alert") >= 2, "a busy zone holds several people"

    # -- every event is on Kafka --------------------------------------------------------------------------------
    records = read_topic(kafka_bootstrap, topics.INCIDENTS, expect_at_least=len(seen), timeout_s=120.0)
    on_kafka = {json.loads(r.value)["event_id"] for r in records if r.key == cam_id}
    assert {str(e.event_id) for e in seen} <= on_kafka

    # -- the console: history keeps everything, the feed shows folded alert cards -----------------------------------
    db = tmp_path / "console.sqlite3"
    store = open_workflow_store(db, hasher=FAST_HASHER)
    add_standard_users(store)
    settings = ConsoleSettings(
        database=str(db),
        bus={"kind": "kafka", "kafka": {"bootstrap_servers": kafka_bootstrap}},
        consumer_group=f"flood-console-{cam_id}",
        cookie_secure=False,  # the test client speaks plain HTTP
        storage={"kind": "local", "local_dir": tmp_path / "worker" / "snapshots"},
        feed_group_window_s=300.0,
    )
    app = create_app(settings, store=store)
    everything = per_person | alerts
    with TestClient(app) as client:
        login = client.post("/api/session", json={"username": "dispatcher", "password": PASSWORDS["dispatcher"]})
        assert login.is_success
        history: dict[str, Any] = {}
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline and len(history) < len(everything):
            history = _history(client, cam_id)
            time.sleep(1.0)
        cards = client.get("/api/feed/cards", params={"camera": cam_id, "limit": 500}).json()["items"]
    store.close()

    assert {str(i) for i in everything} <= set(history), "every incident is in the console's history"
    reviews = Counter(h["review"] for h in history.values())
    assert reviews["detection"] == len(per_person) and reviews["alert"] == len(alerts)
    folded = sum(c["group_count"] for c in cards)
    assert folded == len(alerts), "each alert is on exactly one card"
    baseline_cards = len(per_person)  # one card per person without aggregation and grouping
    ratio = baseline_cards / len(cards)
    figures = {
        "stream_s": REPLAY_S,
        "wall_s": round(wall_s, 1),
        "incident_events": len(seen),
        "per_person_incidents": len(per_person),
        "alert_incidents": len(alerts),
        "alert_cards_without_grouping": len(alerts),  # aggregation alone: one card per zone episode
        "feed_cards": len(cards),
        "cards_cut": round(ratio, 1),
    }
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"\nalert floods: {figures}")
    assert ratio >= 10.0, figures
    starts = Counter(e.incident_id for e in seen if e.state is IncidentState.START)
    assert set(starts) == everything and set(starts.values()) == {1}


def _history(client: TestClient, camera: str) -> dict[str, Any]:
    """Every incident of ``camera`` in the console's history (alerts and detections), paged."""
    out: dict[str, Any] = {}
    before: str | None = None
    while True:
        params: dict[str, Any] = {"camera": camera, "limit": 500, "review": ["alert", "detection"]}
        if before:
            params["before"] = before
        page = client.get("/api/incidents", params=params).json()
        out.update({i["incident_id"]: i for i in page["items"]})
        before = page.get("next")
        if not before:
            return out
