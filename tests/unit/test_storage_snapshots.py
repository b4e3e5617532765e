"""Key layout, the local directory store, and the S3 store's fail-fast, redacted errors (no service needed)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from core.config import S3Config
from storage.local_store import LocalSnapshotStore
from storage.s3_store import S3SnapshotStore
from storage.snapshots import SnapshotError, key_for, sha256_hex, upload_hook

EID = UUID("01890a5d-ac96-774b-bcce-b302099a8057")


def test_key_layout_uses_utc_date() -> None:
    t = datetime(2026, 3, 1, 2, 30, tzinfo=timezone(timedelta(hours=5)))  # Feb 28 21:30 UTC
    assert key_for("cam-7", t, EID) == f"cam-7/2026/02/28/{EID}.jpg"
    with pytest.raises(ValueError):
        key_for("cam-7", datetime(2026, 1, 1), EID)
    with pytest.raises(ValueError):
        key_for("a/b", t, EID)


def test_local_store_roundtrip_idempotent_and_checked(tmp_path: Path) -> None:
    store = LocalSnapshotStore(tmp_path / "snaps")
    t = datetime(2026, 1, 2, tzinfo=UTC)
    jpeg = b"\xff\xd8" + b"x" * 1000
    ref = store.ref_for("cam-1", EID, t, jpeg)
    assert not store.exists(ref)
    assert store.put("cam-1", EID, t, jpeg) == ref
    assert store.put("cam-1", EID, t, jpeg) == ref  # idempotent
    assert ref.sha256 == sha256_hex(jpeg) and ref.size == len(jpeg) and ref.store == "local"
    assert store.exists(ref) and store.get(ref) == jpeg
    assert (tmp_path / "snaps" / ref.key).read_bytes() == jpeg
    assert not list((tmp_path / "snaps").rglob(".tmp-*"))
    assert store.presigned_url(ref).startswith("file://")
    (tmp_path / "snaps" / ref.key).write_bytes(b"\xff\xd8" + b"y" * 1000)
    with pytest.raises(SnapshotError, match="sha256"):
        store.get(ref)
    with pytest.raises(SnapshotError, match="escapes"):
        store.put_key("../outside.jpg", jpeg)


def test_upload_hook(tmp_path: Path) -> None:
    store = LocalSnapshotStore(tmp_path)

    class Rec:
        blob = b"jpeg"
        blob_key = "cam-1/2026/01/01/e.jpg"

    upload_hook(store)(Rec())
    assert (tmp_path / Rec.blob_key).read_bytes() == b"jpeg"


def test_s3_down_fails_fast_and_redacts() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = S3SnapshotStore(
        S3Config(endpoint=f"127.0.0.1:{port}"), access_key="AKIASECRETACCESS", secret_key="very-secret-key"
    )
    with pytest.raises(SnapshotError) as err:
        store.put("cam-1", EID, datetime(2026, 1, 1, tzinfo=UTC), b"jpeg")
    assert "AKIASECRETACCESS" not in str(err.value) and "very-secret-key" not in str(err.value)
    url = store.presigned_url(store.ref_for("cam-1", EID, datetime(2026, 1, 1, tzinfo=UTC), b"jpeg"))
    assert "X-Amz-Signature" in url  # presigning is local, no round trip
    assert "AKIASECRETACCESS" not in store._redact(url)


def test_the_snapshot_sha256_is_computed_once_per_incident(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker hashes the JPEG when it builds the event; the upload and the chained manifest reuse that hash."""
    import hashlib
    import json
    from dataclasses import dataclass

    import storage.local_store as local_store_mod
    import storage.manifests as manifests_mod
    import storage.snapshots as snapshots_mod
    from event_bus.interfaces import OutRecord
    from storage.local_store import LocalSnapshotStore
    from storage.manifests import evidence_upload_hook

    jpeg = b"\xff\xd8 a snapshot \xff\xd9"
    hashed: list[int] = []
    real_sha256 = hashlib.sha256

    def counting_hex(data: bytes) -> str:
        if data == jpeg:
            hashed.append(len(data))
        return real_sha256(data).hexdigest()

    class CountingHashlib:
        @staticmethod
        def sha256(data: bytes = b"") -> Any:
            if data == jpeg:
                hashed.append(len(data))
            return real_sha256(data)

    monkeypatch.setattr(snapshots_mod, "sha256_hex", counting_hex)
    monkeypatch.setattr(local_store_mod, "sha256_hex", counting_hex)
    monkeypatch.setattr(manifests_mod, "hashlib", CountingHashlib)
    store = LocalSnapshotStore(tmp_path)
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ref = store.ref_for("cam-1", "0190f0a0-0000-7000-8000-000000000001", at, jpeg)  # the worker's event builder
    event = {"camera_id": "cam-1", "event_id": "e", "observed_at": at.isoformat(), "snapshot": ref.model_dump()}

    @dataclass
    class Spooled:
        record: OutRecord
        blob: bytes | None
        blob_key: str | None

    hook = evidence_upload_hook(store, lambda _cam: "rtsp://cam-1/stream")
    hook(Spooled(OutRecord("kuzet.incidents.v1", "cam-1", json.dumps(event).encode()), jpeg, ref.key))
    assert len(hashed) == 1, f"the snapshot was hashed {len(hashed)} times"
    assert store.get(ref) == jpeg  # stored, and it matches the event's hash on read
