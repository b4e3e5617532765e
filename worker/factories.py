"""Build the transport and the snapshot store a configuration names."""

from __future__ import annotations

from core.config import BusConfig, StorageConfig
from event_bus.interfaces import Publisher
from storage.snapshots import SnapshotStore


def make_publisher(cfg: BusConfig) -> Publisher:
    if cfg.kind == "kafka":
        from event_bus.kafka_publisher import KafkaPublisher

        return KafkaPublisher(cfg.kafka)
    from event_bus.local_bus import LocalBusPublisher

    return LocalBusPublisher(cfg.local_path)


def make_snapshot_store(cfg: StorageConfig) -> SnapshotStore:
    if cfg.kind == "s3":
        from storage.s3_store import S3SnapshotStore

        return S3SnapshotStore(cfg.s3)
    from storage.local_store import LocalSnapshotStore

    return LocalSnapshotStore(cfg.local_dir)
