"""Live watchlist alerts: plate read in, ``watchlist_hit`` incident out, well within a second.

:class:`WatchlistConsumer` reads ``kuzet.plates.v1`` in its own consumer group
(short poll timeout) and publishes to ``kuzet.incidents.v1``, committing only
after the broker acknowledged the incidents (``kuzet plates watch``). The
matching itself is :func:`incidents_for`, a pure function of a
:class:`~event_bus.events.PlateRead` and a :class:`~storage.watchlist.WatchlistMatcher`,
so any producer of plate reads could call it in-process; today only this
service does.

Incident ids are derived from (read, watchlist entry), so a read re-delivered
to the consumer produces the very same event id and dispatch dedupes it. The
plate, the read and the watchlist entry travel in the event itself
(``Incident.watchlist``, schema v2), so every consumer that keeps the event
keeps what matched.
Malformed reads (any record :func:`event_bus.consume.decode` refuses, deeply
nested JSON included) go to ``kuzet.dlq.v1`` with the header
``kuzet-consumer: kuzet-watchlist`` (the indexer reports the same record under
its own name: one dead letter per consumer that could not use it), and the
matcher commits past them. :func:`run_forever` is the service loop: a failed
publish re-reads the uncommitted batch after a back-off instead of ending the
process.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from core.backoff import Backoff
from event_bus.consume import dead_letter, decode, publish_dead_letters
from event_bus.events import Incident, IncidentState, IncidentType, PlateRead, WatchlistMatchRef
from event_bus.interfaces import DeliveryError, OutRecord, Publisher, Subscriber
from event_bus.records import to_record
from services.loop import run_until_stopped
from services.plate_indexer import PLATE_TOPIC_TYPES
from storage.watchlist import WatchlistMatch, WatchlistMatcher

log = logging.getLogger(__name__)

WORKER_ID = "watchlist-matcher"
GROUP = "kuzet-watchlist"


def derived_uuid7(ms: int, *parts: str) -> UUID:
    """A valid UUIDv7 whose time is ``ms`` and whose random bits are a hash of ``parts`` (deterministic)."""
    digest = int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:10], "big")  # 80 bits
    rand_a = digest >> 68  # 12 bits
    rand_b = digest & ((1 << 62) - 1)
    value = ((ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return UUID(int=value)


def hit_incident(read: PlateRead, match: WatchlistMatch, worker_id: str = WORKER_ID) -> Incident:
    """The ``watchlist_hit`` incident for one read matching one entry (start state; dispatch resolves it)."""
    ms = int(read.observed_at.timestamp() * 1000)
    key = (str(read.event_id), str(match.entry.id))
    return Incident(
        event_id=derived_uuid7(ms, "event", *key),
        incident_id=derived_uuid7(ms, "incident", *key),
        type=IncidentType.WATCHLIST_HIT,
        state=IncidentState.START,
        camera_id=read.camera_id,
        severity=match.entry.severity,
        started_at=read.observed_at,
        observed_at=read.observed_at,
        track_id=read.track_id,
        boxes=[b for b in (read.vehicle_box, read.plate_box) if b is not None],
        confidence=read.confidence,
        snapshot=read.snapshot,
        model_versions=dict(read.model_versions),
        worker_id=worker_id,
        seq=0,
        watchlist=WatchlistMatchRef(
            plate=read.plate,
            plate_read_id=read.event_id,
            watchlist_id=match.entry.id,
            watchlist_plate=match.entry.plate,
            mode=match.entry.mode,
            distance=match.distance,
        ),
    )


def incidents_for(read: PlateRead, matcher: WatchlistMatcher, worker_id: str = WORKER_ID) -> list[OutRecord]:
    """Records to publish for one read: one ``watchlist_hit`` per matching active entry.

    A read flagged ``is_candidate`` (below the confidence threshold) is a lead, not a fact: it triggers
    fuzzy entries but not exact ones on its own.
    """
    out = []
    for m in matcher.match(read.plate, read.observed_at):
        if read.is_candidate and m.entry.mode == "exact":
            continue
        incident = hit_incident(read, m, worker_id)
        out.append(to_record(incident))
    return out


@dataclass
class WatchStats:
    reads: int = 0
    hits: int = 0
    dead_lettered: int = 0


class WatchlistConsumer:
    """Consumer of ``kuzet.plates.v1`` (own group) that publishes watchlist hits to ``kuzet.incidents.v1``."""

    def __init__(
        self,
        subscriber: Subscriber,
        publisher: Publisher,
        matcher: WatchlistMatcher,
        *,
        worker_id: str = WORKER_ID,
        poll_s: float = 0.1,
    ) -> None:
        self.subscriber = subscriber
        self.publisher = publisher
        self.matcher = matcher
        self.worker_id = worker_id
        self.poll_s = poll_s
        self.stats = WatchStats()

    def step(self) -> int:
        """Poll once, publish hits, commit; raises :class:`DeliveryError` (not committed) if publishing failed."""
        records = self.subscriber.poll(self.poll_s, 500)
        if not records:
            return 0
        out: list[OutRecord] = []
        bad: list[OutRecord] = []
        for rec in records:
            try:
                _, event = decode(rec, PLATE_TOPIC_TYPES)
            except ValueError as exc:
                bad.append(dead_letter(rec, str(exc), consumer=GROUP))
                continue
            assert isinstance(event, PlateRead)
            self.stats.reads += 1
            out.extend(incidents_for(event, self.matcher, self.worker_id))
        if bad:
            failed = publish_dead_letters(self.publisher, bad)
            if failed:
                raise DeliveryError(f"could not dead-letter {len(failed)} record(s): {failed[0]}")
            self.stats.dead_lettered += len(bad)
        if out:
            errors = [e for e in self.publisher.publish(out) if e is not None]
            if errors:
                raise DeliveryError(f"{len(errors)} watchlist incident(s) not delivered: {errors[0]}")
            self.stats.hits += len(out)
            log.info("watchlist: %d hit(s) published", len(out))
        self.subscriber.commit()
        return len(records)

    def close(self) -> None:
        self.subscriber.close()


def run_forever(
    make_subscriber: Callable[[], Subscriber],
    publisher: Publisher,
    matcher: WatchlistMatcher,
    stop: threading.Event,
    *,
    backoff_s: float = 1.0,
    max_backoff_s: float = 30.0,
    stats: WatchStats | None = None,
) -> WatchStats:
    """Run the matcher until ``stop``; any failure closes the subscriber and re-reads from the committed offset.

    Why a fresh subscriber: the failed batch was not committed, and reopening is the one rewind that works
    for every transport; the derived incident ids make the re-published hits duplicates dispatch drops.
    """
    stats = stats if stats is not None else WatchStats()

    def open_matcher() -> WatchlistConsumer:
        consumer = WatchlistConsumer(make_subscriber(), publisher, matcher)
        consumer.stats = stats
        return consumer

    run_until_stopped("watchlist matcher", open_matcher, stop, backoff=Backoff(backoff_s, max_backoff_s))
    return stats
