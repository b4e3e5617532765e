"""HTML pages: server-rendered shells (Jinja2, autoescaped) plus small vanilla JS files for live parts.

Pages take the same role declarations as the API, but answer an anonymous
visitor with a redirect to the login page and a wrong role with a 403 page.
Forms carry the session's CSRF token; the JS sends it as ``X-CSRF-Token``.
Nothing user-supplied is ever marked safe: notes, names and reasons are text.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import ValidationError

from dispatch.app import HERE, error_page
from dispatch.plates import PlateAccessError, PlateQueryError, PlateUnavailable
from dispatch.routes_api import (
    PlateSearchIn,
    WatchIn,
    csv_response,
    ctx_of,
    hit_json,
    incident_filter,
    next_cursor,
    run_plate_search,
    session_cookie_kwargs,
    valid_incident_id,
    watch_json,
)
from dispatch.security import (
    ANY_PAGE,
    DISPATCH_PAGE,
    INVESTIGATE_PAGE,
    LOGIN_CSRF_COOKIE,
    PUBLIC,
    SESSION_COOKIE,
    AuthError,
    login_redirect_target,
    same_origin,
)
from storage.accounts import Role, Session
from storage.db import NotFoundError
from storage.incident_rules import WorkflowStatus

router = APIRouter(include_in_schema=False)

STATIC_DIR = HERE / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}
INCIDENT_TYPES = ["person_in_zone", "loitering", "line_crossing", "crowd", "fire", "smoke", "watchlist_hit"]
SEVERITIES = ["critical", "high", "medium", "low"]


def render(request: Request, template: str, session: Session | None, status_code: int = 200, **ctx: Any) -> Response:
    console = ctx_of(request)
    response: Response = console.templates.TemplateResponse(
        request,
        template,
        {"session": session, "nav": template.removesuffix(".html"), **ctx},
        status_code=status_code,
    )
    return response


def _datetime_local(value: str | None) -> datetime | None:
    """``<input type=datetime-local>`` value (UTC in this console) -> aware datetime; raises ValueError."""
    if not value:
        return None
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# -- static, login ---------------------------------------------------------------------------------------------------


@router.get("/static/{name}", dependencies=[Depends(PUBLIC)])
def static(name: Annotated[str, Path(pattern=r"^[a-z0-9_-]+\.(js|css|svg|png)$")]) -> Response:
    """The console's own JS/CSS (public: login needs the stylesheet; nothing secret is in them)."""
    path = (STATIC_DIR / name).resolve()
    if not path.is_relative_to(STATIC_DIR.resolve()) or not path.is_file():
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(
        path, media_type=STATIC_TYPES[FsPath(name).suffix], headers={"Cache-Control": "public, max-age=300"}
    )


@router.get("/login", dependencies=[Depends(PUBLIC)])
def login_page(request: Request, next: Annotated[str | None, Query(max_length=512)] = None) -> Response:
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", None, login_csrf=token, next=login_redirect_target(next), error=None)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login", max_age=3600)
    return resp


@router.post("/login", dependencies=[Depends(PUBLIC)])
def login_submit(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf_token: Annotated[str, Form(max_length=128)],
    next: Annotated[str, Form(max_length=512)] = "/",
) -> Response:
    ctx = ctx_of(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie, csrf_token) or not same_origin(request):
        return error_page(request, 403, "The login form expired or came from another site. Reload and try again.")
    key = username.lower()

    def fail(message: str, status: int) -> Response:
        token = secrets.token_urlsafe(24)
        resp = render(
            request, "login.html", None, status, login_csrf=token, next=login_redirect_target(next), error=message
        )
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login", max_age=3600)
        return resp

    if ctx.limiter.blocked(key):
        return fail("Too many failed logins. Wait a few minutes.", 429)
    user = ctx.store.authenticate(username, password)
    if user is None:
        ctx.limiter.failed(key)
        return fail("Wrong user name or password.", 401)
    ctx.limiter.succeeded(key)
    token, _ = ctx.store.create_session(user.username, ctx.settings.session_ttl_s)
    resp = RedirectResponse(login_redirect_target(next), status_code=303)
    resp.set_cookie(SESSION_COOKIE, token, **session_cookie_kwargs(ctx))
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@router.post("/logout")
def logout(request: Request, session: Annotated[Session, Depends(ANY_PAGE)]) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        ctx_of(request).store.delete_session(cookie)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/")
def home(session: Annotated[Session, Depends(ANY_PAGE)]) -> Response:
    """Dispatchers and admins land on the feed, investigators on plate search."""
    return RedirectResponse("/plates" if session.user.role is Role.INVESTIGATOR else "/feed", status_code=303)


@router.get("/api-docs")
def api_docs(request: Request, session: Annotated[Session, Depends(ANY_PAGE)]) -> Response:
    """A readable view of the OpenAPI document (rendered by our own JS; no CDN)."""
    return render(request, "api_docs.html", session)


# -- dispatch ---------------------------------------------------------------------------------------------------------


def _boot(request: Request, session: Session) -> dict[str, Any]:
    ctx = ctx_of(request)
    return {
        "user": session.user.username,
        "role": session.user.role.value,
        "max_cards": ctx.settings.max_cards,
        "groups": ctx.settings.camera_groups,
        "types": INCIDENT_TYPES,
        "severities": SEVERITIES,
    }


@router.get("/feed")
def feed_page(request: Request, session: Annotated[Session, Depends(DISPATCH_PAGE)]) -> Response:
    return render(request, "feed.html", session, boot=_boot(request, session))


@router.get("/incidents")
def incidents_page(
    request: Request,
    session: Annotated[Session, Depends(DISPATCH_PAGE)],
    type: Annotated[list[str], Query(max_length=7)] = [],  # noqa: B006 - "" means all (form selects)
    severity: Annotated[list[str], Query(max_length=4)] = [],  # noqa: B006
    status: Annotated[list[str], Query(max_length=4)] = [],  # noqa: B006
    camera: Annotated[str, Query(max_length=64)] = "",
    group: Annotated[str, Query(max_length=64)] = "",
    since: Annotated[str, Query(max_length=32)] = "",
    until: Annotated[str, Query(max_length=32)] = "",
    before: Annotated[str | None, Query(max_length=80)] = None,
) -> Response:
    """Incidents after the fact: filters in the query string, newest first, 50 a page."""
    ctx = ctx_of(request)
    try:
        since_dt, until_dt = _datetime_local(since), _datetime_local(until)
    except ValueError:
        return error_page(request, 400, "Times must look like 2025-01-31T13:45.")
    limit = 50
    types = [t for t in type if t in INCIDENT_TYPES]
    severities = [s for s in severity if s in SEVERITIES]
    statuses = [s for s in status if s in {w.value for w in WorkflowStatus}]
    if len(types) != len([t for t in type if t]) or len(severities) != len([s for s in severity if s]):
        return error_page(request, 400, "Unknown incident type or severity.")
    if len(statuses) != len([s for s in status if s]):
        return error_page(request, 400, "Unknown status.")
    flt = incident_filter(
        ctx,
        types=types,
        severities=severities,
        statuses=statuses,
        cameras=[camera] if camera else [],
        groups=[group] if group else [],
        since=since_dt,
        until=until_dt,
        before=before,
        limit=limit,
    )
    items = ctx.store.list_incidents(flt)
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "before"]
    return render(
        request,
        "incidents.html",
        session,
        items=[r.to_json() for r in items],
        next=next_cursor(items, limit),
        query=query,
        form={
            "type": types,
            "severity": severities,
            "status": statuses,
            "camera": camera,
            "group": group,
            "since": since,
            "until": until,
        },
        types=INCIDENT_TYPES,
        severities=SEVERITIES,
        statuses=[s.value for s in WorkflowStatus],
        groups=sorted(ctx.settings.camera_groups),
    )


@router.get("/incidents/{incident_id}")
def incident_page(
    incident_id: Annotated[str, Path(max_length=64)],
    request: Request,
    session: Annotated[Session, Depends(DISPATCH_PAGE)],
) -> Response:
    ctx = ctx_of(request)
    iid = valid_incident_id(incident_id)
    rec = ctx.store.get(iid)
    if rec is None:
        raise NotFoundError(iid)
    return render(
        request,
        "incident.html",
        session,
        incident=rec.to_json(),
        actions=[a.to_json() for a in ctx.store.actions(iid)],
        groups=ctx.groups_of(rec.camera_id),
        boot=_boot(request, session) | {"incident_id": iid},
    )


@router.get("/cameras")
def cameras_page(request: Request, session: Annotated[Session, Depends(DISPATCH_PAGE)]) -> Response:
    return render(request, "cameras.html", session, boot=_boot(request, session))


# -- plates -----------------------------------------------------------------------------------------------------------


def _plate_form(
    plate: str, mode: str, max_edits: str, reason: str, since: str, until: str, cameras: str
) -> dict[str, str]:
    return {
        "plate": plate,
        "mode": mode,
        "max_edits": max_edits,
        "reason": reason,
        "since": since,
        "until": until,
        "cameras": cameras,
    }


def _plate_body(form: dict[str, str]) -> PlateSearchIn:
    """Form fields -> the API's validated search body (one set of rules for page and API)."""
    try:
        since, until = _datetime_local(form["since"]), _datetime_local(form["until"])
    except ValueError:
        raise PlateQueryError("times must look like 2025-01-31T13:45") from None
    cameras = [c.strip() for c in form["cameras"].split(",") if c.strip()]
    try:
        return PlateSearchIn(
            plate=form["plate"],
            mode=form["mode"],  # type: ignore[arg-type]
            max_edits=int(form["max_edits"] or 1),
            reason=form["reason"],
            since=since,
            until=until,
            cameras=cameras,
            limit=200,
        )
    except (ValidationError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            fields = sorted({str(e["loc"][0]) for e in exc.errors() if e.get("loc")})
            raise PlateQueryError(f"Check these fields: {', '.join(fields)}.") from None
        raise PlateQueryError("Check the search fields.") from None


@router.get("/plates")
def plates_page(request: Request, session: Annotated[Session, Depends(INVESTIGATE_PAGE)]) -> Response:
    return render(
        request,
        "plates.html",
        session,
        form=_plate_form("", "exact", "1", "", "", "", ""),
        hits=None,
        error=None,
        available=ctx_of(request).plates is not None,
    )


PlateField = Annotated[str, Form(max_length=600)]


@router.post("/plates")
def plates_search(
    request: Request,
    session: Annotated[Session, Depends(INVESTIGATE_PAGE)],
    plate: PlateField = "",
    mode: PlateField = "exact",
    max_edits: PlateField = "1",
    reason: PlateField = "",
    since: PlateField = "",
    until: PlateField = "",
    cameras: PlateField = "",
) -> Response:
    ctx = ctx_of(request)
    form = _plate_form(plate, mode, max_edits, reason, since, until, cameras)
    available = ctx.plates is not None
    if not available:
        return render(request, "plates.html", session, 503, form=form, hits=None, error=None, available=False)
    try:
        body = _plate_body(form)
        res = run_plate_search(ctx, session, body, ctx.plates)
    except PlateQueryError as exc:
        return render(request, "plates.html", session, 400, form=form, hits=None, error=str(exc), available=True)
    except (PlateAccessError, AuthError) as exc:
        return render(request, "plates.html", session, 403, form=form, hits=None, error=str(exc), available=True)
    except Exception as exc:  # HTTPException from run_plate_search (bad query)
        detail = getattr(exc, "detail", None)
        if detail is None:
            raise
        status = int(getattr(exc, "status_code", 400))
        return render(request, "plates.html", session, status, form=form, hits=None, error=str(detail), available=True)
    hits = [hit_json(ctx, h) for h in res.hits]
    return render(request, "plates.html", session, form=form, hits=hits, error=None, available=True)


@router.post("/plates/export.csv")
def plates_export(
    request: Request,
    session: Annotated[Session, Depends(INVESTIGATE_PAGE)],
    plate: PlateField = "",
    mode: PlateField = "exact",
    max_edits: PlateField = "1",
    reason: PlateField = "",
    since: PlateField = "",
    until: PlateField = "",
    cameras: PlateField = "",
) -> Response:
    ctx = ctx_of(request)
    if ctx.plates is None:
        return error_page(request, 503, "Plate history is not configured on this console.")
    try:
        body = _plate_body(_plate_form(plate, mode, max_edits, reason, since, until, cameras))
        res = run_plate_search(ctx, session, body, ctx.plates)
    except PlateQueryError as exc:
        return error_page(request, 400, str(exc))
    except Exception as exc:
        detail = getattr(exc, "detail", None)
        if detail is None:
            raise
        return error_page(request, int(getattr(exc, "status_code", 400)), str(detail))
    return csv_response(ctx, res.hits)


# -- watchlist --------------------------------------------------------------------------------------------------------


@router.get("/watchlist")
def watchlist_page(
    request: Request, session: Annotated[Session, Depends(INVESTIGATE_PAGE)], error: str | None = None
) -> Response:
    ctx = ctx_of(request)
    if ctx.plates is None:
        return render(request, "watchlist.html", session, 503, items=[], error=None, available=False)
    items = [watch_json(e) for e in ctx.plates.watchlist()]
    return render(request, "watchlist.html", session, items=items, error=None, available=True)


@router.post("/watchlist")
def watchlist_add(
    request: Request,
    session: Annotated[Session, Depends(INVESTIGATE_PAGE)],
    plate: PlateField = "",
    match: PlateField = "exact",
    reason: PlateField = "",
    expires: PlateField = "",
) -> Response:
    ctx = ctx_of(request)
    if ctx.plates is None:
        return error_page(request, 503, "Plate history is not configured on this console.")
    try:
        body = WatchIn(plate=plate, match=match, reason=reason, expires_at=_datetime_local(expires))  # type: ignore[arg-type]
        ctx.plates.watch_add(
            user=session.user.username,
            role=session.user.role.value,
            plate=body.plate,
            match=body.match,
            reason=body.reason,
            expires_at_ms=int(body.expires_at.timestamp() * 1000) if body.expires_at else None,
        )
    except (ValidationError, ValueError, PlateQueryError, PlateAccessError, PlateUnavailable) as exc:
        status = 403 if isinstance(exc, PlateAccessError) else 503 if isinstance(exc, PlateUnavailable) else 400
        message = (
            "Plate (2-32 characters) and a reason (at least 4 characters) are required."
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        items = [watch_json(e) for e in ctx.plates.watchlist()]
        return render(request, "watchlist.html", session, status, items=items, error=message, available=True)
    return RedirectResponse("/watchlist", status_code=303)


@router.post("/watchlist/{entry_id}/{what}")
def watchlist_change(
    request: Request,
    entry_id: Annotated[str, Path(max_length=64)],
    what: Annotated[str, Path(pattern=r"^(expire|remove)$")],
    session: Annotated[Session, Depends(INVESTIGATE_PAGE)],
) -> Response:
    ctx = ctx_of(request)
    if ctx.plates is None:
        return error_page(request, 503, "Plate history is not configured on this console.")
    try:
        if what == "expire":
            ctx.plates.watch_expire(user=session.user.username, role=session.user.role.value, entry_id=entry_id)
        else:
            ctx.plates.watch_remove(user=session.user.username, role=session.user.role.value, entry_id=entry_id)
    except KeyError:
        return error_page(request, 404, "No such watchlist entry.")
    except PlateAccessError as exc:
        return error_page(request, 403, str(exc))
    except PlateUnavailable as exc:
        return error_page(request, 503, str(exc))
    return RedirectResponse("/watchlist", status_code=303)
