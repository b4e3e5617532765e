"""Feed grouping and the alert / detection split in the console: cards fold, history keeps everything."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from dispatch.app import create_app
from dispatch.bus_ingest import detection_update
from dispatch.grouping import fold
from dispatch.settings import ConsoleSettings
from dispatch.testing import FAST_HASHER, PASSWORDS, add_standard_users, make_incident
from storage.incident_rules import Action
from storage.workflow import open_workflow_store

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _grouping_settings(tmp_path: Path) -> ConsoleSettings:
    """A console on ``c.sqlite3`` (no bus) that folds a camera's alerts within a minute into one card."""
    return ConsoleSettings(
        database=str(tmp_path / "c.sqlite3"),
        consume=False,
        cookie_secure=False,  # the test client speaks plain HTTP
        storage={"kind": "local", "local_dir": tmp_path / "snaps"},
        feed_group_window_s=60.0,
    )


def test_alerts_of_one_camera_within_the_window_fold_into_one_card(tmp_path: Path) -> None:
    store = open_workflow_store(tmp_path / "c.sqlite3", hasher=FAST_HASHER)
    incs = [make_incident(camera_id="cam-1", started_at=T0 + timedelta(seconds=60 * i)) for i in range(5)]
    incs += [make_incident(camera_id="cam-1", started_at=T0 + timedelta(hours=2))]  # after a quiet gap
    incs += [make_incident(camera_id="cam-2", started_at=T0)]  # another camera
    incs += [make_incident(camera_id="cam-1", type="fire", started_at=T0 + timedelta(seconds=30))]  # another type
    records = store.ingest([detection_update(i) for i in incs])
    cards = fold(records, window_s=120.0)
    assert sorted(len(c.incident_ids) for c in cards) == [1, 1, 1, 5]
    big = next(c for c in cards if len(c.incident_ids) == 5)
    assert big.newest.incident_id == str(incs[4].incident_id) and big.incident_ids[0] == big.newest.incident_id
    assert len(fold(records, window_s=0.0)) == len(incs)
    store.close()


def test_feed_cards_show_alerts_and_history_keeps_detections(tmp_path: Path) -> None:
    store = open_workflow_store(tmp_path / "c.sqlite3", hasher=FAST_HASHER)
    add_standard_users(store)
    alerts = [make_incident(started_at=T0 + timedelta(seconds=10 * i)) for i in range(3)]
    detections = [
        make_incident(started_at=T0 + timedelta(seconds=i)).model_copy(
            update={"review": "detection", "review_reason": "aggregated"}
        )
        for i in range(4)
    ]
    episode = alerts[0].model_copy(update={"object_count": 4, "track_ids": [1, 2, 3, 4]})
    store.ingest([detection_update(i) for i in [episode, *alerts[1:], *detections]])
    settings = _grouping_settings(tmp_path)
    c = TestClient(create_app(settings, store=store))
    assert c.post("/api/session", json={"username": "dispatcher", "password": PASSWORDS["dispatcher"]}).is_success
    cards = c.get("/api/feed/cards").json()["items"]
    assert len(cards) == 1 and cards[0]["group_count"] == 3 and cards[0]["review"] == "alert"
    history = c.get("/api/incidents", params={"limit": 100}).json()["items"]
    assert len(history) == 7
    only_detections = c.get("/api/incidents", params={"review": "detection"}).json()["items"]
    assert {i["incident_id"] for i in only_detections} == {str(d.incident_id) for d in detections}
    first = c.get(f"/api/incidents/{episode.incident_id}").json()
    assert first["incident"]["object_count"] == 4
    store.close()


def test_a_database_from_before_the_review_columns_is_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    store = open_workflow_store(db, hasher=FAST_HASHER)
    store.ingest([detection_update(make_incident(started_at=T0))])
    store.close()
    with sqlite3.connect(db) as conn:  # as an older release left it
        conn.execute("ALTER TABLE wf_incidents DROP COLUMN review")
        conn.execute("ALTER TABLE wf_incidents DROP COLUMN object_count")
    store = open_workflow_store(db, hasher=FAST_HASHER)
    (old,) = store.changes_since(0, 10)
    assert old.review == "alert" and old.object_count is None
    store.close()


def test_acknowledging_a_folded_card_acts_on_every_incident_in_it_each_in_its_own_history(tmp_path: Path) -> None:
    store = open_workflow_store(tmp_path / "c.sqlite3", hasher=FAST_HASHER)
    add_standard_users(store)
    alerts = [make_incident(started_at=T0 + timedelta(seconds=10 * i)) for i in range(4)]
    store.ingest([detection_update(i) for i in alerts])
    admin = store.user("admin")
    assert admin is not None
    store.act(str(alerts[1].incident_id), Action.ACKNOWLEDGE, admin)  # a colleague got to one of them first
    settings = _grouping_settings(tmp_path)
    app = create_app(settings, store=store)

    def client(role: str) -> tuple[TestClient, dict[str, str]]:
        c = TestClient(app)
        r = c.post("/api/session", json={"username": role, "password": PASSWORDS[role]})
        assert r.is_success
        return c, {"X-CSRF-Token": r.json()["csrf_token"]}

    c, h = client("dispatcher")
    (card,) = c.get("/api/feed/cards").json()["items"]
    assert card["group_count"] == 4 and card["incident_id"] == str(alerts[3].incident_id)
    ids = card["incident_ids"]
    r = c.post("/api/feed/cards/actions", json={"action": "acknowledge", "incident_ids": ids}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {i["incident_id"] for i in body["incidents"]} == set(ids) - {str(alerts[1].incident_id)}
    assert body["skipped"] == [
        {"incident_id": str(alerts[1].incident_id), "reason": "cannot acknowledge an incident that is acknowledged"}
    ]
    for iid in ids:  # every incident is acknowledged, and its own history says by whom
        detail = c.get(f"/api/incidents/{iid}").json()
        assert detail["incident"]["status"] == "acknowledged"
        who = [(a["action"], a["actor"]) for a in detail["actions"]]
        assert who == [("acknowledge", "admin" if iid == str(alerts[1].incident_id) else "dispatcher")]

    r = c.post("/api/feed/cards/actions", json={"action": "resolve", "incident_ids": ids}, headers=h)
    assert r.status_code == 200 and len(r.json()["incidents"]) == 4 and r.json()["skipped"] == []
    assert {store.get(i).status.value for i in ids} == {"resolved"}  # type: ignore[union-attr]

    inv, hi = client("investigator")
    r = inv.post("/api/feed/cards/actions", json={"action": "false_alarm", "incident_ids": ids}, headers=hi)
    assert r.status_code in (403, 409)
    bad = c.post("/api/feed/cards/actions", json={"action": "acknowledge", "incident_ids": [ids[0], "x"]}, headers=h)
    assert bad.status_code == 404  # every id is checked before anything changes
    store.close()
