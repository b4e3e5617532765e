"""Kafka administration and whole-topic reads: the Kafka calls that are not publishing or group consuming.

Why a module of its own: the camera registry, ``kuzet status`` and the test
fixtures need to create topics, describe the worker group, read a compacted
topic to its end and write keyed records (tombstones included) with every
acknowledgement awaited. Those calls live here, in the bus package, so that
nothing outside ``event_bus`` imports ``kafka``. Every failure to reach or
use the broker is a :class:`KafkaAdminError` with a redacted message.

``security``: the kafka-python settings of the principal to act as (default:
this process's, from the environment; see :mod:`event_bus.kafka_security`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from core.redact import redact_text
from event_bus import topics as topic_names
from event_bus.kafka_security import env_settings

TOPIC_ALREADY_EXISTS = 36


class KafkaAdminError(RuntimeError):
    """The broker could not be reached or refused the request (message redacted)."""


def _security(security: dict[str, Any] | None) -> dict[str, Any]:
    return env_settings() if security is None else security


def _fail(what: str, bootstrap: str, exc: BaseException) -> KafkaAdminError:
    return KafkaAdminError(redact_text(f"{what} (Kafka at {bootstrap}): {type(exc).__name__}: {exc}"))


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str] = topic_names.ALL,
    partitions: int = 6,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
    security: dict[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (the camera registry compacted); returns those created.

    Idempotent: existing topics are left as they are (partition counts are not changed).
    """
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="kuzet-admin", **_security(security))
    except KafkaError as exc:
        raise _fail("cannot create topics", bootstrap, exc) from None
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topics if t not in existing]
        if not wanted:
            return []
        spec: dict[str, dict[str, Any]] = {}
        for name in wanted:
            entry: dict[str, Any] = {"num_partitions": partitions, "replication_factor": replication_factor}
            if name == topic_names.CAMERAS:
                entry["configs"] = {"cleanup.policy": "compact"}
            spec[name] = entry
        response = admin.create_topics(spec, timeout_ms=int(timeout_s * 1000), raise_errors=False)
        created = []
        for t in response.get("topics", []):
            code = t.get("error_code", 0)
            if code == 0:
                created.append(t["name"])
            elif code != TOPIC_ALREADY_EXISTS:  # someone else won the race: fine
                raise KafkaAdminError(f"creating topic {t['name']} failed: error {code} {t.get('error_message')}")
        if created:
            admin.wait_for_topics(created, timeout_ms=int(timeout_s * 1000))
        return created
    except KafkaError as exc:
        raise _fail("cannot create topics", bootstrap, exc) from None
    finally:
        admin.close()


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as the Java client) puts a keyed record on."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


# -- reading topics ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as stored: ``value`` is None for a tombstone (unlike :class:`~event_bus.interfaces.InRecord`)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


def _reader(
    bootstrap: str, client_id: str, security: dict[str, Any] | None, request_timeout_ms: int | None = None
) -> KafkaConsumer:
    settings: dict[str, Any] = {
        "bootstrap_servers": bootstrap.split(","),
        "client_id": client_id,
        "group_id": None,
        "enable_auto_commit": False,
        **_security(security),
    }
    if request_timeout_ms is not None:
        settings["request_timeout_ms"] = request_timeout_ms
    try:
        return KafkaConsumer(**settings)
    except KafkaError as exc:
        raise _fail("cannot read", bootstrap, exc) from None


def read_to_end(
    bootstrap: str,
    topic: str,
    *,
    since_ms: int | None = None,
    timeout_s: float = 15.0,
    client_id: str = "kuzet-reader",
    fail_on_timeout: bool = True,
    security: dict[str, Any] | None = None,
) -> Iterator[RawRecord]:
    """Every record of ``topic`` (from ``since_ms``, else from the beginning) up to its end when called.

    No consumer group, nothing committed. Past ``timeout_s`` it raises
    :class:`KafkaAdminError`, or stops quietly when ``fail_on_timeout`` is false
    (a status display shows what it could read).
    """
    deadline = time.monotonic() + timeout_s
    consumer = _reader(bootstrap, client_id, security, int(timeout_s * 1000) + 1000)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        if since_ms is None:
            consumer.seek_to_beginning(*tps)
        else:
            found = consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
            for tp in tps:
                start = found.get(tp)
                consumer.seek(tp, start.offset if start is not None else ends[tp])
        remaining = {tp for tp in tps if consumer.position(tp) < ends.get(tp, 0)}
        while remaining:
            if time.monotonic() > deadline:
                if fail_on_timeout:
                    raise KafkaAdminError(f"timed out reading {topic}")
                return
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                for r in records:
                    yield RawRecord(tp.partition, r.offset, r.key, r.value, int(r.timestamp))
            for tp in list(remaining):
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    except KafkaError as exc:
        raise _fail(f"cannot read {topic}", bootstrap, exc) from None
    finally:
        consumer.close(autocommit=False)


# -- consumer groups ----------------------------------------------------------------------------------------------


@dataclass
class GroupMember:
    """One member of a consumer group as the coordinator describes it."""

    member_id: str
    client_id: str
    host: str
    user_data: dict[str, Any]  # what the member declared when it joined (JSON object; {} when none or unreadable)
    partitions: dict[str, list[int]] = field(default_factory=dict)  # topic -> assigned partitions
    assigned: dict[str, Any] = field(default_factory=dict)  # the assignment's user data (JSON object; {} when none)


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _assigned(assignment: Any) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for entry in _field(assignment, "assigned_partitions", None) or _field(assignment, "assignment", None) or []:
        if isinstance(entry, (list, tuple)) and len(entry) == 2:
            t, parts = entry
        else:
            t, parts = _field(entry, "topic"), _field(entry, "partitions", [])
        out.setdefault(str(t), []).extend(int(p) for p in parts)
    return {t: sorted(p) for t, p in out.items()}


def _user_data(meta: Any) -> dict[str, Any]:
    raw = _field(meta, "user_data", b"") if meta is not None else b""
    try:
        doc = json.loads(raw if isinstance(raw, str) and raw else bytes(raw or b"{}"))
    except (ValueError, TypeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def describe_group(bootstrap: str, group: str, security: dict[str, Any] | None = None) -> tuple[str, list[GroupMember]]:
    """The group's state and its members, with their declared user data and assigned partitions."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","), client_id="kuzet-status", **_security(security)
        )
        try:
            desc = admin.describe_groups([group]).get(group, {})
        finally:
            admin.close()
    except KafkaError as exc:
        raise _fail(f"cannot describe group {group}", bootstrap, exc) from None
    members = [
        GroupMember(
            member_id=str(_field(m, "member_id", "")),
            client_id=str(_field(m, "client_id", "?")),
            host=str(_field(m, "client_host", "")).lstrip("/"),
            user_data=_user_data(_field(m, "member_metadata")),
            partitions=_assigned(_field(m, "member_assignment")),
            assigned=_user_data(_field(m, "member_assignment")),
        )
        for m in desc.get("members", []) or []
    ]
    return str(desc.get("group_state") or desc.get("state") or "unknown"), members


# -- acknowledged keyed writes -------------------------------------------------------------------------------------


class AckedWriter:
    """Writes keyed records (``None`` value: a tombstone) and returns only when the broker acknowledged each.

    ``acks=all`` and an idempotent producer: a command that says "written" means it.
    """

    def __init__(
        self, bootstrap: str, *, client_id: str, timeout_s: float = 15.0, security: dict[str, Any] | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.timeout_s = timeout_s
        self._security = security  # resolved when the producer is built: secrets stay off this object
        self._producer: KafkaProducer | None = None

    def _ensure(self) -> KafkaProducer:
        if self._producer is None:
            try:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap.split(","),
                    client_id=self.client_id,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=0,
                    request_timeout_ms=int(self.timeout_s * 1000),
                    max_block_ms=int(self.timeout_s * 1000),
                    **_security(self._security),
                )
            except KafkaError as exc:
                raise _fail("cannot write", self.bootstrap, exc) from None
        return self._producer

    def write(self, topic: str, items: Sequence[tuple[str, bytes | None]]) -> None:
        """Send every (key, value) and wait; raises :class:`KafkaAdminError` naming the first key not acknowledged."""
        producer = self._ensure()
        futures = [(key, producer.send(topic, key=key.encode("utf-8"), value=val)) for key, val in items]
        producer.flush(timeout=self.timeout_s)
        for key, fut in futures:
            try:
                fut.get(timeout=self.timeout_s)
            except KafkaError as exc:
                raise KafkaAdminError(
                    redact_text(f"{key}: write not acknowledged: {type(exc).__name__}: {exc}")
                ) from None

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
