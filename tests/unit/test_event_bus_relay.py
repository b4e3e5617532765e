"""The relay delivers in per-key order, loses nothing, retries with capped jittered back-off."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from core.clock import FakeClock
from event_bus.interfaces import DeliveryError, OutRecord
from event_bus.relay import Relay
from event_bus.spool import Spool, SpooledRecord


class FlakyPublisher:
    """Fails whole calls ``fail_calls`` times, then optionally fails single records once (by value)."""

    def __init__(self, fail_calls: int = 0, fail_values: Sequence[bytes] = ()) -> None:
        self.fail_calls = fail_calls
        self.fail_values = set(fail_values)
        self.log: list[OutRecord] = []  # everything the "broker" accepted, duplicates included
        self.calls = 0

    def publish(self, records: Sequence[OutRecord]) -> list[DeliveryError | None]:
        self.calls += 1
        if self.fail_calls:
            self.fail_calls -= 1
            return [DeliveryError("broker down: rtsp://user:pw@host/x")] * len(records)
        out: list[DeliveryError | None] = []
        for r in records:
            if r.value in self.fail_values:
                self.fail_values.discard(r.value)
                out.append(DeliveryError("one record failed"))
            else:
                self.log.append(r)
                out.append(None)
        return out

    def close(self) -> None:
        pass


def fill(sp: Spool, n_per_key: int, keys: Sequence[str]) -> list[bytes]:
    values = []
    for i in range(n_per_key):
        for k in keys:
            v = f"{k}:{i}".encode()
            sp.append(OutRecord("t", k, v))
            values.append(v)
    return values


def per_key_first_seen(log: Sequence[OutRecord]) -> dict[str, list[int]]:
    seen: set[bytes] = set()
    out: dict[str, list[int]] = {}
    for r in log:
        if r.value in seen:
            continue
        seen.add(r.value)
        out.setdefault(r.key, []).append(int(r.value.split(b":")[1]))
    return out


def test_fails_n_times_then_delivers_all_in_order(tmp_path: Path) -> None:
    clock = FakeClock()
    with Spool(tmp_path / "s.db", durability="normal") as sp:
        fill(sp, 20, ["a", "b", "c"])
        pub = FlakyPublisher(fail_calls=6)
        relay = Relay(
            sp, pub, clock=clock, batch_size=7, backoff_initial_s=0.1, backoff_max_s=2.0, rng=random.Random(1)
        )
        delays = []
        for _ in range(1000):
            if not sp.depth():
                break
            relay.step()
            if relay.next_attempt_in:
                delays.append(relay.next_attempt_in)
                clock.advance(relay.next_attempt_in)
        assert sp.depth() == 0
        assert per_key_first_seen(pub.log) == {k: list(range(20)) for k in "abc"}
        assert len(pub.log) == 60  # whole-call failures deliver nothing, so no duplicates here
        # back-off grows, is capped, and is jittered within [cap/2, cap]
        assert len(delays) == 6
        caps = [min(2.0, 0.1 * 2**i) for i in range(6)]
        assert all(c / 2 <= d <= c for d, c in zip(delays, caps, strict=True))
        assert delays[-1] <= 2.0 and delays[-1] >= 1.0
        st = relay.stats()
        assert st.delivered == 60 and st.retries == 6 and st.consecutive_failures == 0
        assert st.last_error is not None and "pw" not in st.last_error  # redacted


def test_single_failure_blocks_only_its_key(tmp_path: Path) -> None:
    clock = FakeClock()
    with Spool(tmp_path / "s.db", durability="normal") as sp:
        fill(sp, 5, ["a", "b"])  # a:0 b:0 a:1 b:1 ...
        pub = FlakyPublisher(fail_values=[b"a:1"])
        relay = Relay(sp, pub, clock=clock, batch_size=100)
        relay.step()
        # a:0 delivered; a:1 failed; a:2.. delivered by the broker but not acked (re-sent later); all b acked
        left = [r.record.value for r in sp.peek(100)]
        assert left == [b"a:1", b"a:2", b"a:3", b"a:4"]
        clock.advance(relay.next_attempt_in)
        relay.step()
        assert sp.depth() == 0
        # The fake broker accepted a:2..a:4 before a:1; the relay cannot undo that, but it re-sends them
        # after a:1 so a consumer that keeps the *last* copy sees order; first-copy order is the known risk.
        assert [r.value for r in pub.log if r.key == "b"] == [f"b:{i}".encode() for i in range(5)]


def test_before_publish_failure_holds_the_record_and_its_successors(tmp_path: Path) -> None:
    clock = FakeClock()
    uploads: list[str] = []
    store_up = {"ok": False}

    def upload(rec: SpooledRecord) -> None:
        if not store_up["ok"]:
            raise ConnectionError("S3 down")
        assert rec.blob_key is not None
        uploads.append(rec.blob_key)

    with Spool(tmp_path / "s.db", durability="normal") as sp:
        sp.append(OutRecord("t", "a", b"a:0"))
        sp.append(OutRecord("t", "a", b"a:1"), blob=b"jpeg", blob_key="a/1.jpg")
        sp.append(OutRecord("t", "b", b"b:0"))
        pub = FlakyPublisher()
        relay = Relay(sp, pub, before_publish=upload, clock=clock)
        for _ in range(5):
            relay.step()
            clock.advance(relay.next_attempt_in)
        assert [r.value for r in pub.log] == [b"a:0"]  # nothing published that points to a missing object
        assert sp.depth() == 2
        assert relay.stats().before_publish_failures == 5
        store_up["ok"] = True
        relay.step()
        assert uploads == ["a/1.jpg"]
        assert [r.value for r in pub.log] == [b"a:0", b"a:1", b"b:0"]
        assert sp.depth() == 0


def test_thread_flush_and_stop(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db", durability="normal") as sp:
        pub = FlakyPublisher(fail_calls=2)
        relay = Relay(sp, pub, backoff_initial_s=0.01, backoff_max_s=0.05).start()
        fill(sp, 50, ["a", "b"])
        assert relay.flush(10.0)
        relay.stop()
        assert per_key_first_seen(pub.log) == {k: list(range(50)) for k in "ab"}


def test_publisher_exception_does_not_kill_the_thread(tmp_path: Path) -> None:
    class Boom(FlakyPublisher):
        def publish(self, records: Sequence[OutRecord]) -> list[DeliveryError | None]:
            if self.calls == 0:
                self.calls += 1
                raise RuntimeError("unexpected")
            return super().publish(records)

    with Spool(tmp_path / "s.db", durability="normal") as sp:
        pub = Boom()
        relay = Relay(sp, pub, backoff_initial_s=0.01, backoff_max_s=0.02).start()
        fill(sp, 3, ["a"])
        assert relay.flush(5.0)
        relay.stop()
        assert len(pub.log) == 3


def test_bad_backoff_settings(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db") as sp, pytest.raises(ValueError):
        Relay(sp, FlakyPublisher(), backoff_initial_s=5, backoff_max_s=1)
