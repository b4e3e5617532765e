"""Anchors of the audit chain kept outside its database: the head hash every N records or T seconds.

Why: the hash chain (:mod:`storage.audit`) shows any edit of a past row, but
whoever owns the table can rewrite it with freshly computed hashes, or cut
rows off the end, and the chain still verifies. An anchor (``seq``, ``hash``)
written somewhere the database owner cannot rewrite pins the chain: a later
verify that finds a different hash at that ``seq``, or no such row, knows the
log was rewritten or truncated.

Where anchors go (any of them, together):

* **S3**, in a bucket of its own (not the snapshot bucket), created with
  object lock when the service supports it, each anchor a small JSON object
  under retention (COMPLIANCE) so it cannot be deleted or overwritten before
  it expires; where the service has no object lock the bucket is still
  separate, with its own credentials in production;
* **the log** (one line per anchor, for the log pipeline to keep);
* **a directory** (one box: put it on another disk or a synced folder).

Writing an anchor never fails the audited action: the record is already
durable in the chain; a failed anchor is logged and counted.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from core.config import S3Config, resolve_secret
from core.redact import redact_text
from storage.audit import AuditEntry, AuditLog, AuditRecord

log = logging.getLogger(__name__)

ANCHOR_PREFIX = "audit-anchors/"


@dataclass(frozen=True, slots=True)
class Anchor:
    seq: int
    hash: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "at": self.at.astimezone(UTC).isoformat()}

    @staticmethod
    def from_json(doc: Any) -> Anchor:
        if not isinstance(doc, dict):
            raise ValueError("an anchor is a JSON object")
        seq, digest = doc.get("seq"), doc.get("hash")
        if not isinstance(seq, int) or seq < 1 or not isinstance(digest, str) or len(digest) != 64:
            raise ValueError("an anchor needs seq >= 1 and a 64-character hash")
        return Anchor(seq, digest, datetime.fromisoformat(str(doc.get("at"))))


class AnchorSink(Protocol):
    name: str

    def put(self, anchor: Anchor) -> None:
        """Store one anchor durably; raises on failure."""
        ...

    def anchors(self) -> list[Anchor]:
        """Every anchor stored here, oldest first (empty for write-only sinks such as the log)."""
        ...


class LogAnchorSink:
    """One INFO line per anchor (``audit anchor seq=... hash=...``), for the log pipeline to keep."""

    name = "log"

    def put(self, anchor: Anchor) -> None:
        log.info("audit anchor seq=%d hash=%s at=%s", anchor.seq, anchor.hash, anchor.at.isoformat())

    def anchors(self) -> list[Anchor]:
        return []


class DirAnchorSink:
    """Anchors as files ``<seq>.json`` in a directory outside the database (one box)."""

    name = "dir"

    def __init__(self, path: Path) -> None:
        self.path = path

    def put(self, anchor: Anchor) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / f"{anchor.seq:012d}.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(anchor.to_json()), encoding="utf-8")
        tmp.replace(target)

    def anchors(self) -> list[Anchor]:
        if not self.path.is_dir():
            return []
        return [Anchor.from_json(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(self.path.glob("*.json"))]


class S3AnchorSink:
    """Anchors as objects in their own S3 bucket, under object-lock retention where the service supports it."""

    name = "s3"

    def __init__(self, client: Any, bucket: str, *, retention_days: int = 3650) -> None:
        self._client = client
        self.bucket = bucket
        self.retention_days = retention_days
        self.object_lock: bool | None = None  # known after the bucket is ensured
        self._lock = threading.Lock()

    def ensure_bucket(self) -> None:
        from minio.error import S3Error

        with self._lock:
            if self.object_lock is not None:
                return
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket, object_lock=True)
                except S3Error as exc:
                    log.warning("audit anchors: S3 refused an object-lock bucket (%s); plain bucket", exc.code)
                    self._client.make_bucket(self.bucket)
            self.object_lock = self._lock_enabled()

    def _lock_enabled(self) -> bool:
        from minio.error import S3Error

        try:
            config = self._client.get_object_lock_config(self.bucket)
        except (S3Error, ValueError):
            return False
        return config is not None

    def put(self, anchor: Anchor) -> None:
        from minio.commonconfig import COMPLIANCE
        from minio.retention import Retention

        self.ensure_bucket()
        body = json.dumps(anchor.to_json()).encode()
        retention = None
        if self.object_lock:
            retention = Retention(COMPLIANCE, datetime.now(UTC) + timedelta(days=self.retention_days))
        self._client.put_object(
            self.bucket,
            f"{ANCHOR_PREFIX}{anchor.seq:012d}.json",
            io.BytesIO(body),
            len(body),
            content_type="application/json",
            retention=retention,
        )

    def anchors(self) -> list[Anchor]:
        if not self._client.bucket_exists(self.bucket):
            return []
        out = []
        for obj in self._client.list_objects(self.bucket, prefix=ANCHOR_PREFIX, recursive=True):
            resp = self._client.get_object(self.bucket, obj.object_name)
            try:
                out.append(Anchor.from_json(json.loads(resp.read())))
            finally:
                resp.close()
                resp.release_conn()
        return sorted(out, key=lambda a: a.seq)


class AnchoringAuditLog:
    """An :class:`~storage.audit.AuditLog` that writes an anchor after every ``every_records`` appends, or on the
    first append ``every_s`` seconds after the last anchor; :meth:`close` anchors the head once more."""

    def __init__(
        self,
        inner: AuditLog,
        sinks: Sequence[AnchorSink],
        *,
        every_records: int = 100,
        every_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.sinks = list(sinks)
        self.every_records = every_records
        self.every_s = every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._anchored_seq = 0
        self._anchored_at = clock()
        self._head: AuditEntry | None = None
        self.anchors_written = 0
        self.anchor_failures = 0

    def migrate(self) -> None:
        self.inner.migrate()

    def append(self, record: AuditRecord, at: datetime) -> AuditEntry:
        entry = self.inner.append(record, at)
        with self._lock:
            self._head = entry
            due = (
                entry.seq - self._anchored_seq >= self.every_records
                or self._clock() - self._anchored_at >= self.every_s
            )
        if due:
            self.anchor_now()
        return entry

    def anchor_now(self) -> None:
        """Write the newest head this process has appended to every sink (failures logged and counted)."""
        with self._lock:
            head = self._head
            if head is None or head.seq <= self._anchored_seq:
                return
            self._anchored_seq, self._anchored_at = head.seq, self._clock()
        anchor = Anchor(head.seq, head.hash, datetime.now(UTC))
        for sink in self.sinks:
            try:
                sink.put(anchor)
                self.anchors_written += 1
            except Exception as exc:
                self.anchor_failures += 1
                log.error("audit anchor %d not written to %s: %s", head.seq, sink.name, redact_text(str(exc))[:300])

    def entries(self, after_seq: int = 0, batch: int = 1000) -> Iterator[AuditEntry]:
        return self.inner.entries(after_seq, batch)

    def close(self) -> None:
        self.anchor_now()
        self.inner.close()


def s3_anchor_sink(config: S3Config, bucket: str) -> S3AnchorSink:
    """An S3 sink on the service ``config`` names (its credentials), in ``bucket`` (not the snapshot bucket)."""
    import urllib3
    from minio import Minio

    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=3.0, read=15.0), retries=urllib3.Retry(total=1, backoff_factor=0.1)
    )
    client = Minio(
        config.endpoint,
        access_key=resolve_secret(config.access_key).get_secret_value(),
        secret_key=resolve_secret(config.secret_key).get_secret_value(),
        secure=config.secure,
        region=config.region,
        http_client=http,
    )
    return S3AnchorSink(client, bucket)
