"""Chain of custody: a manifest beside every clip and snapshot, chained per camera, so a deletion shows.

Each stored artifact gets ``<key>.manifest.json`` (canonical JSON: sorted
keys, no spaces) naming the camera, its source URL with credentials
redacted, the incident and event, the time range, the worker and model
versions, the artifact's sha256 and size, and the key and sha256 of the
*previous* manifest of the same camera. The chain's head per camera lives at
``_chain/<camera_id>.json`` in the same bucket, so whichever worker runs the
camera next continues the chain, and a removed clip (with or without its
manifest) breaks a link that :mod:`storage.evidence_verify` reports.

Written by the relay's upload hook, after the artifact is stored and before
the event is published, in outbox order (the relay stops at the first failed
upload). Retries are idempotent: a manifest that already exists for the same
artifact bytes is never rewritten (a successor may already point at it), and
a head that already names this manifest is left alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Protocol

from storage.clips import MANIFEST_SUFFIX, manifest_key_for
from storage.snapshots import BlobCarrier, SnapshotStore, artifact_sha256, upload_blob

FORMAT = "kuzet-evidence-manifest/1"
CHAIN_PREFIX = "_chain/"


def canonical(doc: dict[str, Any]) -> bytes:
    """The exact bytes hashed and stored: one JSON text per document, whoever writes it."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_head_key(camera_id: str) -> str:
    return f"{CHAIN_PREFIX}{camera_id}.json"


def is_manifest(key: str) -> bool:
    return key.endswith(MANIFEST_SUFFIX)


def build_manifest(
    key: str,
    blob: bytes,
    event: dict[str, Any],
    source: str,
    previous: dict[str, str] | None,
    sha256: str | None = None,
) -> dict[str, Any]:
    """The manifest of one artifact, from the event that references it (the event JSON as spooled);
    ``sha256`` of the artifact when the caller already has it."""
    clip = event.get("clip") or {}
    is_clip = bool(clip) and clip.get("key") == key
    if is_clip:
        time_range = {"from": clip.get("started_at"), "to": clip.get("ended_at")}
    else:
        at = event.get("observed_at")
        time_range = {"from": at, "to": at}
    return {
        "format": FORMAT,
        "camera_id": event.get("camera_id"),
        "source": source,
        "incident_id": event.get("incident_id"),
        "event_id": event.get("event_id"),
        "event_type": event.get("type") or "plate_read",
        "time_range": time_range,
        "worker_id": event.get("worker_id"),
        "model_versions": event.get("model_versions") or {},
        "artifact": {
            "key": key,
            "kind": "clip" if is_clip else "snapshot",
            "sha256": sha256 if sha256 is not None else hashlib.sha256(blob).hexdigest(),
            "size": len(blob),
            "status": clip.get("status", "complete") if is_clip else "complete",
        },
        "previous": previous,
    }


class _RecordCarrier(BlobCarrier, Protocol):
    @property
    def record(self) -> Any: ...  # an OutRecord: ``.value`` holds the event JSON


class ManifestChain:
    """Writes manifests and advances each camera's chain head in the object store."""

    def __init__(self, store: SnapshotStore) -> None:
        self.store = store

    def head(self, camera_id: str) -> dict[str, Any] | None:
        raw = self.store.read_object(chain_head_key(camera_id))
        return json.loads(raw) if raw else None

    def seal(self, key: str, blob: bytes, event: dict[str, Any], source: str, sha256: str | None = None) -> str:
        """Store the manifest of ``key`` (idempotent) and make it the camera's head; returns the manifest key.

        ``sha256``: the artifact's, when the event already holds it (not computed again)."""
        camera_id = str(event.get("camera_id") or "")
        mkey = manifest_key_for(key)
        existing = self.store.read_object(mkey)
        sha = sha256 if sha256 is not None else hashlib.sha256(blob).hexdigest()
        head = self.head(camera_id)
        if existing is not None and json.loads(existing).get("artifact", {}).get("sha256") == sha:
            manifest_bytes = existing  # written by an earlier attempt: never rewrite a link others may hold
        else:
            if head is not None and head.get("key") == mkey:
                previous = head.get("previous")
            elif head is not None:
                previous = {"key": head["key"], "sha256": head["sha256"]}
            else:
                previous = None
            manifest_bytes = canonical(build_manifest(key, blob, event, source, previous, sha))
            self.store.put_object(mkey, manifest_bytes, "application/json")
        mdoc = json.loads(manifest_bytes)
        if head is None or head.get("key") != mkey:
            new_head = {"key": mkey, "sha256": hashlib.sha256(manifest_bytes).hexdigest(), "previous": mdoc["previous"]}
            self.store.put_object(chain_head_key(camera_id), canonical(new_head), "application/json")
        return mkey


def evidence_upload_hook(store: SnapshotStore, source_of: Callable[[str], str]) -> Callable[[_RecordCarrier], None]:
    """The relay's ``before_publish``: store the artifact, then its manifest, chained per camera.

    ``source_of(camera_id)`` gives the camera's source URL, already redacted.
    """
    chain = ManifestChain(store)

    def _upload(rec: _RecordCarrier) -> None:
        if rec.blob is None or rec.blob_key is None:
            return
        event = json.loads(rec.record.value)
        sha = artifact_sha256(event, rec.blob_key)  # hashed once, by the worker, into the event
        upload_blob(store, rec.blob_key, rec.blob, sha)
        chain.seal(rec.blob_key, rec.blob, event, source_of(str(event.get("camera_id", ""))), sha)

    return _upload
