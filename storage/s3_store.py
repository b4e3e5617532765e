"""Snapshots on any S3-compatible service through the ``minio`` client (MinIO, SeaweedFS, AWS S3).

* The bucket is created on first use if missing, so a worker can start while
  the store is down (its snapshots wait in the spool).
* sha256 is computed here, recorded in the event's reference and stored as
  object metadata (``x-amz-meta-sha256``), so :meth:`S3SnapshotStore.exists`
  can check the object is the one the event means without downloading it.
* ``put`` is idempotent for a key: an object already there with the same
  sha256 is not uploaded again (the relay may retry an upload).
* Timeouts and retries are short: a down store must fail fast so the relay
  backs off, instead of blocking in urllib3's default retry loop.
* Credentials come from secret references; every error message is redacted
  (the access key and any signed-URL parameters are masked).
"""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta
from typing import Any, NoReturn

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, Filter, Tag, Tags
from minio.error import S3Error
from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule

from core.config import S3Config, resolve_secret
from core.redact import MASK, redact_text
from core.snapshot import SnapshotRef
from storage.snapshots import KeyedSnapshotStore, SnapshotError, sha256_hex

_AMZ_PARAM = re.compile(r"(X-Amz-(?:Credential|Signature|Security-Token)=)[^&\s\"']+", re.IGNORECASE)
META_SHA256 = "sha256"
RETENTION_TAG = "kuzet-retention"
RETENTION_STANDARD = "standard"
RETENTION_HOLD = "legal-hold"
LIFECYCLE_RULE_ID = "kuzet-retention"
MULTIPART_PART_SIZE = 5 * 1024 * 1024
"""S3's smallest part: a clip larger than this goes up as a multipart upload, one part retried at a time."""


class S3SnapshotStore(KeyedSnapshotStore):
    kind = "s3"

    def __init__(
        self,
        config: S3Config,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 15.0,
    ) -> None:
        """Credentials default to ``resolve_secret(config.access_key / secret_key)``; explicit values are for tests."""
        self.config = config
        self.bucket = config.bucket
        ak = access_key if access_key is not None else resolve_secret(config.access_key).get_secret_value()
        sk = secret_key if secret_key is not None else resolve_secret(config.secret_key).get_secret_value()
        self._secrets = [s for s in (ak, sk) if s]
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            retries=urllib3.Retry(total=1, connect=1, read=1, backoff_factor=0.1, status_forcelist=(502, 503, 504)),
            maxsize=8,
        )
        self._client = Minio(
            config.endpoint, access_key=ak, secret_key=sk, secure=config.secure, region=config.region, http_client=http
        )
        self._bucket_ready = False

    # -- helpers -----------------------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return redact_text(_AMZ_PARAM.sub(lambda m: m.group(1) + MASK, text))

    def _fail(self, what: str, exc: BaseException) -> NoReturn:
        raise SnapshotError(self._redact(f"S3 {what} failed: {type(exc).__name__}: {exc}"[:600])) from None

    @staticmethod
    def _standard_tags() -> Tags:
        tags = Tags.new_object_tags()
        tags[RETENTION_TAG] = RETENTION_STANDARD
        return tags

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (idempotent; remembered once done)."""
        if self._bucket_ready:
            return
        try:
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket, location=self.config.region)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
        except Exception as exc:
            self._fail(f"bucket check/create of {self.bucket}", exc)
        self._bucket_ready = True

    def set_retention_days(self, days: int) -> None:
        """Install the bucket's lifecycle rule: objects tagged for standard retention expire after ``days``.

        Every artifact is uploaded with that tag; an object put on legal hold is
        re-tagged (:meth:`set_hold`) and so no longer matches the rule. Chain heads
        carry no tag and never expire.
        """
        self.ensure_bucket()
        rule = Rule(
            ENABLED,
            rule_filter=Filter(tag=Tag(RETENTION_TAG, RETENTION_STANDARD)),
            rule_id=LIFECYCLE_RULE_ID,
            expiration=Expiration(days=days),
        )
        try:
            self._client.set_bucket_lifecycle(self.bucket, LifecycleConfig([rule]))
        except Exception as exc:
            self._fail("set lifecycle", exc)

    def retention_days(self) -> int | None:
        """Days of the installed kuzet lifecycle rule (None when there is none)."""
        try:
            config = self._client.get_bucket_lifecycle(self.bucket)
        except S3Error as exc:
            if exc.code in ("NoSuchLifecycleConfiguration", "NoSuchBucket"):
                return None
            self._fail("read lifecycle", exc)
        except Exception as exc:
            self._fail("read lifecycle", exc)
        for rule in config.rules if config is not None else []:
            if rule.rule_id == LIFECYCLE_RULE_ID and rule.expiration is not None:
                return int(rule.expiration.days) if rule.expiration.days is not None else None
        return None

    def set_hold(self, key: str, held: bool) -> None:
        """Take an object out of (or back into) lifecycle expiry by its retention tag."""
        tags = Tags.new_object_tags()
        tags[RETENTION_TAG] = RETENTION_HOLD if held else RETENTION_STANDARD
        try:
            self._client.set_object_tags(self.bucket, key, tags)
        except Exception as exc:
            self._fail(f"tagging of {key}", exc)

    def retention_of(self, key: str) -> str | None:
        """The object's retention tag (``standard`` / ``hold``), None when it has none."""
        try:
            tags = self._client.get_object_tags(self.bucket, key)
        except Exception as exc:
            self._fail(f"reading tags of {key}", exc)
        return None if tags is None else tags.get(RETENTION_TAG)

    def objects(self, prefix: str = "") -> list[tuple[str, datetime]]:
        """(key, last modified) of every object under ``prefix``; what a lifecycle run walks."""
        try:
            return [
                (o.object_name, o.last_modified)
                for o in self._client.list_objects(self.bucket, prefix, recursive=True)
                if o.last_modified is not None
            ]
        except Exception as exc:
            self._fail(f"listing of {prefix}", exc)

    def delete(self, key: str) -> None:
        try:
            self._client.remove_object(self.bucket, key)
        except Exception as exc:
            self._fail(f"delete of {key}", exc)

    def _stat(self, key: str) -> Any | None:
        try:
            return self._client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"):
                return None
            self._fail(f"stat of {key}", exc)
        except Exception as exc:
            self._fail(f"stat of {key}", exc)

    @staticmethod
    def _meta_sha(stat: Any) -> str | None:
        meta = stat.metadata or {}
        for name, value in meta.items():
            if name.lower() == f"x-amz-meta-{META_SHA256}":
                return str(value)
        return None

    # -- SnapshotStore ------------------------------------------------------------------------------------------

    def _write_object(self, key: str, jpeg: bytes, ref: SnapshotRef) -> None:
        self._put(key, jpeg, ref.content_type, ref.sha256)

    def put_clip(self, key: str, data: bytes, sha256: str | None = None) -> None:
        self._put(key, data, "video/mp4", sha256 if sha256 is not None else sha256_hex(data))

    def put_object(self, key: str, data: bytes, content_type: str) -> None:
        """Store any evidence object (manifests, chain heads) under an exact key."""
        self._put(key, data, content_type, sha256_hex(data))

    def read_object(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        if self._stat(key) is None:
            return None
        try:
            resp = self._client.get_object(self.bucket, key)
            try:
                return bytes(resp.read())
            finally:
                resp.close()
                resp.release_conn()
        except Exception as exc:
            self._fail(f"download of {key}", exc)

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (recursive), sorted."""
        try:
            return sorted(o.object_name for o in self._client.list_objects(self.bucket, prefix, recursive=True))
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                return []
            self._fail(f"listing of {prefix}", exc)
        except Exception as exc:
            self._fail(f"listing of {prefix}", exc)

    def _put(self, key: str, data: bytes, content_type: str, sha256: str) -> None:
        """Upload unless the same bytes are there already (the relay may retry); multipart above one part."""
        self.ensure_bucket()
        stat = self._stat(key)
        if stat is not None and stat.size == len(data) and self._meta_sha(stat) == sha256:
            return
        try:
            self._client.put_object(
                self.bucket,
                key,
                io.BytesIO(data),
                length=len(data),
                content_type=content_type,
                metadata={META_SHA256: sha256},
                part_size=MULTIPART_PART_SIZE,
                tags=self._standard_tags() if not key.startswith("_") else None,
            )
        except Exception as exc:
            self._fail(f"upload of {key}", exc)

    def exists(self, ref: SnapshotRef) -> bool:
        stat = self._stat(ref.key)
        if stat is None or stat.size != ref.size:
            return False
        recorded = self._meta_sha(stat)
        return recorded is None or recorded == ref.sha256

    def stored_sha256(self, ref: SnapshotRef) -> str | None:
        """The sha256 recorded in the object's metadata (None when the object or the metadata is missing)."""
        stat = self._stat(ref.key)
        return None if stat is None else self._meta_sha(stat)

    def get(self, ref: SnapshotRef) -> bytes:
        if self._stat(ref.key) is None:
            raise SnapshotError(f"snapshot {ref.bucket}/{ref.key} does not exist")
        try:
            resp = self._client.get_object(self.bucket, ref.key)
            try:
                data = resp.read()
            finally:
                resp.close()
                resp.release_conn()
        except Exception as exc:
            self._fail(f"download of {ref.key}", exc)
        if sha256_hex(data) != ref.sha256:
            raise SnapshotError(f"snapshot {ref.bucket}/{ref.key} does not match its sha256")
        return data

    def presigned_url(self, ref: SnapshotRef, expires_s: int = 3600) -> str:
        try:
            return self._client.presigned_get_object(self.bucket, ref.key, expires=timedelta(seconds=expires_s))
        except Exception as exc:
            self._fail(f"presign of {ref.key}", exc)
