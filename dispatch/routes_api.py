"""JSON API (and the SSE feed): the console's actions for other systems of the operations centre.

Every route declares its roles with one :mod:`dispatch.security` dependency.
Request bodies are pydantic models with ``extra="forbid"`` and bounded
fields, so malformed or oversized input is a 4xx before any handler runs.
Responses never carry stream URLs, credentials or storage secrets: incidents
say whether they have a snapshot and the console serves it itself.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from core.snapshot import SnapshotRef
from dispatch.plates import (
    PlateAccessError,
    PlateHit,
    PlateQuery,
    PlateQueryError,
    PlateResults,
    PlateService,
    PlateUnavailable,
)
from dispatch.security import (
    ADMIN_API,
    ANY_API,
    DISPATCH_API,
    INVESTIGATE_API,
    PUBLIC,
    SESSION_COOKIE,
    AuthError,
    same_origin,
)
from storage.snapshots import SnapshotError
from storage.accounts import Role, Session
from storage.db import NotFoundError
from storage.incident_records import IncidentFilter
from storage.incident_rules import Action, WorkflowStatus

router = APIRouter()

IncidentType = Literal["person_in_zone", "loitering", "line_crossing", "crowd", "fire", "smoke", "watchlist_hit"]
Severity = Literal["low", "medium", "high", "critical"]


def ctx_of(request: Request) -> Any:
    return request.app.state.console


def to_ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def valid_incident_id(incident_id: str) -> str:
    """Normalised UUID text, or NotFoundError (an id that cannot exist is simply not found)."""
    try:
        return str(uuid.UUID(incident_id))
    except (ValueError, AttributeError):
        raise NotFoundError(incident_id) from None


def session_cookie_kwargs(ctx: Any) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": ctx.settings.cookie_secure,
        "path": "/",
        "max_age": ctx.settings.session_ttl_s,
    }


# -- session --------------------------------------------------------------------------------------------------------


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class MeOut(BaseModel):
    username: str
    role: Role
    display_name: str
    csrf_token: str


@router.get("/health", dependencies=[Depends(PUBLIC)], tags=["meta"])
def health() -> dict[str, bool]:
    """Liveness for load balancers; says nothing about the internals."""
    return {"ok": True}


@router.post("/session", dependencies=[Depends(PUBLIC)], tags=["session"], response_model=MeOut)
def login(body: LoginIn, request: Request, response: Response) -> MeOut:
    """Log in with a password; sets the session cookie and returns the CSRF token for later writes."""
    ctx = ctx_of(request)
    if not same_origin(request):
        raise AuthError(403, "cross-origin login refused", page=False)
    key = body.username.lower()
    if ctx.limiter.blocked(key):
        raise HTTPException(429, "too many failed logins; wait a few minutes")
    user = ctx.store.authenticate(body.username, body.password)
    if user is None:
        ctx.limiter.failed(key)
        raise AuthError(401, "wrong user name or password", page=False)
    ctx.limiter.succeeded(key)
    token, session = ctx.store.create_session(user.username, ctx.settings.session_ttl_s)
    response.set_cookie(SESSION_COOKIE, token, **session_cookie_kwargs(ctx))
    return MeOut(username=user.username, role=user.role, display_name=user.display_name, csrf_token=session.csrf_token)


@router.delete("/session", tags=["session"])
def logout(request: Request, response: Response, session: Annotated[Session, Depends(ANY_API)]) -> dict[str, bool]:
    """End this session."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        ctx_of(request).store.delete_session(cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"ok": True}


@router.get("/me", tags=["session"], response_model=MeOut)
def me(session: Annotated[Session, Depends(ANY_API)]) -> MeOut:
    """Who is calling, and the CSRF token of the session."""
    u = session.user
    return MeOut(username=u.username, role=u.role, display_name=u.display_name, csrf_token=session.csrf_token)


@router.get("/openapi.json", tags=["meta"], include_in_schema=False)
def openapi(request: Request, session: Annotated[Session, Depends(ANY_API)]) -> JSONResponse:
    """The OpenAPI document of this API (for logged-in users and token holders)."""
    return JSONResponse(request.app.openapi())


# -- incidents ------------------------------------------------------------------------------------------------------


def _cursor(value: str | None) -> tuple[int, str] | None:
    if not value:
        return None
    ms, _, iid = value.partition("_")
    if not ms.isdigit() or len(ms) > 16:
        raise PlateQueryError("bad page cursor")
    return int(ms), valid_incident_id(iid)


def incident_filter(
    ctx: Any,
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
) -> IncidentFilter:
    patterns: list[str] = []
    for g in groups:
        patterns.extend(ctx.settings.camera_groups.get(g, ["\x00no-such-group"]))
    try:
        cursor = _cursor(before)
    except (PlateQueryError, NotFoundError):
        raise HTTPException(400, "bad page cursor") from None
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
    )


def next_cursor(items: list[Any], limit: int) -> str | None:
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
    type: Annotated[list[IncidentType], Query(max_length=7)] = [],  # noqa: B006 - FastAPI query lists
    severity: Annotated[list[Severity], Query(max_length=4)] = [],  # noqa: B006
    status: Annotated[list[WorkflowStatus], Query(max_length=4)] = [],  # noqa: B006
    camera: Annotated[list[str], Query(max_length=100)] = [],  # noqa: B006
    group: Annotated[list[str], Query(max_length=50)] = [],  # noqa: B006
    since: datetime | None = None,
    until: datetime | None = None,
    before: Annotated[str | None, Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> IncidentPage:
    """Incidents newest first, filtered; page with `before`."""
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
    """The incident's snapshot JPEG, read from the store and checked against the event's sha256."""
    ctx = ctx_of(request)
    rec = ctx.store.get(valid_incident_id(incident_id))
    if rec is None or rec.snapshot is None:
        return JSONResponse({"detail": "no snapshot"}, status_code=404)
    return _snapshot_response(ctx, rec.snapshot)


def _snapshot_response(ctx: Any, ref_doc: dict[str, Any] | SnapshotRef) -> Response:
    store = ctx.snapshots
    try:
        ref = ref_doc if isinstance(ref_doc, SnapshotRef) else SnapshotRef.model_validate(ref_doc)
        if store is None or ref.store != store.kind or ref.bucket != store.bucket:
            return JSONResponse({"detail": "snapshot store not reachable from this console"}, status_code=404)
        data = store.get(ref)
    except (SnapshotError, ValueError):
        return JSONResponse({"detail": "snapshot missing or does not match its checksum"}, status_code=404)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/feed", tags=["incidents"], response_class=StreamingResponse)
async def feed(
    request: Request,
    session: Annotated[Session, Depends(DISPATCH_API)],
    kinds: Annotated[str, Query(max_length=40, pattern=r"^(incidents|cameras)(,(incidents|cameras))?$")] = (
        "incidents,cameras"
    ),
    last_event_id: Annotated[str | None, Query(max_length=64)] = None,
) -> StreamingResponse:
    """Server-Sent Events: `incident` (full card state, id = store revision), `camera`, `hello`, `ping`, `reset`.

    Reconnect with the `Last-Event-ID` header (or `last_event_id`) to be sent every incident changed since.
    """
    ctx = ctx_of(request)
    lei = request.headers.get("last-event-id") or last_event_id
    body = ctx.hub.stream(
        lei,
        kinds=frozenset(kinds.split(",")),
        heartbeat_s=ctx.settings.heartbeat_s,
        replay_limit=ctx.settings.replay_limit,
        is_disconnected=request.is_disconnected,
    )
    return StreamingResponse(body, media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})


@router.get("/cameras", tags=["cameras"])
def cameras(request: Request, session: Annotated[Session, Depends(DISPATCH_API)]) -> dict[str, Any]:
    """Every camera's last reported health, the owning worker, and its groups."""
    ctx = ctx_of(request)
    items = []
    for c in ctx.store.cameras():
        doc = c.to_json()
        doc["groups"] = ctx.groups_of(c.camera_id)
        items.append(doc)
    return {"items": items, "server_now_ms": int(time.time() * 1000)}


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


@router.get("/status", tags=["meta"])
def status(request: Request, session: Annotated[Session, Depends(ADMIN_API)]) -> dict[str, Any]:
    """Console internals for operators: bus consumer counters and open feed connections."""
    ctx = ctx_of(request)
    ing = ctx.ingestor
    return {
        "bus": ctx.settings.bus.kind,
        "consumer_group": ctx.settings.consumer_group,
        "ingested": ing.ingested if ing else 0,
        "consumer_errors": ing.errors if ing else 0,
        "last_error": ing.last_error if ing else None,
        "feed_connections": ctx.hub.connections,
        "feed_published": ctx.hub.published,
        "feed_overflows": ctx.hub.overflows,
        "rev": ctx.store.current_rev(),
    }


# -- plates ---------------------------------------------------------------------------------------------------------


class PlateSearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plate: str = Field(min_length=1, max_length=32, description="plate, wildcard pattern (* ?) or fuzzy target")
    mode: Literal["exact", "wildcard", "fuzzy"] = "exact"
    max_edits: int = Field(default=1, ge=1, le=2)
    reason: str = Field(
        default="",
        max_length=500,
        description="case number or justification (required; a search without one is refused and audited)",
    )
    since: datetime | None = None
    until: datetime | None = None
    cameras: list[str] = Field(default_factory=list, max_length=100)
    limit: int = Field(default=100, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=2000)


def plate_service(request: Request) -> PlateService:
    svc: PlateService | None = ctx_of(request).plates
    if svc is None:
        raise HTTPException(503, "plate history is not configured on this console")
    return svc


def _signer_key(ctx: Any) -> bytes:
    key = ctx.extra.get("snapshot_key")
    if key is None:
        key = ctx.extra["snapshot_key"] = secrets.token_bytes(32)
    return bytes(key)


def sign_snapshot(ctx: Any, ref: SnapshotRef, ttl_s: int = 3600) -> str:
    """An opaque, expiring, HMAC-signed link token for one snapshot (no lookup table, no storage secret)."""
    doc = {"r": ref.model_dump(), "e": int(time.time()) + ttl_s}
    payload = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).rstrip(b"=")
    mac = base64.urlsafe_b64encode(hmac.new(_signer_key(ctx), payload, hashlib.sha256).digest()).rstrip(b"=")
    return (payload + b"." + mac).decode()


def verify_snapshot(ctx: Any, token: str) -> SnapshotRef | None:
    payload, _, mac = token.encode().partition(b".")
    want = base64.urlsafe_b64encode(hmac.new(_signer_key(ctx), payload, hashlib.sha256).digest()).rstrip(b"=")
    if not hmac.compare_digest(mac, want):
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        if int(doc["e"]) < time.time():
            return None
        return SnapshotRef.model_validate(doc["r"])
    except (ValueError, KeyError, TypeError):
        return None


def hit_json(ctx: Any, hit: PlateHit) -> dict[str, Any]:
    return {
        "event_id": hit.event_id,
        "plate": hit.plate,
        "raw_text": hit.raw_text,
        "camera_id": hit.camera_id,
        "seen_at_ms": hit.seen_at_ms,
        "seen_at": datetime.fromtimestamp(hit.seen_at_ms / 1000, UTC).isoformat(timespec="seconds"),
        "confidence": round(hit.confidence, 3),
        "country": hit.country,
        "distance": hit.distance,
        "snapshot_url": f"/api/plates/snapshot/{sign_snapshot(ctx, hit.snapshot)}" if hit.snapshot else None,
    }


def run_plate_search(ctx: Any, session: Session, body: PlateSearchIn, svc: PlateService) -> PlateResults:
    query = PlateQuery(
        text=body.plate,
        mode=body.mode,
        max_edits=body.max_edits,
        since_ms=to_ms(body.since),
        until_ms=to_ms(body.until),
        cameras=tuple(body.cameras),
        limit=body.limit,
        offset=body.offset,
    )
    try:
        return svc.search(user=session.user.username, role=session.user.role.value, reason=body.reason, query=query)
    except PlateAccessError as exc:
        raise AuthError(403, str(exc), page=False) from None
    except PlateQueryError as exc:
        raise HTTPException(400, str(exc)) from None
    except PlateUnavailable as exc:
        raise HTTPException(503, str(exc)) from None


@router.post("/plates/search", tags=["plates"])
async def plate_search(
    body: PlateSearchIn,
    request: Request,
    session: Annotated[Session, Depends(INVESTIGATE_API)],
) -> dict[str, Any]:
    """Search plate history (exact, wildcard, fuzzy); the reason is audited before results are returned."""
    ctx = ctx_of(request)
    svc = plate_service(request)
    res = await run_in_threadpool(run_plate_search, ctx, session, body, svc)
    return {"hits": [hit_json(ctx, h) for h in res.hits], "total": res.total, "audit_id": res.audit_id}


CSV_COLUMNS = ("seen_at", "plate", "raw_text", "confidence", "camera_id", "country", "distance", "event_id")


def plates_csv(ctx: Any, hits: list[PlateHit]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for h in hits:
        doc = hit_json(ctx, h)
        # A leading = + - @ would be a formula in a spreadsheet: prefix it (CSV injection).
        writer.writerow([_csv_safe(doc[c]) for c in CSV_COLUMNS])
    yield buf.getvalue()


def _csv_safe(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


@router.post("/plates/export.csv", tags=["plates"], response_class=StreamingResponse)
async def plate_export(
    body: PlateSearchIn,
    request: Request,
    session: Annotated[Session, Depends(INVESTIGATE_API)],
) -> StreamingResponse:
    """The same search as CSV (audited like any search)."""
    ctx = ctx_of(request)
    svc = plate_service(request)
    res = await run_in_threadpool(run_plate_search, ctx, session, body, svc)
    return csv_response(ctx, res.hits)


def csv_response(ctx: Any, hits: list[PlateHit]) -> StreamingResponse:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        plates_csv(ctx, hits),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="plate-search-{stamp}.csv"'},
    )


@router.get("/plates/snapshot/{token}", tags=["plates"], response_class=Response)
def plate_snapshot(
    token: Annotated[str, Path(max_length=4096)],
    request: Request,
    session: Annotated[Session, Depends(INVESTIGATE_API)],
) -> Response:
    """A plate read's snapshot, by the signed link a search returned."""
    ctx = ctx_of(request)
    ref = verify_snapshot(ctx, token)
    if ref is None:
        return JSONResponse({"detail": "snapshot link invalid or expired; search again"}, status_code=404)
    return _snapshot_response(ctx, ref)


class WatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plate: str = Field(min_length=2, max_length=32)
    match: Literal["exact", "fuzzy"] = "exact"
    reason: str = Field(min_length=4, max_length=500)
    expires_at: datetime | None = None


def watch_json(e: Any) -> dict[str, Any]:
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
    svc = plate_service(request)
    try:
        e = svc.watch_add(
            user=session.user.username,
            role=session.user.role.value,
            plate=body.plate,
            match=body.match,
            reason=body.reason,
            expires_at_ms=to_ms(body.expires_at),
        )
    except PlateQueryError as exc:
        raise HTTPException(400, str(exc)) from None
    except PlateAccessError as exc:
        raise HTTPException(403, str(exc)) from None
    except PlateUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    return watch_json(e)


@router.post("/watchlist/{entry_id}/expire", tags=["watchlist"])
def watch_expire(
    entry_id: str, request: Request, session: Annotated[Session, Depends(INVESTIGATE_API)]
) -> dict[str, bool]:
    """Expire an entry now (kept for the record)."""
    _watch_change(request, session, entry_id, "expire")
    return {"ok": True}


@router.delete("/watchlist/{entry_id}", tags=["watchlist"])
def watch_remove(
    entry_id: str, request: Request, session: Annotated[Session, Depends(INVESTIGATE_API)]
) -> dict[str, bool]:
    """Remove an entry."""
    _watch_change(request, session, entry_id, "remove")
    return {"ok": True}


def _watch_change(request: Request, session: Session, entry_id: str, what: str) -> None:
    svc = plate_service(request)
    if len(entry_id) > 64:
        raise HTTPException(404, "no such watchlist entry")
    try:
        if what == "expire":
            svc.watch_expire(user=session.user.username, role=session.user.role.value, entry_id=entry_id)
        else:
            svc.watch_remove(user=session.user.username, role=session.user.role.value, entry_id=entry_id)
    except KeyError:
        raise HTTPException(404, "no such watchlist entry") from None
    except PlateQueryError as exc:
        raise HTTPException(400, str(exc)) from None
    except PlateAccessError as exc:
        raise HTTPException(403, str(exc)) from None
    except PlateUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
