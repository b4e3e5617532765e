"""Clips under faults, on real services: a worker SIGKILLed mid-clip, and the broker down while a clip waits.

* SIGKILL: a child process records an incident's clip from the RTSP camera
  and is killed mid-recording. A fresh recorder on the same directory (the
  next worker start) salvages the part file: the clip is published marked
  incomplete, uploaded to SeaweedFS with its manifest, and the incident ends.
* Broker down: the clip is uploaded first (S3 is up), then its event waits in
  the outbox until Kafka is back, and arrives exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import av
import pytest

from core.clip import ClipStatus
from core.config import CameraConfig, EvidenceConfig, IngestConfig
from event_bus import topics
from event_bus.events import Incident
from event_bus.interfaces import OutRecord
from event_bus.kafka_admin import ensure_topics
from event_bus.kafka_subscriber import KafkaSubscriber
from event_bus.local_bus import LocalBusPublisher
from event_bus.relay import Relay
from event_bus.spool import Spool
from ingest.camera import CameraRunner
from storage.evidence_verify import verify_camera_day
from storage.manifests import evidence_upload_hook
from tests.integration.test_evidence_clips_rtsp import clip_events, record_clip
from tests.integration.test_kafka_pipeline import publisher
from tests.integration.test_s3_snapshots import s3_store
from tests.unit.test_evidence_clips import ScriptedTap
from worker.clips import ClipRecorder

pytestmark = [pytest.mark.services, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CFG = EvidenceConfig(pre_roll_s=3.0, post_roll_s=3.0)


def spool_sink(spool: Spool) -> Any:
    def sink(inc: Incident, data: bytes) -> None:
        assert inc.clip is not None
        spool.append(OutRecord(topics.INCIDENTS, inc.camera_id, inc.model_dump_json().encode()), data, inc.clip.key)

    return sink


def child_main(url: str, workdir: str) -> None:
    """A worker-like child: records an incident's clip from the RTSP camera until it is killed."""
    work = Path(workdir)
    with Spool(work / "spool.sqlite3") as spool:
        recorder = ClipRecorder(CFG, work / "clips", spool_sink(spool), store_kind="s3", bucket="kuzet-evidence")
        recorder.start()
        tap = ScriptedTap(recorder.tap("kill-cam"), recorder, start_at=40, end_at=None)
        cam = CameraConfig(id="kill-cam", url=url, analysis_fps=1.0, keyframe_only="always")
        runner = CameraRunner(cam, IngestConfig(stall_timeout_s=10.0), packet_tap=tap)
        runner.start()
        announced = False
        while True:
            if not announced and tap.n >= 120:  # 8 s of stream recorded past the start
                print(f"RECORDING {tap.iid}", flush=True)
                announced = True
            time.sleep(0.1)


def test_worker_sigkilled_mid_clip(rtsp_server: Any, s3_service: Any, vtest_h264: Path, tmp_path: Path) -> None:
    url = rtsp_server.add_stream("killcam", vtest_h264)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, __file__, url, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             cwd=ROOT, env=env)  # fmt: skip
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.startswith("RECORDING"), f"child did not start recording: {line!r}"
    iid = line.split()[1]
    time.sleep(1.0)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    part = tmp_path / "clips" / f"{iid}.part"
    assert part.exists() and part.stat().st_size > 0

    store = s3_store(s3_service, bucket=f"kuzet-kill-{uuid.uuid4().hex[:8]}")
    bus = tmp_path / "bus.sqlite3"
    with Spool(tmp_path / "spool.sqlite3") as spool:  # the next start: same spool, same clip directory
        assert spool.depth() == 0, "nothing of the clip was spooled before the kill"
        recorder = ClipRecorder(CFG, tmp_path / "clips", spool_sink(spool), store_kind="s3", bucket=store.bucket)
        assert recorder.recover() == 1
        relay = Relay(spool, LocalBusPublisher(bus), before_publish=evidence_upload_hook(store, lambda _c: url))
        relay.start()
        assert relay.flush(60), relay.stats()
        relay.stop()
    (inc,) = clip_events(bus)
    assert str(inc.incident_id) == iid and inc.state.value == "end"
    clip = inc.clip
    assert clip is not None and clip.status is ClipStatus.INCOMPLETE and "worker stopped" in clip.reason
    data = store.read_object(clip.key)
    assert data is not None and hashlib.sha256(data).hexdigest() == clip.sha256
    path = tmp_path / "salvaged.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as c:
        assert next(c.decode(c.streams.video[0])).key_frame
        salvaged_s = float(c.duration or 0) / 1e6
    assert salvaged_s >= 8.0, f"recorded seconds were lost: {salvaged_s:.1f} s salvaged"
    assert verify_camera_day(store, "kill-cam", clip.started_at.date(), incident_id=iid).ok
    assert not list((tmp_path / "clips").glob("*.part")), "the salvaged part file is gone once spooled"
    print(f"SIGKILL mid-clip: {salvaged_s:.1f} s salvaged, {len(data)} bytes, marked {clip.status.value}")


def test_broker_down_clip_waits_then_arrives_once(kafka_broker: Any, rtsp_server: Any, s3_service: Any,
                                                   vtest_h264: Path, tmp_path: Path) -> None:  # fmt: skip
    bootstrap = kafka_broker.bootstrap
    ensure_topics(bootstrap, [topics.INCIDENTS], partitions=3)
    url = rtsp_server.add_stream("clipcam", vtest_h264)
    store = s3_store(s3_service, bucket=f"kuzet-brk-{uuid.uuid4().hex[:8]}")
    with Spool(tmp_path / "spool.sqlite3") as spool:
        hook = evidence_upload_hook(store, lambda _c: url)
        relay = Relay(spool, publisher(bootstrap, delivery_timeout_s=5.0), before_publish=hook, backoff_max_s=2.0)
        relay.start()
        try:
            kafka_broker.stop()
            tap, _rec = record_clip(tmp_path, url, spool, CFG, start_at=40, end_at=60)
            time.sleep(5)
            assert spool.depth() == 1, "the clip event must wait in the outbox while the broker is down"
            (waiting,) = spool.peek(1)
            assert waiting.blob_key is not None and store.read_object(waiting.blob_key) is not None, "uploaded first"
        finally:
            kafka_broker.start()
        assert relay.flush(120), relay.stats()
        relay.stop()
        relay.publisher.close()
    sub = KafkaSubscriber(bootstrap, [topics.INCIDENTS], f"test-{uuid.uuid4()}", from_beginning=True)
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not got:
            for rec in sub.poll(1.0):
                if rec.key != waiting.record.key:  # tests tolerate other tests' records on shared topics
                    continue  # (the poison test leaves malformed ones on the incidents topic)
                doc = json.loads(rec.value)
                if isinstance(doc, dict) and doc.get("incident_id") == str(tap.iid) and doc.get("clip"):
                    got.append(doc)
    finally:
        sub.close()
    assert len({d["event_id"] for d in got}) == 1
    clip = got[0]["clip"]
    data = store.read_object(clip["key"])
    assert data is not None and hashlib.sha256(data).hexdigest() == clip["sha256"]


if __name__ == "__main__":
    child_main(sys.argv[1], sys.argv[2])
