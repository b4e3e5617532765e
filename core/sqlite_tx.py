"""Rolling back a failed SQLite write without hiding why it failed.

When a write fails with "database or disk is full" or an I/O error, SQLite may
already have rolled the transaction back on its own. A plain ``ROLLBACK`` then
raises "cannot rollback - no transaction is active", and that second error
replaces the real one in the traceback, the log and the caller's ``except``:
the operator reads about a transaction nobody opened instead of a full disk.
"""

from __future__ import annotations

import logging
import sqlite3

log = logging.getLogger(__name__)


def rollback(db: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open; never raise (the caller is already handling the real error)."""
    if not db.in_transaction:
        return
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error as exc:
        log.warning("rollback after a failed write also failed: %s", exc)
