"""The live feed: workflow store changes -> every open browser, over Server-Sent Events.

Why it is built this way:

* Records come from the bus through :mod:`dispatch.bus_ingest`, which writes
  them to the store and hands the changed rows to :class:`FeedHub`.
* Every change to an incident, from the bus or from a dispatcher, carries the
  store's revision. The SSE event id is ``<store uid>.<revision>``: a browser
  that reconnects with ``Last-Event-ID`` is replayed every incident changed
  since, once each, in its current state, from the database. Live messages
  older than what a connection already sent are skipped, so replay and live
  push never show a change twice.
* Fan-out runs on the event loop; the bus thread hands messages over with
  ``call_soon_threadsafe``. Each browser has a bounded queue: a browser that
  cannot keep up is sent ``reset`` and resyncs, instead of growing the
  server's memory.
* A connection gets only the kinds it asked for, filtered when the message is
  queued: with 20,000 cameras heartbeating, camera messages must not fill a
  dispatcher's incident feed queue (it would be reset and resync for nothing).
  The camera board asks for ``camera_changes``: one small "something changed"
  message while one is still unsent, however many cameras changed, and then
  fetches its filtered page (:mod:`dispatch.api.cameras`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from storage.camera_health import CameraHealth
from storage.incident_records import IncidentRecord
from storage.workflow import WorkflowStore

log = logging.getLogger(__name__)

QUEUE_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class FeedMessage:
    event: str  # "incident" | "camera" | "camera_changes"
    data: str  # JSON
    rev: int | None = None  # incidents only: the store revision (the SSE id)


_CHANGES = FeedMessage("camera_changes", "{}")
_BOARD_CHANGED = FeedMessage("board", "{}")  # internal: something on the board changed that is not a status
_BOARD_EVENTS = frozenset({"camera", "board"})
_WANTS = {"incident": "incidents", "camera": "cameras"}  # message event -> the kind that receives it


@dataclass(eq=False)
class _Listener:
    kinds: frozenset[str]
    queue: asyncio.Queue[FeedMessage] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False
    changes_pending: bool = False  # a camera_changes message is queued and not yet sent


class FeedHub:
    """Fan-out of feed messages to the SSE connections of this process."""

    def __init__(self, store: WorkflowStore) -> None:
        self.store = store
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: set[_Listener] = set()
        self.published = 0
        self.overflows = 0
        # Set when replicas share a database (dispatch.replica_sync): tells the other replicas about each change.
        self.notifier: Callable[..., None] | None = None
        # Called (bus or follower thread) with every camera status this replica hands to its browsers.
        self.camera_observers: list[Callable[[Sequence[CameraHealth]], None]] = []

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def connections(self) -> int:
        return len(self._listeners)

    def publish_incidents(self, records: Sequence[IncidentRecord], *, relay: bool = True) -> None:
        """Thread-safe; called after the store committed the change.

        With replicas (``notifier`` set) a change is not handed over here but announced: every replica's
        follower, this one's included, then reads changes from the database in revision order. Handing our
        own change over at once could overtake a lower revision of another replica still on its way, and the
        stream, which never goes back in revisions, would then drop that one.
        """
        if relay and self.notifier is not None:
            if records:
                self.notifier("incidents")
            return
        msgs = [FeedMessage("incident", json.dumps(r.to_json(), separators=(",", ":")), r.rev) for r in records]
        self._hand_over(msgs)

    def publish_cameras(self, cameras: Sequence[CameraHealth], *, relay: bool = True) -> None:
        if relay and self.notifier is not None:  # comes back through every replica's follower, as above
            if cameras:
                self.notifier("cameras", cameras)
            return
        for observe in self.camera_observers:
            observe(cameras)
        msgs = [FeedMessage("camera", json.dumps(c.to_json(), separators=(",", ":"))) for c in cameras]
        self._hand_over(msgs)

    def announce_camera_changes(self) -> None:
        """Thread-safe: tell the camera boards of this process to re-fetch (their line counts changed).

        Not relayed to other replicas: each replica reads the line counts itself (:mod:`dispatch.line_count_ingest`).
        """
        self._hand_over([_BOARD_CHANGED])

    def _hand_over(self, msgs: list[FeedMessage]) -> None:
        if not msgs or self._loop is None or self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop shutting down
            self._loop.call_soon_threadsafe(self._fan_out, msgs)

    def _fan_out(self, msgs: list[FeedMessage]) -> None:
        self.published += len(msgs)
        for listener in self._listeners:
            if listener.overflowed:
                continue
            wanted = [m for m in msgs if _WANTS.get(m.event) in listener.kinds]
            if (
                "camera_changes" in listener.kinds
                and not listener.changes_pending
                and any(m.event in _BOARD_EVENTS for m in msgs)
            ):
                listener.changes_pending = True
                wanted.append(_CHANGES)
            for m in wanted:
                try:
                    listener.queue.put_nowait(m)
                except asyncio.QueueFull:
                    listener.overflowed = True
                    self.overflows += 1
                    break

    def _add(self, kinds: frozenset[str]) -> _Listener:
        listener = _Listener(kinds)
        self._listeners.add(listener)
        return listener

    def _remove(self, listener: _Listener) -> None:
        self._listeners.discard(listener)

    async def stream(
        self,
        last_event_id: str | None,
        *,
        kinds: frozenset[str],
        heartbeat_s: float,
        replay_limit: int,
        is_disconnected: Callable[[], Any],
        still_allowed: Callable[[], Awaitable[bool]] | None = None,
        recheck_s: float = 5.0,
    ) -> AsyncIterator[str]:
        """The SSE body of one connection: hello, replay since ``last_event_id``, then live messages and pings.

        ``still_allowed`` is asked again every ``recheck_s``: once the session is logged out, expired, or its
        user disabled, the stream says ``end`` and closes (the browser's reconnect then gets a 401).
        """
        listener = self._add(kinds)  # before the replay query, so nothing falls between the two
        next_check = time.monotonic() + recheck_s
        try:
            yield "retry: 1500\n\n"
            sent_rev = _parse_last_id(last_event_id, self.store.store_uid)
            current = await run_in_threadpool(self.store.current_rev)
            hello = {"store": self.store.store_uid, "rev": current, "resumed": sent_rev is not None}
            if "incidents" in kinds and sent_rev is not None:
                changed = await run_in_threadpool(self.store.changes_since, sent_rev, replay_limit + 1)
                if len(changed) > replay_limit:
                    hello["resumed"] = False  # too far behind: the browser reloads the list instead
                    sent_rev = None
                else:
                    yield _sse("hello", json.dumps(hello))
                    for rec in changed:
                        yield _sse("incident", json.dumps(rec.to_json(), separators=(",", ":")), self._id(rec.rev))
                        sent_rev = rec.rev
                    hello = {}
            if hello:
                # Fresh (or reset) connection: the id marks where the browser's list snapshot must resume from.
                yield _sse("hello", json.dumps(hello), self._id(current))
                sent_rev = current
            while True:
                if listener.overflowed:
                    yield _sse("reset", json.dumps({"reason": "browser fell behind; reloading"}))
                    return
                if still_allowed is not None and time.monotonic() >= next_check:
                    if not await still_allowed():
                        yield _sse("end", json.dumps({"reason": "session ended"}))
                        return
                    next_check = time.monotonic() + recheck_s
                try:
                    wait = heartbeat_s if still_allowed is None else min(heartbeat_s, recheck_s)
                    msg = await asyncio.wait_for(listener.queue.get(), timeout=wait)
                except TimeoutError:
                    if await is_disconnected():
                        return
                    yield _sse("ping", str(int(time.time() * 1000)))
                    continue
                if msg.event == "incident":
                    if msg.rev is not None and sent_rev is not None and msg.rev <= sent_rev:
                        continue
                    sent_rev = msg.rev
                    yield _sse("incident", msg.data, self._id(msg.rev))
                elif msg.event == "camera_changes":
                    listener.changes_pending = False
                    yield _sse("camera_changes", msg.data)
                else:
                    yield _sse(msg.event, msg.data)
        finally:
            self._remove(listener)

    def _id(self, rev: int | None) -> str:
        return f"{self.store.store_uid}.{rev}"


def _parse_last_id(value: str | None, store_uid: str) -> int | None:
    """The revision a browser last saw, or None when absent, malformed or from another database."""
    if not value:
        return None
    uid, _, rev = value.strip().partition(".")
    if uid != store_uid or not rev.isdigit() or len(rev) > 18:
        return None
    return int(rev)


def _sse(event: str, data: str, event_id: str | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return "\n".join(lines) + "\n\n"
