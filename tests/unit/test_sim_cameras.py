"""sim:// cameras: URL validation, refusal outside simulation, a seeded schedule, one driver thread for many."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core.config import CameraConfig, ConfigError, load_config
from core.health import CameraState
from core.sim_url import SimSpec, parse_sim_url
from ingest.camera import StatusChange
from ingest.sim import SimDriver


def test_sim_urls_are_validated_with_clear_errors() -> None:
    assert parse_sim_url("sim:///a?seed=3&mtbf_s=60&outage_s=2&connect_s=0") == SimSpec(3, 60.0, 2.0, 0.0)
    assert parse_sim_url("sim:///a") == SimSpec()
    for url, expected in [
        ("sim://host/a", "no host"),
        ("sim:///a?mtbf=5", "unknown"),
        ("sim:///a?seed=x", "not a number"),
        ("sim:///a?outage_s=0", "outside"),
    ]:
        with pytest.raises(ValueError, match=expected):
            CameraConfig(id="c1", url=url)


def test_a_worker_config_with_sim_cameras_needs_simulation_enabled(tmp_path: Path) -> None:
    path = tmp_path / "kuzet.yaml"
    path.write_text("cameras:\n  - {id: sim-1, url: 'sim:///sim-1'}\n")
    with pytest.raises(ConfigError, match=r"refused unless ingest.simulation is true"):
        load_config(path)
    path.write_text("ingest: {simulation: true}\ncameras:\n  - {id: sim-1, url: 'sim:///sim-1'}\n")
    assert load_config(path).ingest.simulation is True
    path.write_text("ingest: {simulation: 'maybe'}\n")
    with pytest.raises(ConfigError, match="simulation"):
        load_config(path)


def test_the_worker_refuses_a_registry_sim_camera_outside_simulation(tmp_path: Path) -> None:
    from worker.runtime import Worker

    cfg = load_config(None, {"bus": {"kind": "local", "local_path": str(tmp_path / "bus.db"),
                                     "spool_path": str(tmp_path / "spool.db")},
                             "storage": {"kind": "local", "local_dir": str(tmp_path / "snap")}})  # fmt: skip
    worker = Worker(cfg)
    with pytest.raises(ValueError, match=r"refused unless ingest\.simulation"):
        worker.add_camera(CameraConfig(id="sim-1", url="sim:///sim-1"))
    assert worker.camera_ids() == []
    worker.spool.close()


def _collect(n: int, spec: str) -> tuple[SimDriver, list[Any], dict[str, list[StatusChange]]]:
    driver = SimDriver()
    seen: dict[str, list[StatusChange]] = {}
    lock = threading.Lock()

    def sink(change: StatusChange) -> None:
        with lock:
            seen.setdefault(change.camera_id, []).append(change)

    cams = [driver.camera(CameraConfig(id=f"sim-{i}", url=f"sim:///sim-{i}?{spec}"), sink) for i in range(n)]
    return driver, cams, seen


def test_many_sim_cameras_share_one_thread_and_follow_a_seeded_schedule() -> None:
    before = threading.active_count()
    driver, cams, seen = _collect(500, "seed=5&connect_s=0&mtbf_s=1&outage_s=0.1")
    for c in cams:
        c.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(len(seen.get(c.camera_id, [])) >= 3 for c in cams):
        time.sleep(0.1)
    assert threading.active_count() - before == 1, "one driver thread for 500 cameras"
    for c in cams:
        states = [s.state for s in seen[c.camera_id]]
        assert states[:3] == [CameraState.UP, CameraState.DOWN, CameraState.UP], "connect, outage, reconnect"
        assert seen[c.camera_id][2].reconnects == 1
    for c in cams:
        c.stop()
    n = {cid: len(v) for cid, v in seen.items()}
    time.sleep(1.5)
    assert {cid: len(v) for cid, v in seen.items()} == n, "a stopped camera reports nothing more"
    driver.stop()


def _schedule(camera_id: str, seed: int) -> list[float]:
    cam = SimDriver().camera(CameraConfig(id=camera_id, url=f"sim:///x?seed={seed}"), lambda _c: None)
    cam._alive = True  # stepped by hand here, not by the driver thread
    return [round(cam.step() or 0.0, 9) for _ in range(6)]


def test_the_schedule_depends_on_seed_and_camera_only() -> None:
    assert _schedule("a", 5) == _schedule("a", 5), "the same camera behaves the same on whichever worker runs it"
    assert _schedule("a", 5) != _schedule("b", 5) != _schedule("b", 6)
