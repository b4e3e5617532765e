"""What the console benchmarks share: the publisher they feed the console with and the wait for it to serve.

``camera_board`` and ``console_load`` both start the console in a process of its own and publish to it,
on Kafka when ``--kafka HOST:PORT`` is given, else on the console's embedded local bus.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from core.config import BusConfig, KafkaConfig
from event_bus.interfaces import Publisher
from event_bus.transport import open_publisher


def bench_publisher(kafka: str | None, bus: Path | str, client_id: str) -> Publisher:
    """A publisher on Kafka (its topics created first) or on the local bus file the console reads."""
    if not kafka:
        return open_publisher(BusConfig(kind="local", local_path=Path(bus)))
    from event_bus.kafka_admin import ensure_topics

    ensure_topics(kafka)
    return open_publisher(BusConfig(kind="kafka", kafka=KafkaConfig(bootstrap_servers=kafka, client_id=client_id)))


def wait_healthy(url: str, timeout_s: float) -> None:
    """Return once ``url``'s ``/api/health`` answers 200; RuntimeError when it has not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("console did not start")
        time.sleep(0.2)
