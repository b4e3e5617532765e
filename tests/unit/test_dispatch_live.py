"""Console live view: role and audit first (fail closed), the worker's address from configuration, masks for
dispatchers; and the worker's live endpoint refusing what it does not run."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import AnyHttpUrl

from dispatch.app import create_app
from dispatch.settings import ConsoleSettings
from dispatch.testing import FAST_HASHER, add_standard_users, serve_in_thread
from storage.audit import SqliteAuditLog, verify
from storage.camera_health import CameraHealth
from storage.workflow import open_workflow_store
from tests.unit.console_login import login
from worker.live import LiveServer

BODY = b"\x00\x00\x00\x18ftypisom-live-bytes"


class _WorkerStandIn:
    """Stands in for a worker's live endpoint: records what the console asked for, answers with fixed bytes."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", 'video/mp4; codecs="avc1.42e01e"')
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def console(tmp_path: Path) -> Iterator[dict[str, Any]]:
    worker = _WorkerStandIn()
    db = tmp_path / "console.sqlite3"
    store = open_workflow_store(db, hasher=FAST_HASHER)
    add_standard_users(store)
    store.upsert_cameras([CameraHealth("cam-1", "up", "", 25.0, 5.0, None, 0, "worker-1", 1),
                          CameraHealth("cam-2", "up", "", 25.0, 5.0, None, 0, "worker-unknown", 1)])  # fmt: skip
    settings = ConsoleSettings(database=str(db), cookie_secure=False, live_workers={"worker-1": AnyHttpUrl(worker.url)})
    served = serve_in_thread(create_app(settings, store=store))
    yield {"url": served.url, "worker": worker, "db": db}
    served.stop()
    worker.httpd.shutdown()
    store.close()


def test_live_view_is_audited_masked_for_dispatchers_and_proxied_from_the_configured_worker(
    console: dict[str, Any],
) -> None:
    d = login(console["url"], "dispatcher")
    grant = d.post("/api/cameras/cam-1/live", json={"incident_id": "inc-9"})
    assert grant.status_code == 200, grant.text
    assert grant.json()["masked"] is True
    media = d.get(grant.json()["url"])
    assert media.status_code == 200 and media.content == BODY
    assert media.headers["content-type"].startswith("video/mp4")
    assert console["worker"].paths == ["/live/cam-1?masked=1"]  # dispatchers get the masks burned in
    admin = login(console["url"], "admin")
    assert admin.get(admin.post("/api/cameras/cam-1/live", json={}).json()["url"]).content == BODY
    assert console["worker"].paths[-1] == "/live/cam-1"  # investigators and admins: the camera's own packets
    assert d.get(grant.json()["url"].replace("/api/live/", "/api/live/x")).status_code == 404
    other = login(console["url"], "dispatcher2")
    assert other.get(grant.json()["url"]).status_code == 403  # bound to the session that was audited
    log = SqliteAuditLog(console["db"])
    views = [(e.actor, e.action, json.loads(e.details)) for e in log.entries() if e.action == "live_view"]
    assert ("dispatcher", "live_view", {"incident_id": "inc-9", "camera_id": "cam-1", "variant": "masked"}) in views
    assert any(a == "admin" and det["variant"] == "original" for a, _, det in views)
    assert verify(log).ok
    log.close()


def test_live_view_refused_without_a_configured_worker_or_an_audit_record(console: dict[str, Any]) -> None:
    d = login(console["url"], "dispatcher")
    assert d.post("/api/cameras/nope/live", json={}).status_code == 404  # no status record: nowhere to go
    assert d.post("/api/cameras/cam-2/live", json={}).status_code == 503  # its worker has no configured address
    assert d.post("/api/cameras/cam-1/live", json={"worker": "http://evil"}).status_code == 422  # no such input
    db = sqlite3.connect(console["db"])  # the audit table stops accepting rows (a real SQLite failure)
    db.execute("CREATE TRIGGER audit_broken BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk gone'); END")
    db.commit()
    db.close()
    r = d.post("/api/cameras/cam-1/live", json={})
    assert r.status_code == 503 and "fail closed" in r.json()["detail"]
    assert console["worker"].paths == []  # nothing was streamed


def test_worker_live_endpoint_refuses_unknown_cameras_and_bad_paths() -> None:
    server = LiveServer(lambda _camera_id: None).start()
    try:
        assert httpx.get(f"{server.url}/live/cam-1").status_code == 503
        assert httpx.get(f"{server.url}/live/..%2Fetc").status_code == 404
        assert httpx.get(f"{server.url}/metrics").status_code == 404
    finally:
        server.stop()
