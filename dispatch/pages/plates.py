"""Investigator pages: plate search and its CSV export, and the watchlist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError

from dispatch.api.plates import PlateSearchIn, csv_response, hit_json, plate_service, run_plate_search
from dispatch.api.watchlist import WatchIn, watch_json
from dispatch.context import ctx_of
from dispatch.pages.common import datetime_local, render
from dispatch.plates import PlateAccessError, PlateQueryError, PlateUnavailable
from dispatch.security import INVESTIGATE_PAGE, AuthFirstRoute
from storage.accounts import Session

router = APIRouter(route_class=AuthFirstRoute)  # role checked before the body is read

# The plate forms re-render themselves with the error (the rest of the mapping is dispatch.errors).
_STATUS: dict[type[Exception], int] = {PlateQueryError: 400, PlateAccessError: 403, PlateUnavailable: 503}


PlateField = Annotated[str, Form(max_length=600)]
"""One posted form field (watchlist forms)."""
_Text = Annotated[str, Field(max_length=600)]


class PlateForm(BaseModel):
    """The plate search form as posted: strings, checked by :func:`_plate_body` (page and CSV export alike)."""

    plate: _Text = ""
    mode: _Text = "exact"
    max_edits: _Text = "1"
    reason: _Text = ""
    since: _Text = ""
    until: _Text = ""
    cameras: _Text = ""


def _plate_body(form: PlateForm) -> PlateSearchIn:
    """Form fields -> the API's validated search body (one set of rules for page and API)."""
    try:
        since, until = datetime_local(form.since), datetime_local(form.until)
    except ValueError:
        raise PlateQueryError("times must look like 2025-01-31T13:45") from None
    cameras = [c.strip() for c in form.cameras.split(",") if c.strip()]
    try:
        return PlateSearchIn(
            plate=form.plate,
            mode=form.mode,  # type: ignore[arg-type]
            max_edits=int(form.max_edits or 1),
            reason=form.reason,
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
        form=PlateForm().model_dump(),
        hits=None,
        error=None,
        available=ctx_of(request).plates is not None,
    )


@router.post("/plates")
def plates_search(
    request: Request,
    session: Annotated[Session, Depends(INVESTIGATE_PAGE)],
    form: Annotated[PlateForm, Form()],
) -> Response:
    ctx = ctx_of(request)
    shown = form.model_dump()
    svc = ctx.plates
    if svc is None:
        return render(request, "plates.html", session, 503, form=shown, hits=None, error=None, available=False)
    try:
        res = run_plate_search(ctx, session, _plate_body(form), svc)
    except (PlateQueryError, PlateAccessError, PlateUnavailable) as exc:
        status = _STATUS[type(exc)]
        return render(request, "plates.html", session, status, form=shown, hits=None, error=str(exc), available=True)
    hits = [hit_json(ctx, h) for h in res.hits]
    return render(request, "plates.html", session, form=shown, hits=hits, error=None, available=True)


@router.post("/plates/export.csv")
def plates_export(
    request: Request,
    session: Annotated[Session, Depends(INVESTIGATE_PAGE)],
    form: Annotated[PlateForm, Form()],
) -> Response:
    ctx = ctx_of(request)
    body = _plate_body(form)
    res = run_plate_search(ctx, session, body, plate_service(request), "plate_export")  # errors: dispatch.errors
    return csv_response(ctx, res.hits)


# -- watchlist ----------------------------------------------------------------------------------------------------


@router.get("/watchlist")
def watchlist_page(
    request: Request, session: Annotated[Session, Depends(INVESTIGATE_PAGE)], error: str | None = None
) -> Response:
    svc = ctx_of(request).plates
    if svc is None:
        return render(request, "watchlist.html", session, 503, items=[], error=None, available=False)
    items = [watch_json(e) for e in svc.watchlist()]
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
    svc = plate_service(request)
    try:
        body = WatchIn(plate=plate, match=match, reason=reason, expires_at=datetime_local(expires))  # type: ignore[arg-type]
        svc.watch_add(
            user=session.user.username,
            role=session.user.role.value,
            plate=body.plate,
            match=body.match,
            reason=body.reason,
            expires_at_ms=int(body.expires_at.timestamp() * 1000) if body.expires_at else None,
        )
    except (ValidationError, ValueError, PlateQueryError, PlateAccessError, PlateUnavailable) as exc:
        status = _STATUS.get(type(exc), 400)
        message = (
            "Plate (2-32 characters) and a reason (at least 4 characters) are required."
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        items = [watch_json(e) for e in svc.watchlist()]
        return render(request, "watchlist.html", session, status, items=items, error=message, available=True)
    return RedirectResponse("/watchlist", status_code=303)


@router.post("/watchlist/{entry_id}/{what}")
def watchlist_change(
    request: Request,
    entry_id: Annotated[str, Path(max_length=64)],
    what: Annotated[str, Path(pattern=r"^(expire|remove)$")],
    session: Annotated[Session, Depends(INVESTIGATE_PAGE)],
    reason: PlateField = "",
) -> Response:
    svc = plate_service(request)  # errors (unknown entry, role, no reason, unavailable): dispatch.errors
    who = {"user": session.user.username, "role": session.user.role.value, "entry_id": entry_id, "reason": reason}
    if what == "expire":
        svc.watch_expire(**who)
    else:
        svc.watch_remove(**who)
    return RedirectResponse("/watchlist", status_code=303)
