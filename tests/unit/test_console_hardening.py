"""Console hardening (issue 10 part B): login limits, tokens, cookies/HSTS, off-loop lookups, SSE re-check,
refusal and evidence audits, watchlist audit order, settings names. Each test failed before its fix.

Why one module over 400 lines: the findings share one console fixture set (store, users, settings); each
test is one finding and stays short."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from dispatch.app import create_app
from dispatch.bus_ingest import detection_update
from dispatch.settings import ConsoleSettings
from dispatch.testing import FAST_HASHER, PASSWORDS, add_standard_users, make_incident, serve_in_thread
from storage.audit import verify
from storage.plates.factory import open_stores
from storage.workflow import WorkflowStore, open_workflow_store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "console.sqlite3"


@pytest.fixture
def store(db: Path) -> Iterator[WorkflowStore]:
    s = open_workflow_store(db, hasher=FAST_HASHER)
    add_standard_users(s)
    yield s
    s.close()


def settings_for(tmp_path: Path, db: Path, **kw: Any) -> ConsoleSettings:
    base: dict[str, Any] = {
        "database": str(db),
        "consume": False,
        "storage": {"kind": "local", "local_dir": tmp_path / "snapshots"},
        "cookie_secure": False,
        "audit_anchors": {"log": False},
    }
    known = ConsoleSettings.model_fields  # (so this file also runs against the code before the fixes)
    return ConsoleSettings(**{k: v for k, v in (base | kw).items() if k in known})


def api_login(client: TestClient, role: str, password: str | None = None) -> httpx.Response:
    return client.post("/api/session", json={"username": role, "password": password or PASSWORDS[role]})


def logged_in(app: Any, role: str) -> tuple[TestClient, str]:
    c = TestClient(app)
    r = api_login(c, role)
    assert r.status_code == 200, r.text
    return c, r.json()["csrf_token"]


# -- finding 14: non-ASCII CSRF token on the login form -----------------------------------------------------------


def test_login_form_with_non_ascii_csrf_token_is_refused_not_500(tmp_path: Path, db: Path, store: Any) -> None:
    app = create_app(settings_for(tmp_path, db), store=store)
    c = TestClient(app, raise_server_exceptions=False)
    c.get("/login")
    r = c.post("/login", data={"username": "admin", "password": "x", "csrf_token": "жжж€"})
    assert r.status_code == 403


# -- finding 4: login limits --------------------------------------------------------------------------------------


class CountingHasher(PasswordHasher):
    """Cheap hashes, but reports a 100 MiB memory cost and counts how many verifies run at once."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    @property
    def memory_cost(self) -> int:  # type: ignore[override]
        return 100 * 1024

    def verify(self, hash: Any, password: Any) -> Any:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(0.05)
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.active -= 1


def test_concurrent_password_checks_are_bounded_by_the_memory_budget(tmp_path: Path, db: Path) -> None:
    hasher = CountingHasher()
    s = open_workflow_store(db, hasher=hasher)
    add_standard_users(s)
    from dispatch.login_guard import slots_for_budget

    settings = settings_for(
        tmp_path, db, login_memory_mib=256, login_address_attempts=1000, login_attempts=100, login_wait_s=120
    )
    assert slots_for_budget(256, hasher.memory_cost) == 2
    served = serve_in_thread(create_app(settings, store=s))
    try:
        codes: list[int] = []

        def one(i: int) -> None:
            with httpx.Client(base_url=served.url, timeout=60) as c:
                codes.append(c.post("/api/session", json={"username": "admin", "password": f"wrong-{i}"}).status_code)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        served.stop()
        s.close()
    assert set(codes) <= {401, 503} and 401 in codes  # 503: no slot within login_wait_s (a loaded machine)
    assert 1 <= hasher.peak <= 2, f"{hasher.peak} password checks ran at once; the budget allows 2"


def test_one_address_spraying_many_names_is_stopped_before_hashing(tmp_path: Path, db: Path, store: Any) -> None:
    app = create_app(settings_for(tmp_path, db, login_address_attempts=5, login_attempts=3), store=store)
    attacker = TestClient(app, client=("203.0.113.7", 40000))
    codes = [api_login(attacker, f"user{i}", "Summer2026!").status_code for i in range(8)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429] * 3
    # the right password from that address is refused too while it is blocked ...
    assert api_login(attacker, "admin").status_code == 429
    # ... but not from another address
    assert api_login(TestClient(app, client=("198.51.100.2", 40000)), "admin").status_code == 200


def test_failures_against_admin_from_one_address_do_not_lock_the_admin_out(
    tmp_path: Path, db: Path, store: Any
) -> None:
    app = create_app(settings_for(tmp_path, db, login_attempts=3), store=store)
    attacker = TestClient(app, client=("203.0.113.9", 40000))
    codes = [api_login(attacker, "admin", "guess-guess").status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    desk = TestClient(app, client=("10.1.2.3", 40000))
    assert api_login(desk, "admin").status_code == 200


def test_limiter_state_is_pruned() -> None:
    from dispatch.login_guard import LoginGuard, LoginRefused

    now = [1000.0]
    guard = LoginGuard(attempts=3, address_attempts=50, window_s=60, slots=1, wait_s=1, clock=lambda: now[0])

    class Nobody:
        def authenticate(self, username: str, password: str) -> None:
            return None

    for i in range(200):
        with pytest.raises(LoginRefused):
            guard.authenticate(Nobody(), f"name-{i}", "pw", f"10.0.{i // 100}.{i % 100}")
    assert guard.tracked_keys() == 400
    now[0] += 61
    with pytest.raises(LoginRefused):
        guard.authenticate(Nobody(), "late", "pw", "10.9.9.9")
    assert guard.tracked_keys() == 2


# -- finding 5: API tokens ------------------------------------------------------------------------------------------


def test_api_tokens_expire_are_listed_and_revoked(db: Path) -> None:
    now = [1_700_000_000.0]
    s = open_workflow_store(db, hasher=FAST_HASHER, clock=lambda: now[0])
    add_standard_users(s)
    token = s.create_api_token("investigator", "reports")
    assert s.token_session(token) is not None
    listed = s.api_tokens()
    assert [(t.username, t.label) for t in listed] == [("investigator", "reports")]
    assert listed[0].expires_at_ms == int(now[0] * 1000) + 90 * 86_400_000  # default 90 days
    assert token not in repr(listed)
    now[0] += 91 * 86400
    assert s.token_session(token) is None  # expired
    short = s.create_api_token("investigator", "one-day", ttl_days=1)
    assert s.revoke_api_tokens(token_id=s.api_tokens()[-1].id) == 1
    assert s.token_session(short) is None
    s.close()


def test_password_change_and_disable_revoke_tokens(db: Path) -> None:
    s = open_workflow_store(db, hasher=FAST_HASHER)
    add_standard_users(s)
    t1 = s.create_api_token("dispatcher", "cad")
    s.set_password("dispatcher", "a-new-password-1")
    assert s.token_session(t1) is None
    t2 = s.create_api_token("dispatcher", "cad")
    s.set_disabled("dispatcher", True)
    s.set_disabled("dispatcher", False)
    assert s.token_session(t2) is None  # revoked, not suspended
    s.close()


def test_tokens_cli_list_and_revoke(tmp_path: Path, db: Path, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from kuzet.commands.console import app as console_app

    monkeypatch.setenv("KUZET_CONSOLE_DB", str(db))
    runner = CliRunner()
    created = runner.invoke(console_app, ["tokens", "create", "admin", "--label", "ops", "--days", "7"])
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    listed = runner.invoke(console_app, ["tokens", "list"])
    assert listed.exit_code == 0 and "ops" in listed.output and token not in listed.output
    token_id = listed.output.split()[0]
    assert runner.invoke(console_app, ["tokens", "revoke", token_id]).exit_code == 0
    assert store.token_session(token) is None
    assert runner.invoke(console_app, ["tokens", "revoke", token_id]).exit_code == 1


# -- finding 8: cookies and HSTS -----------------------------------------------------------------------------------


def test_cookies_are_secure_by_default_with_hsts_and_plain_http_only_on_loopback(
    tmp_path: Path, db: Path, store: Any
) -> None:
    settings = ConsoleSettings(database=str(db), consume=False, host="0.0.0.0")
    assert settings.cookie_secure
    app = create_app(settings, store=store)
    c = TestClient(app, base_url="https://testserver")
    r = api_login(c, "admin")
    assert "secure" in r.headers["set-cookie"].lower()
    assert r.headers["strict-transport-security"].startswith("max-age=")
    with pytest.raises(ValidationError, match="loopback"):
        ConsoleSettings(database=str(db), host="0.0.0.0", cookie_secure=False)
    for host in ("127.0.0.1", "::1", "localhost"):
        assert not ConsoleSettings(database=str(db), host=host, cookie_secure=False).cookie_secure
    plain = create_app(settings_for(tmp_path, db), store=store)
    assert "strict-transport-security" not in TestClient(plain).get("/login").headers


# -- finding 7: no blocking lookups on the event loop ----------------------------------------------------------------


def test_session_and_refusal_lookups_run_off_the_event_loop(
    tmp_path: Path, db: Path, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_loop: list[str] = []

    def watch(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            try:
                asyncio.get_running_loop()
                on_loop.append(name)
            except RuntimeError:
                pass
            return fn(*a, **kw)

        return wrapper

    app = create_app(settings_for(tmp_path, db), store=store)
    c, _ = logged_in(app, "dispatcher")
    monkeypatch.setattr(store, "session", watch("session", store.session))
    plates = app.state.console.plates
    monkeypatch.setattr(plates, "audit_refused", watch("audit_refused", plates.audit_refused))
    assert c.get("/api/me").status_code == 200
    assert c.get("/api/watchlist").status_code == 403  # a refusal, audited
    assert on_loop == []


# -- finding 10: SSE streams end with the session ---------------------------------------------------------------------


def _sse_events(response: httpx.Response, out: list[str], done: threading.Event) -> None:
    try:
        for line in response.iter_lines():
            if line.startswith("event: "):
                out.append(line[7:])
    except httpx.HTTPError:
        pass
    finally:
        done.set()


@pytest.mark.parametrize("how", ["logout", "disable", "expire"])
def test_sse_stream_closes_after_logout_disable_or_expiry(tmp_path: Path, db: Path, how: str) -> None:
    now = [time.time()]
    s = open_workflow_store(db, hasher=FAST_HASHER, clock=lambda: now[0])
    add_standard_users(s)
    settings = settings_for(tmp_path, db, heartbeat_s=0.2, session_recheck_s=0.2, session_ttl_s=600)
    served = serve_in_thread(create_app(settings, store=s))
    try:
        with httpx.Client(base_url=served.url, timeout=30) as c:
            r = c.post("/api/session", json={"username": "dispatcher", "password": PASSWORDS["dispatcher"]})
            csrf = r.json()["csrf_token"]
            events: list[str] = []
            done = threading.Event()
            with c.stream("GET", "/api/feed?kinds=incidents", timeout=None) as resp:
                reader = threading.Thread(target=_sse_events, args=(resp, events, done), daemon=True)
                reader.start()
                time.sleep(0.5)
                assert not done.is_set() and "hello" in events
                if how == "logout":
                    assert c.delete("/api/session", headers={"X-CSRF-Token": csrf}).status_code == 200
                elif how == "disable":
                    s.set_disabled("dispatcher", True)
                else:
                    now[0] += 601
                assert done.wait(10), "the stream stayed open after the session ended"
            assert events[-1] == "end"
    finally:
        served.stop()
        s.close()


def test_every_route_checks_its_role_before_reading_the_body(tmp_path: Path, db: Path, store: Any) -> None:
    """Found by the API fuzzer: FastAPI parses a JSON body before any dependency runs, so a caller without
    the role got 400 "not valid JSON" instead of 401/403."""
    from fastapi.routing import APIRoute

    app = create_app(settings_for(tmp_path, db), store=store)

    def walk(items: Any) -> Iterator[APIRoute]:
        for item in items:
            if isinstance(item, APIRoute):
                yield item
            elif hasattr(item, "original_router"):
                yield from walk(item.original_router.routes)

    routes = list(walk(app.routes))
    assert routes and all(type(r).__name__ == "AuthFirstRoute" for r in routes), [
        r.path for r in routes if type(r).__name__ != "AuthFirstRoute"
    ]
    anonymous, (dispatcher, _) = TestClient(app), logged_in(app, "dispatcher")
    junk = {"content": b"{not json", "headers": {"Content-Type": "application/json"}}
    assert anonymous.post("/api/plates/search", **junk).status_code == 401
    assert dispatcher.post("/api/watchlist", **junk).status_code == 403


# -- finding 15: refusals by role audited everywhere, plate-service errors logged ------------------------------------


def test_every_refusal_by_role_is_audited(tmp_path: Path, db: Path, store: Any) -> None:
    app = create_app(settings_for(tmp_path, db), store=store)
    audit = app.state.console.plates.stores.audit
    inv, inv_csrf = logged_in(app, "investigator")
    disp, _ = logged_in(app, "dispatcher")
    iid = str(uuid.uuid4())
    cases = [
        (inv, "GET", "/api/incidents"),
        (inv, "GET", "/api/cameras"),
        (inv, "GET", f"/api/incidents/{iid}/snapshot"),
        (inv, "GET", "/api/status"),
        (disp, "GET", "/api/status"),
        (disp, "GET", "/api/watchlist"),
        (inv, "GET", "/feed"),
    ]
    for client, method, path in cases:
        before = sum(1 for _ in audit.entries())
        r = client.request(method, path, headers={"X-CSRF-Token": inv_csrf})
        assert r.status_code == 403, (path, r.status_code)
        new = list(audit.entries(after_seq=before))
        assert [e.outcome for e in new] == ["refused"], path
        assert path in new[0].details


def test_plate_service_start_up_errors_are_logged(
    tmp_path: Path, db: Path, store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with caplog.at_level(logging.ERROR, logger="dispatch.plates_adapter"):
        app = create_app(settings_for(tmp_path, db, plates_database=str(blocker / "plates.sqlite3")), store=store)
    assert app.state.console.plates is None
    assert any("plate history unavailable" in r.getMessage() for r in caplog.records)


# -- finding 17 and issue 9: every view of a snapshot is audited, whatever the incident's kind, failing closed -------


def test_every_snapshot_view_is_audited_for_every_incident_kind_and_refused_without_audit(
    tmp_path: Path, db: Path, store: Any
) -> None:
    from event_bus.events import IncidentType
    from storage.local_store import LocalSnapshotStore
    from storage.plates.store import PlateReadRecord

    snaps = LocalSnapshotStore(tmp_path / "snapshots")
    kinds: dict[str, str] = {}
    for member in IncidentType:
        inc = make_incident(type=member.value, camera_id=f"cam-{member.value}")
        ref = snaps.put(inc.camera_id, inc.event_id, inc.observed_at, b"\xff\xd8" + member.value.encode() + b"\xff\xd9")
        store.ingest([detection_update(inc.model_copy(update={"snapshot": ref}))])
        kinds[str(inc.incident_id)] = member.value
    plate_ref = snaps.put("cam-plate", uuid.uuid4(), datetime.now(UTC), b"\xff\xd8plate\xff\xd9")
    app = create_app(settings_for(tmp_path, db), store=store, snapshots=snaps)
    plates = app.state.console.plates
    plates.stores.history.insert([PlateReadRecord(uuid.uuid4(), datetime.now(UTC), "cam-plate", "123ABC02", 0.9,
                                                 snapshot=plate_ref)])  # fmt: skip
    audit = plates.stores.audit
    disp, _ = logged_in(app, "dispatcher")
    for iid, kind in kinds.items():
        r = disp.get(f"/api/incidents/{iid}/snapshot")
        assert r.status_code == 200 and kind.encode() in r.content, kind
    inv, csrf = logged_in(app, "investigator")
    hits = inv.post(
        "/api/plates/search", json={"plate": "123ABC02", "reason": "case 17"}, headers={"X-CSRF-Token": csrf}
    )
    assert hits.status_code == 200, hits.text
    assert inv.get(hits.json()["hits"][0]["snapshot_url"]).content == b"\xff\xd8plate\xff\xd9"

    entries = list(audit.entries())
    views = [e for e in entries if e.action == "incident_snapshot"]
    seen = {json.loads(e.details)["incident_id"]: json.loads(e.details)["type"] for e in views}
    assert seen == kinds, "one record per view, for every kind"
    assert {(e.actor, e.role, e.outcome) for e in views} == {("dispatcher", "dispatcher", "ok")}
    plate_views = [e for e in entries if e.action == "plate_snapshot"]
    assert [(e.actor, json.loads(e.details)["snapshot_key"]) for e in plate_views] == [("investigator", plate_ref.key)]
    assert verify(audit).ok

    # the audit table stops accepting rows (a real SQLite failure): no snapshot is served, of any kind
    with sqlite3.connect(db) as broken:
        broken.execute("CREATE TRIGGER audit_broken BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'gone'); END")
    for iid, kind in kinds.items():
        r = disp.get(f"/api/incidents/{iid}/snapshot")
        assert r.status_code == 503 and "fail closed" in r.json()["detail"], kind
    assert inv.get(hits.json()["hits"][0]["snapshot_url"]).status_code == 503


# -- finding 9: watchlist changes audited after the change, with outcome; reasons; export is its own action ----------


def test_watchlist_changes_are_audited_after_the_change_with_outcome(tmp_path: Path, db: Path, store: Any) -> None:
    app = create_app(settings_for(tmp_path, db), store=store)
    audit = app.state.console.plates.stores.audit
    c, csrf = logged_in(app, "investigator")
    h = {"X-CSRF-Token": csrf}
    r = c.post("/api/watchlist", json={"plate": "123ABC02", "reason": "case 41"}, headers=h)
    assert r.status_code == 200, r.text
    entry = r.json()["id"]
    # expire and remove need a reason
    assert c.post(f"/api/watchlist/{entry}/expire", headers=h).status_code == 422
    assert c.delete(f"/api/watchlist/{entry}", headers=h).status_code == 422
    assert c.post(f"/api/watchlist/{entry}/expire?reason=case%20closed", headers=h).status_code == 200
    missing = str(uuid.uuid4())
    assert c.delete(f"/api/watchlist/{missing}?reason=typo%20entry", headers=h).status_code == 404
    rows = [(e.action, e.outcome, e.reason) for e in audit.entries() if e.action.startswith("watchlist")]
    assert rows == [
        ("watchlist_add", "requested", "case 41"),
        ("watchlist_add", "ok", "case 41"),
        ("watchlist_expire", "requested", "case closed"),
        ("watchlist_expire", "ok", "case closed"),
        ("watchlist_remove", "requested", "typo entry"),
        ("watchlist_remove", "not_found", "typo entry"),
    ]


def test_csv_export_is_audited_as_its_own_action(tmp_path: Path, db: Path, store: Any) -> None:
    app = create_app(settings_for(tmp_path, db), store=store)
    audit = app.state.console.plates.stores.audit
    c, csrf = logged_in(app, "investigator")
    body = {"plate": "123ABC02", "reason": "case 7"}
    assert c.post("/api/plates/search", json=body, headers={"X-CSRF-Token": csrf}).status_code == 200
    assert c.post("/api/plates/export.csv", json=body, headers={"X-CSRF-Token": csrf}).status_code == 200
    assert [e.action for e in audit.entries()] == ["plate_search", "plate_export"]


def test_anchors_outside_the_database_catch_rewrites_and_truncation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    from storage.audit import AuditRecord, canonical_body, chain_hash
    from storage.audit_anchors import AnchoringAuditLog, DirAnchorSink, LogAnchorSink

    url = f"sqlite:///{tmp_path / 'plates.sqlite3'}"
    stores = open_stores(url)
    sink = DirAnchorSink(tmp_path / "anchors")
    log = AnchoringAuditLog(stores.audit, [sink, LogAnchorSink()], every_records=10, every_s=3600)
    from datetime import UTC, datetime

    with caplog.at_level(logging.INFO, logger="storage.audit_anchors"):
        for i in range(25):
            log.append(AuditRecord("ayan", "investigator", "plate_search", "ok", f"case {i}"), datetime.now(UTC))
    assert [a.seq for a in sink.anchors()] == [10, 20]
    assert sum("audit anchor seq=" in r.getMessage() for r in caplog.records) == 2
    log.close()
    assert [a.seq for a in sink.anchors()] == [10, 20, 25]
    anchors = [(a.seq, a.hash) for a in sink.anchors()]
    assert verify(open_stores(url).audit, anchors=anchors).ok
    # The table owner rewrites row 5 and recomputes every hash after it: the chain alone still verifies ...
    raw = sqlite3.connect(tmp_path / "plates.sqlite3")
    raw.execute("DROP TRIGGER audit_log_no_update")
    raw.execute("DROP TRIGGER audit_log_no_delete")
    rows = raw.execute("SELECT seq, at, actor, role, action, outcome, reason, details, result_count FROM audit_log "
                       "ORDER BY seq").fetchall()  # fmt: skip
    prev = "0" * 64
    for seq, at, actor, role, action, outcome, reason, details, count in rows:
        if seq == 5:
            reason = "routine check"
        body = canonical_body(seq, datetime.fromisoformat(at), actor, role, action, outcome, reason, details, count)
        h = chain_hash(prev, body)
        raw.execute("UPDATE audit_log SET reason = ?, prev_hash = ?, hash = ? WHERE seq = ?", (reason, prev, h, seq))
        prev = h
    raw.commit()
    assert verify(open_stores(url).audit).ok
    # ... but not against the anchors
    report = verify(open_stores(url).audit, anchors=anchors)
    assert not report.ok and report.first_bad_seq == 10 and "anchor" in (report.problem or "")
    raw.execute("DROP TRIGGER audit_log_no_delete")  # opening the stores put the triggers back
    raw.execute("DELETE FROM audit_log WHERE seq > 20")
    raw.commit()
    cut = verify(open_stores(url).audit, anchors=[a for a in anchors if a[0] == 25])
    assert not cut.ok and cut.first_bad_seq == 25 and "missing" in (cut.problem or "")


def test_audit_verify_command_uses_the_console_anchors(tmp_path: Path) -> None:
    import yaml

    from kuzet.commands.plates import audit_app

    plates = tmp_path / "plates.sqlite3"
    conf = tmp_path / "console.yaml"
    conf.write_text(
        yaml.safe_dump(
            {"database": str(tmp_path / "c.sqlite3"), "plates_database": f"sqlite:///{plates}",
             "audit_anchors": {"dir": str(tmp_path / "anchors"), "every_records": 2, "log": False}}
        )
    )  # fmt: skip
    from datetime import UTC, datetime

    from dispatch.plates_adapter import StoragePlateService
    from storage.audit import AuditRecord

    svc = StoragePlateService.open(ConsoleSettings(**yaml.safe_load(conf.read_text())))
    for i in range(4):
        svc.stores.audit.append(AuditRecord("a", "admin", "plate_search", "ok", f"r{i}"), datetime.now(UTC))
    svc.close()
    out = CliRunner().invoke(audit_app, ["verify", "--config", str(conf)])
    assert out.exit_code == 0, out.output
    assert "2 anchor(s) match" in out.output


# -- finding 6a: the plate CLI authenticates -----------------------------------------------------------------------


def test_plate_cli_needs_a_real_user_and_takes_the_role_from_the_record(
    tmp_path: Path, db: Path, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kuzet.commands.plates import app as plates_app

    plates = f"sqlite:///{tmp_path / 'plates.sqlite3'}"
    open_stores(plates).close()  # a search never creates its database (a mistyped --db is an error)
    monkeypatch.setenv("KUZET_CONSOLE_DB", str(db))
    monkeypatch.delenv("KUZET_API_TOKEN", raising=False)
    runner = CliRunner()
    args = ["search", "123ABC02", "--reason", "case 9", "--db", plates]
    claimed = runner.invoke(plates_app, [*args, "--user", "mallory", "--role", "admin"])
    assert claimed.exit_code == 2  # no such options any more
    anonymous = runner.invoke(plates_app, args)
    assert anonymous.exit_code == 3, anonymous.output
    bogus = runner.invoke(plates_app, [*args, "--token", "kzt_not-a-token"])
    assert bogus.exit_code == 3
    dispatcher = runner.invoke(plates_app, [*args, "--token", store.create_api_token("dispatcher", "t")])
    assert dispatcher.exit_code == 3  # role from the record: dispatchers may not search
    ok = runner.invoke(plates_app, [*args, "--token", store.create_api_token("investigator", "t")])
    assert ok.exit_code == 0, ok.output
    entries = list(open_stores(plates).audit.entries())
    assert [(e.actor, e.role, e.outcome) for e in entries] == [
        (entries[0].actor, "none", "refused"),
        ("token", "none", "refused"),
        ("dispatcher", "dispatcher", "refused"),
        ("investigator", "investigator", "ok"),
    ]


def test_plate_cli_watchlist_expire_and_remove_are_authenticated_and_audited(
    tmp_path: Path, db: Path, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kuzet.commands.plates import app as plates_app

    plates = f"sqlite:///{tmp_path / 'plates.sqlite3'}"
    open_stores(plates).close()
    monkeypatch.setenv("KUZET_CONSOLE_DB", str(db))
    monkeypatch.delenv("KUZET_API_TOKEN", raising=False)
    runner = CliRunner()
    auth = ["--token", store.create_api_token("investigator", "t"), "--db", plates]
    ids = []
    for plate in ("123ABC02", "777AAA02"):
        added = runner.invoke(plates_app, ["watchlist", "add", plate, "--reason", "case 9", *auth])
        assert added.exit_code == 0, added.output
    listed = runner.invoke(plates_app, ["watchlist", "list", "--json", "--db", plates])
    ids = [e["id"] for e in json.loads(listed.output)]
    assert (
        runner.invoke(plates_app, ["watchlist", "expire", ids[0], "--reason", "case closed", "--db", plates]).exit_code
        == 3
    )
    expired = runner.invoke(plates_app, ["watchlist", "expire", ids[0], "--reason", "case closed", *auth])
    assert expired.exit_code == 0 and f"expired {ids[0]}" in expired.output, expired.output
    removed = runner.invoke(plates_app, ["watchlist", "remove", ids[1], "--reason", "entered by mistake", *auth])
    assert removed.exit_code == 0 and f"removed {ids[1]}" in removed.output, removed.output
    again = runner.invoke(plates_app, ["watchlist", "remove", ids[1], "--reason", "entered by mistake", *auth])
    assert again.exit_code == 1 and "already removed" in again.output
    assert runner.invoke(plates_app, ["watchlist", "list", "--json", "--db", plates]).output.strip() == "[]"
    actions = [(e.action, e.outcome) for e in open_stores(plates).audit.entries()]
    assert ("watchlist_expire", "refused") in actions
    assert ("watchlist_expire", "ok") in actions and ("watchlist_remove", "ok") in actions


# -- finding 6: readiness apart from liveness, link key from a secret reference ------------------------------------


def test_readiness_checks_database_and_bus_liveness_does_not(tmp_path: Path, db: Path, store: Any) -> None:
    app = create_app(settings_for(tmp_path, db), store=store)
    c = TestClient(app)
    assert c.get("/api/ready").status_code == 200
    store.close()
    r = c.get("/api/ready")
    assert r.status_code == 503 and r.json()["checks"]["database"]["ok"] is False
    assert c.get("/api/health").status_code == 200
    consuming = create_app(
        settings_for(
            tmp_path, tmp_path / "other.sqlite3", consume=True, bus={"kind": "local", "local_path": tmp_path / "b"}
        )
    )
    assert TestClient(consuming).get("/api/ready").status_code == 503  # no consumer running outside the lifespan


def test_snapshot_links_signed_by_one_replica_verify_on_another(
    tmp_path: Path, db: Path, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dispatch.app import link_key

    monkeypatch.setenv("KUZET_TEST_LINK_KEY", "0123456789abcdef-shared")
    a = settings_for(tmp_path, db, link_key="env:KUZET_TEST_LINK_KEY")
    assert link_key(a) == link_key(a)
    assert link_key(settings_for(tmp_path, db)) != link_key(settings_for(tmp_path, db))  # unset: random per process


# -- finding 11: the names the deploy files use --------------------------------------------------------------------


def test_console_settings_read_the_deploy_files_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUZET_CONSOLE_DB", "postgresql://kuzet@db/kuzet")
    monkeypatch.setenv("KUZET_BUS__KIND", "kafka")
    monkeypatch.setenv("KUZET_BUS__KAFKA__BOOTSTRAP_SERVERS", "kafka-0:9092")
    monkeypatch.setenv("KUZET_STORAGE__KIND", "s3")
    monkeypatch.setenv("KUZET_STORAGE__S3__ENDPOINT", "s3:8333")
    s = ConsoleSettings()
    assert s.database == "postgresql://kuzet@db/kuzet"
    assert s.bus.kind == "kafka" and s.bus.kafka.bootstrap_servers == "kafka-0:9092"
    assert s.storage.kind == "s3" and s.storage.s3.endpoint == "s3:8333"


# -- finding 6: PostgreSQL reconnect with back-off (pure unit test of the db layer, with a fake connection) --------


def test_postgres_reconnect_backs_off_while_the_server_is_down(tmp_path: Path) -> None:
    import psycopg

    from storage.db import Database

    db = Database(tmp_path / "x.sqlite3")
    db.dialect = "postgres"

    class Broken:
        closed, broken = True, True

    attempts: list[float] = []

    def connect() -> Any:
        attempts.append(time.monotonic())
        raise psycopg.OperationalError("connection refused")

    db._conn = Broken()
    db._connect = connect  # type: ignore[method-assign]
    for _ in range(5):
        with pytest.raises(psycopg.OperationalError), db.tx():
            pass
    assert len(attempts) == 1  # the other four failed at once, without a connect attempt
