"""Feed grouping: related alerts of one camera fold into one card with a count.

A dispatcher's feed must stay workable when a camera keeps alerting: alerts
of the same camera, type and zone whose starts follow each other within
``window_s`` are one card, showing the newest incident and how many are
inside. Nothing is merged in the store: each incident keeps its own workflow
and history, the card only lists their ids. The live page folds the same way
as it receives incidents (dispatch/static/feed.js, ``groupKey``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from storage.incident_records import IncidentRecord


@dataclass
class Card:
    """One feed card: the newest incident of a fold and every incident id in it (newest first)."""

    newest: IncidentRecord
    first_started_at_ms: int
    last_started_at_ms: int
    incident_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        doc = self.newest.to_json()
        doc["group_count"] = len(self.incident_ids)
        doc["incident_ids"] = self.incident_ids
        doc["group_first_started_at_ms"] = self.first_started_at_ms
        return doc


def group_key(r: IncidentRecord) -> tuple[str, str, str]:
    return r.camera_id, r.type, r.zone or ""


def fold(records: Sequence[IncidentRecord], window_s: float) -> list[Card]:
    """Cards, newest first; ``window_s`` 0 gives one card per incident."""
    window_ms = int(window_s * 1000)
    open_cards: dict[tuple[str, str, str], Card] = {}
    cards: list[Card] = []
    for r in sorted(records, key=lambda r: (r.started_at_ms, r.incident_id)):
        key = group_key(r)
        card = open_cards.get(key)
        if card is None or window_ms <= 0 or r.started_at_ms - card.last_started_at_ms > window_ms:
            card = Card(r, r.started_at_ms, r.started_at_ms)
            open_cards[key] = card
            cards.append(card)
        card.newest, card.last_started_at_ms = r, r.started_at_ms
        card.incident_ids.insert(0, r.incident_id)
    return sorted(cards, key=lambda c: (c.last_started_at_ms, c.newest.incident_id), reverse=True)
