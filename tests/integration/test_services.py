"""The service launchers against the real servers: start, health, one real operation, stop, restart.

These are the test bed's own tests: if one fails, every integration test that
uses the same fixture is suspect.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import av
import numpy as np
import psutil
import pytest

pytestmark = pytest.mark.services


# ---------------------------------------------------------------------- Kafka
@pytest.mark.slow
def test_kafka_produce_consume_and_restart_keeps_records(kafka_broker: Any) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    topic = f"kuzet.test-services.{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all", enable_idempotence=True)
    try:
        for i in range(5):
            producer.send(topic, key=b"cam-1", value=f"record-{i}".encode()).get(timeout=30)
    finally:
        producer.close()

    def read_all() -> list[bytes]:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=kafka_broker.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=8000,
        )
        try:
            return [m.value for m in consumer]
        finally:
            consumer.close()

    expected = [f"record-{i}".encode() for i in range(5)]
    assert read_all() == expected

    port = kafka_broker.port
    kafka_broker.stop()
    assert not kafka_broker.is_running()
    kafka_broker.start()
    assert kafka_broker.port == port, "restart must come back on the same port"
    assert read_all() == expected, "records must survive a restart on the same data dir"


def test_kafka_start_is_idempotent(kafka_broker: Any) -> None:
    pid = kafka_broker.pid
    assert kafka_broker.start() is kafka_broker
    assert kafka_broker.pid == pid, "a second start must adopt the running broker"


# ------------------------------------------------------------------------- S3
@pytest.mark.slow
def test_s3_put_get_and_restart_keeps_objects(s3_service: Any) -> None:
    from minio import Minio
    from minio.error import S3Error

    client = Minio(
        s3_service.endpoint, access_key=s3_service.access_key, secret_key=s3_service.secret_key, secure=False
    )
    bucket = f"kuzet-svc-{uuid.uuid4().hex[:8]}"
    client.make_bucket(bucket)
    body = b"snapshot bytes " * 100
    client.put_object(bucket, "cam-1/a.jpg", io.BytesIO(body), len(body), content_type="image/jpeg")
    assert client.get_object(bucket, "cam-1/a.jpg").read() == body

    wrong = Minio(s3_service.endpoint, access_key=s3_service.access_key, secret_key="not-the-secret", secure=False)
    with pytest.raises(S3Error):
        wrong.list_buckets()

    s3_service.stop()
    assert not s3_service.is_running()
    s3_service.start()
    assert client.get_object(bucket, "cam-1/a.jpg").read() == body


# ----------------------------------------------------------------------- RTSP
class _Reader:
    """Decodes an RTSP stream in a thread, counting frames; stops after the current frame when asked."""

    def __init__(self, url: str) -> None:
        self.container = av.open(url, options={"rtsp_transport": "tcp", "timeout": "30000000"}, timeout=30)
        self.frames = 0
        self.error: BaseException | None = None
        self.shape: tuple[int, ...] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self.container.decode(video=0):
                if self.shape is None:
                    self.shape = frame.to_ndarray(format="bgr24").shape
                self.frames += 1
                if self._stop.is_set():
                    break
        except BaseException as exc:
            self.error = exc
        finally:
            self.container.close()

    def wait_frames(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.frames >= count:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def _established_to(port: int) -> int:
    """Our process's ESTABLISHED TCP connections to 127.0.0.1:port."""
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


@pytest.mark.slow
def test_rtsp_decodes_and_stall_keeps_connection_open(rtsp_server: Any, vtest_h264: Path) -> None:
    name = f"svc-{uuid.uuid4().hex[:6]}"
    url = rtsp_server.add_stream(name, vtest_h264)
    assert url == rtsp_server.url(name)
    reader = _Reader(url)
    try:
        assert reader.wait_frames(20, timeout=20), f"no frames decoded: {reader.error!r}"
        assert reader.shape == (576, 768, 3)

        rtsp_server.stall(name)
        time.sleep(1.5)  # what was in flight drains
        before = reader.frames
        time.sleep(4)
        assert reader.frames == before, "frames kept coming during a stall"
        assert reader.error is None
        assert _established_to(rtsp_server.port) >= 1, "the RTSP connection must stay open during a stall"

        t0 = time.monotonic()
        rtsp_server.resume(name)
        assert reader.wait_frames(before + 10, timeout=10), "frames did not come back after resume"
        assert time.monotonic() - t0 < 10
    finally:
        rtsp_server.resume(name)
        reader.close()
        rtsp_server.remove_stream(name)


@pytest.mark.slow
def test_rtsp_many_streams_cheaply(rtsp_server: Any, vtest_h264: Path) -> None:
    """24 streams at 10 fps, each with a client reading packets: all flow, and the server stays cheap."""
    names = [f"many-{i}-{uuid.uuid4().hex[:4]}" for i in range(24)]
    for name in names:
        rtsp_server.add_stream(name, vtest_h264)
    counts = dict.fromkeys(names, 0)
    stop = threading.Event()

    def demux(name: str) -> None:
        with av.open(rtsp_server.url(name), options={"rtsp_transport": "tcp"}, timeout=30) as container:
            for packet in container.demux(video=0):
                if packet.size:
                    counts[name] += 1
                if stop.is_set():
                    break

    threads = [threading.Thread(target=demux, args=(n,), daemon=True) for n in names]
    server = psutil.Process(rtsp_server.pid)
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and min(counts.values()) < 10:
            time.sleep(0.2)
        cpu0, start_counts, t0 = server.cpu_times(), dict(counts), time.monotonic()
        time.sleep(5)
        cpu1, elapsed = server.cpu_times(), time.monotonic() - t0
        rates = {n: (counts[n] - start_counts[n]) / elapsed for n in names}
        server_cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed
        print(f"24 streams: min {min(rates.values()):.1f} fps, server CPU {server_cpu:.2f} cores")
        assert min(rates.values()) >= 7, rates
        assert server_cpu < 0.8, f"server used {server_cpu:.2f} cores for 24 streams"
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        for name in names:
            rtsp_server.remove_stream(name)


def _sliced_clip(path: Path, frames: int) -> Path:
    """H.264 whose every frame is two slices (as many IP cameras send), the picture one flat grey per frame."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"g": "10", "crf": "18", "slices": "2"}
        for i in range(frames):
            grey = np.full((240, 320, 3), 60 + 6 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(grey, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.mark.slow
def test_rtsp_keeps_every_slice_of_a_frame(rtsp_server: Any, tmp_path: Path) -> None:
    """A frame sent as two slices decodes whole: the key frame's slices stay one access unit.

    The payloader used to put SPS/PPS before each IDR slice, so clients split the key frame in two and
    every frame until the next key frame decoded with its upper half lost.
    """
    clip = _sliced_clip(tmp_path / "sliced.mp4", 30)
    name = f"sliced-{uuid.uuid4().hex[:6]}"
    url = rtsp_server.add_stream(name, clip)
    halves: list[tuple[float, float]] = []
    try:
        with av.open(url, options={"rtsp_transport": "tcp"}, timeout=30) as container:
            for frame in container.decode(video=0):
                picture = frame.to_ndarray(format="gray")
                halves.append((float(picture[:120].mean()), float(picture[120:].mean())))
                if len(halves) >= 25:  # more than two key-frame periods of the looped clip
                    break
    finally:
        rtsp_server.remove_stream(name)
    broken = [(i, top, bottom) for i, (top, bottom) in enumerate(halves) if abs(top - bottom) > 3]
    assert not broken, f"frames whose two slices differ (index, top, bottom): {broken[:5]}"


def test_rtsp_rejects_bad_requests(rtsp_server: Any, tmp_path: Path) -> None:
    from deploy.services._proc import ServiceError
    from deploy.services.media import not_video

    with pytest.raises(ServiceError, match="400"):
        rtsp_server.add_stream("bad-file", not_video(tmp_path / "x.mp4"))
    with pytest.raises(ServiceError, match="400"):
        rtsp_server.add_stream("bad name/../x", tmp_path / "x.mp4")
    with pytest.raises(ServiceError, match="404"):
        rtsp_server.stall("no-such-stream")


# ----------------------------------------------------------------- PostgreSQL
def test_postgres_select_1(postgres_dsn: str) -> None:
    from deploy.services.postgres import pg_bin_dir

    assert postgres_dsn.startswith("postgresql://postgres@127.0.0.1:")
    out = subprocess.run(
        [str(pg_bin_dir() / "psql"), postgres_dsn, "-XtA", "-c", "SELECT 1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.strip() == "1"


# ---------------------------------------------------------------------- media
def test_vtest_h264_has_fixed_gop(vtest_h264: Path) -> None:
    with av.open(str(vtest_h264)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        keys = [p.is_keyframe for p in container.demux(stream) if p.size]
    assert len(keys) == 795
    assert sum(keys) == 80
    assert all(k == (i % 10 == 0) for i, k in enumerate(keys))


def test_bad_media_helpers(tmp_path: Path) -> None:
    from deploy.services.media import not_video, truncated_h264

    with pytest.raises(av.error.InvalidDataError):
        av.open(str(not_video(tmp_path / "n.mp4")))
    damaged = truncated_h264(tmp_path / "t.h264")
    assert damaged.stat().st_size > 0


# ------------------------------------------------------------------------ CLI
def test_cli_status_masks_secrets(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "deploy.services", "s3", "status", "--dir", str(tmp_path / "s3")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    doc = json.loads(out.stdout)
    assert doc["service"] == "s3"
    assert doc["running"] is False
    assert doc["secret_key"] == "***"
