"""Plate history, audited search, audit chain and watchlists on a real PostgreSQL (``postgres_dsn`` fixture)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from typer.testing import CliRunner

from core.clock import FakeClock
from storage.audit import AuditRecord, AuditUnavailable, PostgresAuditLog, verify
from storage.plates.factory import open_stores
from storage.plates.postgres import PostgresHistoryStore, partition_name
from storage.plates.query import QueryError, SearchLimits, SearchMode, ValidQuery, parse_query, validate
from storage.plates.search import AccessDenied, Principal, search_plates
from storage.plates.store import PlateReadRecord
from storage.watchlist import WatchlistMatcher, new_entry

pytestmark = pytest.mark.services

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
WHO = Principal("ayan", "investigator")


@pytest.fixture
def stores(db_url: str) -> Iterator[Any]:
    s = open_stores(db_url)
    yield s
    s.close()


def rd(plate: str, at: datetime, camera: str = "cam-1", conf: float = 0.9) -> PlateReadRecord:
    return PlateReadRecord(uuid4(), at, camera, plate, conf)


def random_plate(rng: random.Random) -> str:
    return f"{rng.randrange(1000):03d}" + "".join(rng.choice("ACDEFGHJKLMNPQRTUVWXY") for _ in range(3)) + "07"


def search(stores: Any, text: str, mode: str = "exact", who: Principal = WHO, reason: str = "case 42", **kw: Any):
    return search_plates(
        parse_query(text=text, mode=mode, **kw),
        principal=who,
        reason=reason,
        store=stores.history,
        audit=stores.audit,
        clock=FakeClock(NOW),
    )


def test_fuzzy_finds_ocr_misreads_ranked_above_unrelated_plates(stores: Any) -> None:
    rng = random.Random(7)
    noise = [rd(random_plate(rng), NOW - timedelta(minutes=rng.randrange(1, 5000))) for _ in range(3000)]
    near = [rd("123ABD02", NOW - timedelta(minutes=1)), rd("124ABC02", NOW - timedelta(minutes=2))]
    targets = [rd(p, NOW - timedelta(hours=h)) for h, p in enumerate(["123ABCO2", "I23ABC02", "123A8C02"], start=3)]
    stores.history.insert(noise + near + targets)
    res = search(stores, "123ABC02", "fuzzy", max_distance=2)
    plates = [h.plate for h in res.hits]
    assert plates[:3] == ["123ABCO2", "I23ABC02", "123A8C02"]  # OCR confusions first, then newest first
    assert [h.distance for h in res.hits[:3]] == [0.3, 0.3, 0.3]
    assert set(plates[3:5]) == {"123ABD02", "124ABC02"} and all(h.distance == 1.0 for h in res.hits[3:5])
    assert all(h.distance >= 1.0 for h in res.hits[3:])
    assert res.hits == tuple(sorted(res.hits, key=lambda h: h.distance))
    one = search(stores, "123ABC02", "fuzzy", max_distance=0.5)
    assert {h.plate for h in one.hits} == {"123ABCO2", "I23ABC02", "123A8C02"}


def test_wildcard_time_and_camera_filters(stores: Any) -> None:
    stores.history.insert(
        [
            rd("123ABC02", NOW - timedelta(hours=1), "cam-1"),
            rd("123XYZ02", NOW - timedelta(hours=2), "cam-2"),
            rd("123XYZ03", NOW - timedelta(hours=2), "cam-2"),
            rd("923ABC02", NOW - timedelta(hours=3), "cam-3"),
            rd("123ABC02", NOW - timedelta(days=3), "cam-2"),
        ]
    )
    assert [h.plate for h in search(stores, "123*02", "wildcard").hits] == ["123ABC02", "123XYZ02", "123ABC02"]
    assert {h.plate for h in search(stores, "?23ABC02", "wildcard").hits} == {"123ABC02", "923ABC02"}
    cam2 = search(stores, "123*02", "wildcard", cameras=("cam-2",))
    assert [(h.plate, h.camera_id) for h in cam2.hits] == [("123XYZ02", "cam-2"), ("123ABC02", "cam-2")]
    recent = search(stores, "123ABC02", since=NOW - timedelta(days=1))
    assert len(recent.hits) == 1 and recent.hits[0].observed_at == NOW - timedelta(hours=1)
    window = search(stores, "123ABC02", since=NOW - timedelta(days=4), until=NOW - timedelta(days=2))
    assert [h.camera_id for h in window.hits] == ["cam-2"]
    with pytest.raises(QueryError, match="maximum of 31 days"):
        search(stores, "123ABC02", since=NOW - timedelta(days=90))


def test_reinsert_is_idempotent_and_batches_use_partitions(stores: Any) -> None:
    batch = [rd(f"{i:03d}AAA02", NOW - timedelta(hours=i)) for i in range(100)]  # spans five days
    assert stores.history.insert(batch) == 100
    assert stores.history.insert(batch) == 0
    assert stores.history.insert([*batch[:10], rd("555BBB02", NOW)]) == 1
    assert stores.history.count() == 101
    days = {d for _, d in stores.history.partitions()}
    assert {(NOW - timedelta(hours=h)).date() for h in range(100)} <= days


def test_retention_drops_whole_day_partitions(stores: Any) -> None:
    clock = FakeClock(NOW)
    stores.history.insert([rd(f"{d:03d}OLD02", NOW - timedelta(days=d)) for d in range(10)])
    created = stores.history.ensure_partitions(clock.now(), days_ahead=3)
    assert partition_name((NOW + timedelta(days=3)).date()) in created
    report = stores.history.apply_retention(5, clock.now())
    # reads of days whose whole day lies more than 5 days before now are gone, as partitions
    assert report.partitions_dropped == tuple(partition_name((NOW - timedelta(days=d)).date()) for d in range(9, 5, -1))
    assert stores.history.count() == 6
    assert search(stores, "007OLD02", since=NOW - timedelta(days=20)).hits == ()
    fuzzy = search(stores, "007OLD02", "fuzzy", since=NOW - timedelta(days=20))
    assert {h.plate for h in fuzzy.hits} == {f"{d:03d}OLD02" for d in range(1, 6)}  # kept days only
    clock.advance(86400)
    assert stores.history.apply_retention(5, clock.now()).partitions_dropped == (
        partition_name((NOW - timedelta(days=5)).date()),
    )


def test_injection_attempts_are_refused_or_inert(stores: Any) -> None:
    stores.history.insert([rd("123ABC02", NOW - timedelta(hours=1))])
    for attack in ("123ABC02'; DROP TABLE plate_reads; --", "' OR '1'='1", "123*' OR 1=1 --"):
        for mode in ("exact", "wildcard", "fuzzy"):
            with pytest.raises(QueryError):
                search(stores, attack, mode)
    # even a query that skipped validation is only data to the database (parameterised SQL)
    hostile = ValidQuery(
        mode=SearchMode.EXACT, plate="x' OR '1'='1", since=NOW - timedelta(days=1), until=NOW, cameras=("a'--",)
    )
    assert stores.history.find(hostile).hits == ()
    fuzzy = ValidQuery(
        mode=SearchMode.FUZZY,
        plate="1'; DROP TABLE plate_reads; --",
        folded="1'; DROP TABLE x; --",
        since=NOW - timedelta(days=1),
        until=NOW,
        max_distance=1.0,
    )
    stores.history.find(fuzzy)
    assert stores.history.count() == 1
    refused = [e for e in stores.audit.entries() if e.outcome == "invalid"]
    assert len(refused) == 9 and "DROP TABLE" in refused[0].details


def test_refused_and_empty_searches_are_audited(stores: Any) -> None:
    with pytest.raises(AccessDenied):
        search(stores, "123ABC02", who=Principal("dina", "dispatcher"))
    with pytest.raises(AccessDenied):
        search(stores, "123ABC02", reason="")
    assert search(stores, "999ZZZ99").hits == ()
    entries = list(stores.audit.entries())
    assert [(e.actor, e.role, e.outcome, e.result_count) for e in entries] == [
        ("dina", "dispatcher", "refused", None),
        ("ayan", "investigator", "refused", None),
        ("ayan", "investigator", "ok", 0),
    ]
    assert verify(stores.audit).ok


def test_audit_rows_cannot_be_changed_and_superuser_edits_are_detected(stores: Any, db_url: str) -> None:
    for i in range(4):
        stores.audit.append(AuditRecord("ayan", "investigator", "plate_search", "ok", f"case {i}"), NOW)
    with psycopg.connect(db_url, autocommit=True) as c:
        for stmt in ("UPDATE audit_log SET reason = 'x' WHERE seq = 2", "DELETE FROM audit_log", "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                c.execute(stmt)
        c.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        c.execute("UPDATE audit_log SET reason = 'routine check' WHERE seq = 3")
        c.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    report = verify(stores.audit)
    assert not report.ok and report.first_bad_seq == 3
    from kuzet.commands.plates import audit_app

    out = CliRunner().invoke(audit_app, ["verify", "--db", db_url])
    assert out.exit_code == 1 and "row 3" in out.output


def test_search_fails_closed_when_audit_insert_is_revoked(stores: Any, db_url: str) -> None:
    stores.history.insert([rd("123ABC02", NOW - timedelta(hours=1))])
    role = f"clerk_{uuid4().hex[:8]}"
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(f"CREATE ROLE {role} LOGIN")
        c.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")  # may read, may not write the audit log
    clerk_url = db_url.replace("postgres@", f"{role}@")
    history, audit = PostgresHistoryStore(clerk_url), PostgresAuditLog(clerk_url)
    try:
        with pytest.raises(AuditUnavailable, match="permission denied"):
            search_plates(
                parse_query(text="123ABC02"),
                principal=WHO,
                reason="case 1",
                store=history,
                audit=audit,
                clock=FakeClock(NOW),
            )
    finally:
        history.close()
        audit.close()
        with psycopg.connect(db_url, autocommit=True) as c:
            c.execute(f"DROP OWNED BY {role}")
            c.execute(f"DROP ROLE {role}")


def test_search_fails_closed_when_audit_table_is_gone(stores: Any, db_url: str) -> None:
    stores.history.insert([rd("123ABC02", NOW - timedelta(hours=1))])
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("DROP TABLE audit_log")
    with pytest.raises(AuditUnavailable):
        search(stores, "123ABC02")
    with pytest.raises(AuditUnavailable):
        search(stores, "123ABC02", who=Principal("dina", "dispatcher"))  # a refusal that cannot be recorded


def test_watchlist_on_postgres(stores: Any) -> None:
    clock = FakeClock(NOW)
    wl = stores.watchlist
    live = wl.add(new_entry("123ABC02", reason="stolen", created_by="a", expires_at=NOW + timedelta(hours=1), now=NOW))
    old = wl.add(
        new_entry("777AAA02", reason="old case", created_by="a", expires_at=NOW + timedelta(minutes=1), now=NOW)
    )
    assert {e.id for e in wl.entries(active_at=NOW)} == {live.id, old.id}
    clock.advance(120)
    matcher = WatchlistMatcher(wl, clock=clock)
    assert matcher.match("777AAA02", clock.now()) == []
    assert [m.entry.id for m in matcher.match("123ABC02", clock.now())] == [live.id]
    assert wl.get(live.id) == live


def test_search_validates_before_touching_the_store() -> None:
    with pytest.raises(QueryError):
        validate(parse_query(text="1?2?3?4", mode="wildcard"), SearchLimits(), NOW)
