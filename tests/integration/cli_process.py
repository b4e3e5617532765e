"""A long-running command under test (``kuzet worker``, ``kuzet console serve``), watched line by line.

Tests of what an operator sees need the real process, its real stdout and stderr, and a real Ctrl-C:
this starts it in its own session, collects both streams on reader threads, waits for a line the way a
person watches a terminal, and stops it with SIGINT (SIGKILL only if it ignores that).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO


class CliProcess:
    """``args`` running in ``cwd``; ``out`` and ``err`` fill with its lines as they are printed."""

    def __init__(self, args: Sequence[str], cwd: Path, env: dict[str, str], *, merge_stderr: bool = False) -> None:
        self.proc = subprocess.Popen(
            list(args),
            cwd=cwd,
            env={**env, "PYTHONFAULTHANDLER": "1"},  # a hung Python process prints every thread's stack on SIGABRT
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True)]
        if not merge_stderr:
            self._readers.append(threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True))
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str] | None, lines: list[str]) -> None:
        assert stream is not None
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout_s: float, *, count: int = 1, stream: str = "out") -> None:
        """Block until ``count`` lines of ``stream`` ("out" or "err") contain ``text``; fail with the tail if not."""
        lines = self.out if stream == "out" else self.err
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(text in line for line in list(lines)) >= count:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        tail = "\n".join([*self.out[-20:], "--- stderr", *self.err[-20:]])
        raise AssertionError(f"{count} x {text!r} did not appear on std{stream} (exit {self.proc.poll()}):\n{tail}")

    def interrupt(self, timeout_s: float = 90.0) -> int:
        """Ctrl-C (SIGINT to the process group), wait for the exit and the last lines.

        A process that ignores it gets SIGABRT first (its thread stacks land in ``err``, or ``out`` when merged:
        the evidence of what it hung on), then SIGKILL.
        """
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGABRT)
                try:
                    self.proc.wait(timeout=10.0)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=10.0)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: the process gets no chance to say goodbye."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
