"""The console on real services: the workflow store on PostgreSQL, and the bus consumer on real Kafka."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from core.config import KafkaConfig
from dispatch.bus_ingest import BusIngestor, console_subscriber
from dispatch.feed import FeedHub
from dispatch.settings import ConsoleSettings
from dispatch.testing import FAST_HASHER, make_incident, record_of
from event_bus import topics
from event_bus.interfaces import OutRecord
from event_bus.kafka_admin import ensure_topics
from event_bus.kafka_publisher import KafkaPublisher
from event_bus.kafka_subscriber import KafkaSubscriber
from storage.workflow import open_workflow_store
from tests.unit.test_dispatch_workflow import exercise_store

pytestmark = [pytest.mark.services]


def test_workflow_store_contract_on_postgresql(postgres_dsn: str) -> None:
    import psycopg

    schema = f"console_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    dsn = f"{postgres_dsn}{'&' if '?' in postgres_dsn else '?'}options=-csearch_path%3D{schema}"
    store = open_workflow_store(dsn, hasher=FAST_HASHER)
    try:
        assert store.dialect == "postgres"
        exercise_store(store)
        uid, rev = store.store_uid, store.current_rev()
    finally:
        store.close()
    again = open_workflow_store(dsn, hasher=FAST_HASHER)
    try:
        assert again.store_uid == uid and again.current_rev() == rev  # replay ids survive a console restart
    finally:
        again.close()


def test_console_consumer_on_real_kafka_dedupes_and_dead_letters(kafka_bootstrap: str, tmp_path: Path) -> None:
    ensure_topics(kafka_bootstrap)
    settings = ConsoleSettings(
        database=str(tmp_path / "console.sqlite3"),
        bus={"kind": "kafka", "kafka": {"bootstrap_servers": kafka_bootstrap}},
        consumer_group=f"console-it-{uuid.uuid4().hex[:8]}",
    )
    store = open_workflow_store(settings.database, hasher=FAST_HASHER)
    hub = FeedHub(store)
    make_sub, dlq = console_subscriber(settings)
    ingestor = BusIngestor(make_sub, dlq, store, hub).start()
    pub = KafkaPublisher(KafkaConfig(bootstrap_servers=kafka_bootstrap, client_id="console-it"))
    try:
        deadline = time.monotonic() + 30
        while not ingestor.assigned() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ingestor.assigned()
        inc = make_incident(camera_id=f"it-{uuid.uuid4().hex[:6]}")
        marker = f"bad-{uuid.uuid4().hex[:6]}"
        # the same event twice (a producer retry), and a malformed record
        results = pub.publish([record_of(inc), record_of(inc), OutRecord(topics.INCIDENTS, marker, b"{oops")])
        assert all(r is None for r in results)
        deadline = time.monotonic() + 10
        while store.get(str(inc.incident_id)) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        rec = store.get(str(inc.incident_id))
        assert rec is not None and rec.events == 1
        dlq_sub = KafkaSubscriber(kafka_bootstrap, [topics.DLQ], None, from_beginning=True)
        found: list[Any] = []
        deadline = time.monotonic() + 15
        while not found and time.monotonic() < deadline:
            found = [r for r in dlq_sub.poll(1.0) if r.key == marker]
        dlq_sub.close()
        assert found, "the malformed record was not dead-lettered"
        assert ingestor.errors == 0
    finally:
        ingestor.stop()
        pub.close()
        store.close()
