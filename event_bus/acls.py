"""The ACL recipe: what each Kuzet service principal may do on the cluster (Kafka's StandardAuthorizer).

Why: with authentication alone every service could still write the camera
registry, and a registry record decides which host a worker connects to with
which secret. So only the admin principal (a super user on the broker, used by
``kuzet cameras``) writes ``kuzet.cameras.v1``; every other principal gets the
least it needs:

=========  ==========================================================================
principal  may
=========  ==========================================================================
worker     read the registry (group ``kuzet-workers*``); write incidents, plate reads,
           camera status and dead letters; transactions with ids ``kuzet-workers*`` (the
           registry's dead letters are written exactly once, :mod:`event_bus.kafka_dead_letters`)
console    read incidents and camera status (group ``kuzet-console*``); write dead letters
indexer    read plate reads (group ``kuzet-plate-indexer*``); write dead letters
watch      read plate reads (group ``kuzet-watchlist*``); write incidents and dead letters
=========  ==========================================================================

All of them may describe the ``kuzet.`` topics (clients look topics up before
using them). Nothing is allowed that is not listed: the broker runs with
``allow.everyone.if.no.acl.found=false``. Applied with :func:`apply_acls`
(idempotent: the broker keeps one copy of an identical binding).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
)

from event_bus import topics

ROLES = ("worker", "console", "indexer", "watch")
_READS: dict[str, tuple[tuple[str, ...], str]] = {
    "worker": ((topics.CAMERAS,), "kuzet-workers"),
    "console": ((topics.INCIDENTS, topics.CAMERA_STATUS), "kuzet-console"),
    "indexer": ((topics.PLATES,), "kuzet-plate-indexer"),
    "watch": ((topics.PLATES,), "kuzet-watchlist"),
}
_TRANSACTIONS: dict[str, str] = {"worker": "kuzet-workers"}
"""Transactional-id prefix per role (the dead-lettering member's id is ``<worker group>.dead-letters.<worker>``)."""
_WRITES: dict[str, tuple[str, ...]] = {
    "worker": (topics.INCIDENTS, topics.PLATES, topics.CAMERA_STATUS, topics.DLQ),
    "console": (topics.DLQ,),
    "indexer": (topics.DLQ,),
    "watch": (topics.INCIDENTS, topics.DLQ),
}


def _allow(principal: str, op: int, rtype: int, name: str, pattern: int = ACLResourcePatternType.LITERAL) -> ACL:
    return ACL(
        principal=principal,
        host="*",
        operation=op,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(rtype, name, pattern),
    )


def recipe(principals: Mapping[str, str]) -> list[ACL]:
    """The bindings for ``{role: user name}`` (roles from :data:`ROLES`); no role may write the registry."""
    acls: list[ACL] = []
    for role, user in principals.items():
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; known: {ROLES}")
        who = f"User:{user}"
        acls.append(_allow(who, ACLOperation.DESCRIBE, ResourceType.TOPIC, "kuzet.", ACLResourcePatternType.PREFIXED))
        read_topics, group = _READS[role]
        for topic in read_topics:
            acls.append(_allow(who, ACLOperation.READ, ResourceType.TOPIC, topic))
        acls.append(_allow(who, ACLOperation.READ, ResourceType.GROUP, group, ACLResourcePatternType.PREFIXED))
        for topic in _WRITES[role]:
            assert topic != topics.CAMERAS, "only the admin principal writes the camera registry"
            acls.append(_allow(who, ACLOperation.WRITE, ResourceType.TOPIC, topic))
        if role in _TRANSACTIONS:
            for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE):
                acls.append(
                    _allow(who, op, ResourceType.TRANSACTIONAL_ID, _TRANSACTIONS[role], ACLResourcePatternType.PREFIXED)
                )
    return acls


def apply_acls(bootstrap: str, admin_settings: Mapping[str, Any], principals: Mapping[str, str]) -> int:
    """Create the recipe's bindings as the admin principal; returns how many were sent."""
    acls = recipe(principals)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="kuzet-acls", **dict(admin_settings))
    try:
        result = admin.create_acls(acls)
    finally:
        admin.close()
    failed = result.get("failed") or []
    if failed:
        acl, err = failed[0]
        raise RuntimeError(f"creating ACL {acl} failed: {err}")
    return len(acls)
