"""Incident routes: list with filters and pages, one incident with its history, workflow actions, the
snapshot, the live feed (SSE) and the users an incident can be assigned to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from dispatch.api.common import to_ms
from dispatch.context import ConsoleContext, ctx_of
from dispatch.evidence import service_of as evidence_of
from dispatch.incident_ids import valid_incident_id
from dispatch.security import DISPATCH_API, AuthFirstRoute, session_from_request
from dispatch.snapshot_links import snapshot_response
from storage.accounts import Role, Session
from storage.db import NotFoundError
from storage.incident_records import IncidentFilter, IncidentRecord
from storage.incident_rules import Action, WorkflowStatus

router = APIRouter(route_class=AuthFirstRoute)  # role checked before the body is read

IncidentType = Literal[
    "person_in_zone",
    "loitering",
    "line_crossing",
    "crowding",
    "fire",
    "smoke",
    "watchlist_hit",
    "stopped_vehicle",
    "wrong_way",
    "speeding",
    "camera_flooding",
]
Severity = Literal["low", "medium", "high", "critical"]


def _cursor(value: str | None) -> tuple[int, str] | None:
    """``{started_at_ms}_{incident_id}`` -> its parts; HTTP 400 when it is not one (never a 500)."""
    if not value:
        return None
    ms, _, iid = value.partition("_")
    if not ms.isdigit() or len(ms) > 16:
        raise HTTPException(400, "bad page cursor")
    try:
        return int(ms), valid_incident_id(iid)
    except NotFoundError:
        raise HTTPException(400, "bad page cursor") from None


def incident_filter(
    ctx: ConsoleContext,
    *,
    types: list[str],
    severities: list[str],
    statuses: list[str],
    cameras: list[str],
    groups: list[str],
    since: datetime | None,
    until: datetime | None,
    before: str | None,
    limit: int,
    reviews: list[str] | None = None,
) -> IncidentFilter:
    patterns: list[str] = []
    for g in groups:
        patterns.extend(ctx.settings.camera_groups.get(g, ["\x00no-such-group"]))
    cursor = _cursor(before)
    return IncidentFilter(
        types=types,
        severities=severities,
        statuses=statuses,
        camera_ids=cameras,
        camera_patterns=patterns,
        since_ms=to_ms(since),
        until_ms=to_ms(until),
        before=cursor,
        limit=limit,
        reviews=reviews or [],
    )


def next_cursor(items: list[IncidentRecord], limit: int) -> str | None:
    if len(items) < limit or not items:
        return None
    last = items[-1]
    return f"{last.started_at_ms}_{last.incident_id}"


class IncidentPage(BaseModel):
    items: list[dict[str, Any]]
    next: str | None = Field(description="pass as `before` for the next (older) page")
    rev: int = Field(description="store revision before the query: resume the live feed from here")
    store: str


@router.get("/incidents", tags=["incidents"], response_model=IncidentPage)
def list_incidents(
    request: Request,
    session: Annotated[Session, Depends(DISPATCH_API)],
    type: Annotated[list[IncidentType], Query(max_length=8)] = [],  # noqa: B006 - FastAPI query lists
    severity: Annotated[list[Severity], Query(max_length=4)] = [],  # noqa: B006
    status: Annotated[list[WorkflowStatus], Query(max_length=4)] = [],  # noqa: B006
    camera: Annotated[list[str], Query(max_length=100)] = [],  # noqa: B006
    group: Annotated[list[str], Query(max_length=50)] = [],  # noqa: B006
    since: datetime | None = None,
    until: datetime | None = None,
    before: Annotated[str | None, Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    review: Annotated[list[Literal["alert", "detection"]], Query(max_length=2)] = [],  # noqa: B006
) -> IncidentPage:
    """Incidents newest first, filtered (`review=alert`: what the feed shows; none: alerts and detections)."""
    ctx = ctx_of(request)
    rev = ctx.store.current_rev()
    flt = incident_filter(
        ctx,
        types=list(type),
        severities=list(severity),
        statuses=[s.value for s in status],
        cameras=camera,
        groups=group,
        since=since,
        until=until,
        before=before,
        limit=limit,
        reviews=list(review),
    )
    items = ctx.store.list_incidents(flt)
    return IncidentPage(
        items=[r.to_json() for r in items], next=next_cursor(items, limit), rev=rev, store=ctx.store.store_uid
    )


@router.get("/incidents/{incident_id}", tags=["incidents"])
def get_incident(
    incident_id: str, request: Request, session: Annotated[Session, Depends(DISPATCH_API)]
) -> dict[str, Any]:
    """One incident with its workflow history (who did what, when)."""
    ctx = ctx_of(request)
    iid = valid_incident_id(incident_id)
    rec = ctx.store.get(iid)
    if rec is None:
        raise NotFoundError(iid)
    return {"incident": rec.to_json(), "actions": [a.to_json() for a in ctx.store.actions(iid)]}


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Action
    note: str | None = Field(default=None, max_length=4000, description="plain text; shown as text, never as HTML")
    assignee: str | None = Field(default=None, max_length=64)
    expected_version: int | None = Field(default=None, ge=0, description="refuse if the incident changed since")


@router.post("/incidents/{incident_id}/actions", tags=["incidents"])
def act(
    incident_id: str, body: ActionIn, request: Request, session: Annotated[Session, Depends(DISPATCH_API)]
) -> dict[str, Any]:
    """Acknowledge, assign, note, resolve, mark false alarm (or reopen, admin); pushed to every open console."""
    ctx = ctx_of(request)
    iid = valid_incident_id(incident_id)
    rec, action = ctx.store.act(
        iid,
        body.action,
        session.user,
        note=body.note,
        assignee=body.assignee,
        expected_version=body.expected_version,
    )
    ctx.hub.publish_incidents([rec])
    return {"incident": rec.to_json(), "action": action.to_json()}


@router.get("/incidents/{incident_id}/snapshot", tags=["incidents"], response_class=Response)
def incident_snapshot(
    incident_id: str, request: Request, session: Annotated[Session, Depends(DISPATCH_API)]
) -> Response:
    """The incident's snapshot JPEG, read from the store and checked against the event's sha256; audited first.

    A snapshot is evidence whatever the incident's kind (a face in a zone as much as a plate), so every view is on
    the record, in the hash-chained log beside clip plays and plate searches, before it is served; a view whose
    record cannot be written is refused (503, fail closed).
    """
    ctx = ctx_of(request)
    rec = ctx.store.get(valid_incident_id(incident_id))
    if rec is None or rec.snapshot is None:
        return JSONResponse({"detail": "no snapshot"}, status_code=404)
    details = {"type": rec.type, "camera_id": rec.camera_id}
    evidence_of(request).audited(session, "incident_snapshot", rec.incident_id, details=details)
    return snapshot_response(ctx, rec.snapshot)


_KIND = "(incidents|cameras|camera_changes)"
FEED_KINDS = rf"^{_KIND}(,{_KIND}){{0,2}}$"


@router.get("/feed", tags=["incidents"], response_class=StreamingResponse)
async def feed(
    request: Request,
    session: Annotated[Session, Depends(DISPATCH_API)],
    kinds: Annotated[str, Query(max_length=60, pattern=FEED_KINDS)] = "incidents,cameras",
    last_event_id: Annotated[str | None, Query(max_length=64)] = None,
) -> StreamingResponse:
    """Server-Sent Events: `incident` (full card state, id = store revision), `camera`, `hello`, `ping`, `reset`.

    `camera_changes` (the camera board's kind): one small event while one is unsent, however many cameras changed.

    Reconnect with the `Last-Event-ID` header (or `last_event_id`) to be sent every incident changed since.
    """
    ctx = ctx_of(request)
    lei = request.headers.get("last-event-id") or last_event_id

    async def still_allowed() -> bool:
        """The same credential still names the same user with a feed role (not logged out, expired or disabled)."""
        now = await run_in_threadpool(session_from_request, request)
        return now is not None and now.user.username == session.user.username and now.user.role in DISPATCH_API.roles

    body = ctx.hub.stream(
        lei,
        kinds=frozenset(kinds.split(",")),
        heartbeat_s=ctx.settings.heartbeat_s,
        replay_limit=ctx.settings.replay_limit,
        is_disconnected=request.is_disconnected,
        still_allowed=still_allowed,
        recheck_s=ctx.settings.session_recheck_s,
    )
    return StreamingResponse(body, media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})


@router.get("/users", tags=["incidents"])
def assignable_users(request: Request, session: Annotated[Session, Depends(DISPATCH_API)]) -> dict[str, Any]:
    """Users an incident can be assigned to (active dispatchers and admins)."""
    users = ctx_of(request).store.users()
    return {
        "items": [
            {"username": u.username, "display_name": u.display_name, "role": u.role.value}
            for u in users
            if not u.disabled and u.role in (Role.DISPATCHER, Role.ADMIN)
        ]
    }
