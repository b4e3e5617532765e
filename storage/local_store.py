"""Snapshots in a local directory (one box): same keys as S3, atomic and durable writes.

A write goes to a temporary file in the target directory, is fsynced, then
renamed over the final name, and the directory is fsynced: a reader never sees
a half-written JPEG, and a crash leaves either the old state or the new one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from core.snapshot import SnapshotRef
from storage.snapshots import KeyedSnapshotStore, SnapshotError, sha256_hex


class LocalSnapshotStore(KeyedSnapshotStore):
    kind = "local"

    def __init__(self, root: Path | str, bucket: str = "kuzet-snapshots") -> None:
        self.root = Path(root).resolve()
        self.bucket = bucket
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise SnapshotError(f"key {key!r} escapes the snapshot directory")
        return path

    def _write_object(self, key: str, jpeg: bytes, ref: SnapshotRef) -> None:
        self._write(key, jpeg, ref.sha256)

    def put_clip(self, key: str, data: bytes, sha256: str | None = None) -> None:
        self._write(key, data, sha256 if sha256 is not None else sha256_hex(data))

    def put_object(self, key: str, data: bytes, content_type: str) -> None:
        del content_type  # a file has none; the key's suffix says what it is
        self._write(key, data, sha256_hex(data))

    def read_object(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )

    def _write(self, key: str, data: bytes, sha256: str) -> None:
        path = self._path(key)
        if path.exists() and path.stat().st_size == len(data) and sha256_hex(path.read_bytes()) == sha256:
            return  # idempotent: already there
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def exists(self, ref: SnapshotRef) -> bool:
        path = self._path(ref.key)
        return path.is_file() and path.stat().st_size == ref.size

    def get(self, ref: SnapshotRef) -> bytes:
        try:
            data = self._path(ref.key).read_bytes()
        except FileNotFoundError:
            raise SnapshotError(f"snapshot {ref.key} does not exist") from None
        if sha256_hex(data) != ref.sha256:
            raise SnapshotError(f"snapshot {ref.key} does not match its sha256")
        return data

    def presigned_url(self, ref: SnapshotRef, expires_s: int = 3600) -> str:
        return self._path(ref.key).as_uri()
