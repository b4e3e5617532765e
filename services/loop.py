"""The service loop both bus services share: step a consumer until stopped; after any failure, close it, back off
and open a fresh one.

Why a fresh consumer: the failed batch was not committed, and reopening the
subscriber is the one rewind that works for every transport (Kafka and the
local bus), so the batch is read again from the group's committed offset.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from core.backoff import Backoff
from core.redact import redact_text

log = logging.getLogger(__name__)


class Steppable(Protocol):
    def step(self) -> int: ...

    def close(self) -> None: ...


C = TypeVar("C", bound=Steppable)


def run_until_stopped(
    name: str,
    open_consumer: Callable[[], C],
    stop: threading.Event,
    *,
    backoff: Backoff,
    after_step: Callable[[C], None] | None = None,
    on_error: Callable[[Exception], str] | None = None,
) -> None:
    """Step consumers from ``open_consumer`` until ``stop``; never exits on an error (logged, then retried).

    ``after_step`` runs on this thread after every step (e.g. consumer-lag metrics); ``on_error`` turns an error
    into the text to log and returns it (default: its type and message), redacted either way.
    """
    while not stop.is_set():
        consumer: C | None = None
        try:
            consumer = open_consumer()
            while not stop.is_set():
                consumer.step()
                if after_step is not None:
                    after_step(consumer)
                backoff.reset()
        except Exception as exc:  # the store, the DLQ or the transport failing: reopen and re-read, never exit
            reason = redact_text(on_error(exc) if on_error is not None else f"{type(exc).__name__}: {exc}")
            delay = backoff.next_delay()
            log.error("%s: %s (retrying in %.1fs)", name, reason, delay)
            stop.wait(delay)
        finally:
            if consumer is not None:
                consumer.close()
