"""The configuration file of one scale-out worker on Kafka, for the city-scale benchmark and the scale-out tests.

Each of them starts ``kuzet.commands.scaleout`` processes with their spool, local bus file and snapshots under
a directory of their own; only the models and a few tuning sections differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PERSON_MODEL: dict[str, Any] = {
    "name": "person",
    "manifest_id": "ssdlite-person",
    "input_size": 300,
    "labels": {"person": "person"},
    "threads": 1,
}


def write_worker_config(
    d: Path,
    worker_id: str,
    bootstrap: str,
    models: list[dict[str, Any]],
    *,
    delivery_timeout_s: float | None = 10.0,
    **sections: Any,
) -> Path:
    """Write ``d/config.yaml`` and return its path; ``sections`` add or replace top-level sections."""
    d.mkdir(parents=True, exist_ok=True)
    kafka: dict[str, Any] = {"bootstrap_servers": bootstrap}
    if delivery_timeout_s is not None:
        kafka["delivery_timeout_s"] = delivery_timeout_s
    cfg: dict[str, Any] = {
        "worker": {"id": worker_id, "data_dir": str(d)},
        "models": models,
        "bus": {
            "kind": "kafka",
            "kafka": kafka,
            "spool_path": str(d / "spool.sqlite3"),
            "local_path": str(d / "bus.sqlite3"),
        },
        "storage": {"kind": "local", "local_dir": str(d / "snapshots")},
        "log_level": "warning",
        **sections,
    }
    path = d / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path
