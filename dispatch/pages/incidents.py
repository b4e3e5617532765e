"""Dispatcher pages: the live feed, incidents after the fact, one incident, the camera board."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from dispatch.api.incidents import IncidentType, incident_filter, next_cursor
from dispatch.context import ctx_of, error_page
from dispatch.incident_ids import valid_incident_id
from dispatch.pages.common import datetime_local, render
from dispatch.security import DISPATCH_PAGE, AuthFirstRoute
from storage.accounts import Session
from storage.db import NotFoundError
from storage.incident_rules import WorkflowStatus

router = APIRouter(route_class=AuthFirstRoute)  # role checked before the body is read

INCIDENT_TYPES = list(get_args(IncidentType))  # one list of incident types: the API's
SEVERITIES = ["critical", "high", "medium", "low"]


def _boot(request: Request, session: Session) -> dict[str, Any]:
    ctx = ctx_of(request)
    return {
        "user": session.user.username,
        "role": session.user.role.value,
        "max_cards": ctx.settings.max_cards,
        "fold_window_ms": int(ctx.settings.feed_group_window_s * 1000),
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
        since_dt, until_dt = datetime_local(since), datetime_local(until)
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
