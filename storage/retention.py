"""Retention of evidence as S3 lifecycle rules, legal hold, and a lifecycle pass for stores that lag.

The rule (installed by :meth:`storage.s3_store.S3SnapshotStore.set_retention_days`,
which the worker calls at start and ``kuzet evidence retention`` on demand)
expires objects tagged ``kuzet-retention=standard`` after the configured
days. Every clip, snapshot and manifest is uploaded with that tag; legal hold
re-tags an incident's objects ``legal-hold`` so the rule no longer matches
them, and releasing the hold tags them back.

A real S3 service applies the rule itself. Some S3-compatible stores accept
the rule but apply it late or not at all (SeaweedFS among them), so
:func:`run_lifecycle` applies the bucket's *installed* rule once, as of a
given time: the same decision the service would make, usable from cron
(``kuzet evidence expire``) and from tests with a controlled clock. It costs
one tag read per old object, so it is a fallback, not the primary mechanism.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from storage.clips import manifest_key_for
from storage.snapshots import SnapshotError

log = logging.getLogger(__name__)

RETENTION_STANDARD = "standard"


class LifecycleStore(Protocol):
    """What retention needs from an object store (the S3 store implements it)."""

    def retention_days(self) -> int | None: ...

    def objects(self, prefix: str = "") -> list[tuple[str, datetime]]: ...

    def retention_of(self, key: str) -> str | None: ...

    def set_hold(self, key: str, held: bool) -> None: ...

    def delete(self, key: str) -> None: ...


@dataclass
class LifecycleReport:
    cutoff: datetime | None
    expired: list[str] = field(default_factory=list)
    kept_on_hold: list[str] = field(default_factory=list)


def install_retention(store: object, days: int) -> bool:
    """Install the lifecycle rule on a store that has one (S3); a store that is down only logs (retried next start)."""
    setter = getattr(store, "set_retention_days", None)
    if setter is None:
        return False
    try:
        setter(days)
    except SnapshotError as exc:
        log.warning("retention rule not installed (object store unavailable): %s", exc)
        return False
    return True


def run_lifecycle(store: LifecycleStore, now: datetime) -> LifecycleReport:
    """Delete what the installed rule expires as of ``now``; objects on legal hold (or untagged) stay."""
    days = store.retention_days()
    if days is None:
        return LifecycleReport(cutoff=None)
    cutoff = now - timedelta(days=days)
    report = LifecycleReport(cutoff=cutoff)
    for key, modified in store.objects():
        if modified >= cutoff:
            continue
        tag = store.retention_of(key)
        if tag == RETENTION_STANDARD:
            store.delete(key)
            report.expired.append(key)
        elif tag is not None:
            report.kept_on_hold.append(key)
    return report


def evidence_keys(artifact_keys: Iterable[str]) -> list[str]:
    """An incident's objects for a hold: each artifact and the manifest beside it."""
    out: list[str] = []
    for key in artifact_keys:
        out += [key, manifest_key_for(key)]
    return out


def set_hold(store: LifecycleStore, artifact_keys: Iterable[str], held: bool) -> list[str]:
    """Tag an incident's artifacts and manifests out of (or back into) expiry; returns the keys tagged."""
    keys = evidence_keys(artifact_keys)
    for key in keys:
        store.set_hold(key, held)
    return keys
