"""Open the plate history, audit log and watchlist stores from one database URL.

``postgresql://...`` (or a libpq ``host=... dbname=...`` string) selects
PostgreSQL; ``sqlite:///path`` or a plain file path selects SQLite (one box).
All three live in the same database, as DESIGN.md asks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from storage.audit import AuditLog, PostgresAuditLog, SqliteAuditLog
from storage.plates.postgres import PostgresHistoryStore
from storage.plates.sqlite import SqliteHistoryStore
from storage.plates.store import HistoryStore
from storage.watchlist import WatchlistStore

ENV_VAR = "KUZET_PLATES_DB"
DEFAULT_SQLITE = Path("var/plates.sqlite3")


def default_url() -> str:
    return os.environ.get(ENV_VAR) or f"sqlite:///{DEFAULT_SQLITE}"


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://")) or ("=" in url and "dbname" in url)


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///").removeprefix("sqlite://"))


@dataclass
class PlateStores:
    history: HistoryStore
    audit: AuditLog
    watchlist: WatchlistStore

    def migrate(self) -> None:
        self.history.migrate()
        self.audit.migrate()
        self.watchlist.migrate()

    def close(self) -> None:
        self.history.close()
        self.audit.close()
        self.watchlist.close()


def open_stores(url: str | None = None, *, migrate: bool = True) -> PlateStores:
    """All three stores on one database; ``migrate`` creates missing tables (idempotent)."""
    url = url or default_url()
    stores: PlateStores
    if is_postgres(url):
        stores = PlateStores(PostgresHistoryStore(url), PostgresAuditLog(url), WatchlistStore(conninfo=url))
    else:
        path = sqlite_path(url)
        stores = PlateStores(SqliteHistoryStore(path), SqliteAuditLog(path), WatchlistStore(sqlite_path=path))
    if migrate:
        stores.migrate()
    return stores
