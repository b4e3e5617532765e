"""Console evidence routes over real sockets: masked clips for dispatchers, audited views, bundles, holds.

A real clip (cut from the vtest H.264 file without re-encoding) sits in the
local object store with its chain-of-custody manifest; the incident's events
arrive over the embedded bus like a worker's would.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from core.clip import ClipRef, ClipStatus
from dispatch.app import create_app
from dispatch.settings import ConsoleSettings
from dispatch.testing import FAST_HASHER, add_standard_users, make_incident, serve_in_thread
from event_bus import topics
from event_bus.interfaces import OutRecord
from event_bus.local_bus import LocalBusPublisher
from event_bus.spool import SpooledRecord
from storage.audit import SqliteAuditLog, verify
from storage.evidence_verify import verify_bundle
from storage.local_store import LocalSnapshotStore
from storage.manifests import evidence_upload_hook
from storage.workflow import open_workflow_store
from tests.unit.console_login import login

MASK = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]  # top-left quarter


def cut_clip(src: Path, seconds: float) -> bytes:
    """The first seconds of an H.264 file, remuxed (no re-encode) to a faststart MP4."""
    out = io.BytesIO()
    with av.open(str(src)) as c, av.open(out, "w", format="mp4") as dst:
        vs = c.streams.video[0]
        o = dst.add_stream_from_template(vs)
        for p in c.demux(vs):
            if p.dts is None or float(p.dts * vs.time_base) >= seconds:
                continue
            p.stream = o
            dst.mux(p)
    return out.getvalue()


@pytest.fixture
def console(tmp_path: Path, vtest_h264: Path) -> Iterator[dict[str, Any]]:
    objects = LocalSnapshotStore(tmp_path / "objects")
    clip = cut_clip(vtest_h264, 3.0)
    start = make_incident(camera_id="cam-1", started_at=datetime.now(UTC) - timedelta(seconds=30))
    key = f"cam-1/{start.started_at:%Y/%m/%d}/{start.incident_id}.mp4"
    ref = ClipRef(store="local", bucket=objects.bucket, key=key, sha256=hashlib.sha256(clip).hexdigest(),
                  size=len(clip), started_at=start.started_at, ended_at=start.started_at + timedelta(seconds=3),
                  duration_s=3.0, status=ClipStatus.COMPLETE, manifest_key=key + ".manifest.json",
                  masks=[MASK])  # fmt: skip
    end = make_incident(incident_id=start.incident_id, state="end", seq=1, started_at=start.started_at)
    clip_event = end.model_copy(update={"event_id": uuid.uuid4(), "seq": 2, "clip": ref})
    hook = evidence_upload_hook(objects, lambda _c: "rtsp://***@cam-1/stream")
    rec = OutRecord(topics.INCIDENTS, "cam-1", clip_event.model_dump_json().encode())
    hook(SpooledRecord(1, rec, clip, key, 0))

    bus = tmp_path / "bus.sqlite3"
    db = tmp_path / "console.sqlite3"
    store = open_workflow_store(db, hasher=FAST_HASHER)
    add_standard_users(store)
    settings = ConsoleSettings(
        database=str(db),
        bus={"kind": "local", "local_path": bus},
        storage={"kind": "local", "local_dir": tmp_path / "objects"},
        heartbeat_s=0.5,
        cookie_secure=False,  # plain HTTP on loopback
    )
    app = create_app(settings, store=store)
    served = serve_in_thread(app)
    pub = LocalBusPublisher(bus)
    pub.publish([OutRecord(topics.INCIDENTS, "cam-1", e.model_dump_json().encode()) for e in (start, end, clip_event)])
    svc = app.state.console.extra["evidence"]
    deadline = time.monotonic() + 10
    while svc.index.clip(str(start.incident_id)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    yield {"url": served.url, "iid": str(start.incident_id), "clip": clip, "ref": ref, "db": db, "svc": svc}
    served.stop()
    pub.close()
    store.close()


def first_frame(data: bytes, tmp: Path) -> np.ndarray:
    path = tmp / f"{hashlib.sha256(data).hexdigest()[:8]}.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as c:
        frame = next(c.decode(c.streams.video[0]))
        assert frame.key_frame
        return np.asarray(frame.to_ndarray(format="bgr24"))


def test_dispatcher_gets_the_masked_clip_and_is_refused_the_original(console: dict[str, Any], tmp_path: Path) -> None:
    d = login(console["url"], "dispatcher")
    iid = console["iid"]
    info = d.get(f"/api/incidents/{iid}/evidence").json()
    assert info["masked_for_you"] and not info["may_export"] and info["clip"]["status"] == "complete"
    assert d.post(f"/api/incidents/{iid}/clip/play", json={"variant": "original"}).status_code == 403
    play = d.post(f"/api/incidents/{iid}/clip/play", json={"variant": "masked"})
    assert play.status_code == 200, play.text
    url = play.json()["url"]
    part = d.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["content-range"].startswith("bytes 0-99/")
    whole = d.get(url).content
    assert whole != console["clip"]
    masked = first_frame(whole, tmp_path)
    h, w = masked.shape[:2]
    assert masked[: h // 2 - 8, : w // 2 - 8].max() <= 16, "masked pixels must be black"
    original = first_frame(console["clip"], tmp_path)
    assert original[: h // 2 - 8, : w // 2 - 8].mean() > 40  # there was something to hide
    assert (
        abs(float(masked[h // 2 + 8 :, w // 2 + 8 :].mean()) - float(original[h // 2 + 8 :, w // 2 + 8 :].mean())) < 8
    )
    # the link is bound to the session that asked for it
    other = login(console["url"], "dispatcher2")
    assert other.get(url).status_code == 403
    assert d.post(f"/api/incidents/{iid}/bundle", json={"reason": "case 42"}).status_code == 403


def test_investigator_plays_original_and_exports_a_verifiable_bundle(console: dict[str, Any], tmp_path: Path) -> None:
    inv = login(console["url"], "investigator")
    iid = console["iid"]
    play = inv.post(f"/api/incidents/{iid}/clip/play", json={"variant": "original"}).json()
    assert inv.get(play["url"]).content == console["clip"]
    assert inv.post(f"/api/incidents/{iid}/bundle", json={"reason": ""}).status_code == 422  # a reason is required
    r = inv.post(f"/api/incidents/{iid}/bundle", json={"reason": "case 2026-17", "original": True})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    path = tmp_path / "bundle.zip"
    path.write_bytes(r.content)
    report = verify_bundle(path)
    assert report.ok, report.errors
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        assert {"events.json", "audit.json"} <= names and any(n.startswith("manifests/") for n in names)
        events = json.loads(zf.read("events.json"))
        audit = json.loads(zf.read("audit.json"))
    assert [e["seq"] for e in events] == [0, 1, 2]
    assert [a["action"] for a in audit] == ["clip_play", "evidence_bundle"]
    assert audit[-1]["reason"] == "case 2026-17" and audit[-1]["actor"] == "investigator"
    masked = inv.post(f"/api/incidents/{iid}/bundle", json={"reason": "for the press office"})
    path.write_bytes(masked.content)
    assert verify_bundle(path).ok
    with zipfile.ZipFile(path) as zf:
        assert any(n.startswith("clips/masked-") for n in zf.namelist()) and "derived.json" in zf.namelist()
    # legal hold, audited
    held = inv.post(f"/api/incidents/{iid}/hold", json={"on": True, "reason": "court order 7"})
    assert held.status_code == 200 and held.json()["hold"]["held_by"] == "investigator"
    assert console["svc"].index.hold(iid) is not None
    log = SqliteAuditLog(console["db"])
    actions = [(e.actor, e.action, e.outcome) for e in log.entries()]
    assert ("investigator", "legal_hold", "ok") in actions
    assert verify(log).ok
    log.close()


def test_views_are_audited_and_refused_when_the_audit_log_fails(console: dict[str, Any]) -> None:
    d = login(console["url"], "dispatcher")
    iid = console["iid"]
    d.post(f"/api/incidents/{iid}/clip/play", json={"variant": "original"})  # refused, audited
    assert d.post(f"/api/incidents/{iid}/clip/play", json={"variant": "masked"}).status_code == 200
    log = SqliteAuditLog(console["db"])
    rows = [(e.actor, e.role, e.action, e.outcome, json.loads(e.details)["incident_id"]) for e in log.entries()]
    assert ("dispatcher", "dispatcher", "clip_play", "refused", iid) in rows
    assert ("dispatcher", "dispatcher", "clip_play", "ok", iid) in rows
    assert verify(log).ok
    log.close()
    db = sqlite3.connect(console["db"])  # the audit table stops accepting rows (a real SQLite failure)
    db.execute("CREATE TRIGGER audit_broken BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk gone'); END")
    db.commit()
    db.close()
    r = d.post(f"/api/incidents/{iid}/clip/play", json={"variant": "masked"})
    assert r.status_code == 503 and "fail closed" in r.json()["detail"]
    inv = login(console["url"], "investigator")
    assert inv.post(f"/api/incidents/{iid}/bundle", json={"reason": "case 1"}).status_code == 503


def test_play_links_signed_by_one_replica_verify_on_another(tmp_path: Path) -> None:
    from fastapi import HTTPException

    from dispatch.evidence import evidence_service

    settings = ConsoleSettings(database=str(tmp_path / "console.sqlite3"), cookie_secure=False)
    shared = hashlib.sha256(b"the console's link_key secret").digest()
    a, b = evidence_service(settings, None, shared), evidence_service(settings, None, shared)
    other = evidence_service(settings, None, hashlib.sha256(b"another key").digest())
    assert a is not None and b is not None and other is not None
    now = time.time()
    token = a.token("dispatcher", "iid-1", "masked", now)
    assert b.check(token, "dispatcher", now) == ("iid-1", "masked")
    with pytest.raises(HTTPException):
        other.check(token, "dispatcher", now)
    assert a.key != shared, "clip links are signed with a key derived from link_key, not link_key itself"
