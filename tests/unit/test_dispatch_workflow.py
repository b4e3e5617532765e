"""Incident workflow: the transition rules, and the store that records them (SQLite here; PostgreSQL in
tests/integration/test_console_postgres.py runs the same checks through ``exercise_store``)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatch.bus_ingest import detection_update
from dispatch.testing import FAST_HASHER, make_incident
from storage.accounts import Role, UserError
from storage.db import NotFoundError
from storage.incident_records import IncidentFilter
from storage.incident_rules import Action, ConflictError, InvalidInput, TransitionError, WorkflowStatus, next_status
from storage.workflow import WorkflowStore, open_workflow_store

S = WorkflowStatus
A = Action

ALLOWED = {
    # (status, action, role) -> new status; everything not listed must raise TransitionError
    (S.NEW, A.ACKNOWLEDGE, Role.DISPATCHER): S.ACKNOWLEDGED,
    (S.NEW, A.ACKNOWLEDGE, Role.ADMIN): S.ACKNOWLEDGED,
    (S.NEW, A.ASSIGN, Role.DISPATCHER): S.NEW,
    (S.NEW, A.ASSIGN, Role.ADMIN): S.NEW,
    (S.ACKNOWLEDGED, A.ASSIGN, Role.DISPATCHER): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, A.ASSIGN, Role.ADMIN): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, A.RESOLVE, Role.DISPATCHER): S.RESOLVED,
    (S.ACKNOWLEDGED, A.RESOLVE, Role.ADMIN): S.RESOLVED,
    (S.NEW, A.RESOLVE, Role.ADMIN): S.RESOLVED,
    (S.ACKNOWLEDGED, A.FALSE_ALARM, Role.DISPATCHER): S.FALSE_ALARM,
    (S.ACKNOWLEDGED, A.FALSE_ALARM, Role.ADMIN): S.FALSE_ALARM,
    (S.NEW, A.FALSE_ALARM, Role.ADMIN): S.FALSE_ALARM,
    (S.RESOLVED, A.REOPEN, Role.ADMIN): S.ACKNOWLEDGED,
    (S.FALSE_ALARM, A.REOPEN, Role.ADMIN): S.ACKNOWLEDGED,
}
for status, role in itertools.product(S, (Role.DISPATCHER, Role.ADMIN)):
    ALLOWED[(status, A.NOTE, role)] = status


@pytest.mark.parametrize(("status", "action", "role"), list(itertools.product(S, A, Role)))
def test_transition_matrix(status: WorkflowStatus, action: Action, role: Role) -> None:
    expected = ALLOWED.get((status, action, role))
    if expected is None:
        with pytest.raises(TransitionError):
            next_status(status, action, role)
    else:
        assert next_status(status, action, role) is expected


def test_no_resolve_before_acknowledge_says_why() -> None:
    with pytest.raises(TransitionError, match="acknowledge the incident before"):
        next_status(S.NEW, A.RESOLVE, Role.DISPATCHER)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WorkflowStore]:
    s = open_workflow_store(tmp_path / "wf.sqlite3", hasher=FAST_HASHER)
    yield s
    s.close()


def exercise_store(store: WorkflowStore) -> None:
    """The store's contract, run against SQLite here and PostgreSQL in the integration tests."""
    store.add_user("disp", Role.DISPATCHER, "disp-password-1")
    store.add_user("boss", Role.ADMIN, "boss-password-1")
    store.add_user("inv", Role.INVESTIGATOR, "inv-password-1")
    disp, boss, inv = store.user("disp"), store.user("boss"), store.user("inv")
    assert disp and boss and inv

    start = make_incident(camera_id="north-1", severity="critical")
    rev0 = store.current_rev()
    (rec,) = store.ingest([detection_update(start)])
    assert rec.status is S.NEW and rec.rev == rev0 + 1 and rec.version == 1
    # redelivery and an older event change nothing
    assert store.ingest([detection_update(start)]) == []
    upd = make_incident(incident_id=start.incident_id, camera_id="north-1", state="update", seq=1, confidence=0.95)
    end = make_incident(incident_id=start.incident_id, camera_id="north-1", state="end", seq=2)
    (rec,) = store.ingest([detection_update(end)])
    assert rec.detection_state == "end" and rec.ended_at_ms is not None
    assert store.ingest([detection_update(upd)]) == []  # arrived late: the row already says more

    iid = rec.incident_id
    with pytest.raises(TransitionError):
        store.act(iid, A.RESOLVE, disp)
    rec, action = store.act(iid, A.ACKNOWLEDGE, disp)
    assert rec.status is S.ACKNOWLEDGED and rec.acknowledged_by == "disp" and action.actor == "disp"
    with pytest.raises(ConflictError):
        store.act(iid, A.NOTE, disp, note="stale", expected_version=rec.version - 1)
    with pytest.raises(InvalidInput):
        store.act(iid, A.ASSIGN, disp, assignee="inv")  # investigators take no incidents
    with pytest.raises(InvalidInput):
        store.act(iid, A.NOTE, disp, note="   ")
    rec, _ = store.act(iid, A.ASSIGN, disp, assignee="boss")
    assert rec.assignee == "boss"
    script = "<script>alert('x')</script>\x00 done"
    rec, note = store.act(iid, A.NOTE, disp, note=script)
    assert note.note == "<script>alert('x')</script> done"  # stored as text, control characters dropped
    with pytest.raises(TransitionError):
        store.act(iid, A.NOTE, inv, note="investigators read, they do not act")
    rec, _ = store.act(iid, A.RESOLVE, disp, note="police on site")
    assert rec.status is S.RESOLVED and rec.closed_by == "disp" and rec.notes == 2
    with pytest.raises(TransitionError):
        store.act(iid, A.REOPEN, disp)
    rec, _ = store.act(iid, A.REOPEN, boss)
    assert rec.status is S.ACKNOWLEDGED and rec.closed_by is None
    with pytest.raises(NotFoundError):
        store.act(str(uuid.uuid4()), A.ACKNOWLEDGE, disp)
    history = store.actions(iid)
    assert [a.action for a in history] == [A.ACKNOWLEDGE, A.ASSIGN, A.NOTE, A.RESOLVE, A.REOPEN]
    assert all(a.at_ms > 0 for a in history)

    # admin may close without acknowledging
    other = make_incident(camera_id="south-1", type="fire", severity="high")
    (orec,) = store.ingest([detection_update(other)])
    orec, _ = store.act(orec.incident_id, A.FALSE_ALARM, boss)
    assert orec.status is S.FALSE_ALARM

    # replay: every incident changed after a revision, once, oldest change first
    changed = store.changes_since(rev0, 100)
    assert [c.incident_id for c in changed] == [iid, orec.incident_id]
    assert store.changes_since(store.current_rev(), 100) == []

    # listing and filters
    assert {r.incident_id for r in store.list_incidents(IncidentFilter())} == {iid, orec.incident_id}
    assert [r.incident_id for r in store.list_incidents(IncidentFilter(types=["fire"]))] == [orec.incident_id]
    assert [r.incident_id for r in store.list_incidents(IncidentFilter(camera_patterns=["north-*"]))] == [iid]
    assert store.list_incidents(IncidentFilter(camera_patterns=["nor_h-*"])) == []  # _ is literal, not LIKE's any
    assert [r.incident_id for r in store.list_incidents(IncidentFilter(statuses=["false_alarm"]))] == [orec.incident_id]
    page1 = store.list_incidents(IncidentFilter(limit=1))
    page2 = store.list_incidents(IncidentFilter(limit=1, before=(page1[0].started_at_ms, page1[0].incident_id)))
    assert len(page1) == len(page2) == 1 and page1[0].incident_id != page2[0].incident_id

    # users, sessions, tokens
    assert store.authenticate("disp", "disp-password-1") == disp
    assert store.authenticate("disp", "wrong-password") is None
    assert store.authenticate("nobody", "disp-password-1") is None
    with pytest.raises(UserError):
        store.add_user("disp", Role.DISPATCHER, "another-password")
    with pytest.raises(UserError):
        store.add_user("Bad Name!", Role.DISPATCHER, "long-enough-pw")
    with pytest.raises(UserError):
        store.add_user("shorty", Role.DISPATCHER, "short")
    with pytest.raises(UserError):
        store.add_user("robot", "superuser", "long-enough-pw")
    token, session = store.create_session("disp", 3600)
    found = store.session(token)
    assert found is not None and found.user.username == "disp" and found.csrf_token == session.csrf_token
    assert store.session("not-a-token") is None
    api = store.create_api_token("inv", "ci")
    ts = store.token_session(api)
    assert ts is not None and ts.user.role is Role.INVESTIGATOR and ts.via == "token"
    store.set_disabled("disp", True)
    assert store.session(token) is None and store.authenticate("disp", "disp-password-1") is None
    store.set_disabled("inv", True)
    assert store.token_session(api) is None


def test_store_contract_sqlite(store: WorkflowStore) -> None:
    exercise_store(store)


def test_passwords_are_argon2_hashes(store: WorkflowStore) -> None:
    store.add_user("disp", Role.DISPATCHER, "disp-password-1")
    (stored,) = store._db.read("SELECT password_hash FROM console_users WHERE username = 'disp'")[0]
    assert stored.startswith("$argon2id$") and "disp-password-1" not in stored


def test_session_expires(tmp_path: Path) -> None:
    now = [1_000_000.0]
    s = open_workflow_store(tmp_path / "wf.sqlite3", clock=lambda: now[0], hasher=FAST_HASHER)
    s.add_user("disp", Role.DISPATCHER, "disp-password-1")
    token, _ = s.create_session("disp", 60)
    assert s.session(token) is not None
    now[0] += 61
    assert s.session(token) is None


def test_revision_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "wf.sqlite3"
    s = open_workflow_store(path, hasher=FAST_HASHER)
    uid = s.store_uid
    s.ingest([detection_update(make_incident())])
    rev = s.current_rev()
    s.close()
    s = open_workflow_store(path, hasher=FAST_HASHER)
    assert s.store_uid == uid and s.current_rev() == rev
    s.close()
