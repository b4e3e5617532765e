"""Clip object keys and references: where a clip lives in the object store and what its event says about it.

Key: ``{camera_id}/{yyyy}/{mm}/{dd}/{incident_id}.mp4`` (UTC date of the clip's
first frame), beside the snapshots of the same camera and day, so one
camera-day of evidence is one prefix (what ``kuzet evidence verify`` walks and
what retention expires). One clip per incident, so the incident id names it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from core.clip import ClipRef, ClipStatus

CLIP_CONTENT_TYPE = "video/mp4"
CLIP_SUFFIX = ".mp4"
MANIFEST_SUFFIX = ".manifest.json"


def clip_key_for(camera_id: str, started_at: datetime, incident_id: UUID | str) -> str:
    """Object key of an incident's clip (naive datetimes and camera ids that would break the key are refused)."""
    if started_at.tzinfo is None:
        raise ValueError("started_at must be timezone-aware")
    if "/" in camera_id or not camera_id:
        raise ValueError(f"camera id {camera_id!r} cannot form an object key")
    d = started_at.astimezone(UTC)
    return f"{camera_id}/{d:%Y}/{d:%m}/{d:%d}/{incident_id}{CLIP_SUFFIX}"


def manifest_key_for(artifact_key: str) -> str:
    """The chain-of-custody manifest stored beside an artifact (clip or snapshot)."""
    return artifact_key + MANIFEST_SUFFIX


def clip_ref(
    *,
    store: str,
    bucket: str,
    key: str,
    sha256: str,
    size: int,
    started_at: datetime,
    duration_s: float,
    incomplete_reason: str | None,
    masks: list[list[tuple[float, float]]] | None = None,
) -> ClipRef:
    """The reference an event carries; ``incomplete_reason`` set means the clip holds less than configured."""
    return ClipRef(
        store=store,  # type: ignore[arg-type]
        bucket=bucket,
        key=key,
        sha256=sha256,
        size=size,
        started_at=started_at,
        ended_at=started_at + timedelta(seconds=duration_s),
        duration_s=round(duration_s, 3),
        status=ClipStatus.INCOMPLETE if incomplete_reason else ClipStatus.COMPLETE,
        reason=(incomplete_reason or "")[:256],
        manifest_key=manifest_key_for(key),
        masks=masks or [],
    )
