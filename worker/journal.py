"""An optional JSON-lines record of the incidents a worker produced (audits, fault-injection tests)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from event_bus.events import Incident


class Journal:
    """Appends each incident after it is in the spool; flushed per line so a SIGKILL loses at most one."""

    def __init__(self, sink: IO[str]) -> None:
        self._sink = sink
        self._lock = threading.Lock()

    @classmethod
    @contextmanager
    def open(cls, path: Path | None) -> Iterator[Journal | None]:
        if path is None:
            yield None
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as sink:
            yield cls(sink)

    def write(self, incident: Incident) -> None:
        with self._lock:
            self._sink.write(incident.model_dump_json() + "\n")
            self._sink.flush()
