"""A failed SQLite write surfaces its real error ("database or disk is full"), not a failed ROLLBACK.

SQLite rolls a transaction back by itself on a full disk; the stores then ran ``ROLLBACK`` again, which
raised "cannot rollback - no transaction is active" and replaced the real error (issue #10.13). The disk
is made "full" with ``PRAGMA max_page_count`` (the same SQLITE_FULL code a full filesystem gives), and
the store must work again once there is room.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from event_bus import topics
from event_bus.interfaces import OutRecord
from event_bus.local_bus import LocalBusPublisher
from event_bus.spool import Spool
from storage.audit import AuditRecord, SqliteAuditLog
from storage.plates.sqlite import SqliteHistoryStore
from storage.plates.store import PlateReadRecord, StoreError
from storage.watchlist import WatchlistStore
from storage.workflow import open_workflow_store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BIG = "x" * 200_000


def _fill(db: sqlite3.Connection) -> Callable[[], None]:
    """Cap the file at its current size; returns a function that lifts the cap again."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")

    def lift() -> None:
        db.execute("PRAGMA max_page_count = 1073741823")

    return lift


def _assert_real_error(exc: BaseException) -> None:
    text = f"{exc} {exc.__cause__ or ''}"
    assert "full" in text, text
    assert "cannot rollback" not in text, text


def test_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3", durability="normal")
    lift = _fill(spool._db)
    with pytest.raises(sqlite3.OperationalError) as err:
        spool.append(OutRecord(topics.INCIDENTS, "cam-1", BIG.encode()))
    _assert_real_error(err.value)
    assert spool.depth() == 0
    lift()
    spool.append(OutRecord(topics.INCIDENTS, "cam-1", b"{}"))
    assert spool.depth() == 1
    spool.close()


def test_local_bus(tmp_path: Path) -> None:
    pub = LocalBusPublisher(tmp_path / "bus.sqlite3")
    lift = _fill(pub._db)
    [err] = pub.publish([OutRecord(topics.INCIDENTS, "cam-1", BIG.encode())])
    assert err is not None
    _assert_real_error(err)
    lift()
    assert pub.publish([OutRecord(topics.INCIDENTS, "cam-1", b"{}")]) == [None]


def test_workflow_store(tmp_path: Path) -> None:
    store = open_workflow_store(tmp_path / "console.sqlite3")
    lift = _fill(store._db._conn)
    with pytest.raises(sqlite3.OperationalError) as err, store._db.tx() as c:
        c.execute("INSERT INTO wf_meta (name, value) VALUES ('pad', ?)", (BIG,))
    _assert_real_error(err.value)
    lift()
    with store._db.tx() as c:
        c.execute("INSERT INTO wf_meta (name, value) VALUES ('pad', 'small')")


def test_audit_log(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "plates.sqlite3")
    log.migrate()
    lift = _fill(log._db._conn)
    with pytest.raises(Exception) as err:
        log.append(AuditRecord("ayan", "investigator", "plate_search", "ok", BIG), T0)
    _assert_real_error(err.value)
    lift()
    assert log.append(AuditRecord("ayan", "investigator", "plate_search", "ok", "case 1"), T0).seq == 1


def test_sqlite_plate_history(tmp_path: Path) -> None:
    store = SqliteHistoryStore(tmp_path / "plates.sqlite3")
    store.migrate()
    lift = _fill(store._db)
    reads = [PlateReadRecord(uuid4(), T0 + timedelta(seconds=i), "cam-1", f"{i:03d}ABC02", 0.9) for i in range(3000)]
    with pytest.raises(StoreError) as err:
        store.insert(reads)
    _assert_real_error(err.value)
    lift()
    assert store.insert(reads[:10]) == 10


def test_watchlist_store(tmp_path: Path) -> None:
    store = WatchlistStore(sqlite_path=tmp_path / "plates.sqlite3")
    store.migrate()
    lift = _fill(store._db._conn)
    with pytest.raises(sqlite3.OperationalError) as err, store._db.tx() as cur:
        cur.execute("CREATE TABLE pad (v TEXT)")
        cur.execute("INSERT INTO pad VALUES (?)", (BIG,))
    _assert_real_error(err.value)
    lift()
