"""Watchlist entries, the live matcher (expiry, fuzzy) and watchlist_hit incidents (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from core.clock import FakeClock
from dispatch.testing import make_plate_read
from event_bus import schemas, topics
from event_bus.events import IncidentType, PlateRead
from services.watchlist_alerts import derived_uuid7, incidents_for
from storage.watchlist import WatchlistError, WatchlistMatcher, WatchlistStore, new_entry

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[WatchlistStore, WatchlistMatcher, FakeClock]:
    store = WatchlistStore(sqlite_path=tmp_path / "plates.sqlite3")
    store.migrate()
    clock = FakeClock(NOW)
    return store, WatchlistMatcher(store, clock=clock, refresh_s=5.0), clock


def plate_read(plate: str, at: datetime, candidate: bool = False) -> PlateRead:
    return make_plate_read("cam-7", plate, at, is_candidate=candidate)


def test_exact_and_fuzzy_entries_match_and_expired_ones_do_not(setup) -> None:
    store, matcher, clock = setup
    exact = store.add(
        new_entry("123ABC02", reason="stolen", created_by="a", expires_at=NOW + timedelta(hours=1), now=NOW)
    )
    fuzzy = store.add(
        new_entry(
            "777AAA02", reason="case 9", created_by="a", expires_at=NOW + timedelta(days=1), now=NOW, mode="fuzzy"
        )
    )
    assert [m.entry.id for m in matcher.match("123ABC02", NOW)] == [exact.id]
    assert matcher.match("123ABCO2", NOW) == []  # exact means exact
    hits = matcher.match("777AAA0Z", NOW)
    assert [m.entry.id for m in hits] == [fuzzy.id] and hits[0].distance == pytest.approx(0.3)
    clock.advance(2 * 3600)  # the exact entry has expired; no reload needed to stop matching
    assert matcher.match("123ABC02", clock.now()) == []
    assert store.entries(active_at=clock.now()) == [fuzzy]


def test_expire_and_remove_take_effect_on_reload(setup) -> None:
    store, matcher, clock = setup
    e = store.add(new_entry("123ABC02", reason="stolen", created_by="a", expires_at=NOW + timedelta(days=1), now=NOW))
    assert matcher.match("123ABC02", NOW)
    assert store.expire(e.id, NOW)
    clock.advance(5)
    assert matcher.match("123ABC02", clock.now()) == []
    assert not store.remove(uuid4(), NOW, "a")
    assert store.remove(e.id, NOW, "a")
    got = store.get(e.id)
    assert got is not None and got.removed_by == "a"


def test_entries_are_validated() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"reason": ""}, "reason"),
        ({"expires_at": NOW - timedelta(1)}, "future"),
        ({"expires_at": NOW + timedelta(days=1000)}, "at most"),
        ({"plate": "12'; --"}, "letters"),
    ]
    for kwargs, msg in cases:
        args: dict[str, Any] = {"plate": "123ABC02", "reason": "stolen", "expires_at": NOW + timedelta(1), **kwargs}
        with pytest.raises(WatchlistError, match=msg):
            new_entry(args.pop("plate"), created_by="a", now=NOW, **args)


def test_hit_incident_is_valid_and_deterministic(setup) -> None:
    store, matcher, _ = setup
    entry = store.add(new_entry("123ABC02", reason="stolen", created_by="a", expires_at=NOW + timedelta(1), now=NOW))
    read = plate_read("123ABC02", NOW - timedelta(seconds=1))
    first, again = incidents_for(read, matcher), incidents_for(read, matcher)
    assert len(first) == 1 and first[0].value == again[0].value  # a redelivered read -> same event id
    rec = first[0]
    assert rec.topic == topics.INCIDENTS and rec.key == "cam-7"
    import json

    doc = json.loads(rec.value)
    schemas.validate("incident", doc)
    assert doc["schema_version"] == 2 and doc["watchlist"]["watchlist_id"] == str(entry.id)
    assert doc["watchlist"]["plate"] == "123ABC02" and doc["watchlist"]["plate_read_id"] == str(read.event_id)
    assert doc["watchlist"]["mode"] == "exact" and doc["watchlist"]["watchlist_plate"] == entry.plate
    assert doc["type"] == IncidentType.WATCHLIST_HIT and doc["severity"] == "high"
    assert UUID(doc["event_id"]).version == 7
    assert incidents_for(plate_read("123ABC02", NOW, candidate=True), matcher) == []  # a lead, not a fact


def test_derived_uuid7_keeps_time_order() -> None:
    a, b = derived_uuid7(1_000, "x"), derived_uuid7(2_000, "x")
    assert a.version == b.version == 7 and a < b and derived_uuid7(1_000, "x") == a != derived_uuid7(1_000, "y")
