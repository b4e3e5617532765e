"""Process plumbing shared by the service launchers.

Every launcher runs its server as a child in its own session (process group),
records the pid in a pid file inside the service's data directory and stops it
with SIGTERM to the whole group, then SIGKILL after a grace period. The pid file
makes `start()` idempotent across processes (the CLI and a later CLI call), and
the process group makes `stop()` take helpers with it.

Test fixtures additionally ask for ``die_with_parent``: the child gets
PR_SET_PDEATHSIG=SIGKILL, so a pytest run that is itself killed leaves no
orphaned brokers behind on a machine shared by several engineers.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


class ServiceError(RuntimeError):
    """A service could not be started, was not healthy in time, or could not be stopped."""


def cache_dir() -> Path:
    """Where downloaded and built artefacts are cached (override with KUZET_CACHE_DIR)."""
    env = os.environ.get("KUZET_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "kuzet"


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port on loopback, chosen below the kernel's ephemeral range.

    Outside the ephemeral range so that while a service is stopped for a
    "broker down, then back" test, no outgoing connection on the machine is
    handed its port by the kernel, and a restart on the same port succeeds.
    There is still a small race with other engineers picking ports at the same
    moment; launchers retry their first start with fresh ports when they lose it.
    """
    low, _ = _ephemeral_range()
    top = max(low - 1, 10001)
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(10000, top)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        if not port_open(port, host, timeout=0.2):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True when pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3 is the state; a zombie ('Z') has exited and only awaits reaping.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    """The command line of pid, arguments joined by spaces ('' when unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def read_pid(pid_file: Path, marker: str | None = None) -> int | None:
    """The pid recorded in pid_file when that process is still alive, else None.

    With marker, the process's command line must also contain it: after a
    reboot or a long pause the pid may belong to an unrelated process, which
    must never be adopted, let alone signalled.
    """
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not pid_alive(pid):
        return None
    if marker is not None and marker not in cmdline(pid):
        return None
    return pid


def _preexec(die_with_parent: bool, uid: int | None, gid: int | None) -> Callable[[], None]:
    def run() -> None:
        # The credentials change first: Linux clears the parent-death signal on a uid change.
        if gid is not None:
            os.setgroups([gid])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        if die_with_parent:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return run


@dataclass
class Spawned:
    """A started server: its pid and the log file its output goes to."""

    pid: int
    log_file: Path
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid)


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    pid_file: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    die_with_parent: bool = False,
    uid: int | None = None,
    gid: int | None = None,
) -> Spawned:
    """Start argv in a new session with output appended to log_file; record its pid.

    die_with_parent applies only when called from the main thread: Linux sends
    the parent-death signal when the *thread* that forked exits, so a server
    restarted from a short-lived helper thread (a test's timer) would otherwise
    be killed as soon as that thread returned.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    die_with_parent = die_with_parent and threading.current_thread() is threading.main_thread()
    with log_file.open("ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_preexec(die_with_parent, uid, gid),  # noqa: PLW1509 - only signal/credential setup
        )
    pid_file.write_text(f"{popen.pid}\n")
    return Spawned(pid=popen.pid, log_file=log_file, popen=popen)


def terminate(
    pid: int,
    *,
    grace: float = 15.0,
    popen: subprocess.Popen[bytes] | None = None,
    sig: int = signal.SIGTERM,
    signal_group: bool = True,
) -> None:
    """Send sig (SIGTERM) to the process group of pid, wait up to grace seconds, then SIGKILL the group.

    ``signal_group=False`` sends the polite signal to the leader only, for servers
    (PostgreSQL) whose leader shuts its children down in order.
    """
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        pgid = None
    # Only signal the group when the server leads its own group; never our own group.
    target_group = pgid is not None and pgid == pid and pgid != os.getpgrp()

    def send(signum: int, group: bool) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group and target_group:
                os.killpg(pid, signum)
            else:
                os.kill(pid, signum)

    send(sig, signal_group)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None:
                break
        elif not pid_alive(pid):
            break
        time.sleep(0.05)
    else:
        send(signal.SIGKILL, True)
    if target_group:
        # Stragglers in the group (helpers the server forked) go too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5)


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    log_file: Path | None = None,
    interval: float = 0.2,
) -> None:
    """Poll check() until it is true; fail early when the process died, with the log tail in the error."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise ServiceError(f"{what}: process exited during start-up\n{log_tail(log_file)}")
        try:
            if check():
                return
        except Exception as exc:  # health probes raise while the server is coming up
            last_error = exc
        time.sleep(interval)
    detail = f" (last probe error: {last_error!r})" if last_error else ""
    raise ServiceError(f"{what}: not healthy after {timeout:.0f} s{detail}\n{log_tail(log_file)}")


def log_tail(log_file: Path | None, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    if log_file is None:
        return ""
    try:
        text = log_file.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"(no log at {log_file})"
    return f"--- last lines of {log_file} ---\n" + "\n".join(text)
