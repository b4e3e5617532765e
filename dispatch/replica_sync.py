"""Fan-out across console replicas on PostgreSQL: a change any replica makes reaches every replica's browsers.

Why: replicas share one consumer group (each ingests part of the feed into the
shared database) and each handles its own dispatchers' actions; the in-process
:class:`~dispatch.feed.FeedHub` only sees what its own process did. So after
every change a replica sends ``NOTIFY kuzet_console`` and every replica runs a
:class:`ChangeFollower` that ``LISTEN``\\s and then reads the changed incidents
from the database by store revision (``changes_since``), in revision order,
and hands them to its hub. A replica's own changes take the same path (its
follower hears its own notification): handed over directly they could
overtake a lower revision of another replica, which the stream, never going
back in revisions, would then drop. Camera health is small and has no revision, so its records travel in
the notification payload itself.

The follower also reads ``changes_since`` once a second without a
notification, so a notification lost while a connection was down costs at
most that second; its connection reconnects with capped, jittered back-off.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Sequence
from typing import Any

from core.redact import redact_text
from dispatch.feed import FeedHub
from storage.camera_health import CameraHealth
from storage.workflow import WorkflowStore

log = logging.getLogger(__name__)

CHANNEL = "kuzet_console"
PAYLOAD_MAX = 7000  # PostgreSQL's limit is 8000 bytes


def camera_payloads(cameras: Sequence[CameraHealth]) -> list[str]:
    """``c:`` + a JSON list of camera records, split to stay under the notification size limit."""
    out: list[str] = []
    batch: list[str] = []
    size = 0
    for c in cameras:
        doc = json.dumps(c.to_json(), separators=(",", ":"))
        if batch and size + len(doc) > PAYLOAD_MAX:
            out.append("c:[" + ",".join(batch) + "]")
            batch, size = [], 0
        batch.append(doc)
        size += len(doc) + 1
    if batch:
        out.append("c:[" + ",".join(batch) + "]")
    return out


def _camera(doc: dict[str, Any]) -> CameraHealth:
    return CameraHealth(
        camera_id=str(doc["camera_id"]),
        state=str(doc["state"]),
        reason=str(doc["reason"]),
        input_fps=float(doc["input_fps"]),
        analysed_fps=float(doc["analysed_fps"]),
        last_frame_at_ms=None if doc.get("last_frame_at_ms") is None else int(doc["last_frame_at_ms"]),
        reconnects=int(doc["reconnects"]),
        worker_id=str(doc["worker_id"]),
        at_ms=int(doc["at_ms"]),
    )


class ChangeNotifier:
    """Sends the notifications (one autocommit connection, reopened on failure; a lost one is covered by polling)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._lock = threading.Lock()
        self._conn: Any = None
        self.failures = 0

    def __call__(self, kind: str, cameras: Sequence[CameraHealth] = ()) -> None:
        payloads = ["i"] if kind == "incidents" else camera_payloads(cameras)
        import psycopg

        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
                for p in payloads:
                    self._conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, p))
            except psycopg.Error as exc:
                self.failures += 1
                log.warning("console replica notify failed: %s", redact_text(type(exc).__name__))
                if self._conn is not None:
                    self._conn.close()
                self._conn = None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class ChangeFollower:
    """Background thread: LISTEN, then push every incident changed since the last one seen into the hub."""

    def __init__(self, dsn: str, store: WorkflowStore, hub: FeedHub, *, poll_s: float = 1.0) -> None:
        self._dsn = dsn
        self.store = store
        self.hub = hub
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-replica-sync", daemon=True)
        self.last_rev = 0
        self.reconnects = 0
        self.listening = threading.Event()

    def start(self) -> ChangeFollower:
        self.last_rev = self.store.current_rev()
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def catch_up(self) -> None:
        while True:
            changed = self.store.changes_since(self.last_rev, 1000)
            if not changed:
                return
            self.hub.publish_incidents(changed, relay=False)
            self.last_rev = max(self.last_rev, changed[-1].rev)
            if len(changed) < 1000:
                return

    def _handle(self, payload: str) -> None:
        if payload.startswith("c:"):
            try:
                cams = [_camera(d) for d in json.loads(payload[2:])]
            except (ValueError, KeyError, TypeError):
                log.warning("console replica sync: malformed camera notification ignored")
                return
            self.hub.publish_cameras(cams, relay=False)

    def _run(self) -> None:
        import psycopg

        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    backoff = 0.5
                    while not self._stop.is_set():
                        self.catch_up()
                        for note in conn.notifies(timeout=self.poll_s, stop_after=1):
                            self._handle(note.payload)
            except Exception as exc:
                self.listening.clear()
                self.reconnects += 1
                log.warning("console replica sync: %s; reconnecting", redact_text(f"{type(exc).__name__}: {exc}"))
                self._stop.wait(backoff * (0.75 + random.random() / 2))
                backoff = min(backoff * 2, 15.0)
