"""The one plate-search entry point: access check, bounds, audit, query, snapshot links.

The command line (``kuzet plates search``) and the web console call
:func:`search_plates` and nothing below it, so the rules hold for every caller:

1. only the ``investigator`` and ``admin`` roles may search, and only with a
   stated reason or case number;
2. every attempt, refused, invalid, failed, empty or successful, writes one
   audit record (who, role, query and filters, reason, outcome, result count);
3. the audit record is written *before* results are handed back, and if it
   cannot be written the search raises :class:`AuditUnavailable` and returns
   nothing (fail closed);
4. snapshot links are presigned only for the hits returned, with a short expiry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.clock import Clock, SystemClock
from storage.audit import AuditEntry, AuditLog, AuditRecord, AuditUnavailable
from storage.plates.query import QueryError, SearchLimits, SearchQuery, ValidQuery, validate
from storage.plates.store import HistoryStore, QueryTooBroad, SearchHit, StoreError
from storage.snapshots import SnapshotStore

log = logging.getLogger(__name__)

SEARCH_ROLES = frozenset({"investigator", "admin"})
ACTION = "plate_search"
REASON_MIN, REASON_MAX = 4, 500

__all__ = [
    "SEARCH_ROLES",
    "AccessDenied",
    "AuditUnavailable",
    "Principal",
    "QueryError",
    "SearchResult",
    "StoreError",
    "search_plates",
]


class AccessDenied(PermissionError):
    """The caller may not search (role) or did not say why (reason); the refusal is audited."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user as the caller's authentication established it."""

    user: str
    role: str


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: tuple[SearchHit, ...]
    has_more: bool
    query: ValidQuery
    audit_seq: int
    next_offset: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "hits": [h.to_json() for h in self.hits],
            "has_more": self.has_more,
            "next_offset": self.next_offset,
            "audit_seq": self.audit_seq,
            "since": self.query.since.isoformat(),
            "until": self.query.until.isoformat(),
        }


def _audit(
    action: str,
    audit: AuditLog,
    principal: Principal,
    reason: str,
    details: dict[str, Any],
    outcome: str,
    at: datetime,
    result_count: int | None = None,
) -> AuditEntry:
    record = AuditRecord(
        actor=principal.user[:128],
        role=principal.role[:32],
        action=action,
        outcome=outcome,
        reason=reason[:REASON_MAX],
        details=details,
        result_count=result_count,
    )
    return audit.append(record, at)  # raises AuditUnavailable: nothing below runs


def search_plates(
    query: SearchQuery,
    *,
    principal: Principal,
    reason: str | None,
    store: HistoryStore,
    audit: AuditLog,
    snapshots: SnapshotStore | None = None,
    limits: SearchLimits | None = None,
    clock: Clock | None = None,
    url_expires_s: int = 900,
    action: str = ACTION,
) -> SearchResult:
    """Search the plate history on behalf of ``principal``; see the module docstring for the rules.

    Raises :class:`AccessDenied` (role / reason), :class:`QueryError` (bounds, malformed text, too broad),
    :class:`StoreError` (database), :class:`AuditUnavailable` (audit not written: no results).
    Each of those is audited first, except the last, which by definition could not be.
    """
    limits = limits or SearchLimits()
    clock = clock or SystemClock()
    now = clock.now()
    why = (reason or "").strip()
    details: dict[str, Any] = {"query": query.describe()}

    if principal.role not in SEARCH_ROLES or not principal.user.strip():
        message = f"role {principal.role!r} may not search plate history (needs investigator or admin)"
        _audit(action, audit, principal, why, {**details, "error": message}, "refused", now)
        raise AccessDenied(message)
    if not (REASON_MIN <= len(why) <= REASON_MAX):
        message = f"a reason or case number ({REASON_MIN}..{REASON_MAX} characters) is required to search"
        _audit(action, audit, principal, why, {**details, "error": message}, "refused", now)
        raise AccessDenied(message)
    try:
        valid = validate(query, limits, now)
    except QueryError as exc:
        _audit(action, audit, principal, why, {**details, "error": str(exc)}, "invalid", now)
        raise
    details["normalised"] = valid.plate
    details["window"] = [valid.since.isoformat(), valid.until.isoformat()]
    try:
        page = store.find(valid)
    except QueryTooBroad as exc:
        _audit(action, audit, principal, why, {**details, "error": str(exc)}, "invalid", now)
        raise QueryError(str(exc)) from None
    except StoreError as exc:
        _audit(action, audit, principal, why, {**details, "error": str(exc)[:500]}, "error", now)
        raise
    entry = _audit(
        action,
        audit,
        principal,
        why,
        {**details, "candidates": page.candidates},
        "ok",
        now,
        result_count=len(page.hits),
    )
    hits = tuple(h.with_url(_url(snapshots, h, url_expires_s)) for h in page.hits)
    next_offset = valid.offset + valid.limit if page.has_more else None
    return SearchResult(hits=hits, has_more=page.has_more, query=valid, audit_seq=entry.seq, next_offset=next_offset)


def _url(snapshots: SnapshotStore | None, hit: SearchHit, expires_s: int) -> str | None:
    """A presigned link, or None (no store, no snapshot, or the store failed: the hit is still shown)."""
    if snapshots is None or hit.snapshot is None:
        return None
    try:
        return snapshots.presigned_url(hit.snapshot, expires_s)
    except Exception as exc:  # a broken link must not hide an audited result
        log.warning("snapshot link for %s failed: %s", hit.event_id, exc)
        return None
