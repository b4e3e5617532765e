"""Browser-test fixtures: Debian's Chromium driven by Playwright, and a real console served on loopback.

Chromium is launched from ``/usr/bin/chromium`` (no browser download); Playwright
gives every launch a fresh temporary profile, and every ``new_context`` is a
separate cookie jar (a second dispatcher's browser). Screenshots go to
``artifacts/screenshots/`` (git-ignored test artifacts).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dispatch.app import create_app
from dispatch.settings import ConsoleSettings
from dispatch.testing import FAST_HASHER, PASSWORDS, ServedApp, add_standard_users, serve_in_thread
from storage.local_store import LocalSnapshotStore
from storage.workflow import WorkflowStore, open_workflow_store

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
SIZES = {"1920x1080": (1920, 1080), "1366x768": (1366, 768)}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package", pytrace=False)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Console:
    served: ServedApp
    store: WorkflowStore
    settings: ConsoleSettings
    snapshots: LocalSnapshotStore
    app: Any

    @property
    def url(self) -> str:
        return self.served.url

    def login(
        self,
        browser: Any,
        role: str,
        viewport: tuple[int, int] = (1366, 768),
        user: str | None = None,
        via: str | None = None,
    ) -> Any:
        """A new browser context (own cookies) logged in through the login form; returns its page.

        ``via``: another base URL for the same console (a proxy the test can cut).
        """
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True)
        page = context.new_page()
        page.goto(f"{via or self.url}/login")
        page.fill("input[name=username]", user or role)
        page.fill("input[name=password]", PASSWORDS[role])
        page.click("button[type=submit]")
        page.wait_for_url(lambda u: "/login" not in u)
        return page


def make_console(tmp_path: Path, **settings_kw: Any) -> Console:
    db = tmp_path / "console.sqlite3"
    store = open_workflow_store(db, hasher=FAST_HASHER)
    add_standard_users(store)
    snapshots = LocalSnapshotStore(tmp_path / "snapshots")
    settings = ConsoleSettings(
        database=str(db),
        storage={"kind": "local", "local_dir": tmp_path / "snapshots"},
        heartbeat_s=1.0,
        cookie_secure=False,  # plain HTTP on loopback
        **settings_kw,
    )
    app = create_app(settings, store=store, snapshots=snapshots)
    return Console(serve_in_thread(app), store, settings, snapshots, app)


@contextlib.contextmanager
def running_kafka_console(
    kafka_bootstrap: str, tmp_path: Path, group: str = "kuzet-console-test", **settings_kw: Any
) -> Iterator[Console]:
    """A console consuming the real broker in a consumer group of its own, handed out once it owns its partitions.

    By default the new group reads from the oldest record, so nothing produced after the start is missed.
    """
    from event_bus.kafka_admin import ensure_topics

    ensure_topics(kafka_bootstrap)
    settings_kw.setdefault("from_beginning", True)
    console = make_console(
        tmp_path,
        bus={"kind": "kafka", "kafka": {"bootstrap_servers": kafka_bootstrap}},
        consumer_group=f"{group}-{uuid.uuid4().hex[:8]}",
        **settings_kw,
    )
    try:
        _wait_for_assignment(console)
        yield console
    finally:
        console.served.stop()
        console.store.close()


@pytest.fixture
def kafka_console(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Console]:
    """A console consuming the real broker in a consumer group of its own."""
    with running_kafka_console(kafka_bootstrap, tmp_path) as console:
        yield console


def _wait_for_assignment(console: Console, timeout_s: float = 30.0) -> None:
    """A new group starting at the latest offset must own its partitions before the test produces."""
    import time

    deadline = time.monotonic() + timeout_s
    ing = console.app.state.console.ingestor
    while time.monotonic() < deadline:
        if ing is not None and ing.ready.is_set() and ing.assigned():
            return
        time.sleep(0.1)
        ing = console.app.state.console.ingestor
    raise AssertionError("the console's consumer got no partitions in time")


def jpeg_frames(n: int, boxes: bool = True) -> list[bytes]:
    """Real pictures for snapshots: frames of the bundled vtest excerpt, a box drawn like the worker does."""
    import av
    import cv2

    clip = ROOT / "kuzet" / "demo_assets" / "vtest-excerpt.mp4"
    out: list[bytes] = []
    with av.open(str(clip)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 20:
                continue
            img = frame.to_ndarray(format="bgr24")
            if boxes:
                h, w = img.shape[:2]
                cv2.rectangle(img, (int(w * 0.45), int(h * 0.35)), (int(w * 0.55), int(h * 0.7)), (0, 0, 255), 2)
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
            assert ok
            out.append(buf.tobytes())
            if len(out) >= n:
                break
    return out


def shot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


class TcpProxy:
    """A loopback TCP relay in front of the console that the test can cut: a real connection loss.

    Chromium's offline emulation does not break a response stream that is already open, so an SSE
    connection would survive it; cutting the TCP connections here is what a network outage does.
    """

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self.target_port = target_port
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._cut = False
        self._open: set[Any] = set()
        self._lock = threading.Lock()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import socket
        import threading

        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            return
        finally:
            for s in (src, dst):
                with self._lock:
                    self._open.discard(s)
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until :meth:`restore`."""
        import socket

        self._cut = True
        with self._lock:
            victims = list(self._open)
            self._open.clear()
        for s in victims:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def restore(self) -> None:
        self._cut = False

    def close(self) -> None:
        self._stop = True
        self.cut()
        self._listener.close()
