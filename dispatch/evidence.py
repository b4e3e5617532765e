"""Evidence in the console: clip playback, evidence bundles and legal hold, every view audited, failing closed.

Who sees what:

* dispatchers play an incident's clip *masked* (the camera's privacy polygons
  burned in, re-encoded on demand and cached); asking for the original is
  refused, and the refusal is audited;
* investigators and admins may play the original, and export an evidence
  bundle (a reason is required); bundles carry the masked clip unless the
  original is asked for explicitly;
* investigators and admins put incidents on legal hold (audited), which keeps
  their objects out of retention expiry (:mod:`storage.retention`).

Playback: ``POST .../clip/play`` writes the audit record and only then
returns a short-lived signed URL (HMAC over user, incident, variant and
expiry); ``GET /api/clips/<token>`` serves it with HTTP range support so the
``<video>`` element can seek. The URL is bound to the user's session. If the
audit record cannot be written, nothing is served (503).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from dispatch.incident_ids import valid_incident_id
from dispatch.security import ANY_API, Access, AuthFirstRoute
from ingest.masking import mask_clip, masks_digest
from storage.accounts import Role, Session
from storage.audit import AuditLog, AuditRecord, AuditUnavailable, open_audit_log
from storage.db import NotFoundError
from storage.incident_events import EvidenceIndex, Hold
from storage.retention import set_hold
from storage.snapshots import SnapshotError, SnapshotStore

log = logging.getLogger(__name__)

router = APIRouter(route_class=AuthFirstRoute)  # role checked before the body is read

ORIGINAL_ROLES = frozenset({Role.INVESTIGATOR, Role.ADMIN})
EXPORT_API = Access(Role.INVESTIGATOR, Role.ADMIN, audit_as="evidence_bundle")
HOLD_API = Access(Role.INVESTIGATOR, Role.ADMIN, audit_as="legal_hold")
TOKEN_TTL_S = 300
Variant = Literal["masked", "original"]


@dataclass
class EvidenceService:
    """What the evidence routes need: the event index, the audit log, the object store and a masked-clip cache."""

    index: EvidenceIndex
    audit: AuditLog | None
    store: SnapshotStore | None
    cache_dir: Path
    key: bytes  # signs play links; derived from the console's link_key, so every replica accepts them
    _clips: OrderedDict[tuple[str, str], bytes] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record_events(self, incidents: list[Any]) -> None:
        """The console's bus consumer hands every incident event here first (the bundle's event history)."""
        self.index.record([i.model_dump(mode="json") for i in incidents])

    # -- audit ----------------------------------------------------------------------------------------------------

    def audited(self, session: Session, action: str, incident_id: str, *, outcome: str = "ok", reason: str = "",
                details: dict[str, Any] | None = None) -> int:  # fmt: skip
        """Append the audit record of a view/export; raises 503 (the view must not happen) when it cannot."""
        if self.audit is None:
            raise HTTPException(503, "the audit log is not available, so evidence cannot be shown (fail closed)")
        record = AuditRecord(
            actor=session.user.username,
            role=session.user.role.value,
            action=action,
            outcome=outcome,
            reason=reason,
            details={"incident_id": incident_id, **(details or {})},
        )
        try:
            return self.audit.append(record, datetime.now(UTC)).seq
        except AuditUnavailable:
            raise HTTPException(
                503, "the audit log cannot be written, so evidence cannot be shown (fail closed)"
            ) from None

    def audit_entries(self, incident_id: str) -> list[dict[str, Any]]:
        """Audit entries that concern an incident (views, exports, holds), with their chain hashes."""
        if self.audit is None:
            return []
        out = []
        for e in self.audit.entries():
            if json.loads(e.details or "{}").get("incident_id") == incident_id:
                out.append({"seq": e.seq, "at": e.at.isoformat(), "actor": e.actor, "role": e.role, "action": e.action,
                            "outcome": e.outcome, "reason": e.reason, "details": json.loads(e.details),
                            "prev_hash": e.prev_hash, "hash": e.hash})  # fmt: skip
        return out

    # -- tokens ---------------------------------------------------------------------------------------------------

    def token(self, user: str, incident_id: str, variant: Variant, now: float) -> str:
        body = json.dumps([user, incident_id, variant, int(now) + TOKEN_TTL_S], separators=(",", ":")).encode()
        sig = hmac.new(self.key, body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(body + sig).decode().rstrip("=")

    def check(self, token: str, user: str, now: float) -> tuple[str, Variant]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            body, sig = raw[:-16], raw[-16:]
            if not hmac.compare_digest(sig, hmac.new(self.key, body, hashlib.sha256).digest()[:16]):
                raise ValueError("bad signature")
            who, incident_id, variant, expires = json.loads(body)
        except (ValueError, TypeError):
            raise HTTPException(404, "no such clip link") from None
        if who != user or now > expires:
            raise HTTPException(403, "this clip link has expired or belongs to another session; play it again")
        return str(incident_id), variant

    # -- bytes ----------------------------------------------------------------------------------------------------

    def clip_bytes(self, clip: dict[str, Any], variant: Variant) -> bytes:
        """The original clip (checked against its sha256) or its masked copy (cached on disk and in memory)."""
        masks = clip.get("masks") or []
        name = clip["sha256"] if variant == "original" or not masks else f"{clip['sha256']}-{masks_digest(masks)}"
        with self._lock:
            hit = self._clips.get((name, variant))
            if hit is not None:
                self._clips.move_to_end((name, variant))
                return hit
        if self.store is None:
            raise HTTPException(503, "the object store is not reachable from this console")
        cached = self.cache_dir / f"{name}.mp4"
        if variant == "masked" and masks and cached.exists():
            data = cached.read_bytes()
        else:
            original = self.store.read_object(clip["key"])
            if original is None or hashlib.sha256(original).hexdigest() != clip["sha256"]:
                raise HTTPException(404, "the clip is missing or does not match its checksum")
            data = original
            if variant == "masked" and masks:
                data = mask_clip(original, masks)
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(".tmp")
                tmp.write_bytes(data)
                tmp.replace(cached)
        with self._lock:
            self._clips[(name, variant)] = data
            while len(self._clips) > 8:
                self._clips.popitem(last=False)
        return data


def evidence_service(settings: Any, store: SnapshotStore | None, link_key: bytes) -> EvidenceService | None:
    """The console's evidence service on its databases; None (evidence routes answer 503) when they cannot open.

    Play links are signed with a key derived from the console's ``link_key`` (a secret reference shared by the
    replicas), so a play request and the media requests behind it may reach different replicas.
    """
    url = str(settings.plates_database or settings.database)  # the same hash-chained log as plate searches
    try:
        index = EvidenceIndex(settings.database)
        audit: AuditLog = open_audit_log(url)
        audit.migrate()
    except Exception as exc:
        log.warning("console: evidence unavailable: %s", type(exc).__name__)
        return None
    db_path = settings.database_path()
    base = db_path.parent if db_path is not None else Path("var")
    key = hashlib.sha256(b"kuzet-clip-links\n" + link_key).digest()  # not the snapshot links' key itself
    return EvidenceService(index, audit, store, base / "clip-cache", key)


def service_of(request: Request) -> EvidenceService:
    svc = request.app.state.console.extra.get("evidence")
    if svc is None:
        raise HTTPException(503, "evidence is not configured on this console")
    assert isinstance(svc, EvidenceService)
    return svc


def _clip_of(svc: EvidenceService, incident_id: str) -> dict[str, Any]:
    clip = svc.index.clip(incident_id)
    if clip is None:
        raise HTTPException(404, "this incident has no clip (yet)")
    return clip


# -- routes -----------------------------------------------------------------------------------------------------------


@router.get("/incidents/{incident_id}/evidence", tags=["evidence"])
def evidence_info(incident_id: str, request: Request, session: Annotated[Session, Depends(ANY_API)]) -> dict[str, Any]:
    """What evidence the incident has (clip status and span, snapshots, legal hold); no media, so not audited."""
    svc = service_of(request)
    iid = valid_incident_id(incident_id)
    clip = svc.index.clip(iid)
    hold = svc.index.hold(iid)
    return {
        "clip": None if clip is None else {k: clip.get(k) for k in
                                           ("status", "reason", "duration_s", "started_at", "ended_at", "size")},
        "masked_for_you": session.user.role not in ORIGINAL_ROLES,
        "may_export": session.user.role in ORIGINAL_ROLES,
        "snapshots": len(svc.index.snapshots(iid)),
        "hold": hold.to_json() if hold else None,
    }  # fmt: skip


class PlayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variant: Variant = "masked"


@router.post("/incidents/{incident_id}/clip/play", tags=["evidence"])
def play_clip(
    incident_id: str, body: PlayIn, request: Request, session: Annotated[Session, Depends(ANY_API)]
) -> dict[str, Any]:
    """Audit a clip view, then return a short-lived URL for the ``<video>`` element (range requests, seekable)."""
    svc = service_of(request)
    iid = valid_incident_id(incident_id)
    clip = _clip_of(svc, iid)
    details = {"clip_key": clip["key"], "clip_sha256": clip["sha256"], "variant": body.variant}
    if body.variant == "original" and session.user.role not in ORIGINAL_ROLES:
        svc.audited(session, "clip_play", iid, outcome="refused", details=details)
        raise HTTPException(403, "dispatchers see clips with privacy masks; the original is for investigators")
    seq = svc.audited(session, "clip_play", iid, details=details)
    token = svc.token(session.user.username, iid, body.variant, time.time())
    return {"url": f"/api/clips/{token}", "expires_in_s": TOKEN_TTL_S, "audit_id": seq, "variant": body.variant}


@router.get("/clips/{token}", tags=["evidence"], response_class=Response)
async def clip_media(
    token: str,
    request: Request,
    session: Annotated[Session, Depends(ANY_API)],
    range_header: Annotated[str | None, Header(alias="range")] = None,
) -> Response:
    """The clip bytes behind a play link, with ``Range`` support (206) so browsers can seek."""
    svc = service_of(request)
    iid, variant = svc.check(token, session.user.username, time.time())
    clip = _clip_of(svc, iid)
    data = await run_in_threadpool(svc.clip_bytes, clip, variant)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store"}
    if range_header:
        span = _parse_range(range_header, len(data))
        if span is None:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{len(data)}"})
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return Response(data[start : end + 1], status_code=206, media_type="video/mp4", headers=headers)
    return Response(data, media_type="video/mp4", headers=headers)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` / ``a-`` / ``-n`` range, clamped; None when unsatisfiable or malformed."""
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first == "":
            n = int(last)
            start, end = max(0, size - n), size - 1
        else:
            start = int(first)
            end = int(last) if last else size - 1
    except ValueError:
        return None
    end = min(end, size - 1)
    return (start, end) if 0 <= start <= end else None


class BundleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=4, max_length=500, description="case number or justification (audited)")
    original: bool = Field(default=False, description="ship the unmasked clip instead of the masked copy")


@router.post("/incidents/{incident_id}/bundle", tags=["evidence"], response_class=Response)
async def export_bundle(
    incident_id: str, body: BundleIn, request: Request, session: Annotated[Session, Depends(EXPORT_API)]
) -> Response:
    """Evidence bundle (zip): clip, snapshots, the incident's events, manifests and its audit entries."""
    svc = service_of(request)
    iid = valid_incident_id(incident_id)
    history = svc.index.history(iid)
    if not history:
        raise NotFoundError(iid)
    variant: Variant = "original" if body.original else "masked"
    svc.audited(session, "evidence_bundle", iid, reason=body.reason.strip(), details={"variant": variant})
    data = await run_in_threadpool(_bundle, svc, iid, history, variant)
    name = f"kuzet-evidence-{iid}.zip"
    return Response(
        data, media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


def _bundle(svc: EvidenceService, iid: str, history: list[dict[str, Any]], variant: Variant) -> bytes:
    if svc.store is None:
        raise HTTPException(503, "the object store is not reachable from this console")
    buf = io.BytesIO()
    derived = []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("events.json", json.dumps(history, indent=2, sort_keys=True))
        refs = [(s, "snapshots/") for s in svc.index.snapshots(iid)]
        clip = svc.index.clip(iid)
        for ref, folder in refs:
            data = svc.store.read_object(ref["key"])
            if data is not None:
                zf.writestr(folder + ref["key"].rsplit("/", 1)[-1], data)
            _add_manifest(svc.store, zf, ref["key"])
        if clip is not None:
            base = clip["key"].rsplit("/", 1)[-1]
            data = svc.clip_bytes(clip, variant)
            if variant == "original" or not clip.get("masks"):
                zf.writestr("clips/" + base, data)
            else:
                member = "clips/masked-" + base
                zf.writestr(member, data)
                derived.append(
                    {
                        "file": member,
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "source_key": clip["key"],
                        "how": "privacy masks burned in, re-encoded (H.264)",
                        "masks": clip.get("masks"),
                    }
                )
            _add_manifest(svc.store, zf, clip["key"])
        if derived:
            zf.writestr("derived.json", json.dumps(derived, indent=2))
        zf.writestr("audit.json", json.dumps(svc.audit_entries(iid), indent=2))
    return buf.getvalue()


def _add_manifest(store: SnapshotStore, zf: zipfile.ZipFile, key: str) -> None:
    manifest = store.read_object(key + ".manifest.json")
    if manifest is not None:
        zf.writestr("manifests/" + key.rsplit("/", 1)[-1] + ".manifest.json", manifest)


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on: bool
    reason: str = Field(min_length=4, max_length=500)


@router.post("/incidents/{incident_id}/hold", tags=["evidence"])
def legal_hold(
    incident_id: str, body: HoldIn, request: Request, session: Annotated[Session, Depends(HOLD_API)]
) -> JSONResponse:
    """Put an incident's evidence on legal hold (kept past retention) or release it; audited."""
    svc = service_of(request)
    iid = valid_incident_id(incident_id)
    if not svc.index.history(iid):
        raise NotFoundError(iid)
    action = "legal_hold" if body.on else "legal_hold_release"
    svc.audited(session, action, iid, reason=body.reason.strip())
    if svc.store is not None and hasattr(svc.store, "set_hold"):  # S3: take the objects out of lifecycle expiry
        clip = svc.index.clip(iid)
        keys = [s["key"] for s in svc.index.snapshots(iid)] + ([clip["key"]] if clip else [])
        try:
            set_hold(svc.store, keys, body.on)  # type: ignore[arg-type]
        except SnapshotError:
            raise HTTPException(503, "the object store could not be updated; the hold is not in force") from None
    hold = Hold(iid, session.user.username, session.user.role.value, body.reason.strip(), int(time.time() * 1000))
    svc.index.set_hold(iid, hold if body.on else None)
    return JSONResponse({"hold": hold.to_json() if body.on else None})
