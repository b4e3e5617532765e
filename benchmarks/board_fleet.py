"""A simulated city fleet's camera statuses for the camera board, sent through the real status topic.

Used by ``benchmarks/camera_board.py`` and ``tests/browser/test_camera_board_scale.py``:
N cameras in 8 zones (camera-id prefixes, configured as the console's camera
groups), on 20 workers, with a seeded mix of states (mostly up; some degraded,
down, never connected, and stale: a worker that went silent two hours ago).
The statuses are ``CameraStatus`` events published to ``kuzet.camera-status.v1``
with the project's Kafka publisher, exactly what workers send, so the console
ingests them through its own consumer, store and index. Every third camera also
has line counts (``LineCount`` on ``kuzet.line-counts.v1``), so the board's
Line counts column is drawn and looked up at full size.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.health import CameraState
from event_bus.analytics_events import LineCountEntry
from event_bus.events import CameraStatus, LineCount
from event_bus.interfaces import Publisher
from event_bus.records import to_record

ZONES = ("north", "south", "east", "west", "centre", "airport", "river", "old-town")
WORKERS = 20
STALE_AFTER_S = 600.0  # the console setting the fleet assumes: "stale" cameras are two hours silent


@dataclass(frozen=True, slots=True)
class Fleet:
    prefix: str  # unique per run, so the board can be narrowed to this fleet on a shared broker
    statuses: list[CameraStatus]

    @property
    def groups(self) -> dict[str, list[str]]:
        """The console's ``camera_groups`` for this fleet: one zone per camera-id prefix."""
        return {z: [f"{self.prefix}{z}-*"] for z in ZONES}

    def worker(self, k: int) -> str:
        return f"{self.prefix}w{k:02d}"

    def shown(self, s: CameraStatus, now: datetime) -> str:
        """The state the board must show: stale when the status is older than STALE_AFTER_S and not down."""
        if s.state != CameraState.DOWN and (now - s.at).total_seconds() > STALE_AFTER_S:
            return "stale"
        return s.state.value

    def zone_of(self, s: CameraStatus) -> str:
        return s.camera_id[len(self.prefix) :].rsplit("-", 1)[0]


def make_fleet(n: int, prefix: str, *, seed: int = 12, now: datetime | None = None) -> Fleet:
    """``n`` cameras' statuses as of ``now`` (seeded: the same fleet every run)."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    out = []
    for i in range(n):
        zone = ZONES[i % len(ZONES)]
        roll = rng.random()
        at = now - timedelta(milliseconds=rng.randint(0, 5000))
        last: datetime | None = at - timedelta(milliseconds=rng.randint(20, 600))
        state, reason, reconnects = CameraState.UP, "", rng.choice((0, 0, 0, 1, 2))
        if roll < 0.04:
            state, reason = CameraState.DEGRADED, "analysed fps below the profile"
        elif roll < 0.075:
            state, reason, reconnects = CameraState.DOWN, "RTSP read timed out", rng.randint(1, 40)
            last = at - timedelta(seconds=rng.randint(15, 7200))
        elif roll < 0.08:
            state, reason, last = CameraState.DOWN, "connection refused", None
        elif roll < 0.095:
            at = now - timedelta(hours=2, seconds=rng.randint(0, 600))  # its worker went silent
            last = at - timedelta(milliseconds=rng.randint(20, 600))
        flowing = state != CameraState.DOWN
        out.append(
            CameraStatus(
                camera_id=f"{prefix}{zone}-{i:05d}",
                state=state,
                reason=reason,
                input_fps=25.0 if flowing else 0.0,
                analysed_fps=(rng.uniform(1.0, 4.0) if state == CameraState.DEGRADED else 5.0) if flowing else 0.0,
                last_frame_at=last,
                reconnects=reconnects,
                worker_id=f"{prefix}w{rng.randrange(WORKERS):02d}",
                at=at,
            )
        )
    return Fleet(prefix, out)


def line_counts(fleet: Fleet, *, every: int = 3, seed: int = 12) -> list[LineCount]:
    """The last count period of every ``every``-th camera: two lines (person and car, in and out), as workers send."""
    rng = random.Random(seed)
    out = []
    for s in fleet.statuses[::every]:
        counts = [
            LineCountEntry(line=line, direction=d, label=label, count=rng.randint(0, 40))  # type: ignore[arg-type]
            for line in ("gate", "road")
            for d in ("in", "out")
            for label in ("person", "car")
        ]
        end = s.at.replace(second=0, microsecond=0)
        out.append(
            LineCount(
                camera_id=s.camera_id, period_start=end - timedelta(minutes=1), period_end=end, complete=True,
                counts=counts, worker_id=s.worker_id,
            )
        )  # fmt: skip
    return out


def publish(pub: Publisher, events: Sequence[CameraStatus | LineCount], batch: int = 2000) -> None:
    """Publish and wait for every broker ack (raises on the first failed delivery)."""
    for chunk in _chunks(events, batch):
        failed = [r for r in pub.publish([to_record(s) for s in chunk]) if r is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} events not delivered: {failed[0]}")


def _chunks(items: Sequence[CameraStatus | LineCount], size: int) -> Iterator[Sequence[CameraStatus | LineCount]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
