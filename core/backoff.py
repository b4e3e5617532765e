"""The one back-off: capped exponential with equal jitter, as a pure function of (attempt, rng).

Used by every retry loop that waits between attempts: camera reconnects, the
outbox relay, the plate indexer and the console's bus consumer.

Why not tenacity's ``wait_random_exponential``: it draws from the global
``random`` module, so a test cannot pin its output with a seeded generator,
and the retry loops also have to watch a stop event and report status
between attempts, which a retry decorator hides. The function below
is four lines and fully deterministic given a ``random.Random``.

Why jitter: when a switch or a recording server restarts, hundreds of cameras
drop at the same instant; without jitter every worker reconnects to all of
them in lock-step at 0.5, 1, 2, 4 ... seconds, and the storm repeats.
"""

from __future__ import annotations

import random

_MAX_EXPONENT = 62  # 2**62 already exceeds any cap; avoids float overflow for absurd attempt counts


def backoff_delay(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0 = first retry).

    "Equal jitter": the capped exponential ``min(max_s, initial_s * 2**attempt)``
    is split in half; the first half is always waited (so a flapping camera is
    never hammered) and the second half is drawn uniformly (so retries spread).
    The result lies in ``[cap / 2, cap]`` and never exceeds ``max_s``.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if initial_s <= 0 or max_s <= 0:
        raise ValueError("back-off bounds must be positive")
    cap = min(max_s, initial_s * (2.0 ** min(attempt, _MAX_EXPONENT)))
    half = cap / 2.0
    return half + rng.uniform(0.0, half)


class Backoff:
    """Attempt counter around :func:`backoff_delay`; :meth:`reset` after a connection delivered frames."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max(max_s, initial_s)
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        delay = backoff_delay(self.attempt, self.initial_s, self.max_s, self._rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
