"""What the console needs from plate history and watchlists: the protocol, its types and its errors.

Why a narrow protocol here: the search itself (normalisation, fuzzy ranking,
audit before results) belongs to the plates side and is shared with the
``kuzet plates search`` command; the console only collects a justified query
from an investigator, calls that one function, and shows what comes back. The
protocol also lets the console's tests drive the pages with a small fake while
the real adapter is tested against real PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from core.snapshot import SnapshotRef

MatchMode = Literal["exact", "wildcard", "fuzzy"]


class PlateAccessError(PermissionError):
    """The plates side refused the search (role, missing reason); it has audited the refusal."""


class PlateUnavailable(RuntimeError):
    """The plate history or its audit log cannot be used right now; the search fails closed (503)."""


class PlateQueryError(ValueError):
    """The query cannot be run (bad plate text, absurd wildcard, range too large); message is for the user."""


class WatchEntryNotFound(KeyError):
    """No watchlist entry has that id."""


@dataclass(frozen=True, slots=True)
class PlateQuery:
    text: str
    mode: MatchMode = "exact"
    max_edits: int = 1
    since_ms: int | None = None
    until_ms: int | None = None
    cameras: Sequence[str] = ()
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class PlateHit:
    event_id: str
    plate: str
    raw_text: str
    camera_id: str
    seen_at_ms: int
    confidence: float
    country: str = ""
    distance: float | None = None
    snapshot: SnapshotRef | None = None


@dataclass(frozen=True, slots=True)
class PlateResults:
    hits: list[PlateHit]
    total: int | None = None  # when the backend knows it
    audit_id: str | None = None


@dataclass(frozen=True, slots=True)
class WatchEntry:
    id: str
    plate: str
    match: str  # exact / fuzzy
    reason: str
    created_by: str
    created_at_ms: int
    expires_at_ms: int | None
    active: bool
    extra: dict[str, Any] = field(default_factory=dict)


class PlateService(Protocol):
    def search(
        self, *, user: str, role: str, reason: str, query: PlateQuery, action: str = "plate_search"
    ) -> PlateResults:
        """Audited search (``action``: plate_search, or plate_export for CSV).

        Raises PlateAccessError / PlateQueryError.
        """
        ...

    def audit_refused(self, *, user: str, role: str, action: str, detail: str) -> None:
        """Record a request the console refused before it reached the plates side (wrong role)."""
        ...

    def audit_view(self, *, user: str, role: str, action: str, details: dict[str, Any]) -> None:
        """Record a view of evidence before serving it; raises PlateUnavailable if the record cannot be written."""
        ...

    def watchlist(self) -> list[WatchEntry]: ...

    def watch_add(
        self, *, user: str, role: str, plate: str, match: str, reason: str, expires_at_ms: int | None
    ) -> WatchEntry: ...

    def watch_expire(self, *, user: str, role: str, entry_id: str, reason: str) -> None:
        """Raises WatchEntryNotFound for an unknown id."""
        ...

    def watch_remove(self, *, user: str, role: str, entry_id: str, reason: str) -> None:
        """Raises WatchEntryNotFound for an unknown id."""
        ...
