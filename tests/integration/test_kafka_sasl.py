"""Kafka with SASL/SCRAM over TLS and ACLs (#10.2): the services' path works, nobody else writes the registry.

A second broker (``KafkaService(secure=True)``: generated CA, SCRAM users formatted in, StandardAuthorizer,
mutual TLS on the controller listener) runs beside the plaintext one the other tests use. The ACL recipe
of :mod:`event_bus.acls` is applied as ``admin``; then:

* end to end over SASL_SSL: the admin CLI's registry client writes a camera, the worker principal reads
  the registry and publishes an incident through the spool's publisher, the console principal consumes it;
* an unauthenticated client (plaintext, or TLS without SASL) cannot even connect;
* a wrong password is refused;
* the worker, console, indexer and watch principals are authenticated but not authorised to write
  ``kuzet.cameras.v1``;
* the worker principal's dead-lettering member (a consumer group and a transactional producer,
  :mod:`worker.registry_dead_letters`) may do what it needs: an invalid registry record gets its dead letter.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from core.camera_policy import CameraPolicy
from core.config import CameraConfig, KafkaConfig
from dispatch.testing import make_incident
from event_bus import topics
from event_bus.consume import EventConsumer, read_dead_letter
from event_bus.interfaces import OutRecord
from event_bus.kafka_publisher import KafkaPublisher
from event_bus.kafka_security import client_settings
from event_bus.kafka_subscriber import KafkaSubscriber
from tests.integration.kafka_sasl_support import ROLES, secure_kafka_service
from worker.registry import CameraRegistry
from worker.registry_dead_letters import registry_dead_letters

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from secure_kafka_service(tmp_path_factory.mktemp("kafka-sasl"))


def _config(service: Any, user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KafkaConfig:
    """The KafkaConfig a service of ``user`` would run with: password as a secret reference."""
    var = f"KUZET_TEST_KAFKA_PW_{user.upper().replace('-', '_')}"
    monkeypatch.setenv(var, service.state["scram"][user])
    return KafkaConfig(
        bootstrap_servers=service.bootstrap,
        client_id=user,
        security_protocol="SASL_SSL",
        sasl_username=user,
        sasl_password=f"env:{var}",
        ssl_cafile=Path(service.tls_dir / "ca.pem"),
    )


def test_end_to_end_over_sasl_ssl_with_acls(secure_kafka: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = secure_kafka
    camera = f"sasl-{uuid.uuid4().hex[:6]}"
    admin = CameraRegistry(service.bootstrap, security=service.client_settings("admin"))
    try:
        assert admin.put([CameraConfig(id=camera, url=f"rtsp://127.0.0.1/{camera}")]) == 1
    finally:
        admin.close()

    worker_cfg = _config(service, "kuzet-worker", tmp_path, monkeypatch)
    reader = CameraRegistry(service.bootstrap, security=client_settings(worker_cfg))
    try:
        assert camera in reader.snapshot(timeout_s=30).cameras, "the worker principal reads the registry"
    finally:
        reader.close()

    console_cfg = _config(service, "kuzet-console", tmp_path, monkeypatch)
    group = f"kuzet-console-sasl-{camera}"
    sub = KafkaSubscriber(
        service.bootstrap, [topics.INCIDENTS], group, from_beginning=True, extra=client_settings(console_cfg)
    )
    consumer = EventConsumer(sub, KafkaPublisher(console_cfg), name="kuzet-console")
    pub = KafkaPublisher(worker_cfg)
    try:
        inc = make_incident(camera_id=camera)
        assert pub.publish([OutRecord(topics.INCIDENTS, camera, inc.model_dump_json().encode())]) == [None]
        got: list[Any] = []
        deadline = time.monotonic() + 60
        while not got and time.monotonic() < deadline:
            got = [d for d in consumer.poll(1.0) if d.record.key == camera]
        assert got and got[0].event.event_id == inc.event_id
        consumer.commit()
    finally:
        consumer.close()
        pub.close()


def test_the_worker_principal_dead_letters_invalid_registry_records_in_transactions(
    secure_kafka: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = secure_kafka
    camera = f"sasl-bad-{uuid.uuid4().hex[:6]}"
    admin = CameraRegistry(service.bootstrap, security=service.client_settings("admin"))
    try:
        admin.put_raw(camera, b"{not json")
    finally:
        admin.close()
    worker_cfg = _config(service, "kuzet-worker", tmp_path, monkeypatch)
    group = f"kuzet-workers-sasl-{camera}"
    letters = registry_dead_letters(
        service.bootstrap, group, "w1", CameraPolicy(), None, security=client_settings(worker_cfg)
    ).start()
    try:
        deadline = time.monotonic() + 60
        while letters.dead_lettered < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert letters.dead_lettered >= 1, f"no dead letter written: {letters.error}"
    finally:
        letters.stop()
    sub = KafkaSubscriber(
        service.bootstrap,
        [topics.DLQ],
        f"kuzet-console-sasl-dlq-{camera}",
        from_beginning=True,
        extra=service.client_settings("admin") | {"isolation_level": "read_committed"},
    )
    try:
        found: list[Any] = []
        deadline = time.monotonic() + 60
        while not found and time.monotonic() < deadline:
            found = [r for r in sub.poll(1.0, 500) if r.key == camera]
    finally:
        sub.close()
    assert len(found) == 1, found
    dead = read_dead_letter(found[0])
    assert dead.consumer == group and "not JSON" in dead.error, dead


def _producer(service: Any, **settings: Any) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=service.bootstrap,
        request_timeout_ms=5000,
        max_block_ms=8000,
        bootstrap_timeout_ms=5000,
        **settings,
    )


def test_unauthenticated_clients_cannot_connect(secure_kafka: Any) -> None:
    ca = str(secure_kafka.tls_dir / "ca.pem")
    wrong = secure_kafka.client_settings("kuzet-worker") | {"sasl_plain_password": "not-the-password"}
    for settings in ({}, {"security_protocol": "SSL", "ssl_cafile": ca}, wrong):  # plaintext, TLS only, bad password
        with pytest.raises(KafkaError):
            producer = _producer(secure_kafka, **settings)
            try:
                producer.send(topics.CAMERAS, key=b"cam-evil", value=b"{}").get(timeout=10)
            finally:
                producer.close(0)


@pytest.mark.parametrize("user", sorted(ROLES.values()))
def test_only_admin_writes_the_registry(secure_kafka: Any, user: str) -> None:
    producer = _producer(secure_kafka, **secure_kafka.client_settings(user))
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(topics.CAMERAS, key=b"cam-evil", value=b"{}").get(timeout=20)
    finally:
        producer.close(0)
