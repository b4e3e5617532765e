"""Replicas that start together migrate one PostgreSQL schema without tripping over each other.

Two plate indexers started at once (as ``deploy/k8s/plate-indexer.yaml`` runs them) both ran
``CREATE TABLE IF NOT EXISTS watchlist``; PostgreSQL lets both past the ``IF NOT EXISTS`` check and the
loser fails on the catalog's unique index (``pg_type_typname_nsp_index``), crashing that indexer.
``Database.migration`` serialises schema creation with an advisory lock; here eight connections race to
create the watchlist and the console's stores in a fresh database, several rounds each.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from dispatch.testing import FAST_HASHER
from storage.watchlist import WatchlistStore
from storage.workflow import open_workflow_store

pytestmark = [pytest.mark.services]

RACERS = 8


@pytest.fixture
def fresh_db(postgres_dsn: str) -> Iterator[str]:
    name = f"migrate_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield postgres_dsn.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_dsn, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _race(start: Callable[[], None]) -> list[BaseException]:
    """Run ``start`` on RACERS threads released together; the errors they raised."""
    gate = threading.Barrier(RACERS)
    errors: list[BaseException] = []

    def one() -> None:
        gate.wait()
        try:
            start()
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return errors


def test_watchlist_replicas_migrate_one_database_at_once(fresh_db: str) -> None:
    def start() -> None:
        store = WatchlistStore(conninfo=fresh_db)
        try:
            store.migrate()
        finally:
            store.close()

    for _ in range(3):
        assert _race(start) == []
    with psycopg.connect(fresh_db) as c:
        assert c.execute("SELECT count(*) FROM watchlist").fetchone() == (0,)


def test_console_replicas_migrate_one_database_at_once(fresh_db: str) -> None:
    def start() -> None:
        open_workflow_store(fresh_db, hasher=FAST_HASHER).close()

    assert _race(start) == []
    store = open_workflow_store(fresh_db, hasher=FAST_HASHER)
    try:
        assert store.dialect == "postgres"
    finally:
        store.close()
