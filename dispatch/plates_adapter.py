"""The console's :class:`~dispatch.plates.PlateService` over ``storage.plates`` (search, audit, watchlists).

Everything that matters for access and audit happens in
:func:`storage.plates.search.search_plates` and
:func:`storage.watchlist.audited_change`, the same functions the command line
calls; this adapter only translates types and exceptions. Snapshot links are
not presigned by the plates side here: the console serves snapshots itself
through signed, expiring links, so no storage URL or signature reaches a
browser and the CSP can stay ``img-src 'self'``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from pydantic import ValidationError

from core.redact import redact_text
from dispatch.plates import (
    PlateAccessError,
    PlateHit,
    PlateQuery,
    PlateQueryError,
    PlateResults,
    PlateService,
    PlateUnavailable,
    WatchEntry,
    WatchEntryNotFound,
)
from storage.audit import AuditLog, AuditRecord, AuditUnavailable
from storage.audit_anchors import AnchoringAuditLog, AnchorSink, DirAnchorSink, LogAnchorSink, s3_anchor_sink
from storage.plates.factory import PlateStores, open_stores
from storage.plates.query import QueryError, SearchQuery
from storage.plates.search import AccessDenied, Principal, StoreError, search_plates
from storage.watchlist import WatchlistEntry, WatchlistError, audited_change, new_entry

log = logging.getLogger(__name__)

DEFAULT_WATCH_DAYS = 30


def anchor_sinks(settings: Any) -> list[AnchorSink]:
    """The places the console's settings name for audit anchors (log, a directory, an S3 bucket of its own)."""
    conf = settings.audit_anchors
    sinks: list[AnchorSink] = []
    if conf.log:
        sinks.append(LogAnchorSink())
    if conf.dir is not None:
        sinks.append(DirAnchorSink(conf.dir))
    if conf.s3_bucket:
        sinks.append(s3_anchor_sink(settings.storage.s3, conf.s3_bucket))
    return sinks


def anchored(audit: AuditLog, settings: Any) -> AuditLog:
    """``audit`` writing anchors where the settings say (unchanged when they name none)."""
    sinks = anchor_sinks(settings)
    if not sinks:
        return audit
    conf = settings.audit_anchors
    return AnchoringAuditLog(audit, sinks, every_records=conf.every_records, every_s=conf.every_s)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


@dataclass
class StoragePlateService:
    stores: PlateStores

    @classmethod
    def open(cls, settings: Any) -> StoragePlateService:
        stores = open_stores(settings.plates_database or settings.database)
        stores.audit = anchored(stores.audit, settings)
        return cls(stores)

    def close(self) -> None:
        self.stores.close()

    def search(
        self, *, user: str, role: str, reason: str, query: PlateQuery, action: str = "plate_search"
    ) -> PlateResults:
        try:
            sq = SearchQuery(
                text=query.text,
                mode=query.mode,  # type: ignore[arg-type]
                since=_dt(query.since_ms),
                until=_dt(query.until_ms),
                cameras=tuple(query.cameras),
                max_distance=float(query.max_edits),
                limit=min(query.limit, 200),
                offset=query.offset,
            )
        except ValidationError as exc:
            raise PlateQueryError(f"invalid search: {exc.errors()[0]['msg']}") from None
        try:
            res = search_plates(
                sq,
                principal=Principal(user, role),
                reason=reason,
                store=self.stores.history,
                audit=self.stores.audit,
                action=action,
            )
        except AccessDenied as exc:
            raise PlateAccessError(str(exc)) from None
        except QueryError as exc:
            raise PlateQueryError(str(exc)) from None
        except AuditUnavailable:
            raise PlateUnavailable("the audit log cannot be written, so no search can run (fail closed)") from None
        except StoreError:
            raise PlateUnavailable("the plate history database is unavailable") from None
        hits = [
            PlateHit(
                event_id=str(h.event_id),
                plate=h.plate,
                raw_text=h.raw_text,
                camera_id=h.camera_id,
                seen_at_ms=_ms(h.observed_at),
                confidence=h.confidence,
                distance=h.distance,
                snapshot=h.snapshot,
            )
            for h in res.hits
        ]
        return PlateResults(hits=hits, total=None, audit_id=str(res.audit_seq))

    def audit_refused(self, *, user: str, role: str, action: str, detail: str) -> None:
        """A role the route refused still leaves a trace: every plate search attempt is audited (issue 3)."""
        record = AuditRecord(
            actor=user[:128], role=role[:32], action=action, outcome="refused", details={"error": detail[:500]}
        )
        self.stores.audit.append(record, datetime.now(UTC))

    def audit_view(self, *, user: str, role: str, action: str, details: dict[str, Any]) -> None:
        """Record a view of evidence before it is served; raises PlateUnavailable when that cannot be written."""
        record = AuditRecord(actor=user[:128], role=role[:32], action=action, outcome="ok", details=details)
        try:
            self.stores.audit.append(record, datetime.now(UTC))
        except AuditUnavailable:
            raise PlateUnavailable("the audit log cannot be written, so this cannot be shown (fail closed)") from None

    def watchlist(self) -> list[WatchEntry]:
        now = datetime.now(UTC)
        return [self._entry(e, now) for e in self.stores.watchlist.entries()]

    @staticmethod
    def _entry(e: WatchlistEntry, now: datetime) -> WatchEntry:
        return WatchEntry(
            id=str(e.id),
            plate=e.plate,
            match=e.mode,
            reason=e.reason,
            created_by=e.created_by,
            created_at_ms=_ms(e.created_at),
            expires_at_ms=_ms(e.expires_at),
            active=e.active(now),
            extra={"removed": e.removed_at is not None, "severity": e.severity},
        )

    def watch_add(
        self, *, user: str, role: str, plate: str, match: str, reason: str, expires_at_ms: int | None
    ) -> WatchEntry:
        now = datetime.now(UTC)
        expires = _dt(expires_at_ms) or now + timedelta(days=DEFAULT_WATCH_DAYS)
        try:
            entry = new_entry(
                plate,
                reason=reason,
                created_by=user,
                expires_at=expires,
                now=now,
                mode="fuzzy" if match == "fuzzy" else "exact",
            )
        except WatchlistError as exc:
            raise PlateQueryError(str(exc)) from None

        def add() -> bool:
            self.stores.watchlist.add(entry)
            return True

        with _audit_written():
            audited_change(self.stores.audit, user, role, "watchlist_add", entry.to_json(), now, reason, add)
        return self._entry(entry, now)

    def watch_expire(self, *, user: str, role: str, entry_id: str, reason: str) -> None:
        self._change_entry(user, role, entry_id, reason, "expire")

    def watch_remove(self, *, user: str, role: str, entry_id: str, reason: str) -> None:
        self._change_entry(user, role, entry_id, reason, "remove")

    def _change_entry(self, user: str, role: str, entry_id: str, reason: str, action: str) -> None:
        """Expire or remove one entry, audited (fail closed); WatchEntryNotFound when no entry changed."""
        uid = self._uuid(entry_id)
        now = datetime.now(UTC)
        watchlist = self.stores.watchlist

        def change() -> bool:
            return watchlist.expire(uid, now) if action == "expire" else watchlist.remove(uid, now, user)

        with _audit_written():
            details = {"id": str(uid)}
            changed = audited_change(self.stores.audit, user, role, f"watchlist_{action}", details, now, reason, change)
        if not changed:
            raise WatchEntryNotFound(entry_id)

    @staticmethod
    def _uuid(entry_id: str) -> UUID:
        try:
            return UUID(entry_id)
        except ValueError:
            raise WatchEntryNotFound(entry_id) from None


@contextmanager
def _audit_written() -> Iterator[None]:
    """A watchlist change as the console reports it: refused (403), invalid (400), or not made because its
    audit record cannot be written (503)."""
    try:
        yield
    except AuditUnavailable:
        raise PlateUnavailable("the audit log cannot be written; the change was not made") from None
    except PermissionError as exc:
        raise PlateAccessError(str(exc)) from None
    except WatchlistError as exc:
        raise PlateQueryError(str(exc)) from None


def open_plate_service(settings: Any) -> PlateService | None:
    """The plate service for the console's database, or None (plate pages say so, the rest works) when that
    database cannot be opened. Only database and file errors mean "not available"; anything else is a bug and
    is raised."""
    try:
        return StoragePlateService.open(settings)
    except (StoreError, AuditUnavailable, WatchlistError, sqlite3.Error, psycopg.Error, OSError) as exc:
        # Said out loud: without this the console silently loses plate search, watchlists and their audit.
        log.error(
            "console: plate history unavailable, plate search and watchlists are off: %s",
            redact_text(f"{type(exc).__name__}: {exc}"),
        )
        return None
