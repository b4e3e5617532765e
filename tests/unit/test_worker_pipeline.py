"""The staged worker pipeline: a slow OCR and a slow disk never slow the inference stage, nothing is lost or reordered.

Fake models (a fixed cost per batch, canned boxes), a fake recogniser that
takes 250 ms per crop and a fake spool write that takes 100 ms drive the
real stages of :mod:`worker.pipeline`. The same frames go through once
without the slow parts and once with them; the inference stage's batch rate
and every camera's event sequence are compared.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from core.config import BatchConfig, CameraConfig, RulesConfig, TrackingConfig, Zone
from core.detections import Detections
from core.frame import Frame
from core.labels import Label
from event_bus.events import Incident, PlateRead
from plate_reader.ocr import OcrRead
from plate_reader.pipeline import PlateOcr
from plate_reader.reader import PlateReader, PlateReaderConfig
from storage.local_store import LocalSnapshotStore
from worker.analysis import AnalysisSettings, CameraAnalysis, PlateWork
from worker.events import EventBuilder, Outgoing
from worker.pipeline import REPLAY_HOLD_PLATES, REPLAY_HOLD_RESULTS, Pipeline
from worker.plate_stage import PlateStage, PlateTask

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
W, H = 160, 120
FRAMES = 60  # per camera, 10 analysed frames a second of stream time
CAMERAS = ["cam-a", "cam-b"]
PLATE_FRAMES = range(10, 14)  # a plate is seen on these frames (then its pass ends 1.5 s of stream later)
ZONE = Zone(name="yard", polygon=[(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)])
INFERENCE_S = 0.015  # per batch, as a small model would take


class FakeModel:
    """Canned detections per image, a fixed cost per batch; records when each batch started."""

    def __init__(self, name: str, plan: dict[int, Detections]) -> None:
        self.name = name
        self.version = f"{name}@fake"
        self._plan = plan
        self.starts: list[float] = []

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        self.starts.append(time.perf_counter())
        time.sleep(INFERENCE_S)
        return [self._plan.get(id(img), Detections.empty()) for img in images]

    def batch_rate(self) -> float:
        return (len(self.starts) - 1) / (self.starts[-1] - self.starts[0])


class FakeRecognizer:
    """Reads every crop as 123ABC02, taking ``per_crop_s`` a crop."""

    name = "fake-ocr"
    height = 32

    def __init__(self, per_crop_s: float) -> None:
        self.per_crop_s = per_crop_s
        self.calls: list[int] = []

    def read(self, crops: Sequence[npt.NDArray[np.uint8]]) -> list[OcrRead]:
        self.calls.append(len(crops))
        time.sleep(self.per_crop_s * len(crops))
        text = "123ABC02"
        return [OcrRead(text, 0.95, tuple({c: 0.95} for c in text)) for _ in crops]


def _boxes(rows: list[list[float]], label: Label) -> Detections:
    n = len(rows)
    return Detections(np.array(rows, np.float32).reshape(n, 4), np.full(n, 0.9, np.float32), np.full(n, int(label)))


def make_frames() -> tuple[dict[str, list[Frame]], dict[int, Detections], dict[int, Detections]]:
    """Per camera: a person walking into the yard and staying until frame 40; a plate on frames 10-13."""
    frames: dict[str, list[Frame]] = {}
    people: dict[int, Detections] = {}
    plates: dict[int, Detections] = {}
    for c, cid in enumerate(CAMERAS):
        frames[cid] = []
        for i in range(FRAMES):
            image = np.full((H, W, 3), 40 + c, np.uint8)
            frame = Frame(cid, i, T0 + timedelta(seconds=i / 10), i / 10, False, image)
            frames[cid].append(frame)
            if i < 40:
                feet = min(30 + 3 * i, 110)
                people[id(image)] = _boxes([[60, feet - 30, 75, feet]], Label.PERSON)
            if i in PLATE_FRAMES:
                image[80:96, 40:100] = 230  # something to crop
                plates[id(image)] = _boxes([[40, 80, 100, 96]], Label.LICENSE_PLATE)
    return frames, people, plates


def decode_all(pipeline: Pipeline, frames: dict[str, list[Frame]], models: list[str]) -> None:
    """One decoder thread per camera, handing on every frame as soon as its slot is free; until all are in."""

    def decode(cid: str) -> None:
        for frame in frames[cid]:
            pipeline.submit(frame, models, wait=True)

    feeders = [threading.Thread(target=decode, args=(cid,)) for cid in frames]
    for t in feeders:
        t.start()
    for t in feeders:
        t.join(60)


def run_pipeline(tmp: Path, ocr_s: float, write_s: float) -> tuple[dict[str, list[tuple[str, ...]]], float, float]:
    """One pass of all frames; returns the events per camera and the two models' batch rates."""
    frames, people, plates = make_frames()
    person, plate = FakeModel("person", people), FakeModel("plate", plates)
    recognizer = FakeRecognizer(ocr_s)
    store = LocalSnapshotStore(tmp / "snaps")
    written: dict[str, list[tuple[str, ...]]] = {cid: [] for cid in CAMERAS}

    def slow_write(out: Outgoing) -> None:
        time.sleep(write_s)  # the fsynced spool append on a busy disk
        ev = out.event
        if isinstance(ev, Incident):
            written[ev.camera_id].append(("incident", ev.type.value, ev.state.value, str(ev.seq)))
        else:
            assert isinstance(ev, PlateRead)
            written[ev.camera_id].append(("plate", ev.plate, str(ev.reads)))

    def reader(cid: str, model: str, versions: dict[str, str], ocr: PlateOcr) -> PlateReader:
        return PlateReader(cid, PlateReaderConfig(), ocr=ocr, worker_id="w", model_versions=versions)

    ocr = PlateOcr(recognizer, variants=("box",))  # type: ignore[arg-type]
    pipeline = Pipeline(
        BatchConfig(max_batch=8, max_wait_ms=50),
        PlateStage(lambda: ocr, reader),
        EventBuilder("w", store.ref_for),
        slow_write,
    )
    pipeline.add_model("person", person)
    pipeline.add_model("plate", plate)
    settings = AnalysisSettings(RulesConfig(end_after_s=1.0), TrackingConfig())
    for cid in CAMERAS:
        cam = CameraConfig(id=cid, url="file:///dev/null", analysis_fps=10.0, zones=[ZONE], detectors=["person"])
        pipeline.add_camera(
            cid,
            {
                "person": CameraAnalysis(cam, "person", person.version, {Label.PERSON}, settings),
                "plate": CameraAnalysis(cam, "plate", plate.version, {Label.LICENSE_PLATE}, settings),
            },
            realtime=True,  # live cameras: the plate queue drops rather than push back on analysis
        )

    decode_all(pipeline, frames, ["person", "plate"])
    assert pipeline.wait_idle(120)
    for cid in CAMERAS:
        assert pipeline.remove_camera(cid, T0 + timedelta(seconds=FRAMES / 10), timeout_s=60)
    stats = pipeline.stats()
    pipeline.stop()
    assert stats.queues["plate"].dropped == 0 and stats.events_failed == 0 and stats.analysis_errors == 0
    assert stats.plate_crops == len(CAMERAS) * len(PLATE_FRAMES)
    # the inference threads never waited for room downstream: their only hand-off is this queue's put
    assert stats.queues["analysis"].held_s == 0.0
    return written, person.batch_rate(), plate.batch_rate()


def test_slow_ocr_and_disk_never_slow_inference_and_lose_or_reorder_nothing(tmp_path: Path) -> None:
    fast_events, fast_person, fast_plate = run_pipeline(tmp_path / "fast", ocr_s=0.0, write_s=0.0)
    slow_events, slow_person, slow_plate = run_pipeline(tmp_path / "slow", ocr_s=0.25, write_s=0.1)
    if slow_person < 0.9 * fast_person or slow_plate < 0.9 * fast_plate:
        # a shared, loaded machine can stall one run's threads: compare the best of two runs of each
        again_fast = run_pipeline(tmp_path / "fast2", ocr_s=0.0, write_s=0.0)
        again_slow = run_pipeline(tmp_path / "slow2", ocr_s=0.25, write_s=0.1)
        assert again_fast[0] == fast_events and again_slow[0] == slow_events
        fast_person, fast_plate = max(fast_person, again_fast[1]), max(fast_plate, again_fast[2])
        slow_person, slow_plate = max(slow_person, again_slow[1]), max(slow_plate, again_slow[2])

    # every camera: a zone entry that starts and ends, and one plate read, in the same order both times
    for cid in CAMERAS:
        kinds = [e[:3] for e in fast_events[cid]]
        assert ("incident", "person_in_zone", "start") in kinds and ("incident", "person_in_zone", "end") in kinds
        assert ("plate", "123ABC02", str(len(PLATE_FRAMES))) in fast_events[cid]
    assert slow_events == fast_events

    # the inference stage kept its batch rate (within 10 %) although OCR took 250 ms a crop and writes 100 ms
    assert slow_person >= 0.9 * fast_person, (slow_person, fast_person)
    assert slow_plate >= 0.9 * fast_plate, (slow_plate, fast_plate)


def test_a_round_of_many_frames_reads_each_pass_once_as_frame_by_frame_does() -> None:
    """A backlogged plate stage prepares a whole round before finishing any frame: a stale plate track (the
    last car's final box, right where the next car drives through) must not take over the next car's plate."""

    def passes(round_size: int) -> list[tuple[str, int]]:
        ocr = PlateOcr(FakeRecognizer(0.0), variants=("box",))  # type: ignore[arg-type]
        stage = PlateStage(lambda: ocr, lambda cid, m, v, o: PlateReader(cid, PlateReaderConfig(), ocr=o))
        tasks = []
        for i in range(40):  # 10 frames a second: car 1 on frames 0-9, 2 s of empty road, car 2 on 30-39
            image = np.full((H, W, 3), 40, np.uint8)
            det = Detections.empty()
            if i < 10 or i >= 30:
                x = 10 * (i % 10)  # both cars drive the same way, left to right
                image[80:96, x : x + 60] = 230
                det = _boxes([[x, 80, x + 60, 96]], Label.LICENSE_PLATE)
            frame = Frame("cam-a", i, T0 + timedelta(seconds=i / 10), i / 10, False, image)
            tasks.append(PlateTask("cam-a", "plate", {}, PlateWork(frame, det, i / 10)))
        tasks.append(PlateTask("cam-a", "plate", {}, None))
        out = []
        for start in range(0, len(tasks), round_size):
            for done, _, _ in stage.run(tasks[start : start + round_size]):
                out += [(p.first_seen_at.strftime("%S.%f"), p.reads) for p in done]
        return out

    expected = [("00.000000", 10), ("03.000000", 10)]
    assert passes(1) == expected
    assert passes(64) == expected


def _replay_pipeline(
    tmp: Path, ocr: PlateOcr, write: Callable[[Outgoing], None] | None = None
) -> tuple[Pipeline, FakeModel, dict[str, list[Frame]]]:
    """File-replay cameras (``realtime: false``) with a plate on every frame, on the real stages."""
    frames, _, _ = make_frames()
    plates: dict[int, Detections] = {}
    for cid in CAMERAS:
        for frame in frames[cid]:
            plates[id(frame.image)] = _boxes([[40, 80, 100, 96]], Label.LICENSE_PLATE)
    plate = FakeModel("plate", plates)

    def reader(cid: str, model: str, versions: dict[str, str], o: PlateOcr) -> PlateReader:
        return PlateReader(cid, PlateReaderConfig(), ocr=o, worker_id="w", model_versions=versions)

    pipeline = Pipeline(
        BatchConfig(max_batch=8, max_wait_ms=5),
        PlateStage(lambda: ocr, reader),
        EventBuilder("w", LocalSnapshotStore(tmp / "snaps").ref_for),
        write or (lambda out: None),
    )
    pipeline.add_model("plate", plate)
    settings = AnalysisSettings(RulesConfig(), TrackingConfig())
    for cid in CAMERAS:
        cam = CameraConfig(id=cid, url="file:///dev/null", analysis_fps=10.0, detectors=["plate"])
        pipeline.add_camera(
            cid, {"plate": CameraAnalysis(cam, "plate", plate.version, {Label.LICENSE_PLATE}, settings)}, False
        )
    return pipeline, plate, frames


def test_a_file_replay_behind_slow_ocr_keeps_one_plate_round_of_backlog_and_reads_every_frame(tmp_path: Path) -> None:
    """A replay holds its producers at a short depth, not at capacity: a short backlog (a prompt stop, and a
    replay that runs at the slowest stage's pace instead of its inference running ahead)."""
    ocr = PlateOcr(FakeRecognizer(0.01), variants=("box",))  # type: ignore[arg-type]
    pipeline, _, frames = _replay_pipeline(tmp_path, ocr)
    deepest = {"analysis": 0, "plate": 0}
    feeding = threading.Event()

    def watch() -> None:
        while not feeding.is_set():
            for name, s in pipeline.stats().queues.items():
                if name in deepest:
                    deepest[name] = max(deepest[name], s.depth)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    # 180 frames a camera: the plate stage (10 ms a crop) is the slowest
    decode_all(pipeline, {cid: f * 3 for cid, f in frames.items()}, ["plate"])
    assert pipeline.wait_idle(60)
    feeding.set()
    watcher.join(5)
    stats = pipeline.stats()
    pipeline.stop()
    assert stats.queues["plate"].held_s > 0.0  # the plate stage was the bottleneck: the replay waited for it
    assert deepest["plate"] <= REPLAY_HOLD_PLATES, deepest  # not PLATE_CAPACITY (256)
    assert deepest["analysis"] <= REPLAY_HOLD_RESULTS + len(CAMERAS), deepest  # (+ the cameras' open items)
    assert stats.queues["plate"].dropped == 0 and stats.queues["plate"].done == 3 * FRAMES * len(CAMERAS)
    assert stats.plate_crops == 3 * FRAMES * len(CAMERAS)


def test_removing_several_cameras_waits_once_and_names_those_not_written(tmp_path: Path) -> None:
    """Stopping cameras behind a stalled sink: one deadline for all (not one each), and the late ones named."""
    release = threading.Event()

    def stalled_write(out: Outgoing) -> None:
        release.wait(10)

    ocr = PlateOcr(FakeRecognizer(0.0), variants=("box",))  # type: ignore[arg-type]
    pipeline, _, frames = _replay_pipeline(tmp_path, ocr, stalled_write)
    for cid in CAMERAS:
        for frame in frames[cid][:20]:  # a plate pass per camera, ended (and written) when the camera is removed
            pipeline.submit(frame, ["plate"], wait=True)
    assert pipeline.wait_idle(30)
    late = pipeline.remove_cameras(CAMERAS, T0 + timedelta(seconds=2), timeout_s=0.2)
    assert late == CAMERAS  # each camera's pass is queued behind the stalled write
    release.set()
    assert pipeline.wait_idle(30)
    pipeline.stop()
    assert pipeline.stats().events_written == len(CAMERAS)
