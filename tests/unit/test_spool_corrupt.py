"""A damaged spool file at start: kept aside, readable records carried over, the worker starts (#10 faults).

Before: ``Spool()`` raised ``sqlite3.DatabaseError`` ("file is not a database") and the worker could not
start at all; nothing told the operator which file or how many events it held.
"""

from __future__ import annotations

from pathlib import Path

from event_bus import topics
from event_bus.interfaces import OutRecord
from event_bus.spool import Spool


def test_garbage_file_is_moved_aside_and_a_fresh_spool_starts(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    path.write_bytes(b"definitely not sqlite " * 500)
    spool = Spool(path)
    try:
        assert spool.quarantine is not None and spool.quarantine.salvaged == 0
        assert spool.quarantine.moved_to.read_bytes().startswith(b"definitely"), "the damaged file is kept"
        assert spool.stats().quarantined and spool.depth() == 0
        spool.append(OutRecord(topics.INCIDENTS, "cam-1", b"{}"))
        assert spool.depth() == 1
    finally:
        spool.close()


def test_damaged_pages_keep_every_record_that_still_reads_in_order(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path, durability="normal")
    spool.append_many(
        [(OutRecord(topics.INCIDENTS, "cam-1", b"%05d" % i + b"x" * 3000), None, None) for i in range(300)]
    )
    spool.close()
    data = bytearray(path.read_bytes())
    cut = len(data) * 3 // 4
    data[cut : cut + 8192] = b"\xa5" * 8192  # two pages of garbage near the end of the table
    path.write_bytes(bytes(data))
    reopened = Spool(path, durability="normal")
    try:
        q = reopened.quarantine
        assert q is not None, "the damage was detected at open"
        assert 0 < q.salvaged < 300 and reopened.depth() == q.salvaged
        values = [r.record.value[:5] for r in reopened.peek(1000)]
        assert values == [b"%05d" % i for i in range(q.salvaged)], "carried over in order, none invented"
    finally:
        reopened.close()
