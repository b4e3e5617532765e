"""Audit anchors in their own bucket on a real S3 service (SeaweedFS via the ``s3_service`` fixture).

The console writes the head of the audit chain to a bucket apart from the snapshots, with object-lock
retention where the service supports it; ``kuzet audit verify --config`` reads them back and catches a chain
rewritten with recomputed hashes. Whether this SeaweedFS version enforces object lock is printed and checked
against what it does: a locked anchor must refuse deletion.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from core.config import S3Config
from storage.audit import AuditRecord, canonical_body, chain_hash, verify
from storage.audit_anchors import AnchoringAuditLog, s3_anchor_sink
from storage.plates.factory import open_stores

pytestmark = [pytest.mark.services]


def test_anchors_in_their_own_s3_bucket_catch_a_rewritten_chain(
    s3_service: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = str(s3_service.endpoint).removeprefix("http://").removeprefix("https://").rstrip("/")
    monkeypatch.setenv("KUZET_S3_ACCESS_KEY", s3_service.access_key)
    monkeypatch.setenv("KUZET_S3_SECRET_KEY", s3_service.secret_key)
    bucket = f"kuzet-audit-anchors-{uuid.uuid4().hex[:8]}"
    sink = s3_anchor_sink(S3Config(endpoint=endpoint), bucket)
    db = tmp_path / "plates.sqlite3"
    stores = open_stores(f"sqlite:///{db}")
    log = AnchoringAuditLog(stores.audit, [sink], every_records=5, every_s=3600)
    for i in range(12):
        log.append(AuditRecord("ayan", "investigator", "plate_search", "ok", f"case {i}"), datetime.now(UTC))
    log.close()
    anchors = sink.anchors()
    assert [a.seq for a in anchors] == [5, 10, 12]
    print(f"S3 anchors: bucket {bucket}, object lock {'enforced' if sink.object_lock else 'not supported'}")
    if sink.object_lock:
        from minio.error import S3Error

        first = sink._client.list_objects(bucket, prefix="audit-anchors/", recursive=True, include_version=True)
        obj = next(iter(first))
        with pytest.raises(S3Error):
            sink._client.remove_object(bucket, obj.object_name, version_id=obj.version_id)
    conf = tmp_path / "console.yaml"
    settings = {"database": str(tmp_path / "c.sqlite3"), "plates_database": f"sqlite:///{db}",
                "storage": {"kind": "s3", "s3": {"endpoint": endpoint}},
                "audit_anchors": {"log": False, "s3_bucket": bucket}}  # fmt: skip
    conf.write_text(yaml.safe_dump(settings))
    from kuzet.commands.plates import audit_app

    ok = CliRunner().invoke(audit_app, ["verify", "--config", str(conf)])
    assert ok.exit_code == 0 and "3 anchor(s) match" in ok.output, ok.output
    # the table owner rewrites row 3 and recomputes every later hash: only the anchors can tell
    raw = sqlite3.connect(db)
    raw.execute("DROP TRIGGER audit_log_no_update")
    rows = raw.execute("SELECT seq, at, actor, role, action, outcome, reason, details, result_count FROM audit_log "
                       "ORDER BY seq").fetchall()  # fmt: skip
    prev = "0" * 64
    for seq, at, actor, role, action, outcome, reason, details, count in rows:
        reason = "routine check" if seq == 3 else reason
        h = chain_hash(prev, canonical_body(seq, datetime.fromisoformat(at), actor, role, action, outcome, reason,
                                            details, count))  # fmt: skip
        raw.execute("UPDATE audit_log SET reason = ?, prev_hash = ?, hash = ? WHERE seq = ?", (reason, prev, h, seq))
        prev = h
    raw.commit()
    assert verify(open_stores(f"sqlite:///{db}").audit).ok
    broken = CliRunner().invoke(audit_app, ["verify", "--config", str(conf)])
    assert broken.exit_code == 1 and "anchor" in broken.output, broken.output
