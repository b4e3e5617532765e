"""``GET /api/feed/cards``: the dispatcher's feed as cards, alerts folded per camera (dispatch.grouping)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from dispatch.api.incidents import incident_filter
from dispatch.context import ctx_of
from dispatch.grouping import fold
from dispatch.security import DISPATCH_API, AuthFirstRoute
from storage.accounts import Session

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
