"""Chain-of-custody manifests and `kuzet evidence verify` on the local object store (real files).

The relay's upload hook stores each artifact, then its manifest, chained per
camera; verification finds a changed artifact, a deleted one, a deleted
manifest in the middle of the chain, and a deleted newest one.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from event_bus import topics
from event_bus.interfaces import OutRecord
from event_bus.spool import SpooledRecord
from kuzet.cli import app
from storage.evidence_verify import verify_camera_day
from storage.local_store import LocalSnapshotStore
from storage.manifests import ManifestChain, chain_head_key, evidence_upload_hook

DAY = date(2026, 3, 1)


def spooled(camera: str, at: datetime, blob: bytes, key: str, clip: bool = False) -> SpooledRecord:
    event: dict[str, Any] = {
        "camera_id": camera,
        "event_id": str(uuid.uuid4()),
        "incident_id": str(uuid.uuid4()),
        "type": "person_in_zone",
        "observed_at": at.isoformat(),
        "worker_id": "w-1",
        "model_versions": {"person": "ssdlite-1"},
    }
    if clip:
        event["clip"] = {"key": key, "started_at": at.isoformat(), "ended_at": at.isoformat(), "status": "complete"}
    rec = OutRecord(topics.INCIDENTS, camera, json.dumps(event).encode())
    return SpooledRecord(id=1, record=rec, blob=blob, blob_key=key, created_ms=0)


def fill(store: LocalSnapshotStore, camera: str = "cam-1", days: int = 1) -> list[str]:
    hook = evidence_upload_hook(store, lambda _c: "rtsp://***@10.0.0.5/stream1")
    keys = []
    for d in range(days):
        for i in range(3):
            at = datetime(DAY.year, DAY.month, DAY.day, 10, i, tzinfo=UTC) + timedelta(days=d)
            ext = "mp4" if i == 1 else "jpg"
            key = f"{camera}/{at:%Y/%m/%d}/{uuid.uuid4()}.{ext}"
            hook(spooled(camera, at, f"artifact {d} {i}".encode() * 50, key, clip=ext == "mp4"))
            keys.append(key)
    return keys


def test_manifests_chain_and_verify(tmp_path: Path) -> None:
    store = LocalSnapshotStore(tmp_path)
    keys = fill(store)
    report = verify_camera_day(store, "cam-1", DAY)
    assert report.ok, report.errors
    assert report.artifacts == 3 and report.manifests == 3
    first = json.loads(store.read_object(keys[0] + ".manifest.json") or b"")
    second = json.loads(store.read_object(keys[1] + ".manifest.json") or b"")
    assert first["previous"] is None and second["previous"]["key"] == keys[0] + ".manifest.json"
    assert second["artifact"]["kind"] == "clip" and first["artifact"]["kind"] == "snapshot"
    assert second["source"] == "rtsp://***@10.0.0.5/stream1" and second["model_versions"] == {"person": "ssdlite-1"}
    head = ManifestChain(store).head("cam-1")
    assert head is not None and head["key"] == keys[2] + ".manifest.json"


def test_retried_upload_does_not_fork_the_chain(tmp_path: Path) -> None:
    store = LocalSnapshotStore(tmp_path)
    hook = evidence_upload_hook(store, lambda _c: "")
    at = datetime(2026, 3, 1, 9, tzinfo=UTC)
    rec = spooled("cam-1", at, b"x" * 100, "cam-1/2026/03/01/a.jpg")
    hook(rec)
    before = store.read_object(chain_head_key("cam-1"))
    hook(rec)  # the relay retries a record whose upload succeeded but whose publish failed
    assert store.read_object(chain_head_key("cam-1")) == before
    assert verify_camera_day(store, "cam-1", DAY).ok


def test_tampering_and_deletions_are_found(tmp_path: Path) -> None:
    store = LocalSnapshotStore(tmp_path)
    keys = fill(store)
    (tmp_path / keys[1]).write_bytes(b"edited")
    report = verify_camera_day(store, "cam-1", DAY)
    assert any("bytes differ" in e for e in report.errors)

    store2 = LocalSnapshotStore(tmp_path / "b")
    keys = fill(store2)
    (tmp_path / "b" / keys[1]).unlink()
    assert any("missing (its manifest is there" in e for e in verify_camera_day(store2, "cam-1", DAY).errors)
    (tmp_path / "b" / (keys[1] + ".manifest.json")).unlink()  # the clip and its manifest both gone
    report = verify_camera_day(store2, "cam-1", DAY)
    assert any("previous manifest" in e and "missing" in e for e in report.errors), report.errors

    store3 = LocalSnapshotStore(tmp_path / "c")
    keys = fill(store3)
    for k in (keys[2], keys[2] + ".manifest.json"):  # the newest evidence of the day
        (tmp_path / "c" / k).unlink()
    report = verify_camera_day(store3, "cam-1", DAY)
    assert any("no successor" in e for e in report.errors), report.errors


def test_day_boundary_and_orphans(tmp_path: Path) -> None:
    store = LocalSnapshotStore(tmp_path)
    keys = fill(store, days=2)
    assert verify_camera_day(store, "cam-1", DAY).ok  # its tail is linked from the next day
    assert verify_camera_day(store, "cam-1", DAY + timedelta(days=1)).ok
    for k in (keys[3], keys[3] + ".manifest.json", keys[4], keys[4] + ".manifest.json"):
        (tmp_path / k).unlink()
    report = verify_camera_day(store, "cam-1", DAY)
    assert any("no successor" in e for e in report.errors)
    store.put_key(f"cam-1/{DAY:%Y/%m/%d}/stray.jpg", b"\xff\xd8 no manifest")
    assert any("without a manifest" in e for e in verify_camera_day(store, "cam-1", DAY).errors)


def test_cli_verify_exit_codes(tmp_path: Path) -> None:
    store = LocalSnapshotStore(tmp_path / "objects")
    keys = fill(store)
    cfg = tmp_path / "kuzet.yaml"
    cfg.write_text(yaml.safe_dump({"storage": {"kind": "local", "local_dir": str(tmp_path / "objects")}}))
    runner = CliRunner()
    ok = runner.invoke(app, ["evidence", "verify", "--camera", "cam-1", "--date", "2026-03-01", "--config", str(cfg)])
    assert ok.exit_code == 0, ok.output
    assert "verified (3 artifact(s), 3 manifest(s))" in ok.output
    (tmp_path / "objects" / keys[0]).unlink()
    bad = runner.invoke(
        app, ["evidence", "verify", "--camera", "cam-1", "--date", "2026-03-01", "--config", str(cfg), "--json"]
    )
    assert bad.exit_code == 1 and json.loads(bad.output)["ok"] is False
    assert runner.invoke(app, ["evidence", "verify", "--camera", "cam-1", "--date", "March"]).exit_code == 2
    assert runner.invoke(app, ["evidence", "verify"]).exit_code == 2
