"""The console's bus readers share one life: a daemon thread that opens a consumer, polls it until stopped,
and after any failure counts it, logs it redacted, closes the consumer and opens a new one after a capped
back-off. :class:`dispatch.bus_ingest.BusIngestor` (incidents, camera status) and
:class:`dispatch.line_count_ingest.LineCountIngestor` (line counts) say only how to open their consumer and
what one poll does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Self

from core.backoff import Backoff
from core.redact import redact_text
from event_bus.consume import EventConsumer
from event_bus.interfaces import Publisher, Subscriber

log = logging.getLogger(__name__)


class BusReader:
    """A consumer read on a thread of its own until :meth:`stop`; never dies on bad input or a broken broker."""

    def __init__(
        self,
        make_subscriber: Callable[[], Subscriber],
        dlq: Publisher | None,
        *,
        what: str,
        poll_timeout_s: float,
        owns_dlq: bool,
    ) -> None:
        self._make_subscriber = make_subscriber
        self._dlq = dlq
        self._what = what
        self._owns_dlq = owns_dlq
        self.poll_timeout_s = poll_timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=what.replace(" ", "-"), daemon=True)
        self.ingested = 0
        self.errors = 0
        self.last_error: str | None = None
        self.ready = threading.Event()  # set once a subscriber is open (positioned: records from now on are read)
        self.consumer: EventConsumer | None = None

    def start(self) -> Self:
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _open(self, subscriber: Subscriber, dlq: Publisher | None) -> EventConsumer:
        """The consumer on a newly opened subscriber (its name and the topics it decodes)."""
        raise NotImplementedError

    def _step(self, consumer: EventConsumer) -> None:
        """One poll and what the reader does with it; any exception reopens the consumer."""
        raise NotImplementedError

    def _run(self) -> None:
        backoff = Backoff(0.5, 10.0)
        while not self._stop.is_set():
            try:
                if self.consumer is None:
                    self.consumer = self._open(self._make_subscriber(), self._dlq)
                    self.ready.set()
                self._step(self.consumer)
                backoff.reset()
            except Exception as exc:
                self.errors += 1
                self.last_error = redact_text(f"{type(exc).__name__}: {exc}")
                log.warning("%s: %s", self._what, self.last_error)
                if self.consumer is not None:
                    with contextlib.suppress(Exception):  # already failing; the reopen below is what matters
                        self.consumer.close()
                    self.consumer = None
                self._stop.wait(backoff.next_delay())
        if self.consumer is not None:
            self.consumer.close()
        if self._owns_dlq and self._dlq is not None:
            self._dlq.close()
