"""Camera routes: the camera board's pages of camera health (filtered, sorted and counted on the server).

With 20,000 cameras the board never asks for all of them: it asks for one page
with the filters the dispatcher set, and the console answers from its columnar
index (:mod:`dispatch.camera_board`). Every query parameter is bounded, an
unknown one is refused, and an unknown zone is a 422 that names the zones.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from dispatch.camera_board import BoardQuery, SortKey
from dispatch.context import ctx_of
from dispatch.security import DISPATCH_API, AuthFirstRoute
from storage.accounts import Session
from storage.incident_rules import InvalidInput

router = APIRouter(route_class=AuthFirstRoute)  # role checked before the body is read

MAX_PAGE = 1000
MAX_OFFSET = 1_000_000


class CameraBoardIn(BaseModel):
    """Query parameters of ``GET /api/cameras``."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["up", "degraded", "stale", "down"] | None = Field(
        default=None, description="shown state; 'stale': no status for stale_after_ms"
    )
    zone: str | None = Field(default=None, min_length=1, max_length=64, description="a configured camera group")
    worker: str | None = Field(default=None, min_length=1, max_length=64, description="exact worker id")
    q: str = Field(default="", max_length=64, description="case-insensitive text in camera id, worker or reason")
    sort: SortKey = "state"
    order: Literal["asc", "desc"] = "asc"
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    limit: int = Field(default=100, ge=1, le=MAX_PAGE)


@router.get("/cameras", tags=["cameras"])
def cameras(
    request: Request,
    session: Annotated[Session, Depends(DISPATCH_API)],
    params: Annotated[CameraBoardIn, Query()],
) -> dict[str, Any]:
    """One page of camera health: each camera's state, last-frame age, worker and zones; counts per state.

    `counts` are per shown state over the cameras that pass every filter but `state`; `matching` passes all.
    """
    ctx = ctx_of(request)
    board = ctx.board
    if params.zone is not None and params.zone not in board.group_names:
        raise InvalidInput(f"unknown zone; configured zones: {', '.join(board.group_names) or 'none'}")
    board.ensure_loaded(ctx.store.cameras)
    page = board.page(
        BoardQuery(
            state=params.state,
            group=params.zone,
            worker=params.worker,
            text=params.q.strip(),
            sort=params.sort,
            descending=params.order == "desc",
            offset=params.offset,
            limit=params.limit,
        ),
        now_ms=int(time.time() * 1000),
    )
    return {
        "items": page.items,
        "total": page.total,
        "matching": page.matching,
        "counts": page.counts,
        "offset": params.offset,
        "limit": params.limit,
        "zones": board.group_names,
        "workers": page.workers[:MAX_PAGE],
        "server_now_ms": page.now_ms,
        "stale_after_ms": board.stale_after_ms,
    }
