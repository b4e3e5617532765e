"""The one factory for snapshot stores: the configuration names S3 or a local directory.

A module of its own because both stores import :mod:`storage.snapshots` (the
interface and key layout): the factory above them keeps imports one-way.
"""

from __future__ import annotations

from core.config import StorageConfig
from storage.snapshots import SnapshotStore


def open_snapshot_store(cfg: StorageConfig) -> SnapshotStore:
    """The store a configuration names: S3 (any S3 service, through ``minio``) or a local directory."""
    if cfg.kind == "s3":
        from storage.s3_store import S3SnapshotStore

        return S3SnapshotStore(cfg.s3)
    from storage.local_store import LocalSnapshotStore

    return LocalSnapshotStore(cfg.local_dir)
