"""The spool keeps records in order, removes only acknowledged ones, bounds itself, and survives SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from event_bus.interfaces import OutRecord
from event_bus.spool import Spool, SpoolFull, SpoolLocked
from tests.unit.child_script import child_script


def rec(i: int, key: str = "cam-1") -> OutRecord:
    return OutRecord(topic="kuzet.incidents.v1", key=key, value=f'{{"n": {i}}}'.encode(), headers=(("h", b"\x00\x01"),))


def test_order_ack_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path) as sp:
        ids = [sp.append(rec(i)) for i in range(10)]
        sp.append(rec(10), blob=b"\xff\xd8jpeg", blob_key="cam-1/2026/01/01/x.jpg")
        assert ids == sorted(ids)
        got = sp.peek(100)
        assert [r.record.value for r in got[:10]] == [rec(i).value for i in range(10)]
        assert got[0].record.headers == (("h", b"\x00\x01"),)
        assert got[10].blob == b"\xff\xd8jpeg" and got[10].blob_key == "cam-1/2026/01/01/x.jpg"
        assert sp.ack(ids[:3]) == 3
        assert sp.ack([ids[0]]) == 0  # acking twice is harmless
        assert sp.depth() == 8
        assert sp.peek(1)[0].id == ids[3]
    with Spool(path) as sp:  # reopened: still there, still ordered
        assert sp.depth() == 8
        assert [r.id for r in sp.peek(3)] == ids[3:6]


def test_blob_and_key_go_together(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db") as sp, pytest.raises(ValueError):
        sp.append(rec(0), blob=b"x")


def test_bounded_never_drops(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db", max_records=3) as sp:
        for i in range(3):
            sp.append(rec(i))
        with pytest.raises(SpoolFull, match="full"):
            sp.append(rec(3))
        assert sp.stats().rejected_full == 1
        assert sp.depth() == 3
        sp.ack([sp.peek(1)[0].id])
        sp.append(rec(4))  # room again
    with Spool(tmp_path / "b.db", max_bytes=100) as sp, pytest.raises(SpoolFull):
        sp.append(rec(0), blob=b"x" * 200, blob_key="k")


def test_exclusive_lock(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db"), pytest.raises(SpoolLocked):
        Spool(tmp_path / "s.db")


def test_threads_append_while_reader_acks(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db", durability="normal") as sp:

        def writer(key: str) -> None:
            for i in range(100):
                sp.append(rec(i, key))

        threads = [threading.Thread(target=writer, args=(f"cam-{k}",)) for k in range(4)]
        for t in threads:
            t.start()
        seen: dict[str, list[int]] = {}
        while any(t.is_alive() for t in threads) or sp.depth():
            batch = sp.peek(50)
            for r in batch:
                seen.setdefault(r.record.key, []).append(int(r.record.value.split(b":")[1].strip(b" }")))
            sp.ack(r.id for r in batch)
        for t in threads:
            t.join()
        assert {k: v for k, v in seen.items()} == {f"cam-{k}": list(range(100)) for k in range(4)}


def test_survives_sigkill(tmp_path: Path) -> None:
    """A child appends as fast as it can and reports each returned id; SIGKILL; every reported id is there."""
    path = tmp_path / "spool.db"
    child = child_script(
        f"""
        from event_bus.interfaces import OutRecord
        from event_bus.spool import Spool
        sp = Spool({str(path)!r})
        i = 0
        while True:
            r = OutRecord("kuzet.incidents.v1", "cam-1", b'{{"n": %d}}' % i)
            rid = sp.append(r, blob=b"j" * 1000, blob_key="k")
            print(rid, flush=True)
            i += 1
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    reported: list[int] = []
    deadline = time.monotonic() + 30
    while len(reported) < 200 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            reported.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reported += [int(x) for x in proc.stdout.read().split()]
    assert proc.returncode == -signal.SIGKILL
    assert len(reported) >= 200
    with Spool(path) as sp:  # the kernel released the dead child's lock
        ids = [r.id for r in sp.peek(1_000_000)]
        assert set(reported) <= set(ids)
        assert ids == sorted(ids)
        values = [r.record.value for r in sp.peek(1_000_000)]
        assert values == [b'{"n": %d}' % i for i in range(len(values))]  # a prefix, no holes
