"""Helpers shared by the console's unit, integration and browser tests and its benchmark.

They live in the package (not under tests/) so the benchmark can use them too.
Nothing here is used by the running console.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from argon2 import PasswordHasher

from event_bus.events import Incident, IncidentState, IncidentType, PlateRead
from event_bus.interfaces import OutRecord
from event_bus.records import to_record

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
"""Cheap argon2 parameters so tests can log in often; production uses argon2-cffi's defaults."""

PASSWORDS = {"dispatcher": "dispatcher-pw-1", "investigator": "investigator-pw-1", "admin": "admin-pw-0001"}


def add_standard_users(store: Any) -> None:
    """One user per role, named after the role, with the passwords in :data:`PASSWORDS`."""
    for role, password in PASSWORDS.items():
        if store.user(role) is None:
            store.add_user(role, role, password, display_name=role.title())
    if store.user("dispatcher2") is None:
        store.add_user("dispatcher2", "dispatcher", PASSWORDS["dispatcher"], display_name="Second Dispatcher")


def make_incident(
    *,
    camera_id: str = "cam-1",
    type: str = "person_in_zone",
    state: str = "start",
    seq: int = 0,
    incident_id: uuid.UUID | None = None,
    severity: str = "high",
    started_at: datetime | None = None,
    camera_name: str = "",
    location: str = "Main gate",
    confidence: float = 0.8,
    snapshot: Any = None,
    **fields: Any,
) -> Incident:
    """A valid incident for tests and benchmarks; ``fields`` sets any other :class:`Incident` field
    (``worker_id``, ``boxes``, ``event_id``...), so no test writes its own copy of the constructor."""
    started = started_at or datetime.now(UTC)
    observed = started + timedelta(seconds=seq)
    values: dict[str, Any] = {
        "incident_id": incident_id or uuid.uuid4(),
        "type": IncidentType(type),
        "state": IncidentState(state),
        "camera_id": camera_id,
        "camera_name": camera_name or f"Camera {camera_id}",
        "location": location,
        "zone": "road",
        "severity": severity,
        "started_at": started,
        "observed_at": observed,
        "ended_at": observed if state == "end" else None,
        "confidence": confidence,
        "snapshot": snapshot,
        "worker_id": "test-worker",
        "seq": seq,
    }
    return Incident(**{**values, **fields})


def make_plate_read(
    camera_id: str = "cam-1", plate: str = "123ABC02", at: datetime | None = None, **fields: Any
) -> PlateRead:
    """A valid Kazakh plate read seen once at ``at`` (now by default); ``fields`` sets any other field."""
    seen = at or datetime.now(UTC)
    values: dict[str, Any] = {
        "camera_id": camera_id,
        "observed_at": seen,
        "first_seen_at": seen,
        "last_seen_at": seen,
        "plate": plate,
        "raw_text": plate,
        "format_id": "kz",
        "country": "KZ",
        "confidence": 0.9,
        "is_candidate": False,
        "reads": 3,
        "plate_box": [1, 2, 3, 4],
    }
    return PlateRead(**{**values, **fields})


def record_of(inc: Incident) -> OutRecord:
    return to_record(inc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServedApp:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve_in_thread(app: Any, port: int | None = None) -> ServedApp:
    """Serve an ASGI app on loopback in a daemon thread (real sockets: SSE, browsers)."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name="console-test-server")
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test console did not start")
        time.sleep(0.02)
    return ServedApp(f"http://127.0.0.1:{port}", server, thread)


@contextmanager
def local_console(tmp_path: Path, **settings: Any) -> Iterator[tuple[ServedApp, Any, Any]]:
    """A console served on loopback over a local bus in ``tmp_path``, with :func:`add_standard_users`:
    yields (served app, a publisher on its bus, its workflow store); ``settings`` override the defaults."""
    from dispatch.app import create_app
    from dispatch.settings import ConsoleSettings
    from event_bus.local_bus import LocalBusPublisher
    from storage.workflow import open_workflow_store

    bus = tmp_path / "bus.sqlite3"
    store = open_workflow_store(tmp_path / "console.sqlite3", hasher=FAST_HASHER)
    add_standard_users(store)
    defaults: dict[str, Any] = {
        "database": str(tmp_path / "console.sqlite3"),
        "bus": {"kind": "local", "local_path": bus},
        "storage": {"kind": "local", "local_dir": tmp_path / "snapshots"},
        "heartbeat_s": 0.5,
        "cookie_secure": False,  # the tests speak plain HTTP on loopback
    }
    served = serve_in_thread(create_app(ConsoleSettings(**(defaults | settings)), store=store))
    pub = LocalBusPublisher(bus)
    try:
        yield served, pub, store
    finally:
        served.stop()
        pub.close()
        store.close()
