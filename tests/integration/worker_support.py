"""Helpers shared by the worker integration tests: configs, reading a topic back, comparing deliveries."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from core.config import CameraConfig, KuzetConfig, Zone
from event_bus import schemas
from event_bus.interfaces import InRecord
from event_bus.kafka_subscriber import KafkaSubscriber

# Lower two thirds of the vtest picture: every walker on the road stands in it.
ROAD = Zone(name="road", polygon=[(0.0, 0.3), (1.0, 0.3), (1.0, 1.0), (0.0, 1.0)], severity="medium")


def worker_config(
    tmp: Path,
    cameras: list[CameraConfig],
    *,
    kafka: str | None = None,
    s3: Any = None,
    worker_id: str = "worker-test",
    rules: dict[str, Any] | None = None,
    models: list[dict[str, Any]] | None = None,
) -> KuzetConfig:
    """A config for a worker under test; Kafka and S3 when given, the embedded local ones otherwise; ``models``
    are added to the default ones."""
    bus: dict[str, Any] = {"spool_path": tmp / "spool.sqlite3", "local_path": tmp / "bus.sqlite3"}
    if kafka:
        bus |= {"kind": "kafka", "kafka": {"bootstrap_servers": kafka, "delivery_timeout_s": 10.0}}
    storage: dict[str, Any] = {"kind": "local", "local_dir": tmp / "snapshots"}
    if s3 is not None:
        storage = {
            "kind": "s3",
            "s3": {
                "endpoint": s3.endpoint,
                "bucket": "kuzet-snapshots",
                "access_key": "env:KUZET_TEST_S3_ACCESS",
                "secret_key": "env:KUZET_TEST_S3_SECRET",
            },
        }
    return KuzetConfig.model_validate(
        {
            "worker": {"id": worker_id, "data_dir": tmp},
            "cameras": cameras,
            "bus": bus,
            "storage": storage,
            "batch": {"max_batch": 4, "max_wait_ms": 20},
            "rules": rules or {"end_after_s": 1.5, "update_every_s": 2.0, "cooldown_s": 5.0},
            "models": [m.model_dump() for m in KuzetConfig().models] + (models or []),
        }
    )


def camera(camera_id: str, url: str, **kw: Any) -> CameraConfig:
    base: dict[str, Any] = {"analysis_fps": 5.0, "detectors": ["person"], "zones": [ROAD]}
    base.update(kw)
    return CameraConfig(id=camera_id, url=url, **base)


def rtsp_camera(rtsp_server: Any, clip: Path, prefix: str, **kw: Any) -> CameraConfig:
    """A camera on a new stream of ``clip`` on the session's RTSP server, named ``{prefix}-NNNNN`` so that reruns
    never collide; :func:`camera`'s defaults (person model, the road zone, 5 fps) unless ``kw`` says otherwise."""
    cam_id = f"{prefix}-{int(time.time()) % 100000}"
    rtsp_server.add_stream(cam_id, clip)
    return camera(cam_id, rtsp_server.url(cam_id), **kw)


def read_topic(bootstrap: str, topic: str, expect_at_least: int, timeout_s: float = 60.0) -> list[InRecord]:
    """Everything on ``topic`` from the beginning, waiting until at least ``expect_at_least`` arrived."""
    sub = KafkaSubscriber(bootstrap, [topic], group_id=None, from_beginning=True)
    records: list[InRecord] = []
    deadline = time.monotonic() + timeout_s
    idle_polls = 0
    try:
        while time.monotonic() < deadline:
            batch = sub.poll(1.0)
            records += batch
            idle_polls = 0 if batch else idle_polls + 1
            if len(records) >= expect_at_least and idle_polls >= 3:
                break
    finally:
        sub.close()
    return records


def check_delivery(produced: list[dict[str, Any]], records: list[InRecord]) -> dict[str, int]:
    """Every produced event arrived exactly once after dedupe on event_id, in produced order per camera.

    Returns counts for the test's report. ``produced`` is in spool order (the journal).
    """
    first_seen: dict[str, InRecord] = {}
    duplicates = 0
    for rec in records:
        doc = json.loads(rec.value)
        schemas.validate("incident", doc)
        assert rec.key == doc["camera_id"], "record key must be the camera id"
        if doc["event_id"] in first_seen:
            duplicates += 1
            continue
        first_seen[doc["event_id"]] = rec
    missing = [p["event_id"] for p in produced if p["event_id"] not in first_seen]
    assert not missing, f"{len(missing)} produced incident event(s) never arrived, e.g. {missing[:3]}"
    by_camera: dict[str, list[InRecord]] = defaultdict(list)
    for p in produced:
        by_camera[p["camera_id"]].append(first_seen[p["event_id"]])
    for cam, recs in by_camera.items():
        offsets = [(r.partition, r.offset) for r in recs]
        assert len({p for p, _ in offsets}) == 1, "one camera's events must share a partition"
        assert offsets == sorted(offsets), f"camera {cam}: events out of order after dedupe"
    return {"produced": len(produced), "received": len(records), "duplicates": duplicates}


def read_journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
