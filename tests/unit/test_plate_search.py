"""Plate text, query bounds, the SQLite history store and the audited search entry point (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from core.clock import FakeClock
from storage.audit import AuditRecord, AuditUnavailable, SqliteAuditLog, verify
from storage.local_store import LocalSnapshotStore
from storage.plates.query import QueryError, SearchLimits, SearchMode, SearchQuery, parse_query, validate
from storage.plates.search import AccessDenied, Principal, search_plates
from storage.plates.sqlite import SqliteHistoryStore
from storage.plates.store import PlateReadRecord, RecordError, record_from_document
from storage.plates.text import (
    CONFUSION_COST,
    fold,
    normalise_plate,
    rank,
    trigram_count,
    trigram_threshold,
    weighted_distance,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
INVESTIGATOR = Principal("ayan", "investigator")


# ---------------------------------------------------------------- weighted distance
@pytest.mark.parametrize("stored", ["123ABCO2", "I23ABC02", "123A8C02", "123ABC0Z"])
def test_one_ocr_confusion_costs_less_than_an_edit(stored: str) -> None:
    assert weighted_distance("123ABC02", stored) == pytest.approx(CONFUSION_COST)


def test_other_edits_cost_one_and_distance_is_symmetric() -> None:
    assert weighted_distance("123ABC02", "123ABD02") == 1.0
    assert weighted_distance("123ABC02", "123ABC2") == 1.0  # deletion
    assert weighted_distance("123ABC02", "1234ABC02") == 1.0  # insertion
    assert weighted_distance("123ABC02", "123ABCO2") == weighted_distance("123ABCO2", "123ABC02")
    assert weighted_distance("123ABC02", "I23A8CO2") == pytest.approx(3 * CONFUSION_COST)
    assert weighted_distance("ABC", "ABC") == 0.0
    assert weighted_distance("777SSS05", "777SS505") == pytest.approx(CONFUSION_COST)


def test_limit_prunes_but_never_changes_a_result_within_it() -> None:
    assert weighted_distance("123ABC02", "999XYZ77", limit=2.0) == float("inf")
    assert weighted_distance("123ABC02", "123ABD0", limit=2.0) == 2.0
    for other in ("123ABD02", "12ABC02", "I23A8C02", "1234ABC02"):
        assert weighted_distance("123ABC02", other, limit=2.0) == weighted_distance("123ABC02", other)


def test_rank_puts_confusions_before_real_edits_and_drops_unrelated() -> None:
    ranked = rank("123ABC02", ["777AAA02", "123ABD02", "123ABCO2", "123ABC02", "I23ABC02"], 1.0)
    assert [p for p, _ in ranked] == ["123ABC02", "123ABCO2", "I23ABC02", "123ABD02"]


def test_fold_maps_each_confusion_group_to_one_character() -> None:
    assert fold("123ABCO2") == fold("123A8C02") == fold("I23ABC02".replace("I", "1")) == "123A8C02"
    assert fold("SZIOB") == "52108"


def test_trigram_threshold_admits_every_single_edit() -> None:
    # pg_trgm similarity of any one-edit neighbour must stay above the threshold we set
    def sim(a: str, b: str) -> float:
        def grams(s: str) -> set[str]:
            p = f"  {s.lower()} "
            return {p[i : i + 3] for i in range(len(p) - 2)}

        ga, gb = grams(a), grams(b)
        return len(ga & gb) / len(ga | gb)

    q = "123ABC02"
    thr = trigram_threshold(q, 1)
    neighbours = [q[:i] + "X" + q[i + 1 :] for i in range(len(q))] + [q[:i] + q[i + 1 :] for i in range(len(q))]
    neighbours += [q[:i] + "X" + q[i:] for i in range(len(q) + 1)]
    assert min(sim(q, n) for n in neighbours) >= thr
    assert trigram_count(q) == 9
    assert trigram_threshold(q, 2) < thr


def test_normalise_accepts_spacing_and_cyrillic_and_rejects_everything_else() -> None:
    assert normalise_plate("123 abc-02") == "123ABC02"
    assert normalise_plate("А777ВС77") == "A777BC77"  # Cyrillic look-alikes
    for bad in ("123'ABC", "1;DROP", "12%", "A_B", "x" * 80, "1"):
        with pytest.raises(ValueError):
            normalise_plate(bad)


# ---------------------------------------------------------------- query bounds
def q(text: str, mode: str = "exact", **kw: Any) -> SearchQuery:
    return parse_query(text=text, mode=mode, **kw)


def test_wildcards_become_like_patterns() -> None:
    v = validate(q("123*02", "wildcard"), SearchLimits(), NOW)
    assert (v.plate, v.like) == ("123*02", "123%02")
    v = validate(q("?23ABC02", "wildcard"), SearchLimits(), NOW)
    assert v.like == "_23ABC02"
    assert validate(q("123**02", "wildcard"), SearchLimits(), NOW).like == "123%02"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("1*2", "known character"),
        ("*", "known character"),
        ("1?2?3?4?", "in a row"),
        ("1234?????", "wildcards"),
        ("12%3", "letters A-Z"),
        ("123_AB", "letters A-Z"),
        ("12'3*--", "letters A-Z"),
    ],
)
def test_absurd_wildcards_are_refused_with_a_reason(pattern: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        validate(q(pattern, "wildcard"), SearchLimits(), NOW)


def test_time_range_defaults_and_bounds() -> None:
    v = validate(q("123ABC02"), SearchLimits(), NOW)
    assert v.until == NOW and v.since == NOW - timedelta(days=7)
    with pytest.raises(QueryError, match="exceeds the maximum of 31 days"):
        validate(q("123ABC02", since=NOW - timedelta(days=400)), SearchLimits(), NOW)
    with pytest.raises(QueryError, match="empty"):
        validate(q("123ABC02", since=NOW, until=NOW - timedelta(hours=1)), SearchLimits(), NOW)
    with pytest.raises(QueryError, match=r"time zone|timezone"):
        parse_query(text="123ABC02", since=datetime(2026, 1, 1))


def test_paging_cameras_and_distance_bounds() -> None:
    with pytest.raises(QueryError, match="page size"):
        validate(q("123ABC02", limit=10_000), SearchLimits(), NOW)
    with pytest.raises(QueryError, match="beyond row"):
        validate(q("123ABC02", offset=5000), SearchLimits(), NOW)
    with pytest.raises(QueryError, match="not a camera id"):
        validate(q("123ABC02", cameras=("cam-1", "x' OR '1'='1")), SearchLimits(), NOW)
    with pytest.raises(QueryError, match="fuzzy distance"):
        validate(q("123ABC02", "fuzzy", max_distance=5), SearchLimits(), NOW)


# ---------------------------------------------------------------- SQLite store
def read(plate: str, hours_ago: float, camera: str = "cam-1", conf: float = 0.9) -> PlateReadRecord:
    return PlateReadRecord(uuid4(), NOW - timedelta(hours=hours_ago), camera, plate, conf)


@pytest.fixture
def store(tmp_path: Path) -> SqliteHistoryStore:
    s = SqliteHistoryStore(tmp_path / "plates.sqlite3")
    s.migrate()
    return s


def find(store: SqliteHistoryStore, text: str, mode: str = "exact", **kw: object) -> list[tuple[str, float]]:
    page = store.find(validate(q(text, mode, **kw), SearchLimits(), NOW))
    return [(h.plate, h.distance) for h in page.hits]


def test_sqlite_fuzzy_ranks_ocr_confusions_above_unrelated(store: SqliteHistoryStore) -> None:
    store.insert([read(p, i + 1) for i, p in enumerate(["123ABCO2", "I23ABC02", "123A8C02", "123XYZ02", "777AAA02"])])
    hits = find(store, "123ABC02", "fuzzy", max_distance=2)
    assert [p for p, _ in hits[:3]] == ["123ABCO2", "I23ABC02", "123A8C02"]  # d=0.3 each, newest first
    assert all(d == pytest.approx(0.3) for _, d in hits[:3])
    assert "777AAA02" not in [p for p, _ in hits]


def test_sqlite_wildcard_camera_and_time_filters(store: SqliteHistoryStore) -> None:
    store.insert(
        [read("123ABC02", 1, "cam-1"), read("123XYZ02", 2, "cam-2"), read("123ABC03", 3), read("123ABC02", 50)]
    )
    assert {p for p, _ in find(store, "123*02", "wildcard")} == {"123ABC02", "123XYZ02"}
    assert find(store, "123*02", "wildcard", cameras=("cam-2",)) == [("123XYZ02", 0.0)]
    recent = find(store, "123ABC02", since=NOW - timedelta(hours=10))
    assert len(recent) == 1
    assert len(find(store, "123ABC02")) == 2


def test_sqlite_is_idempotent_and_pages_newest_first(store: SqliteHistoryStore) -> None:
    reads = [read("123ABC02", h) for h in range(1, 8)]
    assert store.insert(reads) == 7
    assert store.insert(reads[:3]) == 0
    assert store.count() == 7
    page1 = store.find(validate(q("123ABC02", limit=3), SearchLimits(), NOW))
    page2 = store.find(validate(q("123ABC02", limit=3, offset=3), SearchLimits(), NOW))
    times = [h.observed_at for h in page1.hits + page2.hits]
    assert times == sorted(times, reverse=True) and page1.has_more
    assert len({h.event_id for h in page1.hits + page2.hits}) == 6


def test_sqlite_retention_with_controlled_clock(store: SqliteHistoryStore) -> None:
    clock = FakeClock(NOW)
    store.insert([read("OLD111AA", 24 * 10), read("MID222BB", 24 * 4), read("NEW333CC", 1)])
    report = store.apply_retention(5, clock.now())
    assert report.reads_deleted == 1 and store.count() == 2
    clock.advance(2 * 86400)
    assert store.apply_retention(5, clock.now()).reads_deleted == 1
    assert find(store, "MID222BB", since=NOW - timedelta(days=30)) == []
    assert find(store, "MID222B8", "fuzzy", since=NOW - timedelta(days=30)) == []  # forgotten by the dictionary too


def test_injection_text_never_reaches_sql(store: SqliteHistoryStore) -> None:
    store.insert([read("123ABC02", 1)])
    for attack in ("'; DROP TABLE plate_reads; --", "123ABC02' OR '1'='1", '" OR 1=1', "123*') --"):
        for mode in SearchMode:
            with pytest.raises(QueryError):
                validate(q(attack, mode.value), SearchLimits(), NOW)
    assert store.count() == 1


def test_record_from_plate_read_document() -> None:
    doc = {
        "event_id": str(uuid4()),
        "camera_id": "cam-1",
        "observed_at": "2026-03-10T11:00:00Z",
        "plate": "123ABC02",
        "raw_text": "123 ABC 02",
        "format_id": "kz-2012",
        "country": "KZ",
        "confidence": 0.93,
        "is_candidate": False,
        "candidates": [{"plate": "123ABC02", "score": 0.8}, {"plate": "123A8C02", "score": 0.2}],
        "plate_box": [1, 2, 3, 4],
    }
    r = record_from_document(doc)
    assert r.plate_format == "kz-2012" and r.candidates[1] == ("123A8C02", 0.2) and r.boxes["plate"] == [1, 2, 3, 4]
    for broken in ({**doc, "plate": "12"[:1]}, {**doc, "observed_at": "yesterday"}, {**doc, "confidence": 3}, {}):
        with pytest.raises(RecordError):
            record_from_document(broken)


# ---------------------------------------------------------------- access and audit
@pytest.fixture
def audit(tmp_path: Path) -> SqliteAuditLog:
    log = SqliteAuditLog(tmp_path / "plates.sqlite3")
    log.migrate()
    return log


def run(store: SqliteHistoryStore, audit: SqliteAuditLog, who: Principal, reason: str | None, text: str, **kw: Any):
    return search_plates(q(text, **kw), principal=who, reason=reason, store=store, audit=audit, clock=FakeClock(NOW))


def test_search_requires_role_and_reason_and_audits_refusals(store, audit) -> None:
    with pytest.raises(AccessDenied, match="role"):
        run(store, audit, Principal("dina", "dispatcher"), "case 1", "123ABC02")
    with pytest.raises(AccessDenied, match="reason"):
        run(store, audit, INVESTIGATOR, "  ", "123ABC02")
    with pytest.raises(QueryError):
        run(store, audit, INVESTIGATOR, "case 7", "1*2", mode="wildcard")
    entries = list(audit.entries())
    assert [(e.actor, e.outcome) for e in entries] == [("dina", "refused"), ("ayan", "refused"), ("ayan", "invalid")]
    assert '"text":"1*2"' in entries[2].details


def test_every_search_is_audited_with_its_count_before_results(store, audit, tmp_path: Path) -> None:
    snaps = LocalSnapshotStore(tmp_path / "snaps")
    ref = snaps.put("cam-1", uuid4(), NOW, b"\xff\xd8jpeg")
    store.insert([PlateReadRecord(uuid4(), NOW - timedelta(hours=1), "cam-1", "123ABC02", 0.9, snapshot=ref)])
    res = search_plates(
        q("123ABC02"),
        principal=INVESTIGATOR,
        reason="case 42",
        store=store,
        audit=audit,
        snapshots=snaps,
        clock=FakeClock(NOW),
    )
    assert len(res.hits) == 1 and res.hits[0].snapshot_url and res.hits[0].snapshot_url.startswith("file://")
    empty = run(store, audit, INVESTIGATOR, "case 42", "999ZZZ99")
    assert empty.hits == ()
    entries = list(audit.entries())
    assert [(e.outcome, e.result_count, e.reason) for e in entries] == [("ok", 1, "case 42"), ("ok", 0, "case 42")]
    assert res.audit_seq == 1 and verify(audit).ok


class BrokenAudit:
    def append(self, record: AuditRecord, at: datetime):
        raise AuditUnavailable("disk full")


def test_search_fails_closed_when_audit_cannot_be_written(store) -> None:
    store.insert([read("123ABC02", 1)])
    with pytest.raises(AuditUnavailable):
        search_plates(q("123ABC02"), principal=INVESTIGATOR, reason="case 1", store=store, audit=BrokenAudit())  # type: ignore[arg-type]


def test_pigeonhole_patterns_cover_every_string_within_the_edit_budget() -> None:
    import fnmatch
    import random

    from storage.plates.postgres import pigeonhole_patterns

    rng = random.Random(5)
    alphabet = "0123456789ACDEFGHJ"
    for _ in range(3000):
        q = "".join(rng.choice(alphabet) for _ in range(rng.choice((8, 9))))
        edits = rng.choice((1, 2))
        patterns = pigeonhole_patterns(q, edits)
        assert patterns is not None
        s = list(q)
        for _ in range(rng.randint(1, edits)):
            op = rng.choice("sid")
            i = rng.randrange(len(s) + (op == "i"))
            if op == "s" and i < len(s):
                s[i] = rng.choice(alphabet)
            elif op == "d" and i < len(s) and len(s) > 1:
                del s[i]
            else:
                s.insert(i, rng.choice(alphabet))
        cand = "".join(s)
        assert any(fnmatch.fnmatchcase(cand, p.replace("%", "*")) for p in patterns), (q, cand, patterns)
    assert pigeonhole_patterns("1234567", 2) is None  # a two-character middle piece: fall back to trigrams
