"""The plate indexer and the console expose /metrics, /healthz and /readyz like a worker; scraped for real."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

import pytest

from core.config import BusConfig, KafkaConfig, StorageConfig
from dispatch.app import create_app
from dispatch.settings import ConsoleSettings
from event_bus import topics
from event_bus.kafka_admin import ensure_topics
from event_bus.kafka_publisher import KafkaPublisher
from event_bus.kafka_subscriber import KafkaSubscriber
from kuzet.service_metrics import console_server, indexer_server
from services.plate_indexer import IndexerStats, run_forever
from storage.plates.factory import open_stores
from tests.integration.test_plate_history_kafka import plate_read, send

pytestmark = [pytest.mark.services]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no series {line_start!r} in /metrics")


def test_indexer_metrics_count_stored_reads_and_consumer_lag(kafka_bootstrap: str, tmp_path: Path) -> None:
    ensure_topics(kafka_bootstrap, [topics.PLATES, topics.DLQ])
    group = f"metrics-indexer-{int(time.time())}"
    publisher = KafkaPublisher(KafkaConfig(bootstrap_servers=kafka_bootstrap))
    send(
        publisher,
        "cam-metrics-1",
        [plate_read("cam-metrics-1", p).model_dump_json().encode() for p in ("123ABC02", "505KLM17")],
    )
    stores = open_stores(f"sqlite:///{tmp_path / 'plates.sqlite3'}")
    stats = IndexerStats()
    server, on_step = indexer_server(stats, group, "127.0.0.1", 0)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_forever,
        args=(lambda: KafkaSubscriber(kafka_bootstrap, [topics.PLATES], group, from_beginning=True),
              stores.history, publisher, stop),
        kwargs={"on_step": on_step, "stats": stats, "max_wait_s": 0.2},
    )  # fmt: skip
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while stats.stored < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # a few more steps: lag is read after each
        status, text = get(f"{server.url}/metrics")
        assert status == 200
        assert metric(text, 'kuzet_indexer_records_total{outcome="stored"}') >= 2
        lag = metric(text, f'kuzet_kafka_consumer_lag{{group="{group}",topic="{topics.PLATES}"}}')
        assert lag == 0, "the indexer has read everything, so its lag is zero"
        assert get(f"{server.url}/healthz")[0] == 200
        assert get(f"{server.url}/readyz")[0] == 200
    finally:
        stop.set()
        thread.join(30)
        server.stop()
        publisher.close()
        stores.close()


def test_console_metrics_and_probes(tmp_path: Path) -> None:
    settings = ConsoleSettings(
        database=str(tmp_path / "console.sqlite3"),
        bus=BusConfig(kind="local", local_path=tmp_path / "bus.sqlite3"),
        storage=StorageConfig(kind="local", local_dir=tmp_path / "snapshots"),
        consume=False,
    )
    app = create_app(settings)
    server = console_server(app.state.console, "127.0.0.1", 0)
    try:
        status, text = get(f"{server.url}/metrics")
        assert status == 200
        assert metric(text, "kuzet_console_sse_connections") == 0
        assert metric(text, "kuzet_console_feed_messages_total") == 0
        assert metric(text, "kuzet_console_line_count_errors_total") == 0
        assert metric(text, "kuzet_console_line_count_cameras") == 0
        assert "process_resident_memory_bytes" in text
        assert get(f"{server.url}/readyz")[0] == 200
    finally:
        server.stop()
