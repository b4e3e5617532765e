"""deploy/compose.yaml: its `kuzet` commands parse, its settings exist, and scaled workers share cameras out.

The build machines have no Docker, so the containers are not run here; what can rot without anyone
noticing is checked instead: a command line the CLI no longer accepts (the console service once ran
`kuzet console --host ...`, which is not a command), an environment variable that names no setting (it
would be silently ignored), and a worker that runs a fixed camera list (``--scale worker=3`` would then
run every camera three times).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from core.config import KuzetConfig, load_config
from dispatch.settings import ConsoleSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text(encoding="utf-8"))
SECRET_VALUES = {"KUZET_S3_ACCESS_KEY", "KUZET_S3_SECRET_KEY", "KUZET_KAFKA_PASSWORD"}  # behind env: refs


def _argv(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    if service.get("entrypoint") == ["/bin/sh", "-c"]:
        (line,) = command
        return shlex.split(line.replace("$$HOSTNAME", "worker-a").removeprefix("exec "))
    return list(command)


def _setting_exists(model: type[BaseModel], path: list[str]) -> bool:
    fields = model.model_fields
    if not path or path[0] not in fields:
        return False
    if len(path) == 1:
        return True
    annotation = fields[path[0]].annotation
    return isinstance(annotation, type) and issubclass(annotation, BaseModel) and _setting_exists(annotation, path[1:])


@pytest.mark.parametrize("name", ["worker", "console", "kafka-acls"])
def test_compose_command_parses(name: str) -> None:
    argv = _argv(COMPOSE["services"][name])
    assert argv[0] == "kuzet"
    proc = subprocess.run(
        [sys.executable, "-m", "kuzet.cli", *argv[1:], "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr}"


@pytest.mark.parametrize(
    ("name", "prefix", "model"),
    [
        ("worker", "KUZET_", KuzetConfig),
        ("console", "KUZET_CONSOLE_", ConsoleSettings),
        ("kafka-acls", "KUZET_", KuzetConfig),  # the admin's bus settings, read as a worker reads them
    ],
)
def test_compose_environment_names_real_settings(name: str, prefix: str, model: type[BaseModel]) -> None:
    env = COMPOSE["services"][name]["environment"]
    for var in env:
        if var in SECRET_VALUES or not var.startswith("KUZET_"):
            continue
        assert var.startswith(prefix), f"{name}: {var} is not read by this service (its prefix is {prefix})"
        path = var.removeprefix(prefix).lower().split("__")
        assert _setting_exists(model, path), f"{name}: {var} names no setting"


def test_scaled_workers_take_cameras_from_the_registry() -> None:
    worker = COMPOSE["services"]["worker"]
    argv = _argv(worker)
    assert argv[1] == "scale-worker", "a fixed camera list would run every camera once per replica"
    assert "--worker-id" in argv, "replicas need distinct worker ids"
    mounted = [v.split(":")[0] for v in worker["volumes"]]
    assert "/app/var" in mounted, "each replica keeps its outbox in its own anonymous volume"
    config = next(v for v in worker["volumes"] if v.endswith("/etc/kuzet/worker.yaml:ro")).split(":")[0]
    assert load_config(REPO / "deploy" / config).cameras == []
    from worker.registry import load_camera_file

    assert load_camera_file(REPO / "deploy" / "config" / "cameras.yaml")
