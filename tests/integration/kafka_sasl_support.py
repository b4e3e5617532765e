"""A secure broker for the tests that need one (SASL/SCRAM over TLS, ACLs applied): the SASL suite and the
deploy-files test, which runs the deploy files' SASL settings against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from event_bus import topics
from event_bus.acls import apply_acls
from event_bus.kafka_admin import ensure_topics

ROLES = {"worker": "kuzet-worker", "console": "kuzet-console", "indexer": "kuzet-indexer", "watch": "kuzet-watch"}
"""ACL role -> the SCRAM user the deploy files name for it."""


def secure_kafka_service(directory: Path) -> Iterator[Any]:
    """Start ``KafkaService(secure=True)``, create the topics and apply the ACL recipe as ``admin``; stop after."""
    from deploy.services.kafka import KafkaService

    service = KafkaService(directory, die_with_parent=True, secure=True)
    try:
        service.start()
    except Exception as exc:  # the same clear failure the shared fixtures give
        pytest.fail(f"secure Kafka did not start: {exc}")
    try:
        admin = service.client_settings("admin")
        ensure_topics(service.bootstrap, topics.ALL, security=admin)
        ensure_topics(service.bootstrap, [topics.CAMERAS], partitions=64, security=admin)
        apply_acls(service.bootstrap, admin, ROLES)
        yield service
    finally:
        service.stop()
