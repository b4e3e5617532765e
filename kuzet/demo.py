"""``kuzet demo``: one worker on a sample clip with embedded defaults, incidents live in the terminal.

No Kafka, S3 or PostgreSQL: the embedded local bus, a local snapshot folder and
a JSON-lines file stand in for them. The zone is drawn across the road of the
vtest clip, so walkers crossing it raise ``person_in_zone`` incidents.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.config import CameraConfig, KuzetConfig, Zone
from dispatch.inprocess import RunningConsole, start_console_thread
from event_bus.events import Incident, IncidentState
from worker.journal import Journal
from worker.runtime import Worker

DEMO_CLIP = Path(__file__).parent / "demo_assets" / "vtest-excerpt.mp4"
# The road in the vtest clip runs left to right; this band crosses it in the middle of the picture.
ROAD_ZONE = Zone(
    name="road-crossing",
    polygon=[(0.44, 0.30), (0.64, 0.30), (0.64, 0.74), (0.44, 0.74)],
    severity="medium",
)


def demo_config(
    clip: Path, out_dir: Path, analysis_fps: float, realtime: bool, model_cache: Path | None
) -> KuzetConfig:
    camera = CameraConfig(
        id="demo-cam-1",
        name="Campus road (vtest)",
        location="demo",
        url=str(clip),
        analysis_fps=analysis_fps,
        detectors=["person", "fire"],
        zones=[ROAD_ZONE],
        realtime=realtime,
    )
    doc: dict[str, Any] = {
        "cameras": [camera],
        "bus": {"kind": "local", "local_path": out_dir / "bus.sqlite3", "spool_path": out_dir / "spool.sqlite3"},
        "storage": {"kind": "local", "local_dir": out_dir / "snapshots"},
        "worker": {"id": "demo-worker", "data_dir": out_dir},
    }
    if model_cache is not None:
        doc["model_cache"] = model_cache
    return KuzetConfig.model_validate(doc)


@dataclass
class DemoResult:
    frames_analysed: int = 0
    seconds: float = 0.0
    starts: Counter[str] = field(default_factory=Counter)
    events: int = 0
    incidents_file: Path | None = None
    snapshots_dir: Path | None = None
    console: RunningConsole | None = None

    @property
    def fps(self) -> float:
        return self.frames_analysed / self.seconds if self.seconds > 0 else 0.0


class _Recorder:
    """Writes every incident event as one JSON line (the worker's journal) and keeps the last few for the table."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._lock = threading.Lock()
        self.recent: list[Incident] = []
        self._all: list[Incident] = []
        self.result = DemoResult()

    def incident(self, inc: Incident) -> None:
        with self._lock:
            self._journal.write(inc)
            self.result.events += 1
            if inc.state is IncidentState.START:
                self.result.starts[inc.type.value] += 1
            self.recent = [*self.recent[-9:], inc]
            self._all.append(inc)

    def since(self, n: int) -> list[Incident]:
        """Events after the first ``n`` (the plain, non-terminal output prints each once)."""
        with self._lock:
            return self._all[n:]


def _table(recent: list[Incident]) -> Table:
    """The live table; short columns so it fits 80 (snapshot paths are in incidents.jsonl and the summary)."""
    table = Table(title="Incidents (latest)")
    for col in ("time", "type", "state", "zone", "track", "conf", "snap"):
        table.add_column(col, no_wrap=True, overflow="ellipsis")
    for inc in reversed(recent):
        table.add_row(*_fields(inc))
    return table


def _fields(inc: Incident) -> tuple[str, ...]:
    return (
        inc.observed_at.strftime("%H:%M:%S"),
        inc.type.value,
        inc.state.value,
        (inc.zone or "-")[:16],
        "-" if inc.track_id is None else str(inc.track_id),
        f"{inc.confidence:.2f}",
        "yes" if inc.snapshot else "-",
    )


def plain_line(inc: Incident) -> str:
    """One line per incident event when the output is not a terminal (a pipe, a log file, CI)."""
    time_, kind, state, zone, track, conf, snap = _fields(inc)
    return f"{time_}  {kind:<15} {state:<6} zone={zone:<10} track={track:<4} conf={conf} snapshot={snap}"


def run_demo(
    clip: Path = DEMO_CLIP,
    out_dir: Path = Path("var/demo"),
    analysis_fps: float = 5.0,
    realtime: bool = True,
    model_cache: Path | None = None,
    console: Console | None = None,
    console_port: int | None = None,
) -> DemoResult:
    """Run the worker over the clip until it ends; returns the summary also printed to the terminal.

    With ``console_port`` the dispatch console serves on localhost (that port, or a free one) from the
    demo's local bus; it is still running when this returns (``result.console``), so people can look.
    """
    console = console or Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("bus.sqlite3", "spool.sqlite3"):
        for suffix in ("", "-wal", "-shm", ".lock"):
            (out_dir / f"{stale}{suffix}").unlink(missing_ok=True)
    web: RunningConsole | None = None
    if console_port is not None:
        web = start_console_thread(
            bus_path=out_dir / "bus.sqlite3",
            database=out_dir / "console.sqlite3",
            snapshots_dir=out_dir / "snapshots",
            port=console_port,
        )
        console.print(web.banner())
    cfg = demo_config(clip, out_dir, analysis_fps, realtime, model_cache)
    camera = cfg.cameras[0]
    incidents_file = out_dir / "incidents.jsonl"
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    expected = _expected_frames(clip, analysis_fps)
    task = progress.add_task(f"analysing {clip.name}", total=expected)
    incidents_file.unlink(missing_ok=True)
    with Journal.open(incidents_file) as journal:
        assert journal is not None
        rec = _Recorder(journal)
        worker = Worker(cfg, on_incident=rec.incident)
        t0 = time.monotonic()
        worker.start()
        shown = 0  # events printed so far (plain output)
        try:
            if console.is_terminal:
                with Live(Group(progress, _table([])), console=console, refresh_per_second=4) as live:
                    while worker.camera_running(camera.id):
                        stats = worker.camera_stats().get(camera.id)
                        progress.update(task, completed=min(stats.frames_analysed if stats else 0, expected))
                        live.update(Group(progress, _table(rec.recent)))
                        time.sleep(0.25)
            else:  # no redraws in a pipe: one plain line per incident event, in order
                while True:
                    running = worker.camera_running(camera.id)
                    for inc in rec.since(shown):
                        console.print(plain_line(inc), markup=False, highlight=False, soft_wrap=True)
                        shown += 1
                    if not running:
                        break
                    time.sleep(0.25)
            worker.drain()
            if not console.is_terminal:
                for inc in rec.since(shown):
                    console.print(plain_line(inc), markup=False, highlight=False, soft_wrap=True)
                rec.result.frames_analysed = worker.camera_stats()[camera.id].frames_analysed
                rec.result.seconds = time.monotonic() - t0
        finally:
            worker.stop()
    result = rec.result
    result.console = web
    result.incidents_file = incidents_file
    result.snapshots_dir = cfg.storage.local_dir
    _summary(console, result)
    return result


def _expected_frames(clip: Path, analysis_fps: float) -> int:
    import av

    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000  # microseconds (AV_TIME_BASE)
        else:
            duration = 0.0
    return max(1, round(duration * analysis_fps))


def _summary(console: Console, result: DemoResult) -> None:
    table = Table(title="Demo summary", show_header=False)
    table.add_row("frames analysed", str(result.frames_analysed))
    table.add_row("analysed fps", f"{result.fps:.1f}")
    table.add_row("incident events", str(result.events))
    for kind, count in sorted(result.starts.items()):
        table.add_row(f"incidents: {kind}", str(count))
    if not result.starts:
        table.add_row("incidents", "none")
    table.add_row("events (JSON lines)", str(result.incidents_file))
    table.add_row("snapshots", str(result.snapshots_dir))
    console.print(table)
    console.print(json.dumps({"frames": result.frames_analysed, "fps": round(result.fps, 2), **result.starts}))
