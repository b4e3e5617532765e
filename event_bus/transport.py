"""The one place that turns a :class:`~core.config.BusConfig` into a transport: Kafka, or the embedded local bus.

Workers, the console, the plate services and the command line all call these
two functions, so a new transport setting (security, timeouts) is added once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.config import BusConfig
from event_bus.interfaces import InRecord, Publisher, Subscriber


def open_publisher(cfg: BusConfig) -> Publisher:
    """A publisher on the configured transport (Kafka: idempotent, acks=all; local: the SQLite log)."""
    if cfg.kind == "kafka":
        from event_bus.kafka_publisher import KafkaPublisher

        return KafkaPublisher(cfg.kafka)
    from event_bus.local_bus import LocalBusPublisher

    return LocalBusPublisher(cfg.local_path)


def subscriber_factory(
    cfg: BusConfig,
    topics: Sequence[str],
    group: str | None,
    *,
    from_beginning: bool,
    client_id: str | None = None,
    kafka_extra: dict[str, Any] | None = None,
    since_ms: Callable[[], int] | None = None,
) -> Callable[[], Subscriber]:
    """A function that opens a new subscriber of ``group`` on ``topics``.

    A factory, not a subscriber, because consumers reopen theirs after a failure
    to be re-delivered from the group's committed offsets (the only rewind that
    works on every transport). ``since_ms`` (no group): each subscriber it opens
    reads every partition from the time this returns then (a reader that rebuilds
    its state from the recent records, again after each reopen).
    """
    wanted = list(topics)
    if cfg.kind == "kafka":
        from event_bus.kafka_security import client_settings
        from event_bus.kafka_subscriber import KafkaSubscriber

        bootstrap = cfg.kafka.bootstrap_servers
        cid = client_id or cfg.kafka.client_id
        # the config's own SASL/TLS (the console's KUZET_CONSOLE_BUS__KAFKA__*), so its consumer authenticates
        # as its DLQ publisher does; without any, KafkaSubscriber falls back to KUZET_BUS__KAFKA__*
        # (resolved when a subscriber opens: the password is held by no long-lived object)
        kafka_cfg = cfg.kafka

        def make_kafka() -> Subscriber:
            extra = client_settings(kafka_cfg) | (kafka_extra or {})
            since = since_ms() if since_ms is not None else None
            return KafkaSubscriber(
                bootstrap, wanted, group, from_beginning=from_beginning, client_id=cid, extra=extra, since_ms=since
            )

        return make_kafka
    path = cfg.local_path

    def make_local() -> Subscriber:
        since = since_ms() if since_ms is not None else None
        return ReopeningLocalSubscriber(path, wanted, group, from_beginning=from_beginning, since_ms=since)

    return make_local


class ReopeningLocalSubscriber:
    """A local-bus subscriber that follows the file when it is replaced (the demo recreates it on each run).

    SQLite keeps reading a deleted file through its open handle, so without this a consumer started before
    ``kuzet demo`` cleared ``bus.sqlite3`` would wait forever on the old, unlinked log.
    """

    def __init__(
        self,
        path: Path | str,
        topics: Sequence[str],
        group: str | None,
        *,
        from_beginning: bool,
        since_ms: int | None = None,
    ) -> None:
        from event_bus.local_bus import LocalBusSubscriber

        self._cls = LocalBusSubscriber
        self._args = (path, list(topics), group)
        self._from_beginning = from_beginning
        self._path = Path(path)
        self._inner = LocalBusSubscriber(path, list(topics), group, from_beginning=from_beginning, since_ms=since_ms)
        self._ino = self._inode()
        self._checked = time.monotonic()

    def _inode(self) -> int | None:
        try:
            return self._path.stat().st_ino
        except OSError:
            return None

    def poll(self, timeout_s: float, max_records: int = 500) -> list[InRecord]:
        now = time.monotonic()
        if now - self._checked > 1.0:
            self._checked = now
            ino = self._inode()
            if ino is not None and ino != self._ino:
                self._inner.close()
                self._inner = self._cls(*self._args, from_beginning=self._from_beginning)
                self._ino = self._inode()
        return self._inner.poll(timeout_s, max_records)

    def commit(self) -> None:
        self._inner.commit()

    def close(self) -> None:
        self._inner.close()
