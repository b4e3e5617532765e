"""Snapshots served by the console itself: read from the store and checked, and signed expiring links.

The browser never sees a storage URL or a presigned signature (the CSP stays
``img-src 'self'``): incident snapshots are fetched by incident id, plate-read
snapshots by an opaque HMAC-signed token that a search returned.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse

from core.snapshot import SnapshotRef
from dispatch.context import ConsoleContext
from storage.snapshots import SnapshotError


def snapshot_response(ctx: ConsoleContext, ref_doc: dict[str, Any] | SnapshotRef) -> Response:
    store = ctx.snapshots
    try:
        ref = ref_doc if isinstance(ref_doc, SnapshotRef) else SnapshotRef.model_validate(ref_doc)
        if store is None or ref.store != store.kind or ref.bucket != store.bucket:
            return JSONResponse({"detail": "snapshot store not reachable from this console"}, status_code=404)
        data = store.get(ref)
    except (SnapshotError, ValueError):
        return JSONResponse({"detail": "snapshot missing or does not match its checksum"}, status_code=404)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


def _signer_key(ctx: ConsoleContext) -> bytes:
    return ctx.link_key  # from the link_key secret reference: the same on every replica


def sign_snapshot(ctx: ConsoleContext, ref: SnapshotRef, ttl_s: int = 3600) -> str:
    """An opaque, expiring, HMAC-signed link token for one snapshot (no lookup table, no storage secret)."""
    doc = {"r": ref.model_dump(), "e": int(time.time()) + ttl_s}
    payload = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).rstrip(b"=")
    mac = base64.urlsafe_b64encode(hmac.new(_signer_key(ctx), payload, hashlib.sha256).digest()).rstrip(b"=")
    return (payload + b"." + mac).decode()


def verify_snapshot(ctx: ConsoleContext, token: str) -> SnapshotRef | None:
    payload, _, mac = token.encode().partition(b".")
    want = base64.urlsafe_b64encode(hmac.new(_signer_key(ctx), payload, hashlib.sha256).digest()).rstrip(b"=")
    if not hmac.compare_digest(mac, want):
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        if int(doc["e"]) < time.time():
            return None
        return SnapshotRef.model_validate(doc["r"])
    except (ValueError, KeyError, TypeError):
        return None
