"""The whole worker on real clips with the real models: the demo on vtest, and a rendered fire."""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from core.boxes import iou
from core.config import CameraConfig
from detectors.synthetic import FireSpec, fire_clip
from event_bus.events import Incident, IncidentState, IncidentType
from kuzet.demo import DEMO_CLIP, run_demo
from tests.integration.h264 import write_h264
from tests.integration.worker_support import worker_config
from worker.runtime import Worker

pytestmark = pytest.mark.slow
ARTIFACTS = Path("artifacts/demo")


def test_demo_on_vtest_reports_each_walker_once_and_no_fire(tmp_path: Path) -> None:
    result = run_demo(DEMO_CLIP, tmp_path, analysis_fps=5.0, realtime=False, console=Console(file=io.StringIO()))
    events = [Incident.model_validate_json(line) for line in result.incidents_file.read_text().splitlines()]  # type: ignore[union-attr]
    starts = [e for e in events if e.state is IncidentState.START]
    kinds = Counter(e.type for e in starts)
    assert result.frames_analysed >= 140  # 30 s at 5 fps, less a few at the edges
    assert kinds[IncidentType.PERSON_IN_ZONE] >= 3, kinds
    assert kinds[IncidentType.FIRE] == 0 and kinds[IncidentType.SMOKE] == 0, "fire reported on a clip without fire"
    entry = [e for e in starts if e.type is IncidentType.PERSON_IN_ZONE]
    tracks = [e.track_id for e in entry]
    assert len(tracks) == len(set(tracks)), f"a track raised more than one zone incident: {tracks}"
    # Every incident that started also ended (the clip ends), with the same id, once.
    ends = Counter(e.incident_id for e in events if e.state is IncidentState.END and e.clip is None)
    assert all(ends[e.incident_id] == 1 for e in starts)
    # ... and then once more, restated with its evidence clip (the file ends, so the last one may be cut short)
    clips = {e.incident_id: e.clip for e in events if e.clip is not None}
    assert set(clips) == {e.incident_id for e in starts}
    for clip in clips.values():
        data = (result.snapshots_dir / clip.key).read_bytes()  # type: ignore[operator]
        assert hashlib.sha256(data).hexdigest() == clip.sha256 and clip.duration_s > 0

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for e in entry:
        assert e.snapshot is not None
        data = (result.snapshots_dir / e.snapshot.key).read_bytes()  # type: ignore[operator]
        assert hashlib.sha256(data).hexdigest() == e.snapshot.sha256
        x1, y1, x2, y2 = e.boxes[0]
        assert 0 <= x1 < x2 <= 768 and 0 <= y1 < y2 <= 576
        assert (y2 - y1) > (x2 - x1), f"a person box should be taller than wide: {e.boxes[0]}"
        (ARTIFACTS / f"{e.track_id}.jpg").write_bytes(data)  # for a person to look at


def _run_to_end(cam: CameraConfig, tmp: Path) -> list[Incident]:
    seen: list[Incident] = []
    worker = Worker(worker_config(tmp, [cam], rules={"end_after_s": 2.0, "cooldown_s": 30.0}), on_incident=seen.append)
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while worker.camera_running(cam.id) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.drain(30)
    finally:
        worker.stop()
    return seen


def test_rendered_fire_gives_exactly_one_fire_incident(tmp_path: Path) -> None:
    clip = write_h264(fire_clip(60, fps=5, fire_from=10, seed=3), tmp_path / "fire.mp4", fps=5)
    cam = CameraConfig(id="cam-fire-1", url=str(clip), analysis_fps=5.0, realtime=False, detectors=["fire"])
    events = _run_to_end(cam, tmp_path)
    starts = [e for e in events if e.state is IncidentState.START]
    kinds = Counter(e.type for e in starts)
    # The rendered fire carries a smoke plume: at most one smoke incident beside the one fire.
    assert kinds[IncidentType.FIRE] == 1 and kinds[IncidentType.SMOKE] <= 1, [
        json.loads(e.model_dump_json()) for e in starts
    ]
    assert set(kinds) <= {IncidentType.FIRE, IncidentType.SMOKE}
    fire = next(e for e in starts if e.type is IncidentType.FIRE)
    assert fire.severity == "critical" and fire.snapshot is not None
    # The box sits on the rendered flame (fire_clip's default flame: centred, lower part of the frame).
    flame = FireSpec(cx=768 // 2, base_y=int(576 * 0.78), width=768 // 4, height=576 // 3).box
    assert iou(fire.boxes[0], [float(v) for v in flame]) > 0.3, (fire.boxes, flame)


def test_vtest_excerpt_gives_no_fire(tmp_path: Path) -> None:
    cam = CameraConfig(id="cam-nofire-1", url=str(DEMO_CLIP), analysis_fps=2.0, realtime=False, detectors=["fire"])
    events = _run_to_end(cam, tmp_path)
    assert [e for e in events if e.type in (IncidentType.FIRE, IncidentType.SMOKE)] == []
