"""Common life cycle of a launched service: state file, pid file, idempotent start, clean stop.

A service owns one data directory. Inside it, ``service.json`` records the
ports (and generated credentials) chosen on the first start, so ``stop()``
then ``start()`` comes back on the same address with the same data; that is
what "broker down for 30 s, then back" tests need. ``server.pid`` lets a
second start (another CLI call, or a fixture after a CLI start) find the
running server instead of starting a second one.
"""

from __future__ import annotations

import json
import os
import signal
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from deploy.services._proc import ServiceError, Spawned, free_port, pid_alive, read_pid, terminate


class Service(ABC):
    """A server process bound to loopback, with its state kept in data_dir."""

    name: str = "service"
    #: how many times a first start retries with fresh ports when it lost a port race
    start_attempts: int = 3
    stop_grace: float = 15.0
    stop_signal: int = signal.SIGTERM
    #: send stop_signal to the whole process group (True) or to the leader only
    stop_signal_group: bool = True

    def __init__(self, data_dir: Path | str, *, die_with_parent: bool = False) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.die_with_parent = die_with_parent
        self._spawned: Spawned | None = None
        self.state: dict[str, Any] = {}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._load_state()

    # ------------------------------------------------------------------ files
    @property
    def state_file(self) -> Path:
        return self.data_dir / "service.json"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    # ------------------------------------------------------------------ ports
    def _fix_ports(self, **given: int | None) -> None:
        """Take the ports a caller named (None: leave it to the first start) over those in the state."""
        named = {name: port for name, port in given.items() if port is not None}
        if named:
            self.state["ports"] = {**(self.state.get("ports") or {}), **named}

    def _choose_ports(self, *names: str) -> None:
        """Keep each named port the state already has (a restart serves on the same ports); pick a free one
        for each it lacks (a first start, or a retry after a lost port race, which dropped them)."""
        ports = dict(self.state.get("ports") or {})
        for name in names:
            ports.setdefault(name, free_port())
        self.state["ports"] = ports

    def _port(self, name: str) -> int:
        return int(self.state["ports"][name])

    def _load_state(self) -> None:
        try:
            self.state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            self.state = {}

    def _save_state(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        # The state may hold generated credentials: readable by the owner only.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.state, fh, indent=2)
        tmp.replace(self.state_file)

    # -------------------------------------------------------------- life cycle
    @property
    def pid(self) -> int | None:
        if self._spawned is not None and self._spawned.alive():
            return self._spawned.pid
        return read_pid(self.pid_file, self._cmd_marker())

    def is_running(self) -> bool:
        """True when our server process is alive and answers its health check."""
        if self.pid is None:
            return False
        try:
            return self.healthy()
        except Exception:
            return False

    def start(self, timeout: float | None = None) -> Service:
        """Start the server (or adopt the one already running on this data dir) and wait for health."""
        running = read_pid(self.pid_file, self._cmd_marker())
        if running is not None:
            self._load_state()
            try:
                self._wait_healthy(timeout or self.default_timeout, alive=lambda: pid_alive(running))
            except ServiceError:
                terminate(running, grace=self.stop_grace)
            else:
                return self
        fresh = not self.state.get("ports_fixed")
        attempts = self.start_attempts if fresh else 1
        last: ServiceError | None = None
        for attempt in range(attempts):
            if attempt:
                self.state.pop("ports", None)
            self._prepare()
            self._save_state()
            spawned = self._launch()
            self._spawned = spawned
            try:
                self._wait_healthy(timeout or self.default_timeout, alive=spawned.alive)
            except ServiceError as exc:
                last = exc
                terminate(spawned.pid, grace=2.0, popen=spawned.popen)
                self._spawned = None
                self.pid_file.unlink(missing_ok=True)
                continue
            self.state["ports_fixed"] = True
            self._save_state()
            return self
        assert last is not None
        raise ServiceError(f"{self.name} failed to start in {self.data_dir}: {last}") from last

    def stop(self) -> None:
        """Stop the server: SIGTERM to its process group, SIGKILL after the grace period."""
        pid = self.pid
        if pid is not None:
            popen = self._spawned.popen if self._spawned is not None else None
            terminate(
                pid, grace=self.stop_grace, popen=popen, sig=self.stop_signal, signal_group=self.stop_signal_group
            )
        self._spawned = None
        self.pid_file.unlink(missing_ok=True)
        self._after_stop()

    def _wait_healthy(self, timeout: float, alive: Any) -> None:
        from deploy.services._proc import wait_until

        wait_until(self.healthy, timeout=timeout, what=self.name, alive=alive, log_file=self.log_file)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ to override
    default_timeout: float = 60.0

    @abstractmethod
    def _prepare(self) -> None:
        """Choose ports (when not fixed yet), write config files, initialise storage."""

    @abstractmethod
    def _launch(self) -> Spawned:
        """Spawn the server process."""

    @abstractmethod
    def healthy(self) -> bool:
        """One real request against the server; true when it answered."""

    def _cmd_marker(self) -> str | None:
        """A string the server's command line contains (so a recycled pid is never taken for ours)."""
        return str(self.data_dir)

    def _after_stop(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Hook for cleanup after the process is gone."""

    @abstractmethod
    def info(self, show_secrets: bool = False) -> dict[str, Any]:
        """Connection details for humans and the CLI (secrets masked unless asked for)."""

    def describe(self, show_secrets: bool = False) -> dict[str, Any]:
        doc = {"service": self.name, "running": self.is_running(), "pid": self.pid, "data_dir": str(self.data_dir)}
        doc.update(self.info(show_secrets))
        doc["log"] = str(self.log_file)
        return doc
