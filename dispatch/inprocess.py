"""Run the console inside another process (the demo): uvicorn in a daemon thread, reading the local bus.

Why a thread and not a subprocess: ``kuzet demo`` is one command on one box
with no services; the console only needs the demo's local bus file and its
snapshot folder, and stopping the demo must stop the console with it.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from core.config import BusConfig, StorageConfig
from dispatch.app import create_app
from dispatch.settings import ConsoleSettings, is_loopback
from storage.accounts import Role
from storage.workflow import WorkflowStore, open_workflow_store

DEMO_USERS = (
    ("demo-admin", Role.ADMIN),
    ("demo-dispatcher", Role.DISPATCHER),
    ("demo-investigator", Role.INVESTIGATOR),
)


@dataclass
class RunningConsole:
    """A console serving in a background thread; ``stop()`` shuts it down (the bus consumer with it)."""

    url: str
    credentials: dict[str, str] = field(default_factory=dict)  # demo user -> password, fresh for this run
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    store: WorkflowStore | None = None

    def banner(self) -> str:
        """Text to print once: where the console is and the demo logins (the passwords exist only here)."""
        lines = [f"Dispatch console: {self.url}"]
        if self.credentials:
            lines.append("Demo logins (new passwords each run; not for production):")
            lines.extend(f"  {user:18} {password}" for user, password in self.credentials.items())
        return "\n".join(lines)

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout_s)
        if self.store is not None:
            self.store.close()


def _free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _reset_demo_users(store: WorkflowStore) -> dict[str, str]:
    creds: dict[str, str] = {}
    for username, role in DEMO_USERS:
        password = secrets.token_urlsafe(12)
        if store.user(username) is None:
            store.add_user(username, role, password, display_name=username.replace("-", " ").title())
        else:
            store.set_password(username, password)
        creds[username] = password
    return creds


def start_console_thread(
    *,
    bus_path: Path = Path("var/demo/bus.sqlite3"),
    database: Path = Path("var/demo/console.sqlite3"),
    snapshots_dir: Path = Path("var/demo/snapshots"),
    host: str = "127.0.0.1",
    port: int = 8765,
    demo_users: bool = True,
    start_timeout_s: float = 15.0,
) -> RunningConsole:
    """Start the console on ``http://host:port`` reading the local bus at ``bus_path``; returns once it serves.

    With ``demo_users`` the users demo-admin / demo-dispatcher / demo-investigator get new random
    passwords, returned in ``credentials`` (print ``banner()`` once). If ``port`` is taken, a free one is used.
    """
    settings = ConsoleSettings(
        database=str(database),
        bus=BusConfig(kind="local", local_path=bus_path),
        storage=StorageConfig(kind="local", local_dir=snapshots_dir),
        consumer_group="kuzet-console-demo",
        host=host,
        port=port,
        cookie_secure=not is_loopback(host),  # the demo serves plain HTTP on loopback
    )
    store = open_workflow_store(database)
    creds = _reset_demo_users(store) if demo_users else {}
    app = create_app(settings, store=store)
    config = uvicorn.Config(
        app, host=host, port=port if _free(host, port) else 0, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="kuzet-console", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the dispatch console did not start")
        time.sleep(0.05)
    bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
    return RunningConsole(f"http://{host}:{bound}/", creds, server, thread, store)
