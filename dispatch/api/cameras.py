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
    """Every camera's last reported health, the owning worker, and its groups."""
    ctx = ctx_of(request)
    items = []
    for c in ctx.store.cameras():
        doc = c.to_json()
        doc["groups"] = ctx.groups_of(c.camera_id)
        items.append(doc)
    return {"items": items, "server_now_ms": int(time.time() * 1000)}
