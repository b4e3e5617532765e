"""The dispatcher's feed as cards, alerts folded per camera (dispatch.grouping), and actions on a whole card.

``GET /api/feed/cards`` lists the cards; ``POST /api/feed/cards/actions``
acknowledges (resolves, marks false alarm) every incident of a folded card: a
dispatcher who acknowledges a card that says "+13" has looked at fourteen
alerts, not only the newest, and the other thirteen must not stay "new" in
everyone's feed. Each incident still takes the action through its own
workflow, so its history records who did it and when, exactly as if it had been
clicked on its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from dispatch.api.incidents import incident_filter
from dispatch.context import ctx_of
from dispatch.grouping import fold
from dispatch.incident_ids import valid_incident_id
from dispatch.security import DISPATCH_API, AuthFirstRoute
from storage.accounts import Session
from storage.db import NotFoundError
from storage.incident_records import IncidentRecord
from storage.incident_rules import WORKFLOW_ROLES, Action, TransitionError

router = APIRouter(route_class=AuthFirstRoute)  # role checked before the body is read

# Alerts read to build one page of cards: a page of 500 cards over a flooding camera still folds whole groups.
_SCAN = 5000


@router.get("/feed/cards", tags=["incidents"])
def feed_cards(
    request: Request,
    session: Annotated[Session, Depends(DISPATCH_API)],
    camera: Annotated[list[str], Query(max_length=100)] = [],  # noqa: B006 - FastAPI query lists
    group: Annotated[list[str], Query(max_length=50)] = [],  # noqa: B006
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Alerts (not detections), newest first, related ones folded into one card with `group_count`."""
    ctx = ctx_of(request)
    flt = incident_filter(
        ctx,
        types=[],
        severities=[],
        statuses=[],
        cameras=camera,
        groups=group,
        since=since,
        until=None,
        before=None,
        limit=_SCAN,
        reviews=["alert"],
    )
    cards = fold(ctx.store.list_incidents(flt), ctx.settings.feed_group_window_s)
    return {"items": [c.to_json() for c in cards[:limit]], "window_s": ctx.settings.feed_group_window_s}


class CardActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["acknowledge", "resolve", "false_alarm"]
    incident_ids: list[str] = Field(min_length=1, max_length=500, description="the card's `incident_ids`")
    note: str | None = Field(default=None, max_length=4000, description="plain text, added to each incident")


@router.post("/feed/cards/actions", tags=["incidents"])
def act_on_card(
    body: CardActionIn, request: Request, session: Annotated[Session, Depends(DISPATCH_API)]
) -> dict[str, Any]:
    """Apply one workflow action to every incident of a folded card, each recorded in its own history.

    Incidents that cannot take it (a colleague acknowledged one meanwhile, one is already closed) are listed in
    `skipped` with the reason; the others are changed and pushed to every open console.
    """
    if session.user.role not in WORKFLOW_ROLES:
        raise TransitionError(f"role {session.user.role.value} cannot change incidents")
    ctx = ctx_of(request)
    action = Action(body.action)
    changed: list[IncidentRecord] = []
    skipped: list[dict[str, str]] = []
    ids = list(dict.fromkeys([valid_incident_id(i) for i in body.incident_ids]))  # all checked before any change
    for iid in ids:
        try:
            rec, _ = ctx.store.act(iid, action, session.user, note=body.note)
        except TransitionError as exc:
            skipped.append({"incident_id": iid, "reason": str(exc)})
            continue
        except NotFoundError:
            skipped.append({"incident_id": iid, "reason": "no such incident"})
            continue
        changed.append(rec)
    if changed:
        ctx.hub.publish_incidents(changed)
    return {"incidents": [r.to_json() for r in changed], "skipped": skipped}
