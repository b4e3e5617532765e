"""Configuration: unknown keys and bad values are clear errors; secrets are references and never print."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.config import CameraConfig, ConfigError, KuzetConfig, load_config, resolve_secret

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kuzet.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_is_valid() -> None:
    cfg = load_config(REPO / "docs" / "config.example.yaml")
    assert cfg.cameras[0].zones[0].name == "crossing"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"worker\.colour: unknown key"):
        load_config(write(tmp_path, "worker:\n  id: w1\n  colour: red\n"))


@pytest.mark.parametrize(
    ("camera", "message"),
    [
        ('{id: "Bad Id", url: "rtsp://h/x"}', "cameras.0.id"),
        ('{id: c1, url: "rtsp://h/x", analysis_fps: 100}', "less than or equal to 30"),
        ('{id: c1, url: "rtsp://h/x", analysis_fps: 0}', "greater than 0"),
        ('{id: c1, url: "ftp://h/x"}', "unsupported stream URL scheme"),
        ('{id: c1, url: "rtsp://user:pw@h/x"}', "must not hold credentials"),
        ('{id: c1, url: "rtsp://h/x", credentials: "hunter2"}', "secret reference"),
        ('{id: c1, url: "rtsp://h/x", zones: [{name: z, polygon: [[0, 0], [1.5, 0], [1, 1]]}]}', "outside the frame"),
        ('{id: c1, url: "rtsp://h/x", zones: [{name: z, polygon: [[0, 0], [1, 1], [1, 0], [0, 1]]}]}', "self-crossing"),
        ('{id: c1, url: "rtsp://h/x", detectors: [plates9]}', "unknown detector"),
    ],
)
def test_bad_camera_values_are_clear_errors(tmp_path: Path, camera: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, f"cameras:\n  - {camera}\n"))


def test_duplicate_camera_ids_refused() -> None:
    cams = [CameraConfig(id="c1", url="rtsp://h/a"), CameraConfig(id="c1", url="rtsp://h/b")]
    with pytest.raises(ValueError, match="duplicate camera ids: c1"):
        KuzetConfig(cameras=cams)


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "cameras: [\n"))
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "absent.yaml")


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUZET_BUS__KIND", "kafka")
    cfg = load_config(write(tmp_path, "bus:\n  kind: local\n"))
    assert cfg.bus.kind == "kafka"


def test_secret_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_CREDS", "user:s3cret")
    secret = resolve_secret("env:CAM_CREDS")
    assert secret.get_secret_value() == "user:s3cret"
    assert "s3cret" not in repr(secret) and "s3cret" not in str(secret)
    (tmp_path / "pw").write_text("filepw\n")
    assert resolve_secret(f"file:{tmp_path / 'pw'}").get_secret_value() == "filepw"
    with pytest.raises(ConfigError, match="not set"):
        resolve_secret("env:KUZET_NOT_SET_ANYWHERE")
    with pytest.raises(ConfigError, match="env:NAME or file:/path"):
        resolve_secret("plain-password")


def test_cli_check_config_reports_every_problem_without_crashing(tmp_path: Path) -> None:
    path = write(tmp_path, 'worker:\n  colour: red\ncameras:\n  - {id: "Bad Id", url: "rtsp://u:topsecret@h/x"}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "kuzet.cli", "check-config", str(path)], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    assert "worker.colour: unknown key" in out and "cameras.0.url" in out and "cameras.0.id" in out
    assert "Traceback" not in out
    assert "topsecret" not in out


def test_check_config_lists_key_typos_and_unknown_detector_together(tmp_path: Path) -> None:
    from core.config_check import check_config_file

    path = write(tmp_path, "worker:\n  colour: red\ncameras:\n  - {id: c1, url: rtsp://h/x, detectors: [persn]}\n")
    problems = check_config_file(path).problems
    assert any(p.startswith("worker.colour: unknown key") for p in problems)
    assert any(p.startswith("cameras.0.detectors: camera c1 uses unknown detector(s) ['persn']") for p in problems)


def test_check_config_resolves_secret_references_without_reading_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.config_check import check_config_file

    monkeypatch.delenv("KUZET_S3_ACCESS_KEY", raising=False)
    monkeypatch.setenv("KUZET_S3_SECRET_KEY", "s3-secret-value")
    monkeypatch.delenv("KUZET_CAM_UNSET", raising=False)
    cred = tmp_path / "cam.cred"
    text = (
        f"camera_policy: {{credential_refs: ['env:KUZET_CAM_*', 'file:{tmp_path}/*']}}\n"
        "storage: {kind: s3}\ncameras:\n"
        "  - {id: c1, url: rtsp://h/x, credentials: env:KUZET_CAM_UNSET}\n"
        f"  - {{id: c2, url: rtsp://h/y, credentials: 'file:{cred}'}}\n"
    )
    path = write(tmp_path, text)
    problems = check_config_file(path).problems
    assert "storage.s3.access_key: secret env:KUZET_S3_ACCESS_KEY is not set in the environment" in problems
    assert "cameras.0.credentials: secret env:KUZET_CAM_UNSET is not set in the environment" in problems
    assert f"cameras.1.credentials: secret file {cred} does not exist or cannot be read" in problems
    assert not any("KUZET_S3_SECRET_KEY" in p for p in problems)
    cred.write_text("user:pw", encoding="utf-8")
    monkeypatch.setenv("KUZET_S3_ACCESS_KEY", "x")
    monkeypatch.setenv("KUZET_CAM_UNSET", "u:p")
    assert check_config_file(path).ok
    # a local setup does not need the S3 variables
    monkeypatch.delenv("KUZET_S3_ACCESS_KEY")
    assert check_config_file(write(tmp_path, "storage: {kind: local}\n")).ok


def test_cli_check_config_fails_on_unset_secret(tmp_path: Path) -> None:
    import os

    path = write(tmp_path, "storage: {kind: s3}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUZET_S3_")}
    proc = subprocess.run(
        [sys.executable, "-m", "kuzet.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert proc.returncode == 2, proc.stdout
    assert "storage.s3.access_key: secret env:KUZET_S3_ACCESS_KEY is not set" in proc.stderr
    assert "Traceback" not in proc.stderr
