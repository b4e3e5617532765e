"""The committed JSON Schemas match the models, and validate what the models produce."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dispatch.testing import make_incident
from event_bus import schemas
from event_bus.events import EVENT_TYPES, CameraStatus, SnapshotRef
from kuzet.commands.schemas import app


def test_committed_schemas_match_models() -> None:
    assert schemas.check() == [], "run `kuzet schemas export` and commit event_bus/schemas/"


def test_every_type_has_a_file() -> None:
    names = {p.name for p in schemas.SCHEMA_DIR.glob("*.json")}
    for name, model in EVENT_TYPES.items():
        assert f"{name}.v{schemas.version_of(model)}.json" in names


def test_valid_events_pass_and_bad_ones_fail() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    inc = make_incident(
        type="fire",
        started_at=t,
        snapshot=SnapshotRef(store="s3", bucket="kuzet-snapshots", key="cam-1/x.jpg", sha256="a" * 64, size=10),
    )
    doc = json.loads(inc.model_dump_json())
    schemas.validate("incident", doc)
    st = CameraStatus(camera_id="cam-1", state="down", input_fps=0, analysed_fps=0, reconnects=2, worker_id="w", at=t)
    schemas.validate("camera-status", json.loads(st.model_dump_json()))
    for broken in (
        {**doc, "camera_id": "Bad Id"},
        {**doc, "extra": 1},
        {k: v for k, v in doc.items() if k != "type"},
        {**doc, "event_id": "not-a-uuid"},
    ):
        with pytest.raises(schemas.SchemaValidationError):
            schemas.validate("incident", broken)


def test_drift_is_detected(tmp_path: Path) -> None:
    schemas.export(tmp_path)
    assert schemas.check(tmp_path) == []
    f = tmp_path / "incident.v2.json"
    f.write_text(f.read_text().replace('"seq"', '"sequence"'))
    assert any("incident.v2.json" in p for p in schemas.check(tmp_path))
    runner = CliRunner()
    assert runner.invoke(app, ["check", "--dir", str(tmp_path)]).exit_code == 1
    assert runner.invoke(app, ["export", "--dir", str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["check", "--dir", str(tmp_path)]).exit_code == 0
