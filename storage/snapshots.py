"""The snapshot store interface, its key layout, and the upload hook the relay calls before publishing.

Key: ``{camera_id}/{yyyy}/{mm}/{dd}/{event_id}.jpg`` (UTC date of capture), so
retention can drop whole days and an operator can find a camera's pictures by
date. The sha256 goes into the event, so the console and investigators can
prove the object is the one the event refers to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from core.snapshot import SnapshotRef

__all__ = [
    "BlobCarrier",
    "KeyedSnapshotStore",
    "SnapshotError",
    "SnapshotRef",
    "SnapshotStore",
    "artifact_sha256",
    "key_for",
    "sha256_hex",
    "upload_blob",
    "upload_hook",
]


class SnapshotError(RuntimeError):
    """A store operation failed (message redacted) or an object does not match its reference."""


def key_for(camera_id: str, captured_at: datetime, event_id: UUID | str) -> str:
    """Object key of a snapshot; the date is the UTC date of capture (naive datetimes are refused)."""
    if captured_at.tzinfo is None:
        raise ValueError("captured_at must be timezone-aware")
    d = captured_at.astimezone(UTC)
    if "/" in camera_id or not camera_id:
        raise ValueError(f"camera id {camera_id!r} cannot form an object key")
    return f"{camera_id}/{d:%Y}/{d:%m}/{d:%d}/{event_id}.jpg"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SnapshotStore(Protocol):
    """What a snapshot store offers; :class:`storage.s3_store.S3SnapshotStore` and the local one implement it."""

    kind: str
    bucket: str

    def ref_for(self, camera_id: str, event_id: UUID | str, captured_at: datetime, jpeg: bytes) -> SnapshotRef:
        """The reference ``put`` would return, computed without I/O (the worker puts it in the event first)."""
        ...

    def put(self, camera_id: str, event_id: UUID | str, captured_at: datetime, jpeg: bytes) -> SnapshotRef:
        """Store a snapshot; idempotent for the same key and bytes."""
        ...

    def put_key(self, key: str, jpeg: bytes, sha256: str | None = None) -> SnapshotRef:
        """Store bytes under an exact key (the relay's upload of a spooled blob)."""
        ...

    def put_clip(self, key: str, data: bytes, sha256: str | None = None) -> None:
        """Store an evidence clip (MP4) under an exact key; multipart on S3; idempotent for the same bytes."""
        ...

    def put_object(self, key: str, data: bytes, content_type: str) -> None:
        """Store any evidence object (a manifest, a chain head) under an exact key."""
        ...

    def read_object(self, key: str) -> bytes | None:
        """An object's bytes, or None when it does not exist."""
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under a prefix (recursive), sorted."""
        ...

    def exists(self, ref: SnapshotRef) -> bool:
        """True when the object is there with the reference's size (and sha256, where the store records it)."""
        ...

    def get(self, ref: SnapshotRef) -> bytes:
        """The object's bytes; raises :class:`SnapshotError` when missing or when its sha256 differs."""
        ...

    def presigned_url(self, ref: SnapshotRef, expires_s: int = 3600) -> str:
        """A URL the console can hand to a browser (a ``file://`` URL for the local store)."""
        ...


class BlobCarrier(Protocol):
    """What the upload hook needs from a spooled record (structural, so storage need not import event_bus)."""

    @property
    def blob(self) -> bytes | None: ...

    @property
    def blob_key(self) -> str | None: ...


def upload_hook(store: SnapshotStore) -> Callable[[BlobCarrier], None]:
    """A ``before_publish`` for :class:`event_bus.relay.Relay`: upload the record's blob under its key.

    Raising (store down) makes the relay hold the event until the object exists.
    """

    def _upload(rec: BlobCarrier) -> None:
        if rec.blob is not None and rec.blob_key is not None:
            upload_blob(store, rec.blob_key, rec.blob)

    return _upload


def upload_blob(store: SnapshotStore, key: str, blob: bytes, sha256: str | None = None) -> None:
    """Store a spooled artifact (snapshot or clip) under its key; ``sha256``, when the event already holds it,
    is not computed again."""
    if key.endswith(".mp4"):
        store.put_clip(key, blob, sha256)
    else:
        store.put_key(key, blob, sha256)


def artifact_sha256(event: Mapping[str, Any], key: str) -> str | None:
    """The sha256 the event records for the artifact stored under ``key`` (its snapshot or its clip), if any.

    The worker hashes each artifact once, when it builds the event; the upload and the manifest reuse it.
    """
    for field in ("snapshot", "clip"):
        ref = event.get(field)
        if isinstance(ref, Mapping) and ref.get("key") == key and isinstance(ref.get("sha256"), str):
            return str(ref["sha256"])
    return None


def make_ref(kind: str, bucket: str, key: str, jpeg: bytes, sha256: str | None = None) -> SnapshotRef:
    """The reference of ``jpeg`` under ``key``; ``sha256`` when the caller already has it (else computed here)."""
    if not jpeg:
        raise ValueError("empty snapshot")
    digest = sha256 if sha256 is not None else sha256_hex(jpeg)
    return SnapshotRef(store=kind, bucket=bucket, key=key, sha256=digest, size=len(jpeg))  # type: ignore[arg-type]


class KeyedSnapshotStore:
    """What every snapshot store does the same way: the reference (key layout, sha256, size) is computed here,
    once, and a store only writes the bytes under the key (:meth:`_write_object`)."""

    kind: str
    bucket: str

    def ref_for(self, camera_id: str, event_id: UUID | str, captured_at: datetime, jpeg: bytes) -> SnapshotRef:
        return make_ref(self.kind, self.bucket, key_for(camera_id, captured_at, event_id), jpeg)

    def put(self, camera_id: str, event_id: UUID | str, captured_at: datetime, jpeg: bytes) -> SnapshotRef:
        return self.put_key(key_for(camera_id, captured_at, event_id), jpeg)

    def put_key(self, key: str, jpeg: bytes, sha256: str | None = None) -> SnapshotRef:
        ref = make_ref(self.kind, self.bucket, key, jpeg, sha256)
        self._write_object(key, jpeg, ref)
        return ref

    def _write_object(self, key: str, jpeg: bytes, ref: SnapshotRef) -> None:
        raise NotImplementedError
