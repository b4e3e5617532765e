"""Camera routes: every camera's last reported health, its worker and its groups."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from dispatch.context import ctx_of
from dispatch.security import DISPATCH_API, AuthFirstRoute
from storage.accounts import Session

router = APIRouter(route_class=AuthFirstRoute)  # role checked before the body is read


@router.get("/cameras", tags=["cameras"])
def cameras(request: Request, session: Annotated[Session, Depends(DISPATCH_API)]) -> dict[str, Any]:
    """Every camera's last reported health, the owning worker, its groups, and whether the report is stale."""
    ctx = ctx_of(request)
    now_ms = int(time.time() * 1000)
    stale_ms = int(ctx.settings.camera_stale_after_s * 1000)
    items = []
    for c in ctx.store.cameras():
        doc = c.to_json()
        doc["groups"] = ctx.groups_of(c.camera_id)
        doc["stale"] = c.state != "down" and now_ms - c.at_ms > stale_ms
        items.append(doc)
    return {"items": items, "server_now_ms": now_ms, "stale_after_ms": stale_ms}
