"""Snapshots on a real S3 gateway (SeaweedFS, via the ``s3_service`` fixture), and the relay's upload-first rule."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from core.config import S3Config
from dispatch.testing import make_incident
from event_bus import topics
from event_bus.events import Incident
from event_bus.interfaces import OutRecord
from event_bus.local_bus import LocalBusPublisher, LocalBusSubscriber
from event_bus.relay import Relay
from event_bus.spool import Spool
from storage.s3_store import S3SnapshotStore
from storage.snapshots import upload_hook
from tests.integration import fault_figures


def s3_store(svc: Any, bucket: str = "kuzet-snapshots") -> S3SnapshotStore:
    endpoint = str(svc.endpoint).removeprefix("http://").removeprefix("https://").rstrip("/")
    return S3SnapshotStore(
        S3Config(endpoint=endpoint, bucket=bucket),
        access_key=svc.access_key,
        secret_key=svc.secret_key,
        connect_timeout_s=1.0,
        read_timeout_s=5.0,
    )


def jpeg(n: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + hashlib.sha256(str(n).encode()).digest() * 64 + b"\xff\xd9"


@pytest.mark.services
def test_put_exists_sha256_and_presigned(s3_service: Any) -> None:
    store = s3_store(s3_service, bucket=f"kuzet-test-{uuid4().hex[:8]}")  # created on first use
    eid = uuid4()
    t = datetime.now(UTC)
    data = jpeg(1)
    ref = store.put("cam-1", eid, t, data)
    assert ref.key == f"cam-1/{t:%Y}/{t:%m}/{t:%d}/{eid}.jpg"
    assert store.exists(ref)
    assert store.stored_sha256(ref) == ref.sha256 == hashlib.sha256(data).hexdigest()
    assert store.get(ref) == data
    assert store.put("cam-1", eid, t, data) == ref  # idempotent
    with urllib.request.urlopen(store.presigned_url(ref, 60), timeout=10) as resp:
        assert resp.read() == data
    missing = ref.model_copy(update={"key": f"cam-1/none/{uuid4()}.jpg"})
    assert not store.exists(missing)


@pytest.mark.services
@pytest.mark.slow
def test_store_down_holds_events_until_objects_exist(s3_service: Any, tmp_path: Path) -> None:
    store = s3_store(s3_service)
    bus = tmp_path / "bus.db"
    worker = f"w-{uuid4().hex[:8]}"
    with Spool(tmp_path / "spool.db") as spool:
        relay = Relay(spool, LocalBusPublisher(bus), before_publish=upload_hook(store), backoff_max_s=1.0).start()

        def emit(n: int) -> Incident:
            now = datetime.now(UTC)
            eid = uuid4()
            data = jpeg(n)
            ref = store.ref_for("cam-1", eid, now, data)  # no I/O: the event carries its ref before the upload
            inc = make_incident(
                event_id=eid, type="fire", started_at=now, confidence=0.7, worker_id=worker, snapshot=ref
            )
            spool.append(
                OutRecord(topics.INCIDENTS, "cam-1", inc.model_dump_json().encode()), blob=data, blob_key=ref.key
            )
            return inc

        before = [emit(n) for n in range(3)]
        assert relay.flush(30)
        s3_service.stop()
        during = [emit(n) for n in range(3, 8)]
        time.sleep(5)
        assert spool.depth() == 5, "events were published while their snapshots could not be stored"
        assert relay.stats().before_publish_failures > 0
        sub = LocalBusSubscriber(bus, [topics.INCIDENTS], None)
        published = [json.loads(r.value)["event_id"] for r in sub.poll(0.5)]
        assert published == [str(i.event_id) for i in before]
        saw = relay.stats()
        back = time.monotonic()
        s3_service.start()
        restart_s = time.monotonic() - back
        assert relay.flush(60), relay.stats()
        recovery_s = time.monotonic() - back
        relay.stop()
    docs = [json.loads(r.value) for r in LocalBusSubscriber(bus, [topics.INCIDENTS], None).poll(0.5)]
    assert [d["event_id"] for d in docs] == [str(i.event_id) for i in before + during]
    for inc in before + during:
        assert inc.snapshot is not None and store.exists(inc.snapshot)
        assert store.stored_sha256(inc.snapshot) == inc.snapshot.sha256
    fault_figures.record(
        "s3_down_during_snapshot_upload",
        {
            "events": len(before + during),
            "waiting_while_down": len(during),
            "lost": 0,
            "duplicated_after_dedupe": len(docs) - len({d["event_id"] for d in docs}),
            "s3_restart_s": round(restart_s, 2),
            "recovery_s_incl_restart": round(recovery_s, 2),
            "operator_saw": {
                "kuzet_relay_snapshot_upload_failures": saw.before_publish_failures,
                "kuzet_relay_consecutive_failures": saw.consecutive_failures,
                "kuzet_spool_depth": saw.depth,
                "relay_last_error": saw.last_error,
            },
        },
    )
