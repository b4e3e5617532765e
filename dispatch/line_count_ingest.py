"""The console's line-count reader: ``kuzet.line-counts.v1`` -> :class:`~dispatch.line_counts.LineCountBoard`.

Why it is not part of :mod:`dispatch.bus_ingest`, and why it has no consumer group:

* Incidents and camera statuses go into the shared database, so console replicas can split the
  partitions in one group and still all see everything. Line counts are kept in memory only (the
  board shows each camera's newest period), so every replica reads every partition itself and
  needs no database writes (one record a minute per camera: about 330 a second at 20,000 cameras)
  and no fan-out between replicas.
* After a restart the counts are rebuilt from the topic's retained records: each subscriber the
  reader opens (at start and after a failure) starts at ``now - lookback_s`` on every partition.
  ``lookback_s`` must exceed the workers' count period to find each camera's last period; the
  cost is one decode per record in that window (measured about 0.27 ms each here, so three
  minutes of 20,000 cameras on one-minute periods is some 16 s of one core).

Records are decoded by :class:`event_bus.consume.EventConsumer` (schema-validated, deduped on
``event_id``); a malformed one goes to the DLQ and the reader moves on. Without a group there is
nothing to commit, so a replica that restarts inside ``lookback_s`` of a bad record dead-letters
it again (the DLQ record names the source partition and offset, so copies are recognisable).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dispatch.bus_reader import BusReader
from dispatch.line_counts import LineCountBoard
from dispatch.settings import ConsoleSettings
from event_bus import topics
from event_bus.consume import TOPIC_EVENT_TYPES, EventConsumer
from event_bus.events import LineCount
from event_bus.interfaces import Publisher, Subscriber
from event_bus.transport import open_publisher, subscriber_factory

CONSUMER_NAME = "kuzet-console-line-counts"
POLL_RECORDS = 250
"""Records decoded per poll. Small, because the batch's decoded documents are what the process keeps as resident
memory afterwards: reading 6,667 cameras' counts left the console +31.7 MB at 2,000 a poll, +11.9 at 500, +6.1
at 100 (same run, local bus); the store itself is a few MB."""


class LineCountIngestor(BusReader):
    """Background thread: line-count records -> board -> ``on_change``. Never dies on bad input; backs off.

    It owns ``dlq`` and closes it when it stops.
    """

    def __init__(
        self,
        make_subscriber: Callable[[], Subscriber],
        dlq: Publisher | None,
        board: LineCountBoard,
        on_change: Callable[[list[str]], None],
        *,
        poll_timeout_s: float = 0.25,
    ) -> None:
        super().__init__(
            make_subscriber, dlq, what="console line-count reader", poll_timeout_s=poll_timeout_s, owns_dlq=True
        )
        self.board = board
        self._on_change = on_change

    def _open(self, subscriber: Subscriber, dlq: Publisher | None) -> EventConsumer:
        types = {topics.LINE_COUNTS: TOPIC_EVENT_TYPES[topics.LINE_COUNTS]}
        return EventConsumer(subscriber, dlq, topic_types=types, name=CONSUMER_NAME)

    def _step(self, consumer: EventConsumer) -> None:
        decoded = consumer.poll(self.poll_timeout_s, max_records=POLL_RECORDS)
        events = [d.event for d in decoded if isinstance(d.event, LineCount)]
        changed = self.board.update(events)
        if changed:
            self._on_change(changed)
        self.ingested += len(events)


def line_count_subscriber(settings: ConsoleSettings) -> tuple[Callable[[], Subscriber], Publisher]:
    """Group-less subscriber factory on the line-count topic, from ``now - line_counts_lookback_s``; DLQ publisher."""
    lookback_ms = int(settings.line_counts_lookback_s * 1000)
    make = subscriber_factory(
        settings.bus,
        [topics.LINE_COUNTS],
        None,
        from_beginning=True,  # only where the local bus file is replaced under it: the new file from its start
        client_id=CONSUMER_NAME,
        kafka_extra={"fetch_max_wait_ms": 100},
        since_ms=lambda: int(time.time() * 1000) - lookback_ms,
    )
    return make, open_publisher(settings.bus)
