"""Live view in the console: audited, role-checked, streamed from the worker that runs the camera.

``POST /api/cameras/<id>/live`` writes a ``live_view`` audit record (who,
role, camera, the incident it was opened from, masked or not) and only then
returns a short-lived link bound to the session; if the record cannot be
written the view is refused (503, fail closed). ``GET /api/live/<token>``
proxies the worker's fragmented-MP4 stream (:mod:`worker.live`) for the
browser's Media Source Extensions.

The worker's address comes from the camera's last status record (its worker
id) and the operator's ``live_workers`` setting (worker id -> URL), never from
the request, so the console cannot be made to fetch from arbitrary hosts.
Dispatchers get the stream with the camera's privacy masks burned in;
investigators and admins get the camera's own packets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import time
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from dispatch.context import ctx_of
from dispatch.evidence import ORIGINAL_ROLES, service_of
from dispatch.security import ANY_API, AuthFirstRoute
from storage.accounts import Session

router = APIRouter(route_class=AuthFirstRoute)  # role checked before the body is read

LIVE_TTL_S = 60  # long enough to open the stream; the stream itself may run longer
READ_TIMEOUT_S = 15.0


class LiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    incident_id: str = Field(default="", max_length=64, description="the incident the view was opened from, if any")


def _sign(key: bytes, doc: list[Any]) -> str:
    body = json.dumps(["live", *doc], separators=(",", ":")).encode()
    sig = hmac.new(key, body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(body + sig).decode().rstrip("=")


def _verify(key: bytes, token: str, user: str) -> tuple[str, bool]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body, sig = raw[:-16], raw[-16:]
        if not hmac.compare_digest(sig, hmac.new(key, body, hashlib.sha256).digest()[:16]):
            raise ValueError("bad signature")
        kind, who, camera_id, masked, expires = json.loads(body)
    except (ValueError, TypeError):
        raise HTTPException(404, "no such live link") from None
    if kind != "live" or who != user or time.time() > expires:
        raise HTTPException(403, "this live link has expired or belongs to another session; open it again")
    return str(camera_id), bool(masked)


def _worker_url(request: Request, camera_id: str) -> str:
    """The live endpoint of the worker running the camera: status record -> operator-configured URL."""
    ctx = ctx_of(request)
    record = next((c for c in ctx.store.cameras() if c.camera_id == camera_id), None)
    if record is None:
        raise HTTPException(404, "no such camera (no worker has reported it)")
    url = ctx.settings.live_workers.get(record.worker_id)
    if url is None:
        raise HTTPException(503, f"no live-view address is configured for worker {record.worker_id}")
    return str(url).rstrip("/")


@router.post("/cameras/{camera_id}/live", tags=["evidence"])
def open_live(
    camera_id: str, body: LiveIn, request: Request, session: Annotated[Session, Depends(ANY_API)]
) -> dict[str, Any]:
    """Audit a live view, then return a short-lived link to its stream (fragmented MP4, for MSE)."""
    svc = service_of(request)
    _worker_url(request, camera_id)  # unknown camera or unconfigured worker: refused before anything is audited
    masked = session.user.role not in ORIGINAL_ROLES
    details = {"camera_id": camera_id, "variant": "masked" if masked else "original"}
    seq = svc.audited(session, "live_view", body.incident_id, details=details)
    token = _sign(svc.key, [session.user.username, camera_id, masked, int(time.time()) + LIVE_TTL_S])
    return {"url": f"/api/live/{token}", "audit_id": seq, "masked": masked}


@router.get("/live/{token}", tags=["evidence"], response_class=StreamingResponse)
def live_media(token: str, request: Request, session: Annotated[Session, Depends(ANY_API)]) -> StreamingResponse:
    """The live stream behind a link, proxied from the camera's worker."""
    svc = service_of(request)
    camera_id, masked = _verify(svc.key, token, session.user.username)
    base = urlsplit(_worker_url(request, camera_id))
    conn_cls = http.client.HTTPSConnection if base.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(base.hostname or "", base.port, timeout=READ_TIMEOUT_S)
    try:
        conn.request("GET", f"{base.path}/live/{quote(camera_id)}" + ("?masked=1" if masked else ""))
        upstream = conn.getresponse()
    except OSError:
        conn.close()
        raise HTTPException(502, "the camera's worker cannot be reached") from None
    if upstream.status != 200:
        conn.close()
        raise HTTPException(503, "the camera is not streaming on its worker now")
    media_type = upstream.getheader("Content-Type", "video/mp4")

    def relay() -> Iterator[bytes]:
        try:
            while chunk := upstream.read1(256 * 1024):
                yield chunk
        except OSError:
            return  # the worker went away: the stream ends, the browser can open it again
        finally:
            conn.close()

    return StreamingResponse(relay(), media_type=media_type, headers={"Cache-Control": "no-store"})
