"""docs/quickstart.md runs as written: its shell blocks, in order, against this test's real services.

The doc cannot rot: a renamed command, option or setting breaks this test. What the test does not run,
and why, is said in the doc itself: the ``install`` block (this checkout is installed already) and the
``services`` block (the session's Kafka, SeaweedFS S3 and RTSP server are running; the test exports the
variables that block would). Blocks marked ``second-terminal`` are long-running: the test starts them
in the background and waits for the line named in ``until=...``, as a person would watch for it. The
console's port 8080 is replaced by a free port (other tests may hold 8080); nothing else is changed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy.services._proc import free_port
from tests.integration.cli_process import CliProcess

pytestmark = [pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "quickstart.md"
BLOCK = re.compile(r"^```sh([^\n]*)\n(.*?)^```", re.S | re.M)
NOT_RUN = {"install", "services"}


@dataclass
class Block:
    kind: str  # "" (run to completion), "second-terminal", or one of NOT_RUN
    until: str
    script: str


def blocks(text: str) -> list[Block]:
    out = []
    for info, script in BLOCK.findall(text):
        words = shlex.split(info)
        kind = next((w for w in words if "=" not in w), "")
        until = next((w.split("=", 1)[1] for w in words if w.startswith("until=")), "")
        out.append(Block(kind, until, script))
    return out


def test_doc_has_the_blocks_the_test_expects() -> None:
    kinds = [b.kind for b in blocks(DOC.read_text(encoding="utf-8"))]
    assert kinds[:2] == ["install", "services"]
    assert kinds.count("second-terminal") == 2 and all(k in ("", "second-terminal", *NOT_RUN) for k in kinds)


def test_quickstart_commands_run_as_written(
    kafka_bootstrap: str, s3_service: Any, rtsp_server: Any, tmp_path: Path
) -> None:
    clip = REPO / "kuzet" / "demo_assets" / "vtest-excerpt.mp4"
    suffix = str(int(time.time()) % 100000)
    rtsp_server.add_stream(f"gate-1-{suffix}", clip)
    rtsp_server.add_stream(f"gate-2-{suffix}", clip)
    port = free_port()
    text = DOC.read_text(encoding="utf-8").replace("8080", str(port))
    # what the skipped services block exports, from this test's services
    exports = {
        "KAFKA": kafka_bootstrap,
        "S3_ENDPOINT": s3_service.endpoint,
        "KUZET_S3_ACCESS_KEY": s3_service.access_key,
        "KUZET_S3_SECRET_KEY": s3_service.secret_key,
        "CAM1_URL": rtsp_server.url(f"gate-1-{suffix}"),
        "CAM2_URL": rtsp_server.url(f"gate-2-{suffix}"),
    }
    (tmp_path / "env.sh").write_text(
        "".join(f"export {k}={shlex.quote(v)}\n" for k, v in exports.items()), encoding="utf-8"
    )
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KUZET_")},
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "COLUMNS": "80",
    }
    running: list[CliProcess] = []
    timings: list[str] = []
    try:
        for i, block in enumerate(blocks(text)):
            if block.kind in NOT_RUN:
                continue
            started = time.monotonic()
            if block.kind == "second-terminal":
                bg = CliProcess(["bash", "-c", f"source env.sh && exec {block.script.strip()}"], tmp_path, env,
                                merge_stderr=True)  # fmt: skip
                running.append(bg)
                bg.wait_for(block.until, timeout_s=240.0)
            else:
                proc = subprocess.run(
                    ["bash", "-c", f"set -euo pipefail\nsource env.sh\n{block.script}"],
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                assert proc.returncode == 0, (
                    f"block {i}:\n{block.script}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
                )
            timings.append(f"block {i} ({block.kind or 'run'}): {time.monotonic() - started:.1f} s")
    finally:
        stopping = time.monotonic()
        codes = [bg.interrupt(timeout_s=180.0) for bg in reversed(running)]  # Ctrl-C, as the doc says
        timings.append(f"Ctrl-C to both stopped: {time.monotonic() - stopping:.1f} s")
    print("\n" + "\n".join(timings))
    tails = "\n\n".join("\n".join(bg.out[-60:]) for bg in running)
    # the console (uvicorn) stops cleanly, then re-raises SIGINT: the shell's 130; the worker exits 0
    assert len(codes) == 2 and codes[0] in (0, 130) and codes[1] == 0, f"{codes}\n{tails}"
    assert any("stopped after" in line for line in running[0].out), tails
