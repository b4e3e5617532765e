"""Opening a spool file that turns out to be damaged: keep it, salvage what reads, start on a fresh one.

Why not refuse to start: a worker that cannot open its outbox analyses
nothing, so one damaged file (a disk error, a copy cut short) would take its
cameras off the air until someone intervenes. Why not delete it: it may hold
events nobody else has. So the damaged file (with its ``-wal`` and ``-shm``)
is renamed to ``<name>.corrupt-<utc time>`` and kept, every outbox row that
still reads is copied, in order, into a fresh spool, and the process says so
loudly: an error log with the counts, ``SpoolStats.quarantined`` /
``SpoolStats.salvaged`` (the metrics ``kuzet_spool_quarantined`` and
``kuzet_spool_salvaged``) and the alert rule ``KuzetSpoolQuarantined``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_ROW = "topic, key, value, headers, blob, blob_key, size, created_ms"


@dataclass(frozen=True, slots=True)
class Quarantine:
    """What happened to a damaged spool file at open."""

    moved_to: Path
    reason: str
    salvaged: int


def check(db: sqlite3.Connection) -> None:
    """Raise ``sqlite3.DatabaseError`` unless the file passes SQLite's own structural check."""
    result = db.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise sqlite3.DatabaseError(f"quick_check: {result}")


def quarantine(path: Path, reason: str) -> tuple[Path, list[tuple[Any, ...]]]:
    """Move the damaged file (and its WAL / shared memory) aside; return where, and the rows that still read."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    moved = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{path}{suffix}")
        if src.exists():
            src.rename(Path(f"{moved}{suffix}"))
    rows = _salvage(moved)
    log.error(
        "spool file damaged: moved aside, readable records carried over",
        extra={"spool": str(path), "moved_to": str(moved), "salvaged": len(rows), "error": reason},
    )
    return moved, rows


def _salvage(path: Path) -> list[tuple[Any, ...]]:
    """Every outbox row, in id order, up to the first one SQLite cannot read (none if the file is not SQLite)."""
    rows: list[tuple[Any, ...]] = []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return rows
    try:
        cursor = db.execute(f"SELECT {_ROW} FROM outbox ORDER BY id")  # noqa: S608  # constant column list
        while True:
            try:
                row = cursor.fetchone()
            except sqlite3.Error:
                break
            if row is None:
                break
            rows.append(tuple(row))
    except sqlite3.Error:
        pass
    finally:
        db.close()
    return rows


def restore(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert salvaged rows into a fresh outbox, keeping their order (new ids ascend as the old ones did)."""
    if not rows:
        return
    db.execute("BEGIN IMMEDIATE")
    db.executemany(f"INSERT INTO outbox ({_ROW}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)  # noqa: S608
    db.execute("COMMIT")
