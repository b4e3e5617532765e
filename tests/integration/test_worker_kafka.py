"""A real worker against real Kafka, SeaweedFS S3 and the RTSP server: delivery, snapshots, outages, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import S3Config
from event_bus import topics
from event_bus.events import Incident, IncidentState
from event_bus.kafka_publisher import KafkaPublisher
from storage.s3_store import S3SnapshotStore
from tests.integration.worker_support import camera, check_delivery, read_journal, read_topic, worker_config
from worker.runtime import Worker

pytestmark = [pytest.mark.services, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


class Collector:
    """Records incidents in the order the worker spooled them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, inc: Incident) -> None:
        with self._lock:
            self.events.append(json.loads(inc.model_dump_json()))

    def starts(self) -> int:
        with self._lock:
            return sum(e["state"] == IncidentState.START for e in self.events)

    def wait_starts(self, n: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.starts() < n and time.monotonic() < deadline:
            time.sleep(0.2)


def test_rtsp_worker_publishes_valid_incidents_with_snapshots_in_s3(
    kafka_bootstrap: str, s3_service: Any, rtsp_server: Any, vtest_h264: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("KUZET_TEST_S3_ACCESS", s3_service.access_key)
    monkeypatch.setenv("KUZET_TEST_S3_SECRET", s3_service.secret_key)
    rtsp_server.add_stream("cam-rtsp-1", vtest_h264)
    cfg = worker_config(
        tmp_path, [camera("cam-rtsp-1", rtsp_server.url("cam-rtsp-1"))], kafka=kafka_bootstrap, s3=s3_service
    )
    publisher = KafkaPublisher(cfg.bus.kafka)
    producer = publisher.producer_config()
    assert producer["enable_idempotence"] is True
    assert producer["acks"] in (-1, "all")

    seen = Collector()
    worker = Worker(cfg, publisher=publisher, on_incident=seen)
    worker.start()
    try:
        seen.wait_starts(3, timeout_s=90)
    finally:
        worker.stop(flush_timeout_s=30)
    assert seen.starts() >= 3, f"only {seen.starts()} incidents started from the RTSP stream"

    records = read_topic(kafka_bootstrap, topics.INCIDENTS, expect_at_least=len(seen.events))
    ours = [r for r in records if r.key == "cam-rtsp-1"]
    counts = check_delivery(seen.events, ours)
    assert counts["received"] >= counts["produced"]

    store = S3SnapshotStore(
        S3Config(
            endpoint=s3_service.endpoint, access_key="env:KUZET_TEST_S3_ACCESS", secret_key="env:KUZET_TEST_S3_SECRET"
        )
    )
    starts = [Incident.model_validate(e) for e in seen.events if e["state"] == "start"]
    for inc in starts:
        assert inc.snapshot is not None and inc.snapshot.store == "s3"
        assert store.exists(inc.snapshot)
        data = store.get(inc.snapshot)  # raises when the object's sha256 differs from the event's
        assert len(data) == inc.snapshot.size


def test_broker_down_30s_loses_nothing_and_keeps_order(kafka_broker: Any, vtest_h264: Path, tmp_path: Path) -> None:
    cam = camera("cam-outage-1", str(vtest_h264), loop=True, realtime=True)
    cfg = worker_config(
        tmp_path,
        [cam],
        kafka=kafka_broker.bootstrap,
        rules={"end_after_s": 1.0, "update_every_s": 1.0, "cooldown_s": 2.0},
    )
    seen = Collector()
    worker = Worker(cfg, on_incident=seen)
    worker.start()
    try:
        seen.wait_starts(2, timeout_s=60)
        kafka_broker.stop()
        down_from = len(seen.events)
        time.sleep(30)
        during = len(seen.events) - down_from
        kafka_broker.start()
        time.sleep(8)
    finally:
        flushed = worker.stop(flush_timeout_s=90)
    assert during > 0, "the worker produced nothing while the broker was down: the test proves nothing"
    assert flushed, "the outbox did not drain after the broker came back"

    records = read_topic(kafka_broker.bootstrap, topics.INCIDENTS, expect_at_least=len(seen.events))
    counts = check_delivery(seen.events, [r for r in records if r.key == "cam-outage-1"])
    print(f"broker outage: {counts}, produced during outage: {during}")


def _run_worker(cfg_path: Path, journal: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "kuzet.cli", "worker", "--config", str(cfg_path), "--journal", str(journal)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_lines(path: Path, n: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        count = len(read_journal(path))
        if count >= n:
            return count
        time.sleep(0.3)
    return len(read_journal(path))


def test_worker_sigkill_then_restart_loses_nothing(kafka_bootstrap: str, vtest_h264: Path, tmp_path: Path) -> None:
    cam = camera("cam-kill-1", str(vtest_h264), loop=True, realtime=True)
    cfg = worker_config(
        tmp_path, [cam], kafka=kafka_bootstrap, rules={"end_after_s": 1.0, "update_every_s": 1.0, "cooldown_s": 2.0}
    )
    cfg_path = tmp_path / "worker.yaml"
    cfg_path.write_text(yaml.safe_dump(json.loads(cfg.model_dump_json())), encoding="utf-8")
    journal, log = tmp_path / "journal.jsonl", tmp_path / "worker.log"

    first = _run_worker(cfg_path, journal, log)
    try:
        assert _wait_lines(journal, 4, timeout_s=90) >= 4, log.read_text(errors="replace")[-3000:]
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    killed_at = len(read_journal(journal))

    second = _run_worker(cfg_path, journal, log)
    try:
        _wait_lines(journal, killed_at + 2, timeout_s=60)
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        assert second.wait(60) == 0, log.read_text(errors="replace")[-3000:]

    produced = read_journal(journal)
    records = read_topic(kafka_bootstrap, topics.INCIDENTS, expect_at_least=len(produced))
    counts = check_delivery(produced, [r for r in records if r.key == "cam-kill-1"])
    print(f"SIGKILL + restart: {counts}, journal lines before kill: {killed_at}")
