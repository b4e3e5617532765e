"""The PostgreSQL search plan returns exactly what the search means, page by page, on a small set.

The multi-plate page (wildcard and fuzzy) reads at most one page of each
candidate plate's newest reads (a lateral, limited subquery) instead of every
read of every candidate. That must not change a single row: this test builds
a set with plates read hundreds of times, reads that share a timestamp,
several cameras and days, and compares every page of many wildcard and fuzzy
queries with a reference computed in Python from the inserted reads
(candidates within the distance, ranked by :func:`storage.plates.text.rank`;
then distance, newest first, event id descending; time range and cameras).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg
import pytest

from storage.plates.postgres import PostgresHistoryStore
from storage.plates.query import SearchLimits, SearchMode, ValidQuery, parse_query, validate
from storage.plates.store import PlateReadRecord
from storage.plates.text import rank

pytestmark = pytest.mark.services

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CENTRES = ("123ABC02", "777KZA01", "505SOS05")
CAMERAS = ("cam-1", "cam-2", "cam-3")


@pytest.fixture
def store(postgres_dsn: str) -> Iterator[tuple[PostgresHistoryStore, list[PlateReadRecord]]]:
    name = f"plates_plan_{uuid4().hex[:10]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    history = PostgresHistoryStore(postgres_dsn.rsplit("/", 1)[0] + f"/{name}")
    history.migrate()
    rng = random.Random(12)
    plates = set(CENTRES)
    for centre in CENTRES:  # neighbours at one and two edits, OCR confusions among them
        for _ in range(60):
            chars = list(centre)
            for _ in range(rng.choice((1, 1, 2))):
                i = rng.randrange(len(chars))
                chars[i] = rng.choice("0123456789" if chars[i].isdigit() else "ABCDEKOSZI")
            plates.add("".join(chars))
    reads: list[PlateReadRecord] = []
    for plate in sorted(plates):
        hot = plate in CENTRES or rng.random() < 0.1
        for _ in range(rng.randrange(150, 300) if hot else rng.randrange(1, 6)):
            at = NOW - timedelta(minutes=rng.randrange(0, 12 * 24 * 60))
            reads.append(PlateReadRecord(uuid4(), at, rng.choice(CAMERAS), plate, 0.9))
    for r in rng.sample(reads, 200):  # reads of other plates at the very same instant: order by event id
        reads.append(PlateReadRecord(uuid4(), r.observed_at, rng.choice(CAMERAS), rng.choice(CENTRES), 0.8))
    for start in range(0, len(reads), 2000):
        history.insert(reads[start : start + 2000])
    yield history, reads
    history.close()
    with psycopg.connect(postgres_dsn, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _expected(q: ValidQuery, reads: list[PlateReadRecord]) -> list[tuple[UUID, str, float]]:
    in_range = [r for r in reads if q.since <= r.observed_at < q.until and (not q.cameras or r.camera_id in q.cameras)]
    if q.mode is SearchMode.WILDCARD:
        pattern = re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in q.like))
        dist = {p: 0.0 for p in {r.plate for r in in_range} if pattern.fullmatch(p)}
    else:
        dist = dict(rank(q.plate, {r.plate for r in in_range}, q.max_distance))
    hits = sorted(
        (r for r in in_range if r.plate in dist),
        key=lambda r: (dist[r.plate], -r.observed_at.timestamp(), -r.event_id.int),
    )
    return [(r.event_id, r.plate, dist[r.plate]) for r in hits[q.offset : q.offset + q.limit]]


def _queries(rng: random.Random) -> Iterator[ValidQuery]:
    limits = SearchLimits()
    for i in range(90):
        centre = rng.choice(CENTRES)
        since = NOW - timedelta(days=rng.choice((1, 3, 7, 12)))
        fields: dict[str, object] = {
            "since": since,
            "until": NOW + timedelta(minutes=1),
            "limit": rng.choice((1, 5, 20, 50)),
            "offset": rng.choice((0, 0, 7, 20, 60)),
        }
        if rng.random() < 0.3:
            fields["cameras"] = tuple(rng.sample(CAMERAS, rng.choice((1, 2))))
        if i % 3 == 0:
            k = rng.randrange(len(centre))
            text = centre[:k] + "?" + centre[k + 1 :] if rng.random() < 0.5 else centre[:3] + "*" + centre[-2:]
            yield validate(parse_query(text=text, mode="wildcard", **fields), limits, NOW)
        else:
            distance = rng.choice((0.3, 1.0, 1.3, 2.0))
            yield validate(parse_query(text=centre, mode="fuzzy", max_distance=distance, **fields), limits, NOW)


def test_every_page_of_wildcard_and_fuzzy_search_matches_the_reference(
    store: tuple[PostgresHistoryStore, list[PlateReadRecord]],
) -> None:
    history, reads = store
    checked = 0
    for q in _queries(random.Random(5)):
        page = history.find(q)
        want = _expected(q, reads)
        got = [(h.event_id, h.plate, round(h.distance, 6)) for h in page.hits]
        assert got == [(e, p, round(d, 6)) for e, p, d in want], q
        more = _expected(
            ValidQuery(**{**{f: getattr(q, f) for f in q.__dataclass_fields__}, "offset": q.offset + q.limit}),
            reads,
        )
        assert page.has_more == bool(more), q
        checked += len(want)
    assert checked > 1000  # the queries reached deep into hot plates, not only empty pages
