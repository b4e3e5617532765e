"""Watchlists: plates to alert on (exact or fuzzy), each with a reason, an owner and an expiry.

Entries live in the same database as the plate history (PostgreSQL, or SQLite
on one box). Nothing is ever deleted: ``expire`` moves the expiry to now and
``remove`` marks the entry removed, so "why did we alert on this car last
month" stays answerable; the audit log records who changed what.

:class:`WatchlistMatcher` is the part that runs on live reads. It holds the
active entries in memory (reloaded every ``refresh_s``), so a match costs a
dictionary lookup for exact entries plus one bounded weighted edit distance
per fuzzy entry: microseconds, well inside the one-second budget from read to
incident. Expiry is checked at match time against the read's time, so an
expired entry never matches even before the next reload. It knows nothing of
Kafka: the worker can call :meth:`WatchlistMatcher.match` directly, and
:mod:`services.watchlist_alerts` wraps it in a consumer of ``kuzet.plates.v1``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from uuid import UUID, uuid4

from core.clock import Clock, SystemClock
from core.redact import redact_text
from storage.audit import AuditLog, AuditRecord
from storage.db import Database
from storage.plates.text import PlateTextError, fold, normalise_plate, weighted_distance

WatchMode = Literal["exact", "fuzzy"]
Severity = Literal["low", "medium", "high", "critical"]
MANAGE_ROLES = frozenset({"investigator", "admin"})
MAX_EXPIRY = timedelta(days=366)


class WatchlistError(ValueError):
    """An entry that cannot be added or changed; the message says why."""


@dataclass(frozen=True, slots=True)
class WatchlistEntry:
    id: UUID
    plate: str
    mode: WatchMode
    max_distance: float
    reason: str
    severity: Severity
    created_by: str
    created_at: datetime
    expires_at: datetime
    removed_at: datetime | None = None
    removed_by: str | None = None

    def active(self, at: datetime) -> bool:
        return self.removed_at is None and at < self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "plate": self.plate,
            "mode": self.mode,
            "max_distance": self.max_distance,
            "reason": self.reason,
            "severity": self.severity,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "removed_at": self.removed_at.isoformat() if self.removed_at else None,
            "removed_by": self.removed_by,
        }


_COLS = "id, plate, mode, max_distance, reason, severity, created_by, created_at, expires_at, removed_at, removed_by"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS watchlist (
    id           {uuid} PRIMARY KEY,
    plate        TEXT NOT NULL,
    plate_folded TEXT NOT NULL,
    mode         TEXT NOT NULL CHECK (mode IN ('exact', 'fuzzy')),
    max_distance REAL NOT NULL DEFAULT 0,
    reason       TEXT NOT NULL,
    severity     TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   {time} NOT NULL,
    expires_at   {time} NOT NULL,
    removed_at   {time},
    removed_by   TEXT
)"""
_TYPES = {"postgres": {"uuid": "uuid", "time": "timestamptz"}, "sqlite": {"uuid": "TEXT", "time": "TEXT"}}
"""The one table in each dialect: ids and times are native types on PostgreSQL and text on SQLite (ISO times,
which sort as times), converted by ``WatchlistStore._id`` / ``_time``."""


class WatchlistStore:
    """Watchlist entries in PostgreSQL (``conninfo``) or SQLite (``sqlite_path``) on :class:`storage.db.Database`
    (the one connection layer: ``?`` SQL, transactions, reconnect). PostgreSQL is opened at first use, so a
    service can start while the database is down; an unreachable database is a :class:`WatchlistError`."""

    def __init__(self, *, conninfo: str | None = None, sqlite_path: Path | str | None = None) -> None:
        if (conninfo is None) == (sqlite_path is None):
            raise ValueError("give exactly one of conninfo or sqlite_path")
        self._db = Database(
            conninfo if conninfo is not None else Path(str(sqlite_path)),
            connect_timeout_s=10,
            lazy=True,
            unavailable=lambda exc: WatchlistError(redact_text(f"watchlist store unreachable: {exc}")),
        )
        self._sqlite = self._db.dialect == "sqlite"

    def migrate(self) -> None:
        with self._db.migration() as c:
            c.script(_SCHEMA.format(**_TYPES[self._db.dialect]))

    def close(self) -> None:
        self._db.close()

    def add(self, entry: WatchlistEntry) -> WatchlistEntry:
        with self._db.tx() as c:
            c.execute(
                f"INSERT INTO watchlist ({_COLS}, plate_folded) "  # noqa: S608  (column list is a constant)
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*self._dump(entry), fold(entry.plate)),
            )
        return entry

    def get(self, entry_id: UUID) -> WatchlistEntry | None:
        rows = self._db.read(f"SELECT {_COLS} FROM watchlist WHERE id = ?", (self._id(entry_id),))  # noqa: S608
        return self._load(rows[0]) if rows else None

    def entries(self, *, active_at: datetime | None = None) -> list[WatchlistEntry]:
        """All entries (newest first), or only those active at ``active_at``."""
        if active_at is None:
            rows = self._db.read(f"SELECT {_COLS} FROM watchlist ORDER BY created_at DESC")  # noqa: S608
        else:
            rows = self._db.read(
                f"SELECT {_COLS} FROM watchlist WHERE removed_at IS NULL AND expires_at > ? "  # noqa: S608
                "ORDER BY created_at DESC",
                (self._time(active_at),),
            )
        return [self._load(r) for r in rows]

    def expire(self, entry_id: UUID, at: datetime) -> bool:
        """Make an entry stop matching from ``at`` on (kept for the record). False if unknown or already over."""
        with self._db.tx() as c:
            cur = c.execute(
                "UPDATE watchlist SET expires_at = ? WHERE id = ? AND removed_at IS NULL AND expires_at > ?",
                (self._time(at), self._id(entry_id), self._time(at)),
            )
            return bool(cur.rowcount)

    def remove(self, entry_id: UUID, at: datetime, by: str) -> bool:
        """Mark an entry removed (a mistake, a closed case); it no longer matches nor lists as active."""
        with self._db.tx() as c:
            cur = c.execute(
                "UPDATE watchlist SET removed_at = ?, removed_by = ? WHERE id = ? AND removed_at IS NULL",
                (self._time(at), by, self._id(entry_id)),
            )
            return bool(cur.rowcount)

    # -- conversions between the two databases' types
    def _id(self, entry_id: UUID) -> Any:
        return str(entry_id) if self._sqlite else entry_id

    def _time(self, t: datetime | None) -> Any:
        if t is None:
            return None
        t = t.astimezone(UTC)
        return t.isoformat(timespec="microseconds") if self._sqlite else t

    def _dump(self, e: WatchlistEntry) -> tuple[Any, ...]:
        return (
            self._id(e.id),
            e.plate,
            e.mode,
            e.max_distance,
            e.reason,
            e.severity,
            e.created_by,
            self._time(e.created_at),
            self._time(e.expires_at),
            self._time(e.removed_at),
            e.removed_by,
        )

    @staticmethod
    def _load(row: Sequence[Any]) -> WatchlistEntry:
        def t(v: Any) -> datetime | None:
            if v is None:
                return None
            return (datetime.fromisoformat(v) if isinstance(v, str) else v).astimezone(UTC)

        eid, plate, mode, dist, reason, severity, by, created, expires, removed, removed_by = row
        created_at, expires_at = t(created), t(expires)
        assert created_at is not None and expires_at is not None
        return WatchlistEntry(
            id=UUID(str(eid)),
            plate=plate,
            mode=mode,
            max_distance=float(dist),
            reason=reason,
            severity=severity,
            created_by=by,
            created_at=created_at,
            expires_at=expires_at,
            removed_at=t(removed),
            removed_by=removed_by,
        )


def new_entry(
    plate: str,
    *,
    reason: str,
    created_by: str,
    expires_at: datetime,
    now: datetime,
    mode: WatchMode = "exact",
    max_distance: float = 1.0,
    severity: Severity = "high",
) -> WatchlistEntry:
    """Validate and build an entry (plate normalised, reason required, expiry in the future and bounded)."""
    try:
        norm = normalise_plate(plate)
    except PlateTextError as exc:
        raise WatchlistError(str(exc)) from None
    reason = reason.strip()
    if not (4 <= len(reason) <= 500):
        raise WatchlistError("a reason (4..500 characters) is required for a watchlist entry")
    if expires_at.tzinfo is None:
        raise WatchlistError("expiry needs a time zone")
    if expires_at <= now:
        raise WatchlistError("expiry must be in the future")
    if expires_at - now > MAX_EXPIRY:
        raise WatchlistError(f"expiry may be at most {MAX_EXPIRY.days} days ahead; renew it later")
    if mode == "fuzzy" and not (0.0 < max_distance <= 2.0):
        raise WatchlistError("fuzzy watchlist distance must be in (0, 2]")
    return WatchlistEntry(
        id=uuid4(),
        plate=norm,
        mode=mode,
        max_distance=max_distance if mode == "fuzzy" else 0.0,
        reason=reason,
        severity=severity,
        created_by=created_by,
        created_at=now.astimezone(UTC),
        expires_at=expires_at.astimezone(UTC),
    )


CHANGE_REASON_MIN = 4


def audited_change(
    audit: AuditLog,
    actor: str,
    role: str,
    action: str,
    details: dict[str, Any],
    now: datetime,
    reason: str,
    change: Callable[[], bool],
) -> bool:
    """Run one watchlist ``change`` on the record; returns what it returned (False: no such entry).

    Why three steps: a refusal (role, missing reason) is audited and nothing runs; otherwise a ``requested``
    record is written first, so a change whose audit cannot be written never happens (fail closed); then,
    **after** the change, its outcome (``ok``, ``not_found`` or ``error``), so the log says what really
    happened, not only what was asked. Raises :class:`PermissionError` for a role that may not change
    watchlists, :class:`WatchlistError` for a missing reason (both audited as ``refused``).
    """
    why = reason.strip()
    refusal: Exception | None = None
    if role not in MANAGE_ROLES:
        refusal = PermissionError(f"role {role!r} may not change watchlists (needs investigator or admin)")
    elif len(why) < CHANGE_REASON_MIN:
        verb = action.removeprefix("watchlist_")
        refusal = WatchlistError(f"a reason (at least {CHANGE_REASON_MIN} characters) is required to {verb}")

    def record(outcome: str, extra: dict[str, Any] | None = None) -> None:
        rec = AuditRecord(
            actor=actor, role=role, action=action, outcome=outcome, reason=why, details={**details, **(extra or {})}
        )
        audit.append(rec, now)

    if refusal is not None:
        record("refused", {"error": str(refusal)})
        raise refusal
    record("requested")
    try:
        done = change()
    except Exception as exc:
        record("error", {"error": redact_text(f"{type(exc).__name__}: {exc}")[:500]})
        raise
    record("ok" if done else "not_found")
    return done


@dataclass(frozen=True, slots=True)
class WatchlistMatch:
    entry: WatchlistEntry
    plate: str  # the plate as read
    distance: float


class WatchlistMatcher:
    """Matches live reads against the active entries, cached in memory and reloaded every ``refresh_s``."""

    def __init__(self, store: WatchlistStore, *, clock: Clock | None = None, refresh_s: float = 5.0) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.refresh_s = refresh_s
        self._loaded_at: float | None = None
        self._exact: dict[str, list[WatchlistEntry]] = {}
        self._fuzzy: list[WatchlistEntry] = []
        self._lock = threading.Lock()

    def refresh(self) -> None:
        entries = self.store.entries(active_at=self.clock.now())
        exact: dict[str, list[WatchlistEntry]] = {}
        fuzzy: list[WatchlistEntry] = []
        for e in entries:
            if e.mode == "fuzzy":
                fuzzy.append(e)
            else:
                exact.setdefault(e.plate, []).append(e)
        with self._lock:
            self._exact, self._fuzzy = exact, fuzzy
            self._loaded_at = self.clock.monotonic()

    def _maybe_refresh(self) -> None:
        if self._loaded_at is None or self.clock.monotonic() - self._loaded_at >= self.refresh_s:
            self.refresh()

    def match(self, plate: str, observed_at: datetime) -> list[WatchlistMatch]:
        """Entries this read matches (each entry at most once), nearest first; expired entries never match."""
        self._maybe_refresh()
        now = self.clock.now()
        with self._lock:
            exact, fuzzy = self._exact, self._fuzzy
        out = [WatchlistMatch(e, plate, 0.0) for e in exact.get(plate, ()) if e.active(observed_at) and e.active(now)]
        for e in fuzzy:
            if not (e.active(observed_at) and e.active(now)):
                continue
            d = weighted_distance(e.plate, plate, limit=e.max_distance)
            if d <= e.max_distance + 1e-9:
                out.append(WatchlistMatch(e, plate, d))
        out.sort(key=lambda m: m.distance)
        return out
