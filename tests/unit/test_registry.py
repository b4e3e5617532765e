"""Camera registry records and file import validation (no broker needed); the assignment plan: test_camera_plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.registry import (
    InvalidCameraRecord,
    decode_record,
    encode_camera,
    load_camera_file,
    partition_for,
    validate_camera,
)

URL = "rtsp://127.0.0.1:8554/cam"


def _cam(cid: str = "cam-1", **kw: object) -> dict[str, object]:
    return {"id": cid, "url": URL, "analysis_fps": 2.0, **kw}


def test_record_round_trip_and_tombstone() -> None:
    cam = validate_camera(_cam(zones=[{"name": "road", "polygon": [[0, 0.3], [1, 0.3], [1, 1]]}]))
    entry = decode_record(b"cam-1", encode_camera(cam, "test"))
    assert entry.camera == cam
    doc = json.loads(encode_camera(cam))
    assert doc["schema_version"] == 1 and doc["camera"]["id"] == "cam-1"
    tomb = decode_record(b"cam-1", None)
    assert tomb.camera is None and tomb.camera_id == "cam-1"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_cam("Bad Id!"), "camera id"),
        (_cam(url="ftp://host/x"), "scheme"),
        (_cam(url="rtsp://admin:hunter2@10.0.0.1/s"), "must not hold credentials"),
        (_cam(analysis_fps=0), "analysis_fps"),
        (_cam(analysis_fps=31), "analysis_fps"),
        (_cam(zones=[{"name": "z", "polygon": [[0, 0], [1.2, 0], [1, 1]]}]), "outside the frame"),
        (_cam(credentials="hunter2"), "secret reference"),
        (_cam(colour="red"), "unknown field"),
    ],
)
def test_invalid_cameras_are_refused_with_clear_messages(data: dict[str, object], expected: str) -> None:
    with pytest.raises(InvalidCameraRecord) as err:
        validate_camera(data)
    assert expected in str(err.value)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (None, b"{}", "no key"),
        (b"Bad Key", None, "bad camera id"),
        (b"cam-1", b"{nope", "not JSON"),
        (b"cam-1", b"[1]", "JSON object"),
        (b"cam-1", json.dumps({"schema_version": 2, "camera": _cam()}).encode(), "schema_version"),
        (b"cam-1", json.dumps({"camera": _cam("cam-2")}).encode(), "not its key"),
        (b"cam-1", json.dumps({"camera": _cam(url="rtsp://u:hunter2@h/x")}).encode(), "credentials"),
    ],
)
def test_bad_records_are_rejected(key: bytes | None, value: bytes | None, expected: str) -> None:
    with pytest.raises(InvalidCameraRecord) as err:
        decode_record(key, value)
    assert expected in str(err.value)
    assert "hunter2" not in str(err.value)


def test_csv_import_validates_everything_and_finds_duplicates(tmp_path: Path) -> None:
    good = tmp_path / "cams.csv"
    good.write_text(
        "id,url,credentials,analysis_fps,detectors,zones,enabled\n"
        f'cam-1,{URL},env:KUZET_CAM_1,2,person;fire,"[{{""name"": ""r"", ""polygon"": [[0,0],[1,0],[1,1]]}}]",true\n'
        f"cam-2,{URL},,1,person,,no\n",
        encoding="utf-8",
    )
    cams = load_camera_file(good)
    assert [c.id for c in cams] == ["cam-1", "cam-2"]
    assert cams[0].detectors == ["person", "fire"] and cams[0].zones[0].name == "r"
    assert cams[0].credentials == "env:KUZET_CAM_1"
    assert cams[1].enabled is False
    bad = tmp_path / "bad.csv"
    bad.write_text(f"id,url,analysis_fps\ncam-1,{URL},1\ncam-2,{URL},99\ncam-1,{URL},1\n", encoding="utf-8")
    with pytest.raises(InvalidCameraRecord) as err:
        load_camera_file(bad)
    msg = str(err.value)
    assert "2 problem(s)" in msg and "duplicate camera id 'cam-1'" in msg and "line 3" in msg


def test_yaml_import(tmp_path: Path) -> None:
    f = tmp_path / "cams.yaml"
    f.write_text(f"cameras:\n  - id: a\n    url: {URL}\n  - id: b\n    url: {URL}\n    analysis_fps: 0.5\n")
    assert [c.id for c in load_camera_file(f)] == ["a", "b"]
    f.write_text("just: text\n")
    with pytest.raises(InvalidCameraRecord):
        load_camera_file(f)


def test_partition_for_matches_the_java_murmur2_partitioner() -> None:
    # murmur2 is the Java client's default too: both land a camera on the same partition
    assert {partition_for(f"cam-{i}") for i in range(500)} == set(range(64))
    assert partition_for("cam-1") == partition_for("cam-1")
