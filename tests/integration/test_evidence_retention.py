"""Retention on real S3 (SeaweedFS): kuzet installs the lifecycle rule; a held incident survives expiry.

SeaweedFS stores the rule but does not apply it on a test's time scale, so the
expiry itself runs through ``kuzet evidence expire --now <31 days later>``,
which applies the bucket's installed rule the way S3 would (controlled clock).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from event_bus import topics
from event_bus.interfaces import OutRecord
from event_bus.spool import SpooledRecord
from kuzet.cli import app
from storage.manifests import chain_head_key, evidence_upload_hook
from storage.retention import set_hold
from tests.integration.test_s3_snapshots import s3_store

pytestmark = [pytest.mark.services]


def test_lifecycle_rule_and_legal_hold(s3_service: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = f"kuzet-ret-{uuid.uuid4().hex[:8]}"
    store = s3_store(s3_service, bucket=bucket)
    monkeypatch.setenv("KUZET_TEST_S3_ACCESS", s3_service.access_key)
    monkeypatch.setenv("KUZET_TEST_S3_SECRET", s3_service.secret_key)
    endpoint = str(s3_service.endpoint).removeprefix("http://").rstrip("/")
    cfg = tmp_path / "kuzet.yaml"
    cfg.write_text(yaml.safe_dump({
        "storage": {"kind": "s3", "s3": {"endpoint": endpoint, "bucket": bucket,
                                         "access_key": "env:KUZET_TEST_S3_ACCESS",
                                         "secret_key": "env:KUZET_TEST_S3_SECRET"}},
        "evidence": {"retention_days": 30},
    }))  # fmt: skip
    runner = CliRunner()
    out = runner.invoke(app, ["evidence", "retention", "--config", str(cfg)])
    assert out.exit_code == 0, out.output
    assert store.retention_days() == 30, "the lifecycle rule is on the bucket"
    raw = store._client.get_bucket_lifecycle(bucket)
    assert raw is not None and raw.rules[0].rule_filter.tag.key == "kuzet-retention"

    hook = evidence_upload_hook(store, lambda _c: "")
    keys = {}
    for name in ("held", "plain"):
        key = f"cam-1/{datetime.now(UTC):%Y/%m/%d}/{uuid.uuid4()}.mp4"
        event = {"camera_id": "cam-1", "event_id": str(uuid.uuid4()), "incident_id": str(uuid.uuid4()),
                 "observed_at": datetime.now(UTC).isoformat(), "clip": {"key": key}}  # fmt: skip
        rec = OutRecord(topics.INCIDENTS, "cam-1", json.dumps(event).encode())
        hook(SpooledRecord(1, rec, f"{name} clip bytes".encode() * 1000, key, 0))
        keys[name] = key
    assert store.retention_of(keys["plain"]) == "standard"
    assert store.retention_of(keys["plain"] + ".manifest.json") == "standard"
    set_hold(store, [keys["held"]], True)
    assert store.retention_of(keys["held"]) == "legal-hold"

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert "0 expired" in runner.invoke(app, ["evidence", "expire", "--now", tomorrow, "--config", str(cfg)]).output
    later = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    out = runner.invoke(app, ["evidence", "expire", "--now", later, "--config", str(cfg)])
    assert out.exit_code == 0 and "2 expired, 2 kept on legal hold" in out.output, out.output
    assert store.read_object(keys["plain"]) is None and store.read_object(keys["plain"] + ".manifest.json") is None
    assert store.read_object(keys["held"]) is not None and store.read_object(keys["held"] + ".manifest.json")
    assert store.read_object(chain_head_key("cam-1")) is not None  # the chain head never expires

    set_hold(store, [keys["held"]], False)  # released: the next pass expires it
    runner.invoke(app, ["evidence", "expire", "--now", later, "--config", str(cfg)])
    assert store.read_object(keys["held"]) is None
