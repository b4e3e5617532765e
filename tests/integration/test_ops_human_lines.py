"""What an operator sees from ``kuzet worker`` and ``kuzet console serve`` (issue 14, points 5 and 7).

Both commands run for real, as subprocesses, and are stopped with Ctrl-C (SIGINT), as a person would:

* a worker pointed at a wrong Kafka address logs one clear line per back-off step that names the setting
  (``bus.kafka.bootstrap_servers``) and how many events wait in the outbox, and nothing else at warning
  level (kafka-python's own errors, several a second before, stay quiet);
* the worker and the console print short human lines on stdout: at start, every N minutes
  (``--summary-minutes``, here a few seconds), and at stop, where the worker says what it kept.

No service is needed: the broker address is a closed loopback port, the camera a looped H.264 file,
and the console reads the embedded local bus.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from event_bus.spool import Spool
from tests.integration.cli_process import CliProcess

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EVERY_MIN = "0.05"  # a progress line every 3 s
BACKOFF_LINE = re.compile(
    r"^cannot deliver to Kafka at (?P<addr>\S+) \(setting bus\.kafka\.bootstrap_servers\): .+; "
    r"(?P<depth>\d+) event\(s\) waiting in the outbox, next try in (?P<next>[\d.]+) s$"
)


def _env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("KUZET_")}
    return {**keep, "PYTHONPATH": str(REPO), "COLUMNS": "80"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _json_lines(lines: list[str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        doc = json.loads(line)  # every stderr line is a JSON log record: a stray print would fail here
        assert isinstance(doc, dict)
        out.append(doc)
    return out


def test_worker_with_a_wrong_broker_logs_one_line_per_backoff_step_and_prints_human_lines(
    vtest_h264: Path, tmp_path: Path
) -> None:
    port = _closed_port()
    spool = tmp_path / "spool.sqlite3"
    config = tmp_path / "worker.yaml"
    config.write_text(
        f"""
worker: {{id: worker-typo, status_interval_s: 1, data_dir: {tmp_path}}}
bus:
  kind: kafka
  kafka: {{bootstrap_servers: "127.0.0.1:{port}"}}
  spool_path: {spool}
storage: {{kind: local, local_dir: {tmp_path / "snapshots"}}}
cameras:
  - {{id: cam-typo, url: {vtest_h264}, loop: true, analysis_fps: 2, detectors: [person]}}
""",
        encoding="utf-8",
    )
    worker = CliProcess(
        [sys.executable, "-m", "kuzet.cli", "worker", "--config", str(config), "--summary-minutes", EVERY_MIN],
        tmp_path,
        _env(),
    )
    try:
        worker.wait_for("cameras up: 1/1 (cam-typo)", timeout_s=120.0)
        worker.wait_for("running ", timeout_s=60.0)
        worker.wait_for("cannot deliver to Kafka", timeout_s=180.0, count=2, stream="err")
    finally:
        code = worker.interrupt()
    assert code == 0, worker.err[-10:]

    # -- stderr: the back-off lines are the only warnings, each one step, naming the setting and the backlog --------
    logs = _json_lines(worker.err)
    loud = [d for d in logs if d["level"] in ("warning", "error", "critical")]
    steps = [d for d in loud if d["logger"] == "event_bus.relay"]
    assert len(steps) >= 2 and steps == loud, [f"{d['logger']}: {d['msg'][:120]}" for d in loud]
    assert not [d for d in logs if d["logger"].startswith("kafka")], "kafka-python's own lines stay quiet"
    previous: tuple[datetime, float] | None = None
    for doc in steps:
        m = BACKOFF_LINE.match(doc["msg"])
        assert m, doc["msg"]
        assert m["addr"] == f"127.0.0.1:{port}"
        assert int(m["depth"]) >= 1 and int(m["depth"]) == doc["outbox_depth"]  # heartbeats wait in the outbox
        at = datetime.fromisoformat(doc["ts"])
        if previous is not None:  # one line per step: the next line comes no sooner than the retry it announced
            assert (at - previous[0]).total_seconds() >= previous[1] - 0.01, (previous, doc)
        previous = (at, float(m["next"]))

    # -- stdout: start, cameras up, progress every N minutes, stop with what was kept ----------------------------------
    out = worker.out
    assert out[0] == (
        f"[worker-typo] started: 1 camera(s) starting; events go to Kafka at 127.0.0.1:{port} "
        "(setting bus.kafka.bootstrap_servers)"
    ), out[:3]
    # progress lines only while it runs: none during the stop (it once said "0/0 camera(s) up, -12.2 frames/s")
    progress = [line for line in out if line.startswith("[worker-typo] running ")]
    line = r": 1/1 camera\(s\) up, [\d.]+ frames/s analysed, \d+ incident\(s\) \(\d+ event\(s\)\), outbox \d+$"
    assert progress and not [p for p in progress if not re.search(line, p)], progress
    assert out[-2] == "[worker-typo] stopping: ending open incidents, flushing the outbox", out[-3:]
    stopped = re.fullmatch(
        r"\[worker-typo\] stopped after \S+: \d+ incident\(s\); (\d+) event\(s\) kept in (\S+), sent on the next start",
        out[-1],
    )
    assert stopped and stopped[2] == str(spool), out[-1]
    with Spool(spool) as outbox:  # the number said is what the outbox really keeps
        assert outbox.depth() == int(stopped[1]) >= 1, out[-1]


def test_console_prints_listening_progress_and_stop_lines(tmp_path: Path) -> None:
    config = tmp_path / "console.yaml"
    config.write_text(
        f"""
database: {tmp_path / "console.sqlite3"}
bus: {{kind: local, local_path: {tmp_path / "bus.sqlite3"}}}
storage: {{kind: local, local_dir: {tmp_path / "snapshots"}}}
port: {_closed_port()}
""",
        encoding="utf-8",
    )
    args = ["console", "serve", "--config", str(config), "--metrics-port", "0", "--summary-minutes", EVERY_MIN]
    console = CliProcess([sys.executable, "-m", "kuzet.cli", *args], tmp_path, _env())
    try:
        console.wait_for("listening on http://127.0.0.1:", timeout_s=120.0)
        console.wait_for("[console] running ", timeout_s=60.0, count=2)
    finally:
        code = console.interrupt()
    assert code in (0, 130), console.err[-10:]  # uvicorn stops cleanly, then re-raises SIGINT: the shell's 130
    out = console.out
    assert re.fullmatch(
        rf"\[console\] listening on http://127\.0\.0\.1:\d+ \(database {re.escape(str(tmp_path))}/console\.sqlite3; "
        r"reading the local bus\)",
        out[0],
    ), out[:2]
    progress = [line for line in out if line.startswith("[console] running ")]
    line = r": \d+ live browser\(s\), \d+ feed message\(s\) pushed, \d+/\d+ camera\(s\) up$"
    assert len(progress) >= 2 and not [p for p in progress if not re.search(line, p)], progress
    assert re.fullmatch(r"\[console\] stopped after \S+", out[-1]), out[-3:]
