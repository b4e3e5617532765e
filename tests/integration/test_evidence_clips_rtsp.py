"""Incident clips from a real RTSP camera (GStreamer test server) into real S3 (SeaweedFS).

The camera path is the worker's own: ``CameraRunner`` over PyAV reading RTSP,
the clip tap with its ring buffer, the finisher, the durable outbox, and the
relay that uploads the clip (multipart above 5 MiB) before it publishes the
event. Only the incident decision is scripted (start at one packet, end at
another), because rules and detectors are not what is under test here.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import av
import pytest

from core.clip import ClipStatus
from core.config import CameraConfig, EvidenceConfig, IngestConfig
from core.redact import redact_url
from event_bus import schemas, topics
from event_bus.events import Incident
from event_bus.interfaces import OutRecord
from event_bus.local_bus import LocalBusPublisher, LocalBusSubscriber
from event_bus.relay import Relay
from event_bus.spool import Spool
from ingest.camera import CameraRunner
from storage.evidence_verify import verify_camera_day
from storage.manifests import evidence_upload_hook
from storage.s3_store import MULTIPART_PART_SIZE
from storage.snapshots import upload_hook
from tests.integration.test_s3_snapshots import s3_store
from tests.unit.test_evidence_clips import GOP_S, ScriptedTap
from worker.clips import ClipRecorder

pytestmark = [pytest.mark.services, pytest.mark.slow]


def clip_events(bus: Path) -> list[Incident]:
    sub = LocalBusSubscriber(bus, [topics.INCIDENTS], None)
    try:
        docs = [json.loads(r.value) for r in sub.poll(0.5)]
    finally:
        sub.close()
    for d in docs:
        schemas.validate("incident", d)
    return [Incident.model_validate(d) for d in docs if d.get("clip")]


def record_clip(
    tmp: Path, rtsp_url: str, spool: Spool, cfg: EvidenceConfig, start_at: int, end_at: int, before_end: Any = None
) -> tuple[ScriptedTap, ClipRecorder]:
    """Run the RTSP camera until its scripted incident's clip has been spooled."""

    def sink(inc: Incident, data: bytes) -> None:
        assert inc.clip is not None
        spool.append(OutRecord(topics.INCIDENTS, inc.camera_id, inc.model_dump_json().encode()), data, inc.clip.key)

    recorder = ClipRecorder(cfg, tmp / "clips", sink, store_kind="s3", bucket="kuzet-evidence").start()
    tap = ScriptedTap(recorder.tap("rtsp-cam"), recorder, start_at, end_at)
    cam = CameraConfig(id="rtsp-cam", url=rtsp_url, analysis_fps=1.0, keyframe_only="always")
    runner = CameraRunner(cam, IngestConfig(stall_timeout_s=10.0), packet_tap=tap)
    runner.start()
    try:
        deadline = time.monotonic() + 90
        while recorder.stats.complete + recorder.stats.incomplete == 0 and time.monotonic() < deadline:
            if before_end is not None and tap.n >= end_at:
                before_end()
                before_end = None
            time.sleep(0.2)
    finally:
        runner.stop()
    assert recorder.stop(30)
    return tap, recorder


def check_clip(data: bytes, inc: Incident, tap: ScriptedTap, cfg: EvidenceConfig, tmp: Path) -> float:
    clip = inc.clip
    assert clip is not None and clip.status is ClipStatus.COMPLETE, clip
    assert hashlib.sha256(data).hexdigest() == clip.sha256 and len(data) == clip.size
    assert tap.start_pts is not None and tap.end_pts is not None
    wanted = (tap.end_pts + cfg.post_roll_s) - (tap.start_pts - cfg.pre_roll_s)
    path = tmp / "downloaded.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        first = next(c.decode(vs))
        assert first.key_frame, "a clip must start on a key frame"
        duration = float(c.duration or 0) / 1e6
    assert wanted - 0.3 <= duration <= wanted + GOP_S + 0.3, (duration, wanted)
    assert abs(duration - clip.duration_s) < 0.3
    return duration


def test_rtsp_incident_clip_lands_in_seaweedfs(rtsp_server: Any, s3_service: Any, vtest_h264: Path,
                                                tmp_path: Path) -> None:  # fmt: skip
    url = rtsp_server.add_stream("clipcam", vtest_h264)
    store = s3_store(s3_service, bucket=f"kuzet-ev-{uuid.uuid4().hex[:8]}")
    bus = tmp_path / "bus.sqlite3"
    cfg = EvidenceConfig(pre_roll_s=4.0, post_roll_s=3.0)
    hook = evidence_upload_hook(store, lambda _cam: redact_url(url))
    with Spool(tmp_path / "spool.sqlite3") as spool:
        relay = Relay(spool, LocalBusPublisher(bus), before_publish=hook, backoff_max_s=1.0).start()
        tap, _rec = record_clip(tmp_path, url, spool, cfg, start_at=70, end_at=100)
        assert relay.flush(60), relay.stats()
        relay.stop()
    (inc,) = clip_events(bus)
    assert inc.incident_id == tap.iid and inc.clip is not None
    assert inc.clip.key.startswith("rtsp-cam/") and inc.clip.key.endswith(f"/{tap.iid}.mp4")
    resp = store._client.get_object(store.bucket, inc.clip.key)
    try:
        data = resp.read()
        assert resp.headers.get("Content-Type") == "video/mp4"
    finally:
        resp.close()
        resp.release_conn()
    duration = check_clip(data, inc, tap, cfg, tmp_path)
    print(f"clip {inc.clip.key}: {duration:.2f} s, {len(data)} bytes, sha256 {inc.clip.sha256[:12]}")
    # chain of custody: the manifest beside the clip verifies, and a deleted clip is found
    assert inc.clip.manifest_key == inc.clip.key + ".manifest.json"
    manifest = json.loads(store.read_object(inc.clip.manifest_key) or b"{}")
    assert manifest["artifact"]["sha256"] == inc.clip.sha256 and manifest["source"] == redact_url(url)
    day = inc.clip.started_at.date()
    report = verify_camera_day(store, "rtsp-cam", day, incident_id=str(inc.incident_id))
    assert report.ok and report.artifacts == 1, report.errors
    store._client.remove_object(store.bucket, inc.clip.key)
    assert not verify_camera_day(store, "rtsp-cam", day).ok


def test_clip_waits_in_the_outbox_while_s3_is_down(rtsp_server: Any, s3_service: Any, vtest_h264: Path,
                                                   tmp_path: Path) -> None:  # fmt: skip
    url = rtsp_server.add_stream("clipcam", vtest_h264)
    store = s3_store(s3_service)
    bus = tmp_path / "bus.sqlite3"
    cfg = EvidenceConfig(pre_roll_s=3.0, post_roll_s=2.0)
    with Spool(tmp_path / "spool.sqlite3") as spool:
        relay = Relay(spool, LocalBusPublisher(bus), before_publish=upload_hook(store), backoff_max_s=1.0).start()
        try:
            tap, _rec = record_clip(tmp_path, url, spool, cfg, start_at=50, end_at=60, before_end=s3_service.stop)
            time.sleep(3)
            assert spool.depth() == 1, "the clip event must wait for its object"
            assert clip_events(bus) == [], "an event pointing to a clip S3 does not hold was published"
            assert relay.stats().before_publish_failures > 0
        finally:
            s3_service.start()
        assert relay.flush(60), relay.stats()
        relay.stop()
    (inc,) = clip_events(bus)
    assert inc.clip is not None and inc.incident_id == tap.iid
    stat = store._client.stat_object(store.bucket, inc.clip.key)
    assert stat.size == inc.clip.size and store._meta_sha(stat) == inc.clip.sha256


def test_large_clip_goes_up_in_parts(s3_service: Any) -> None:
    store = s3_store(s3_service, bucket=f"kuzet-test-{uuid.uuid4().hex[:8]}")
    data = hashlib.sha256(b"seed").digest() * ((2 * MULTIPART_PART_SIZE + 12345) // 32)
    key = f"cam-1/2026/01/01/{uuid.uuid4()}.mp4"
    store.put_clip(key, data)
    stat = store._client.stat_object(store.bucket, key)
    assert stat.size == len(data)
    assert stat.etag is not None and stat.etag.strip('"').endswith("-3"), f"not a multipart upload: {stat.etag}"
    store.put_clip(key, data)  # idempotent: same bytes are not sent again
