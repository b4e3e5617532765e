"""Analytics rules in the configuration and the camera registry: every bad rule is a clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.config import CameraConfig, ConfigError, load_config
from worker.registry import InvalidCameraRecord, validate_camera

REPO = Path(__file__).resolve().parents[2]
ZONES = "[{name: stop, polygon: [[0.5, 0.5], [1, 0.5], [1, 1]]}]"
LINE = "{name: gate, points: [[0.5, 0.1], [0.5, 0.9]], in_side: left}"
SECTION = "{name: s1, entry: [[0.2, 0], [0.2, 1]], exit: [[0.8, 0], [0.8, 1]], distance_m: 40, limit_kmh: 50}"


def config(tmp_path: Path, analytics: str, detectors: str = "[person, plate]") -> Path:
    path = tmp_path / "kuzet.yaml"
    camera = f'{{id: c1, url: "rtsp://h/x", detectors: {detectors}, zones: {ZONES}, analytics: {analytics}}}'
    path.write_text(f"cameras:\n  - {camera}\n", encoding="utf-8")
    return path


def test_a_full_set_of_rules_loads(tmp_path: Path) -> None:
    cfg = load_config(
        config(
            tmp_path,
            f"{{lines: [{LINE}], crowding: [{{zone: stop, max_persons: 5, for_s: 10}}],"
            " no_stopping: [{zone: stop, stopped_s: 30}],"
            " lanes: [{name: east, zone: stop, direction: [1, 0], min_frames: 3}],"
            f" speed_sections: [{SECTION}]}}",
        )
    )
    analytics = cfg.cameras[0].analytics
    assert analytics.lines[0].in_side == "left" and analytics.speed_sections[0].distance_m == 40
    assert analytics.traffic


@pytest.mark.parametrize(
    ("analytics", "message"),
    [
        ("{lines: [{name: g, points: [[0.5, 0.1], [1.5, 0.9]], in_side: left}]}", "outside the frame"),
        ("{lines: [{name: g, points: [[0.5, 0.5], [0.5, 0.5]], in_side: left}]}", "zero-length segment"),
        ("{lines: [{name: g, points: [[0.5, 0.5]], in_side: left}]}", "at least 2 items"),
        ("{lines: [{name: g, points: [[0.1, 0.1], [0.5, 0.5]]}]}", "analytics.lines.0.in_side: Field required"),
        ("{lines: [{name: g, points: [[0.1, 0.1], [0.5, 0.5]], in_side: up}]}", "'left' or 'right'"),
        ("{lines: [{name: g, points: [[0.1, 0.1], [0.5, 0.5]], in_side: left, labels: [bike]}]}", "unknown label"),
        (f"{{lines: [{LINE}, {LINE}]}}", "line names must be unique"),
        ("{crowding: [{zone: stop, max_persons: 5, for_s: 0}]}", "for_s: Input should be greater than 0"),
        ("{crowding: [{zone: nowhere, max_persons: 5, for_s: 3}]}", "names zone 'nowhere'"),
        ("{no_stopping: [{zone: stop, stopped_s: -1}]}", "stopped_s: Input should be greater than 0"),
        ("{lanes: [{name: l, zone: stop, direction: [0, 0]}]}", "non-zero vector"),
        ("{lanes: [{name: l, zone: stop, direction: [1, 0], min_frames: 0}]}", "min_frames"),
        (
            "{speed_sections: [{name: s, entry: [[0.2, 0], [0.2, 1]], exit: [[0.8, 0], [0.8, 1]], limit_kmh: 50}]}",
            "distance_m: Field required",
        ),
        (
            "{speed_sections: [{name: s, entry: [[0.2, 0], [0.2, 1]], exit: [[0.2, 0], [0.2, 1]], distance_m: 9, limit_kmh: 50}]}",  # noqa: E501
            "entry and exit lines must differ",
        ),
        (
            "{speed_sections: [{name: s, entry: [[0.2, 0], [0.2, 1]], exit: [[0.8, 0], [0.8, 1]], distance_m: 0, limit_kmh: 50}]}",  # noqa: E501
            "distance_m",
        ),
    ],
)
def test_bad_rules_are_named_in_the_error(tmp_path: Path, analytics: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"cameras\.0") as err:
        load_config(config(tmp_path, analytics))
    assert message in str(err.value)


def test_rules_need_the_labels_their_detectors_give(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"need label\(s\) \['person'\]"):
        load_config(config(tmp_path, "{crowding: [{zone: stop, max_persons: 5, for_s: 3}]}", detectors="[plate]"))
    with pytest.raises(ConfigError, match="traffic rules need a plate or vehicle detector"):
        load_config(config(tmp_path, "{no_stopping: [{zone: stop, stopped_s: 3}]}", detectors="[person]"))


def test_registry_records_take_the_same_rules() -> None:
    record = {
        "id": "c1",
        "url": "rtsp://h/x",
        "zones": [{"name": "stop", "polygon": [[0.5, 0.5], [1, 0.5], [1, 1]]}],
        "analytics": {"lines": [{"name": "gate", "points": [[0.5, 0.1], [0.5, 0.9]], "in_side": "right"}]},
    }
    assert isinstance(validate_camera(record), CameraConfig)
    record["analytics"] = {"no_stopping": [{"zone": "stop", "stopped_s": 0}]}
    with pytest.raises(InvalidCameraRecord, match="stopped_s"):
        validate_camera(record)


def test_cli_check_config_prints_the_rule_problems(tmp_path: Path) -> None:
    path = config(tmp_path, "{lines: [{name: g, points: [[0.5, 0.5], [0.5, 0.5]], in_side: left}]}")
    proc = subprocess.run(
        [sys.executable, "-m", "kuzet.cli", "check-config", str(path)], capture_output=True, text=True, cwd=REPO
    )
    out = " ".join((proc.stdout + proc.stderr).split())  # the console wraps long lines
    assert proc.returncode == 2, out
    assert "cameras.0.analytics.lines.0.points" in out and "zero-length segment" in out
    assert "Traceback" not in out
