"""Plate history routes: audited search, the same search as CSV, and snapshots by signed link."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from dispatch.api.common import to_ms
from dispatch.context import ConsoleContext, ctx_of
from dispatch.plates import PlateHit, PlateQuery, PlateResults, PlateService, PlateUnavailable
from dispatch.security import INVESTIGATE_API, AuthFirstRoute
from dispatch.snapshot_links import sign_snapshot, snapshot_response, verify_snapshot
from storage.accounts import Session

router = APIRouter(route_class=AuthFirstRoute)  # role checked before the body is read


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
    svc = ctx_of(request).plates
    if svc is None:
        raise PlateUnavailable("Plate history is not configured on this console.")
    return svc


def hit_json(ctx: ConsoleContext, hit: PlateHit) -> dict[str, Any]:
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


def run_plate_search(
    ctx: ConsoleContext, session: Session, body: PlateSearchIn, svc: PlateService, action: str = "plate_search"
) -> PlateResults:
    """One audited search; ``action`` is ``plate_export`` for CSV, so the log tells a look from a download."""
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
    return svc.search(
        user=session.user.username, role=session.user.role.value, reason=body.reason, query=query, action=action
    )


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


def plates_csv(ctx: ConsoleContext, hits: list[PlateHit]) -> Iterator[str]:
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
    """The same search as CSV (audited as a `plate_export`, distinct from a search)."""
    ctx = ctx_of(request)
    svc = plate_service(request)
    res = await run_in_threadpool(run_plate_search, ctx, session, body, svc, "plate_export")
    return csv_response(ctx, res.hits)


def csv_response(ctx: ConsoleContext, hits: list[PlateHit]) -> StreamingResponse:
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
    """A plate read's snapshot, by the signed link a search returned; each view is audited before it is served."""
    ctx = ctx_of(request)
    ref = verify_snapshot(ctx, token)
    if ref is None:
        return JSONResponse({"detail": "snapshot link invalid or expired; search again"}, status_code=404)
    # the search that gave the link is on the record, but a view is a view of its own (503 if not recordable)
    details = {"snapshot_key": ref.key, "sha256": ref.sha256}
    plate_service(request).audit_view(
        user=session.user.username, role=session.user.role.value, action="plate_snapshot", details=details
    )
    return snapshot_response(ctx, ref)
