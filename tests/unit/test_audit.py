"""Audit log: hash chain, append-only triggers, tamper detection, anchors (SQLite; PostgreSQL in integration)."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.audit import GENESIS, AuditRecord, SqliteAuditLog, chain_hash, verify

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def log(tmp_path: Path) -> SqliteAuditLog:
    a = SqliteAuditLog(tmp_path / "audit.sqlite3")
    a.migrate()
    for i in range(5):
        a.append(
            AuditRecord("ayan", "investigator", "plate_search", "ok", f"case {i}", {"query": {"text": "123ABC02"}}, i),
            T0 + timedelta(seconds=i),
        )
    return a


def raw(tmp_path: Path) -> sqlite3.Connection:
    """A second connection that, like a superuser, drops the triggers first."""
    db = sqlite3.connect(tmp_path / "audit.sqlite3", isolation_level=None)
    db.execute("DROP TRIGGER audit_log_no_update")
    db.execute("DROP TRIGGER audit_log_no_delete")
    return db


def test_chain_links_each_row_to_the_previous(log: SqliteAuditLog) -> None:
    entries = list(log.entries())
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS
    for prev, cur in itertools.pairwise(entries):
        assert cur.prev_hash == prev.hash
        assert chain_hash(cur.prev_hash, cur.body()) == cur.hash
    report = verify(log)
    assert report.ok and report.checked == 5 and report.head_seq == 5


def test_triggers_refuse_update_and_delete(log: SqliteAuditLog, tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "audit.sqlite3", isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit_log WHERE seq = 2")


@pytest.mark.parametrize(
    ("column", "value"),
    [("reason", "routine"), ("actor", "someone-else"), ("result_count", 0), ("details", '{"query":{}}'), ("at", "x")],
)
def test_editing_any_column_is_detected_at_that_row(log, tmp_path: Path, column: str, value: object) -> None:
    db = raw(tmp_path)
    if column == "at":
        value = (T0 + timedelta(hours=1)).isoformat(timespec="microseconds")
    db.execute(f"UPDATE audit_log SET {column} = ? WHERE seq = 3", (value,))
    report = verify(log)
    assert not report.ok and report.first_bad_seq == 3 and "edited" in (report.problem or "")


def test_rehashing_an_edited_row_still_breaks_the_next_link(log, tmp_path: Path) -> None:
    db = raw(tmp_path)
    row = next(e for e in log.entries() if e.seq == 2)
    forged = chain_hash(row.prev_hash, row.body().replace(b"case 1", b"case X"))
    db.execute("UPDATE audit_log SET reason = 'case X', hash = ? WHERE seq = 2", (forged,))
    report = verify(log)
    assert not report.ok and report.first_bad_seq == 3


def test_deleted_rows_are_detected_and_a_cut_tail_needs_the_anchor(log, tmp_path: Path) -> None:
    head = verify(log)
    db = raw(tmp_path)
    db.execute("DELETE FROM audit_log WHERE seq = 5")
    assert verify(log).ok  # a shorter chain is still a chain ...
    report = verify(log, anchor=(head.head_seq, head.head_hash))
    assert not report.ok and "missing" in (report.problem or "")  # ... which the anchor exposes
    db.execute("DELETE FROM audit_log WHERE seq = 2")
    report = verify(log)
    assert not report.ok and report.first_bad_seq == 3 and "gap" in (report.problem or "")


def test_append_continues_the_chain_after_reopen(log, tmp_path: Path) -> None:
    again = SqliteAuditLog(tmp_path / "audit.sqlite3")
    entry = again.append(AuditRecord("b", "admin", "watchlist_add", "ok"), T0 + timedelta(minutes=1))
    assert entry.seq == 6 and verify(again).ok
