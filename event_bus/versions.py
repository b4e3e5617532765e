"""Older published event versions that consumers still read, and how each lifts to the current model.

A record on the bus outlives the producer that wrote it (a topic's retention,
a spool drained after an upgrade, a console replaying history), so a consumer
must read every version still in circulation. Each old version keeps its
committed schema file (the contract it was produced under) and an upgrade
function here: the old document is validated against its own schema, then
lifted, then built as the current model. Upgrades only fill in what the newer
version added; they never guess data the old producer did not have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Doc = dict[str, Any]


def _incident_v1_to_v2(doc: Doc) -> Doc:
    """v2 only added optional fields (``clip``, ``watchlist``, ``analytics``, the alert review fields): a v1
    incident is a v2 incident without them (an alert, as every v1 incident was). v2 renamed the never-produced
    v1 type ``crowd`` to ``crowding``."""
    kind = "crowding" if doc.get("type") == "crowd" else doc.get("type")
    return {**doc, "schema_version": 2, "type": kind}


UPGRADES: dict[str, dict[int, Callable[[Doc], Doc]]] = {
    "incident": {1: _incident_v1_to_v2},
}
"""Per event type: readable old version -> function lifting a document of it to the next version."""


def readable_versions(name: str) -> list[int]:
    """The old versions of an event type that consumers still accept (their schema files stay committed)."""
    return sorted(UPGRADES.get(name, {}))


def upgrade(name: str, version: int, doc: Doc, current: int) -> Doc:
    """Lift ``doc`` (already valid against ``version``'s schema) step by step to ``current``."""
    steps = UPGRADES.get(name, {})
    while version < current:
        step = steps.get(version)
        if step is None:
            raise ValueError(f"{name} schema_version {version} is no longer readable (current is {current})")
        doc = step(doc)
        version = int(doc["schema_version"])
    return doc
