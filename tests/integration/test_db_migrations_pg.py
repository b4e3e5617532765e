"""Replicas that start together migrate one PostgreSQL schema without tripping over each other.

Two plate indexers started at once (as ``deploy/k8s/plate-indexer.yaml`` runs them) both ran
``CREATE TABLE IF NOT EXISTS watchlist``; PostgreSQL lets both past the ``IF NOT EXISTS`` check and the
loser fails on the catalog's unique index (``pg_type_typname_nsp_index``), crashing that indexer.
``Database.migration`` serialises schema creation with an advisory lock; here eight connections race to
create the watchlist and the console's stores in a fresh database, several rounds each.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import pytest

from dispatch.testing import FAST_HASHER
from storage.watchlist import WatchlistStore
from storage.workflow import open_workflow_store

pytestmark = [pytest.mark.services]

RACERS = 8


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


def test_watchlist_replicas_migrate_one_database_at_once(db_url: str) -> None:
    def start() -> None:
        store = WatchlistStore(conninfo=db_url)
        try:
            store.migrate()
        finally:
            store.close()

    for _ in range(3):
        assert _race(start) == []
    with psycopg.connect(db_url) as c:
        assert c.execute("SELECT count(*) FROM watchlist").fetchone() == (0,)


def test_console_replicas_migrate_one_database_at_once(db_url: str) -> None:
    def start() -> None:
        open_workflow_store(db_url, hasher=FAST_HASHER).close()

    assert _race(start) == []
    store = open_workflow_store(db_url, hasher=FAST_HASHER)
    try:
        assert store.dialect == "postgres"
    finally:
        store.close()
