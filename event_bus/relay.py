"""The relay: a thread that moves records from the durable spool to a publisher, in order, losing nothing.

For each batch (oldest first):

1. ``before_publish`` runs for every record carrying a blob (the worker uses it
   to upload the snapshot to object storage), so no event is ever published
   pointing to an object that does not exist. If it raises, the batch stops
   at that record: the records before it are still published, it and
   everything after it wait.
2. The publisher sends the records and reports each delivery.
3. A delivered record is acknowledged (removed from the spool) only if no
   earlier record *of the same key* failed in this batch, so per-camera order
   holds: record k+1 of a key is never acknowledged while record k is not.
   Records of other keys delivered after a failure are acknowledged; their
   order is independent.
4. A record the broker refuses for good (``DeliveryError.retriable`` is False:
   too large, invalid topic) is *parked*: moved to the spool's ``parked`` table
   with the reason, counted (``RelayStats.parked``, the metric
   ``kuzet_relay_parked``) and logged. Retrying it could never succeed, and in
   an ordered outbox it would hold back every later record, incidents included.

On any failure the relay backs off (:mod:`core.backoff`: exponential, capped,
equal jitter, so a fleet of workers does not hammer a recovering broker in step) and retries
from the oldest unacknowledged record. A record that was delivered but not
acknowledged is sent again later: consumers dedupe on ``event_id``.

The step logic (:meth:`Relay.step`) is separate from the thread so tests can
drive it with a fake clock and a fake publisher.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from core.backoff import backoff_delay
from core.clock import Clock, SystemClock
from core.redact import redact_text
from event_bus.interfaces import DeliveryError, Publisher
from event_bus.spool import Spool, SpooledRecord

log = logging.getLogger(__name__)

BeforePublish = Callable[[SpooledRecord], None]


@dataclass(frozen=True, slots=True)
class RelayStats:
    """Counters for metrics and the health endpoint; ``last_error`` is redacted."""

    delivered: int = 0
    retries: int = 0
    publish_failures: int = 0
    before_publish_failures: int = 0
    parked: int = 0
    consecutive_failures: int = 0
    depth: int = 0
    last_error: str | None = None
    backoff_s: float = 0.0


class Relay:
    """Deliver spooled records through ``publisher`` in insertion order, per-key order guaranteed."""

    def __init__(
        self,
        spool: Spool,
        publisher: Publisher,
        before_publish: BeforePublish | None = None,
        clock: Clock | None = None,
        *,
        batch_size: int = 500,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        idle_wait_s: float = 0.5,
        rng: random.Random | None = None,
        name: str = "kuzet-relay",
        target: str = "the bus",
    ) -> None:
        if backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        self.spool = spool
        self.publisher = publisher
        self.before_publish = before_publish
        self.clock: Clock = clock or SystemClock()
        self.batch_size = batch_size
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.idle_wait_s = idle_wait_s
        self._rng = rng or random.Random()  # jitter, not security
        self._stats = RelayStats()
        self._stats_lock = threading.Lock()
        self._next_attempt = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._name = name
        self.target = target  # named in the back-off line, e.g. "Kafka at h:9092 (bus.kafka.bootstrap_servers)"

    # -- one step (deterministic; used by tests and by the thread) ---------------------------------------------

    def step(self) -> int:
        """Try one batch if the back-off allows; returns how many records were acknowledged."""
        now = self.clock.monotonic()
        if now < self._next_attempt:
            return 0
        batch = self.spool.peek(self.batch_size)
        if not batch:
            self._update(depth=0)
            return 0

        error: str | None = None
        ready: list[SpooledRecord] = []
        for rec in batch:
            if rec.blob is not None and self.before_publish is not None:
                try:
                    self.before_publish(rec)
                except Exception as exc:  # any failure of the hook means "not yet": retry later
                    error = f"before_publish failed for record {rec.id} ({rec.blob_key}): {_describe(exc)}"
                    self._bump("before_publish_failures")
                    break
            ready.append(rec)

        acked: list[int] = []
        parked: list[int] = []
        if ready:
            results = self.publisher.publish([r.record for r in ready])
            if len(results) != len(ready):
                raise RuntimeError(f"publisher returned {len(results)} results for {len(ready)} records")
            blocked: set[tuple[str, str]] = set()
            first_failure: str | None = None
            for rec, result in zip(ready, results, strict=True):
                key = (rec.record.topic, rec.record.key)
                if result is None and key not in blocked:
                    acked.append(rec.id)
                elif result is not None and not result.retriable:
                    self._park(rec, result)
                    parked.append(rec.id)
                elif result is not None:
                    blocked.add(key)
                    if first_failure is None:
                        first_failure = (
                            f"publish failed for record {rec.id} (key {rec.record.key}): {_describe(result)}"
                        )
            if first_failure is not None:
                self._bump("publish_failures")
                error = error or first_failure
            self.spool.ack(acked)

        if error is None and len(acked) + len(parked) == len(batch):
            self._update(delivered_add=len(acked), consecutive_failures=0, backoff_s=0.0, depth=self.spool.depth())
            self._next_attempt = 0.0
            return len(acked)

        # Something failed: back off before retrying from the oldest unacknowledged record.
        with self._stats_lock:
            failures = self._stats.consecutive_failures + 1
        delay = self._backoff(failures)
        self._next_attempt = self.clock.monotonic() + delay
        msg = redact_text(error or "publish failed")
        self._update(
            delivered_add=len(acked),
            retries_add=1,
            consecutive_failures=failures,
            backoff_s=delay,
            last_error=msg,
            depth=self.spool.depth(),
        )
        depth = self.spool.depth()
        # One line per back-off step, readable without the extras: where, why, what waits, when next.
        log.warning(
            "cannot deliver to %s: %s; %d event(s) waiting in the outbox, next try in %.1f s",
            self.target,
            msg,
            depth,
            delay,
            extra={"error": msg, "backoff_s": round(delay, 3), "outbox_depth": depth},
        )
        return len(acked)

    def _park(self, rec: SpooledRecord, error: DeliveryError) -> None:
        """Set aside a record the broker will never take, so it cannot block the records behind it."""
        reason = _describe(error)
        if self.spool.park(rec.id, reason):
            self._bump("parked")
        log.error(
            "relay: record parked, the broker refuses it for good",
            extra={"record": rec.id, "topic": rec.record.topic, "key": rec.record.key, "error": reason},
        )

    def _backoff(self, failures: int) -> float:
        """Equal jitter in [cap/2, cap] where cap doubles per failure up to ``backoff_max_s``."""
        return backoff_delay(failures - 1, self.backoff_initial_s, self.backoff_max_s, self._rng)

    @property
    def next_attempt_in(self) -> float:
        """Seconds until the relay will try again (0 when it is not backing off)."""
        return max(0.0, self._next_attempt - self.clock.monotonic())

    # -- thread ------------------------------------------------------------------------------------------------

    def start(self) -> Relay:
        if self._thread is not None:
            raise RuntimeError("relay already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.spool.closed:  # shut down in the wrong order: nothing left to deliver from
                log.warning("relay stopping: its spool was closed")
                return
            try:
                self.step()
            except Exception as exc:  # the relay must survive anything; the spool keeps the records
                msg = redact_text(_describe(exc))
                log.exception("relay step crashed; retrying after back-off")
                with self._stats_lock:
                    failures = self._stats.consecutive_failures + 1
                delay = self._backoff(failures)
                self._next_attempt = self.clock.monotonic() + delay
                self._update(retries_add=1, consecutive_failures=failures, backoff_s=delay, last_error=msg)
            wait = self.next_attempt_in
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()
            elif self.spool.depth() == 0:
                self.spool.wait(self.idle_wait_s)

    def poke(self) -> None:
        """Cut a back-off short (e.g. when the operator knows the broker is back)."""
        self._next_attempt = 0.0
        self._wake.set()

    def flush(self, timeout_s: float) -> bool:
        """Wait until the spool is empty (True) or the timeout passes (False); for orderly shutdown."""
        if self._thread is None:
            deadline = self.clock.monotonic() + timeout_s
            while self.spool.depth() and self.clock.monotonic() < deadline:
                self.step()
                if self.next_attempt_in:
                    self.clock.sleep(min(self.next_attempt_in, max(0.0, deadline - self.clock.monotonic())))
            return self.spool.depth() == 0
        return self.spool.wait_empty(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the thread after its current batch; undelivered records stay in the spool.

        Returns False when the thread is still inside a publish call after ``timeout_s`` (a broker that does
        not answer): it is a daemon thread, and the records it holds are still in the spool.
        """
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def stats(self) -> RelayStats:
        with self._stats_lock:
            return replace(self._stats, depth=self.spool.depth())

    # -- helpers -----------------------------------------------------------------------------------------------

    def _bump(self, name: str) -> None:
        with self._stats_lock:
            self._stats = replace(self._stats, **{name: getattr(self._stats, name) + 1})

    def _update(
        self,
        *,
        delivered_add: int = 0,
        retries_add: int = 0,
        consecutive_failures: int | None = None,
        backoff_s: float | None = None,
        last_error: str | None = None,
        depth: int | None = None,
    ) -> None:
        with self._stats_lock:
            s = self._stats
            self._stats = replace(
                s,
                delivered=s.delivered + delivered_add,
                retries=s.retries + retries_add,
                consecutive_failures=s.consecutive_failures if consecutive_failures is None else consecutive_failures,
                backoff_s=s.backoff_s if backoff_s is None else backoff_s,
                last_error=s.last_error if last_error is None else last_error,
                depth=s.depth if depth is None else depth,
            )


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return redact_text(f"{type(exc).__name__}: {text}"[:500])
