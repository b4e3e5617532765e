"""Roles, sessions, CSRF, security headers, body limits and bad input, against the real app (in-process).

The route walk enumerates ``app.routes``: a route added later without an
``Access`` declaration, or opened to the wrong roles, fails here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from dispatch.app import create_app
from dispatch.bus_ingest import camera_health, detection_update
from dispatch.security import Access
from dispatch.settings import ConsoleSettings
from dispatch.testing import FAST_HASHER, PASSWORDS, add_standard_users, make_incident
from event_bus.events import CameraStatus
from storage.accounts import Role
from storage.workflow import WorkflowStore, open_workflow_store

PUBLIC_ROUTES = {("GET", "/static/{name}"), ("GET", "/login"), ("POST", "/login"), ("GET", "/api/health"),
                 ("GET", "/api/ready"), ("POST", "/api/session")}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WorkflowStore]:
    s = open_workflow_store(tmp_path / "console.sqlite3", hasher=FAST_HASHER)
    add_standard_users(s)
    yield s
    s.close()


@pytest.fixture
def app(tmp_path: Path, store: WorkflowStore) -> Any:
    settings = ConsoleSettings(
        database=str(tmp_path / "console.sqlite3"),
        consume=False,
        storage={"kind": "local", "local_dir": tmp_path / "snapshots"},
        max_body_bytes=8 * 1024,
        login_attempts=3,
        camera_groups={"north": ["north-*"]},
        cookie_secure=False,
    )
    return create_app(settings, store=store)


def client_for(app: Any, role: str | None) -> tuple[TestClient, str]:
    """A client logged in as ``role`` (None: anonymous) and its CSRF token."""
    c = TestClient(app)
    if role is None:
        return c, ""
    r = c.post("/api/session", json={"username": role, "password": PASSWORDS[role]})
    assert r.status_code == 200, r.text
    return c, r.json()["csrf_token"]


def concrete(path: str) -> str:
    values = {"incident_id": str(uuid.uuid4()), "name": "console.css", "token": "x.y", "entry_id": str(uuid.uuid4()),
              "what": "expire", "camera_id": "cam-1"}  # fmt: skip
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], path)


def flat_routes(items: Any, prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every route the app serves, through included routers (FastAPI >= 0.16x keeps them nested)."""
    for item in items:
        if isinstance(item, APIRoute):
            yield prefix + item.path, item
        elif hasattr(item, "original_router"):  # an included APIRouter
            yield from flat_routes(item.original_router.routes, prefix + item.include_context.prefix)
        else:
            raise AssertionError(f"{item!r} is not an APIRoute: it cannot declare a role")


def routes(app: Any) -> list[tuple[str, str, Access]]:
    out = []
    for path, route in flat_routes(app.routes):
        accesses = [d.call for d in route.dependant.dependencies if isinstance(d.call, Access)]
        assert len(accesses) == 1, f"{path} must declare exactly one Access, has {accesses}"
        for method in sorted(route.methods or ()):
            out.append((method, path, accesses[0]))
    return out


def test_route_walk_every_route_declares_its_roles(app: Any) -> None:
    walked = routes(app)
    assert len(walked) >= 30
    public = {(m, p) for m, p, a in walked if a.public}
    assert public == PUBLIC_ROUTES
    # the plate search and watchlist routes are for investigators and admins only
    for method, path, access in walked:
        if "/plates" in path or "watchlist" in path:
            assert access.roles == {Role.INVESTIGATOR, Role.ADMIN}, (method, path)
        if path in EVIDENCE_ROUTES:  # evidence: every role views (dispatchers masked), investigators export
            assert access.roles == EVIDENCE_ROUTES[path], (method, path)
        elif path.startswith(("/api/incidents", "/incidents", "/feed", "/cameras", "/api/cameras", "/api/feed")):
            assert access.roles == {Role.DISPATCHER, Role.ADMIN}, (method, path)


EVIDENCE_ROUTES = {
    "/api/incidents/{incident_id}/evidence": {Role.DISPATCHER, Role.INVESTIGATOR, Role.ADMIN},
    "/api/incidents/{incident_id}/clip/play": {Role.DISPATCHER, Role.INVESTIGATOR, Role.ADMIN},
    "/api/clips/{token}": {Role.DISPATCHER, Role.INVESTIGATOR, Role.ADMIN},
    "/api/incidents/{incident_id}/bundle": {Role.INVESTIGATOR, Role.ADMIN},
    "/api/incidents/{incident_id}/hold": {Role.INVESTIGATOR, Role.ADMIN},
    "/api/cameras/{camera_id}/live": {Role.DISPATCHER, Role.INVESTIGATOR, Role.ADMIN},
    "/api/live/{token}": {Role.DISPATCHER, Role.INVESTIGATOR, Role.ADMIN},
}


def test_route_walk_anonymous_is_refused_everywhere_but_public(app: Any) -> None:
    anon, _ = client_for(app, None)
    for method, path, access in routes(app):
        if access.public:
            continue
        r = anon.request(method, concrete(path), follow_redirects=False)
        if access.page:
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), (method, path, r.status_code)
        else:
            assert r.status_code == 401, (method, path, r.status_code)


@pytest.mark.parametrize("role", ["dispatcher", "investigator", "admin"])
def test_route_walk_role_matrix(app: Any, role: str) -> None:
    c, csrf = client_for(app, role)
    for method, path, access in routes(app):
        if access.public or (method, path) == ("GET", "/api/feed"):
            continue  # the feed is a never-ending stream; it is tested in test_dispatch_feed.py
        if (method, path) in (("DELETE", "/api/session"), ("POST", "/logout")):
            continue  # logging out would end the walk; test_logout_ends_session covers them
        r = c.request(method, concrete(path), headers={"X-CSRF-Token": csrf}, json=None, follow_redirects=False)
        if Role(role) in access.roles:
            assert r.status_code not in (401, 403), (role, method, path, r.status_code, r.text[:200])
        else:
            assert r.status_code == 403, (role, method, path, r.status_code)


def test_dispatcher_gets_403_on_plate_search_page_and_api(app: Any) -> None:
    c, csrf = client_for(app, "dispatcher")
    page = c.get("/plates")
    assert page.status_code == 403 and "text/html" in page.headers["content-type"]
    api = c.post("/api/plates/search", json={"plate": "123ABC02", "reason": "case 1"}, headers={"X-CSRF-Token": csrf})
    assert api.status_code == 403
    # ... and the refusals are in the plates audit log
    audit = app.state.console.plates.stores.audit
    refused = [e for e in audit.entries() if e.outcome == "refused" and e.actor == "dispatcher"]
    assert len(refused) == 2


def test_state_changing_requests_need_csrf_token_and_same_origin(app: Any, store: WorkflowStore) -> None:
    (rec,) = store.ingest([detection_update(make_incident())])
    c, csrf = client_for(app, "dispatcher")
    url = f"/api/incidents/{rec.incident_id}/actions"
    assert c.post(url, json={"action": "acknowledge"}).status_code == 403
    assert c.post(url, json={"action": "acknowledge"}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    evil = {"X-CSRF-Token": csrf, "Origin": "http://evil.example"}
    assert c.post(url, json={"action": "acknowledge"}, headers=evil).status_code == 403
    assert store.get(rec.incident_id).status.value == "new"  # nothing happened
    ok = c.post(url, json={"action": "acknowledge"}, headers={"X-CSRF-Token": csrf, "Origin": "http://testserver"})
    assert ok.status_code == 200
    # every state-changing route refuses a session without the token
    for method, path, access in routes(app):
        if method in ("POST", "DELETE", "PUT", "PATCH") and not access.public and Role.ADMIN in access.roles:
            admin, _ = client_for(app, "admin")
            r = admin.request(method, concrete(path), json={})
            assert r.status_code == 403, (method, path, r.status_code)


def test_bearer_token_needs_no_csrf(app: Any, store: WorkflowStore) -> None:
    (rec,) = store.ingest([detection_update(make_incident())])
    token = store.create_api_token("dispatcher", "cad")
    c = TestClient(app)
    r = c.post(
        f"/api/incidents/{rec.incident_id}/actions",
        json={"action": "acknowledge"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200
    assert c.get("/api/me", headers={"Authorization": "Bearer nope"}).status_code == 401


@pytest.mark.parametrize("path", ["/login", "/api/health", "/static/console.css", "/no-such-page", "/api/incidents"])
def test_security_headers_everywhere(app: Any, path: str) -> None:
    r = TestClient(app).get(path, follow_redirects=False)
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"


def test_session_cookie_flags(app: Any) -> None:
    r = TestClient(app).post("/api/session", json={"username": "dispatcher", "password": PASSWORDS["dispatcher"]})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie


def test_login_page_flow_csrf_open_redirect_and_lockout(app: Any) -> None:
    c = TestClient(app)
    page = c.get("/login?next=//evil.example/x")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert 'value="/"' in page.text  # next was reduced to a local path
    no_cookie = TestClient(app).post(
        "/login", data={"username": "dispatcher", "password": PASSWORDS["dispatcher"], "csrf_token": token}
    )
    assert no_cookie.status_code == 403
    ok = c.post(
        "/login",
        data={"username": "dispatcher", "password": PASSWORDS["dispatcher"], "csrf_token": token, "next": "//evil"},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    c2 = TestClient(app)
    for _ in range(3):
        t = re.search(r'name="csrf_token" value="([^"]+)"', c2.get("/login").text).group(1)
        bad = c2.post("/login", data={"username": "admin", "password": "wrong-password", "csrf_token": t})
        assert bad.status_code == 401 and "Wrong user name or password" in bad.text
    t = re.search(r'name="csrf_token" value="([^"]+)"', c2.get("/login").text).group(1)
    locked = c2.post("/login", data={"username": "admin", "password": PASSWORDS["admin"], "csrf_token": t})
    assert locked.status_code == 429
    assert TestClient(app).post("/api/session", json={"username": "admin", "password": "x"}).status_code == 429


def test_logout_ends_session(app: Any) -> None:
    c, csrf = client_for(app, "dispatcher")
    assert c.get("/api/me").status_code == 200
    assert c.delete("/api/session", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert c.get("/api/me").status_code == 401


# -- bad input ----------------------------------------------------------------------------------------------------


def test_malformed_json_and_wrong_shapes(app: Any, store: WorkflowStore) -> None:
    (rec,) = store.ingest([detection_update(make_incident())])
    c, csrf = client_for(app, "dispatcher")
    h = {"X-CSRF-Token": csrf, "Content-Type": "application/json"}
    url = f"/api/incidents/{rec.incident_id}/actions"
    assert c.post(url, content=b'{"action": "ackno', headers=h).status_code == 400
    assert c.post(url, content=b"\xff\xfe garbage", headers=h).status_code in (400, 422)
    assert c.post(url, json={"action": "explode"}, headers={"X-CSRF-Token": csrf}).status_code == 422
    assert c.post(url, json={"action": "note", "extra": 1}, headers={"X-CSRF-Token": csrf}).status_code == 422
    assert c.post(url, json=["acknowledge"], headers={"X-CSRF-Token": csrf}).status_code == 422
    form = c.post(url, data={"action": "acknowledge", "csrf_token": csrf})
    assert form.status_code == 422
    assert c.post("/api/session", content=b"{", headers={"Content-Type": "application/json"}).status_code == 400
    assert c.get("/api/incidents?limit=99999").status_code == 422
    assert c.get("/api/incidents?type=nonsense").status_code == 422
    assert c.get("/api/incidents?since=yesterday").status_code == 422
    assert c.get("/api/incidents?before=abc").status_code == 400
    assert c.get("/incidents?severity=purple").status_code == 400
    assert c.get("/incidents?since=not-a-date").status_code == 400
    assert store.actions(rec.incident_id) == [] and store.get(rec.incident_id).status.value == "new"


def test_validation_errors_do_not_echo_input(app: Any, store: WorkflowStore) -> None:
    (rec,) = store.ingest([detection_update(make_incident())])
    c, csrf = client_for(app, "dispatcher")
    r = c.post(
        f"/api/incidents/{rec.incident_id}/actions",
        json={"action": "<img src=x onerror=alert(1)>"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 422 and "onerror" not in r.text


def test_malformed_login_form(app: Any) -> None:
    c = TestClient(app)
    assert c.post("/login", data={}).status_code == 422
    assert (
        c.post("/login", content=b"%%%", headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code
        == 422
    )
    big = {"username": "x" * 70, "password": "p", "csrf_token": "t"}
    assert c.post("/login", data=big).status_code == 422


def test_unknown_incident_ids(app: Any) -> None:
    c, csrf = client_for(app, "dispatcher")
    for iid in (str(uuid.uuid4()), "not-a-uuid", "../../etc/passwd", "1' OR '1'='1"):
        assert c.get(f"/api/incidents/{iid}").status_code == 404
        assert c.get(f"/api/incidents/{iid}/snapshot").status_code == 404
        r = c.post(f"/api/incidents/{iid}/actions", json={"action": "acknowledge"}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 404
        page = c.get(f"/incidents/{iid}")
        assert page.status_code == 404 and "text/html" in page.headers["content-type"]


def test_illegal_transitions_are_409_and_store_nothing(app: Any, store: WorkflowStore) -> None:
    (rec,) = store.ingest([detection_update(make_incident())])
    c, csrf = client_for(app, "dispatcher")
    url = f"/api/incidents/{rec.incident_id}/actions"
    h = {"X-CSRF-Token": csrf}
    for action in ("resolve", "false_alarm", "reopen"):
        r = c.post(url, json={"action": action}, headers=h)
        assert r.status_code == 409, (action, r.text)
    assert c.post(url, json={"action": "acknowledge"}, headers=h).status_code == 200
    assert c.post(url, json={"action": "acknowledge"}, headers=h).status_code == 409
    assert c.post(url, json={"action": "assign", "assignee": "investigator"}, headers=h).status_code == 422
    assert c.post(url, json={"action": "assign"}, headers=h).status_code == 422
    assert c.post(url, json={"action": "note", "note": "x" * 2500}, headers=h).status_code == 422
    assert c.post(url, json={"action": "note", "note": "x" * 5000}, headers=h).status_code == 422
    assert [a.action.value for a in store.actions(rec.incident_id)] == ["acknowledge"]
    stale = c.post(url, json={"action": "resolve", "expected_version": 1}, headers=h)
    assert stale.status_code == 409 and store.get(rec.incident_id).status.value == "acknowledged"


def test_oversized_bodies_are_413(app: Any, store: WorkflowStore) -> None:
    (rec,) = store.ingest([detection_update(make_incident())])
    c, csrf = client_for(app, "dispatcher")
    url = f"/api/incidents/{rec.incident_id}/actions"
    body = b'{"action": "note", "note": "' + b"a" * 20_000 + b'"}'
    h = {"X-CSRF-Token": csrf, "Content-Type": "application/json"}
    assert c.post(url, content=body, headers=h).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold on the stream too
        yield body[:4000]
        yield body[4000:]

    assert c.post(url, content=chunks(), headers=h).status_code == 413
    assert (
        c.post(
            "/login", content=b"a=" + b"b" * 20_000, headers={"Content-Type": "application/x-www-form-urlencoded"}
        ).status_code
        == 413
    )
    assert store.actions(rec.incident_id) == []


def test_script_in_note_is_rendered_as_text(app: Any, store: WorkflowStore) -> None:
    (rec,) = store.ingest([detection_update(make_incident(camera_name="<b>cam</b>"))])
    c, csrf = client_for(app, "dispatcher")
    note = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"
    r = c.post(f"/api/incidents/{rec.incident_id}/actions", json={"action": "note", "note": note},
               headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    page = c.get(f"/incidents/{rec.incident_id}").text
    assert "<script>document.title" not in page and "<img src=x" not in page and "<b>cam</b>" not in page
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in page
    assert store.actions(rec.incident_id)[0].note == note  # kept verbatim as text


def test_no_credentials_or_storage_details_in_responses(app: Any, store: WorkflowStore) -> None:
    from datetime import UTC, datetime

    from core.snapshot import SnapshotRef

    snap = SnapshotRef(store="local", bucket="kuzet-snapshots", key="cam-1/2025/01/01/secret-key.jpg",
                       sha256="0" * 64, size=10)  # fmt: skip
    store.ingest([detection_update(make_incident(snapshot=snap))])
    status = CameraStatus(camera_id="cam-1", state="down", reason="open rtsp://admin:hunter2@10.0.0.5/live failed",
                          input_fps=0, analysed_fps=0, reconnects=3, worker_id="w1", at=datetime.now(UTC))  # fmt: skip
    store.upsert_cameras([camera_health(status)])
    c, _ = client_for(app, "admin")
    for url in ("/api/incidents", "/api/cameras", "/api/status", "/cameras", "/feed", "/incidents"):
        text = c.get(url).text
        assert "hunter2" not in text and "admin:" not in text and "secret-key" not in text, url
    assert "rtsp://***@10.0.0.5" in c.get("/api/cameras").text


def test_openapi_lists_the_api_for_logged_in_users(app: Any) -> None:
    assert TestClient(app).get("/api/openapi.json").status_code == 401
    c, _ = client_for(app, "investigator")
    doc = c.get("/api/openapi.json").json()
    assert {"/api/incidents", "/api/incidents/{incident_id}/actions", "/api/plates/search", "/api/cameras",
            "/api/watchlist"} <= set(doc["paths"])  # fmt: skip
    assert not any(p.startswith(("/login", "/feed", "/static")) for p in doc["paths"])


def test_camera_groups_filter(app: Any, store: WorkflowStore) -> None:
    store.ingest(
        [detection_update(make_incident(camera_id="north-1")), detection_update(make_incident(camera_id="x-1"))]
    )
    c, _ = client_for(app, "dispatcher")
    items = c.get("/api/incidents?group=north").json()["items"]
    assert [i["camera_id"] for i in items] == ["north-1"]
    assert c.get("/api/incidents?group=unknown").json()["items"] == []
