"""Pre-roll without decoding: a bounded ring of the compressed packets a camera already sends.

Why compressed packets: a clip must show the seconds *before* an incident, but
decoding every frame to keep them would cost as much as the analysis itself.
Demuxing already sees every packet (key-frame-only analysis decodes only key
frames, yet reads them all), so keeping a copy of each packet's bytes costs a
memcpy of the camera's bitrate: at 2 Mbit/s, 10 s is about 2.5 MB.

The ring always starts at a key frame (a clip cut anywhere else would begin
with undecodable pictures) and drops whole GOPs from the front: the oldest GOP
goes once the next GOP alone still covers ``pre_roll_s``, so the ring holds
between ``pre_roll_s`` and ``pre_roll_s`` + one GOP. ``max_bytes`` bounds the
memory whatever the camera sends (a mis-configured 30 Mbit/s stream, a camera
that never sends a key frame); GOPs dropped for that reason are counted as
``evicted_for_memory`` so a too-small bound shows up in metrics.

A ring belongs to one connection: packets of a new connection may use new
codec parameters, so :meth:`PacketRing.reset` empties it when the camera
reconnects. It is filled by the camera thread and read (``snapshot``) by
others, hence the lock.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RingPacket:
    """A copy of one compressed packet with what remuxing needs (timestamps in ``time_base`` units)."""

    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    pts_s: float  # stream seconds (what rules and post-roll are measured in)
    wall_s: float  # epoch seconds when it arrived (what event times are in)


@dataclass(frozen=True, slots=True)
class RingStats:
    """What metrics report per camera: memory held, span covered, and how often memory cut the pre-roll short."""

    packets: int
    bytes: int
    span_s: float
    gops: int
    evicted_for_memory: int
    max_bytes: int


class PacketRing:
    """GOP-aligned ring of :class:`RingPacket`, covering at least ``pre_roll_s`` when memory allows."""

    def __init__(self, pre_roll_s: float, max_bytes: int) -> None:
        if pre_roll_s < 0 or max_bytes <= 0:
            raise ValueError("pre_roll_s must be >= 0 and max_bytes > 0")
        self.pre_roll_s = pre_roll_s
        self.max_bytes = max_bytes
        self._gops: deque[list[RingPacket]] = deque()
        self._gop_bytes: deque[int] = deque()
        self._bytes = 0
        self._evicted = 0
        self._pushed = 0  # packets kept since creation: a live reader's position (see :meth:`after`)
        self.generation = 0  # bumped by :meth:`reset`: a live reader of the old connection must stop
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget everything (a new connection: its packets must not be mixed with the old one's)."""
        with self._lock:
            self._gops.clear()
            self._gop_bytes.clear()
            self._bytes = 0
            self.generation += 1

    def push(self, packet: RingPacket) -> None:
        """Append one packet; a packet before the first key frame is dropped (it could not start a clip)."""
        with self._lock:
            if packet.keyframe:
                self._gops.append([packet])
                self._gop_bytes.append(len(packet.data))
            elif self._gops:
                self._gops[-1].append(packet)
                self._gop_bytes[-1] += len(packet.data)
            else:
                return
            self._bytes += len(packet.data)
            self._pushed += 1
            self._trim(packet.pts_s)

    def _trim(self, newest_s: float) -> None:
        # drop the oldest GOP while the one after it still starts early enough to cover the pre-roll
        while len(self._gops) > 1 and self._gops[1][0].pts_s <= newest_s - self.pre_roll_s:
            self._drop_oldest()
        while self._bytes > self.max_bytes and len(self._gops) > 1:
            self._drop_oldest()
            self._evicted += 1
        if self._bytes > self.max_bytes:  # a single GOP larger than the bound: keep nothing rather than grow
            self._drop_oldest()
            self._evicted += 1

    def _drop_oldest(self) -> None:
        self._gops.popleft()
        self._bytes -= self._gop_bytes.popleft()

    def snapshot(self) -> list[RingPacket]:
        """The packets held now, oldest first, starting at a key frame (empty when there is none)."""
        with self._lock:
            return [p for gop in self._gops for p in gop]

    def after(self, position: int | None) -> tuple[int, list[RingPacket]]:
        """Packets pushed after ``position`` (a value this method returned) and the new position: live view.

        ``None`` (or a position the ring no longer holds) starts at the newest
        key frame, so a live viewer gets a decodable stream with the least delay.
        """
        with self._lock:
            held = sum(len(g) for g in self._gops)
            first = self._pushed - held
            if position is None or position < first:
                return self._pushed, list(self._gops[-1]) if self._gops else []
            flat = [p for gop in self._gops for p in gop]
            return self._pushed, flat[position - first :]

    def stats(self) -> RingStats:
        with self._lock:
            first = self._gops[0][0].pts_s if self._gops else 0.0
            last = self._gops[-1][-1].pts_s if self._gops else 0.0
            return RingStats(
                packets=sum(len(g) for g in self._gops),
                bytes=self._bytes,
                span_s=max(0.0, last - first),
                gops=len(self._gops),
                evicted_for_memory=self._evicted,
                max_bytes=self.max_bytes,
            )
