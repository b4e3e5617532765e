"""Watchlist routes: list, add, expire and remove entries (each change audited by the plates side)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from dispatch.api.common import to_ms
from dispatch.api.plates import plate_service
from dispatch.plates import WatchEntry, WatchEntryNotFound
from dispatch.security import INVESTIGATE_API, AuthFirstRoute
from storage.accounts import Session

router = APIRouter(route_class=AuthFirstRoute)  # role checked before the body is read


class WatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plate: str = Field(min_length=2, max_length=32)
    match: Literal["exact", "fuzzy"] = "exact"
    reason: str = Field(min_length=4, max_length=500)
    expires_at: datetime | None = None


def watch_json(e: WatchEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "plate": e.plate,
        "match": e.match,
        "reason": e.reason,
        "created_by": e.created_by,
        "created_at_ms": e.created_at_ms,
        "expires_at_ms": e.expires_at_ms,
        "active": e.active,
        "removed": bool(e.extra.get("removed", False)),
    }


@router.get("/watchlist", tags=["watchlist"])
def watchlist(request: Request, session: Annotated[Session, Depends(INVESTIGATE_API)]) -> dict[str, Any]:
    """Watchlist entries, active and expired."""
    return {"items": [watch_json(e) for e in plate_service(request).watchlist()]}


@router.post("/watchlist", tags=["watchlist"])
def watch_add(body: WatchIn, request: Request, session: Annotated[Session, Depends(INVESTIGATE_API)]) -> dict[str, Any]:
    """Add a plate to the watchlist; a live read that matches raises a `watchlist_hit` incident."""
    e = plate_service(request).watch_add(
        user=session.user.username,
        role=session.user.role.value,
        plate=body.plate,
        match=body.match,
        reason=body.reason,
        expires_at_ms=to_ms(body.expires_at),
    )
    return watch_json(e)


ChangeReason = Annotated[
    str, Query(min_length=4, max_length=500, description="why (case number, mistake ...): required, audited")
]


def _entry_change_route(action: str, method: str, path: str, doc: str) -> None:
    """Register the route that expires or removes an entry: the two differ only in method, path and store call."""

    def change(
        entry_id: str, reason: ChangeReason, request: Request, session: Annotated[Session, Depends(INVESTIGATE_API)]
    ) -> dict[str, bool]:
        svc = plate_service(request)
        apply = svc.watch_expire if action == "expire" else svc.watch_remove
        apply(user=session.user.username, role=session.user.role.value, entry_id=_entry_id(entry_id), reason=reason)
        return {"ok": True}

    change.__doc__ = doc
    router.add_api_route(path, change, methods=[method], tags=["watchlist"], name=f"watch_{action}")


_entry_change_route(
    "expire",
    "POST",
    "/watchlist/{entry_id}/expire",
    "Expire an entry now (kept for the record); audited after the change, with its outcome.",
)
_entry_change_route(
    "remove", "DELETE", "/watchlist/{entry_id}", "Remove an entry; audited after the change, with its outcome."
)


def _entry_id(entry_id: str) -> str:
    if len(entry_id) > 64:
        raise WatchEntryNotFound(entry_id)
    return entry_id
