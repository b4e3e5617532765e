"""Invalid camera registry records go to ``kuzet.dlq.v1`` exactly once, however many workers read them.

Every worker reads the whole registry (:mod:`worker.registry_view`) and skips,
counts and logs what it cannot use; none of them dead-letters from there, or N
workers would write N copies, and again after every restart. Instead each
worker also runs one member of the group ``<worker group>.dead-letters``
(:class:`~event_bus.kafka_dead_letters.ExactlyOnceDeadLetters`): Kafka gives
each registry partition to one member, which checks its records with the same
rules as the view and writes each invalid one's dead letter together with the
group's offset, in one transaction. A restarted worker resumes from the
committed offsets, so nothing is dead-lettered twice.

Every worker of a group must run the same models and camera policy (as the
deploy files do): the member that owns a partition judges its records by its
own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from core.camera_policy import CameraPolicy
from event_bus import topics
from event_bus.consume import dead_letter
from event_bus.interfaces import InRecord, OutRecord
from event_bus.kafka_admin import RawRecord
from event_bus.kafka_dead_letters import ExactlyOnceDeadLetters
from worker.registry import InvalidCameraRecord
from worker.registry_view import validate_record

GROUP_SUFFIX = ".dead-letters"
"""Appended to the worker group's id: the dead-lettering group (still inside the worker principal's group ACL)."""


def registry_dead_letter(
    r: RawRecord, policy: CameraPolicy, known_detectors: Collection[str] | None, consumer: str
) -> OutRecord | None:
    """The dead letter of an invalid registry record (value redacted and bounded), None for a usable one."""
    try:
        validate_record(r, policy, known_detectors)
    except InvalidCameraRecord as exc:
        rec = InRecord(
            topic=topics.CAMERAS,
            partition=r.partition,
            offset=r.offset,
            key=r.key.decode("utf-8", errors="replace") if r.key is not None else None,
            value=bytes(r.value) if r.value is not None else b"",
            timestamp_ms=r.timestamp_ms,
        )
        return dead_letter(rec, str(exc), consumer=consumer)
    return None


def registry_dead_letters(
    bootstrap: str,
    worker_group: str,
    worker_id: str,
    policy: CameraPolicy,
    known_detectors: Iterable[str] | None,
    *,
    client_id: str = "kuzet-worker",
    security: dict[str, Any] | None = None,
) -> ExactlyOnceDeadLetters:
    """The dead-lettering member for one worker of ``worker_group`` (dead letters name that group)."""
    known = set(known_detectors) if known_detectors is not None else None
    return ExactlyOnceDeadLetters(
        bootstrap,
        topics.CAMERAS,
        worker_group + GROUP_SUFFIX,
        worker_id,
        lambda r: registry_dead_letter(r, policy, known, worker_group),
        client_id=f"{client_id}-dead-letters",
        security=security,
    )
