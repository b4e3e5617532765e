"""Poison records on the real broker: every consumer keeps going and dead-letters each bad record once.

A short run of :mod:`benchmarks.poison` (a few records of each of the six kinds per consumer); the full
run (``python -m benchmarks.poison``, 1,000 of each kind) is a benchmark-style command. Also: the
worker's outbox parks a record Kafka refuses (too large) and delivers the records behind it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.poison import run_console, run_plates, run_registry
from core.config import KafkaConfig
from event_bus import topics
from event_bus.interfaces import OutRecord
from event_bus.kafka_publisher import KafkaPublisher
from event_bus.relay import Relay
from event_bus.spool import Spool
from tests.integration.worker_support import read_topic

PER_KIND = 5
pytestmark = [pytest.mark.services, pytest.mark.slow]


def _check(report) -> None:
    assert report.good_processed, f"{report.consumer} did not get past the bad records"
    assert report.alive, f"{report.consumer}'s thread died"
    assert report.missing == 0 and report.duplicated == 0, report
    assert report.dead_letters == report.sent and report.truncated == PER_KIND, report  # the "huge" ones


def test_console_ingest(kafka_bootstrap: str, tmp_path: Path) -> None:
    _check(run_console(kafka_bootstrap, PER_KIND, tmp_path, timeout_s=120))


def test_plate_indexer_and_watchlist_matcher(kafka_bootstrap: str, tmp_path: Path) -> None:
    for report in run_plates(kafka_bootstrap, PER_KIND, tmp_path, timeout_s=120):
        _check(report)


def test_worker_registry_consumer(kafka_bootstrap: str, tmp_path: Path) -> None:
    _check(run_registry(kafka_bootstrap, PER_KIND, tmp_path, timeout_s=120))


def test_three_workers_and_a_restart_dead_letter_each_registry_record_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Every worker reads every registry record (and again after a restart); the DLQ gets one copy of each.

    Before: each worker dead-lettered each invalid record it read, 3 copies here, and one more per restart.
    """
    report = run_registry(kafka_bootstrap, PER_KIND, tmp_path, timeout_s=180, workers=3, restart=True)
    assert report.good_processed and report.alive, report
    assert report.sent == 6 * PER_KIND and report.dead_letters == report.sent, report  # 5 kinds, + 1 each after
    assert report.missing == 0 and report.duplicated == 0, report


def test_outbox_parks_a_record_kafka_refuses_and_delivers_the_rest(kafka_bootstrap: str, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3", durability="normal")
    publisher = KafkaPublisher(KafkaConfig(bootstrap_servers=kafka_bootstrap, client_id="park-test"))
    key = f"park-{tmp_path.name[-8:]}"
    spool.append(OutRecord(topics.DLQ, key, b"x" * 2_000_000))  # over the producer's and broker's 1 MiB
    spool.append(OutRecord(topics.INCIDENTS, key, b'{"after": 1}'))
    relay = Relay(spool, publisher)
    try:
        assert relay.flush(60), relay.stats()
        assert spool.stats().parked == 1 and relay.stats().parked == 1
        got = [r for r in read_topic(kafka_bootstrap, topics.INCIDENTS, expect_at_least=1) if r.key == key]
        assert [r.value for r in got] == [b'{"after": 1}']
    finally:
        publisher.close()
        spool.close()
