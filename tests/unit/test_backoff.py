"""Reconnect back-off: capped, jittered, exponential, deterministic with a seeded RNG, reset after success."""

from __future__ import annotations

import random

import pytest

from core.backoff import Backoff, backoff_delay


def test_grows_exponentially_within_equal_jitter_bounds() -> None:
    rng = random.Random(7)
    for attempt in range(6):
        cap = 0.5 * 2**attempt
        for _ in range(50):
            d = backoff_delay(attempt, 0.5, 100.0, rng)
            assert cap / 2 <= d <= cap


def test_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(a, 0.5, 30.0, rng) for a in range(200)]
    assert max(delays) <= 30.0
    assert min(delays[20:]) >= 15.0  # at the cap, still at least half of it: a dead camera is not hammered


def test_jittered_and_deterministic_with_seed() -> None:
    a = [backoff_delay(8, 0.5, 30.0, random.Random(s)) for s in range(20)]
    assert len({round(x, 6) for x in a}) == 20, "twenty cameras failing together must not retry in lock-step"
    b = [backoff_delay(8, 0.5, 30.0, random.Random(s)) for s in range(20)]
    assert a == b


def test_reset_after_success() -> None:
    b = Backoff(0.5, 30.0, random.Random(3))
    grown = [b.next_delay() for _ in range(8)]
    assert grown[-1] >= 15.0
    b.reset()
    assert b.next_delay() <= 0.5


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        backoff_delay(-1, 0.5, 1.0, random.Random())
    with pytest.raises(ValueError):
        backoff_delay(0, 0.0, 1.0, random.Random())
