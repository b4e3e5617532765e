"""Waiting in a command's main thread for Ctrl-C or SIGTERM, in a way that always wakes up.

Why not ``threading.Event().wait()`` with a handler that sets the event: a signal sent to a process is taken
by whichever of its threads the kernel picks, and in a worker full of FFmpeg, onnxruntime and Python threads
that is often not the main thread. CPython then only *marks* its handler to run in the main thread, and a main
thread asleep in ``Event.wait()`` without a timeout never gets to run it: ``kuzet worker`` sometimes ignored
Ctrl-C for minutes (two quick-start test runs in six on a loaded box; tests/unit/test_stop_signals.py
reproduces the mechanism). Here the main thread wakes every ``poll_s`` so a pending handler runs, and the
handler only sets a field, so it can never wait for a lock the interrupted main thread holds.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable
from types import FrameType


class StopSignals:
    """Installs handlers for ``signals`` (main thread only, like any handler); :meth:`wait` returns the first."""

    def __init__(self, signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self.received: int | None = None
        for sig in signals:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum

    def wait(self, poll_s: float = 0.5) -> int:
        """Block until one of the signals arrived, whichever thread the kernel delivered it to."""
        while self.received is None:
            time.sleep(poll_s)
        return self.received
