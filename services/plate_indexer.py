"""The plate indexer: a consumer group on ``kuzet.plates.v1`` that writes reads to the history in batches.

Loop: poll up to ``batch_size`` records (waiting at most ``max_wait_s``),
decode and schema-check each with :func:`event_bus.consume.decode` (the same
validation every consumer uses), turn it into a history record, store the
batch in one transaction (COPY on PostgreSQL), and only then commit the
offsets. A crash between storing and committing re-delivers the batch, which
the store ignores (idempotent on ``event_id``): at-least-once delivery,
exactly-once effect.

A record that cannot be used (not JSON, schema violation, a plate the index
cannot hold) is sent to ``kuzet.dlq.v1`` with the error
(:func:`event_bus.consume.dead_letter`) and the indexer carries on. If the DLQ
write fails, or the store fails, nothing is committed and the batch is read
again after a back-off: records are never skipped silently.

A service, not a store: it lives in ``services`` so that ``storage`` only
stores and knows nothing of Kafka.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from core.backoff import Backoff
from core.redact import redact_text
from event_bus import topics
from event_bus.consume import dead_letter, decode, publish_dead_letters
from event_bus.interfaces import InRecord, OutRecord, Publisher, Subscriber
from services.loop import run_until_stopped
from storage.plates.store import HistoryStore, PlateReadRecord, RecordError, StoreError, record_from_document

log = logging.getLogger(__name__)

PLATE_TOPIC_TYPES = {topics.PLATES: "plate-read"}
GROUP = "kuzet-plate-indexer"


class IndexerError(RuntimeError):
    """The batch could not be stored or dead-lettered; offsets were not committed."""


@dataclass
class IndexerStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    failures: int = 0
    last_error: str | None = None


def to_record(rec: InRecord) -> PlateReadRecord:
    """Decode and validate one bus record; raises ValueError (a :class:`RecordError` or a schema error)."""
    _, event = decode(rec, PLATE_TOPIC_TYPES)
    return record_from_document(event.model_dump(mode="json"))


class PlateIndexer:
    """Moves plate reads from a :class:`Subscriber` into a :class:`HistoryStore`."""

    def __init__(
        self,
        subscriber: Subscriber,
        store: HistoryStore,
        dlq: Publisher,
        *,
        batch_size: int = 2000,
        max_wait_s: float = 0.5,
        on_stored: Callable[[list[PlateReadRecord]], None] | None = None,
    ) -> None:
        self.subscriber = subscriber
        self.store = store
        self.dlq = dlq
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.on_stored = on_stored
        self.stats = IndexerStats()

    def step(self) -> int:
        """One poll -> store -> commit cycle; returns the number of records consumed (0 when idle).

        Raises :class:`IndexerError` without committing when the store or the DLQ fails.
        """
        records = self.subscriber.poll(self.max_wait_s, self.batch_size)
        if not records:
            return 0
        self.stats.received += len(records)
        good: list[PlateReadRecord] = []
        bad: list[OutRecord] = []
        for rec in records:
            try:
                good.append(to_record(rec))
            except (ValueError, RecordError) as exc:
                bad.append(dead_letter(rec, str(exc), consumer=GROUP))
            except Exception as exc:  # whatever a record makes the mapping raise, it must not stall the group
                bad.append(dead_letter(rec, f"undecodable record: {type(exc).__name__}", consumer=GROUP))
        if bad:
            failed = publish_dead_letters(self.dlq, bad)
            if failed:
                self.stats.failures += 1
                raise IndexerError(f"could not dead-letter {len(failed)} record(s): {failed[0]}")
            self.stats.dead_lettered += len(bad)
            log.warning("plate indexer: %d malformed record(s) sent to %s", len(bad), topics.DLQ)
        if good:
            try:
                stored = self.store.insert(good)
            except StoreError as exc:
                self.stats.failures += 1
                raise IndexerError(str(exc)) from exc
            self.stats.stored += stored
            self.stats.duplicates += len(good) - stored
            if self.on_stored is not None:
                self.on_stored(good)
        self.subscriber.commit()
        self.stats.batches += 1
        return len(records)

    def close(self) -> None:
        self.subscriber.close()


def run_forever(
    make_subscriber: Callable[[], Subscriber],
    store: HistoryStore,
    dlq: Publisher,
    stop: threading.Event,
    *,
    batch_size: int = 2000,
    max_wait_s: float = 0.5,
    backoff_s: float = 1.0,
    max_backoff_s: float = 30.0,
    on_step: Callable[[Subscriber], None] | None = None,
    stats: IndexerStats | None = None,
) -> IndexerStats:
    """Run an indexer; after a failure, close the subscriber and open a new one so the uncommitted batch is
    re-delivered from the group's committed offset (the only way to rewind that works for every transport)."""
    stats = stats if stats is not None else IndexerStats()  # the caller's, so metrics can read it live

    def open_indexer() -> PlateIndexer:
        indexer = PlateIndexer(make_subscriber(), store, dlq, batch_size=batch_size, max_wait_s=max_wait_s)
        indexer.stats = stats
        return indexer

    def failed(exc: Exception) -> str:
        stats.last_error = redact_text(str(exc) if isinstance(exc, IndexerError) else f"{type(exc).__name__}: {exc}")
        return stats.last_error

    run_until_stopped(
        "plate indexer",
        open_indexer,
        stop,
        backoff=Backoff(backoff_s, max_backoff_s),
        after_step=(lambda ix: on_step(ix.subscriber)) if on_step is not None else None,  # same thread as the poll
        on_error=failed,
    )
    return stats
