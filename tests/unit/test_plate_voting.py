"""Voting across a track and the PlateReader pass logic, with a scripted recogniser (no models)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from core.detections import Detections
from core.frame import Frame
from core.labels import Label
from event_bus.schemas import validate
from plate_reader import PlateOcr, PlatePass, PlateReader, PlateReaderConfig, TrackVote
from plate_reader.formats import FormatBook
from plate_reader.ocr import OcrRead
from plate_reader.pipeline import PlateObservation
from storage.local_store import LocalSnapshotStore
from worker.events import EventBuilder, Outgoing, PlateDraft

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def read(text: str, conf: float = 0.95) -> OcrRead:
    return OcrRead(text, conf, tuple({c: conf} for c in text))


def observation(text: str, conf: float = 0.95) -> PlateObservation:
    r = read(text, conf)
    return PlateObservation((10.0, 10.0, 110.0, 32.0), 0.8, r, tuple(FormatBook.load().match(r.chars, 3)))


class ScriptedRecognizer:
    """Returns the scripted texts in order, one per crop."""

    name = "scripted"
    height = 48

    def __init__(self, texts: Sequence[str | tuple[str, float]]) -> None:
        self.texts = list(texts)
        self.calls = 0

    def read(self, crops: Sequence[np.ndarray]) -> list[OcrRead]:
        out = []
        for _ in crops:
            item = self.texts[min(self.calls, len(self.texts) - 1)]
            text, conf = (item, 0.95) if isinstance(item, str) else item
            out.append(read(text, conf))
            self.calls += 1
        return out


def frame(i: int, fps: float = 5.0) -> Frame:
    return Frame("cam-1", i, T0 + timedelta(seconds=i / fps), i / fps, i == 0, np.full((240, 320, 3), 90, np.uint8))


def plates_at(x: float, tracker_id: int | None = None, vehicle: int | None = None) -> Detections:
    boxes = [[x, 150, x + 90, 170]]
    cls = [int(Label.LICENSE_PLATE)]
    conf = [0.8]
    tid = [tracker_id if tracker_id is not None else -1]
    if vehicle is not None:
        boxes.append([x - 40, 80, x + 130, 200])
        cls.append(int(Label.CAR))
        conf.append(0.9)
        tid.append(vehicle)
    return Detections(np.array(boxes, np.float32), np.array(conf), np.array(cls), tracker_id=np.array(tid))


def test_vote_corrects_a_minority_misread() -> None:
    vote = TrackVote()
    for text in ["123ABC02", "128ABC02", "123ABC02", "123A8C02", "123ABC08"]:
        assert vote.add(observation(text))
    res = vote.result(top_k=3)
    assert res is not None
    assert res.plate == "123ABC02" and res.format_id == "kz-2012" and res.country == "KZ"
    assert res.reads == 5
    assert res.candidates[0][0] == "123ABC02"
    assert {"128ABC02", "123ABC08"} & {c for c, _ in res.candidates[1:]}
    assert 0.6 < res.confidence <= 1.0


def test_vote_weights_by_confidence() -> None:
    vote = TrackVote()
    vote.add(observation("123ABC02", 0.95))
    vote.add(observation("123ABC02", 0.9))
    vote.add(observation("723ABC02", 0.4))
    vote.add(observation("723ABC02", 0.4))
    res = vote.result()
    assert res is not None and res.plate == "123ABC02"


def test_single_read_is_less_certain_than_agreeing_reads() -> None:
    one, many = TrackVote(), TrackVote()
    one.add(observation("A123BC77"))
    for _ in range(4):
        many.add(observation("A123BC77"))
    r1, r4 = one.result(), many.result()
    assert r1 is not None and r4 is not None
    assert r1.confidence < r4.confidence


def test_low_confidence_reads_are_not_counted() -> None:
    vote = TrackVote()
    assert not vote.add(observation("123ABC02", 0.1), min_read_confidence=0.3)
    assert vote.result() is None


def reader(texts: Sequence[str | tuple[str, float]], **cfg: object) -> PlateReader:
    ocr = PlateOcr(ScriptedRecognizer(texts), variants=("box",))  # type: ignore[arg-type]
    return PlateReader("cam-1", PlateReaderConfig(**cfg), ocr=ocr, worker_id="w1")  # type: ignore[arg-type]


def event(result: PlatePass, store: LocalSnapshotStore | None = None) -> Outgoing:
    """The worker's one event builder turns the reader's domain result into the published event."""
    return EventBuilder("w1", store.ref_for if store is not None else None).build(PlateDraft(result))


def test_one_read_per_pass_of_an_untracked_plate() -> None:
    pr = reader(["123ABC02", "123A8C02", "I23ABC02", "123ABC02", "123ABC02"], end_after_s=1.0)
    out = []
    for i in range(5):  # the plate moves right 10 px a frame: the IoU tracker keeps it one pass
        out += pr.process(frame(i), plates_at(60 + 10 * i))
    assert out == []
    for i in range(5, 12):  # gone: the pass ends after end_after_s of stream time
        out += pr.process(frame(i), Detections.empty())
    assert len(out) == 1
    ev = event(out[0]).event
    assert ev.plate == "123ABC02" and ev.reads == 5 and not ev.is_candidate
    assert ev.first_seen_at == T0 and ev.last_seen_at == T0 + timedelta(seconds=0.8)
    assert ev.track_id is None and ev.snapshot is None
    validate("plate-read", ev.model_dump(mode="json"))
    assert pr.open_passes == 0


def test_vehicle_track_groups_reads_and_snapshot_is_referenced(tmp_path: Path) -> None:
    pr = reader(["A123BC77"] * 3, end_after_s=0.5)
    out = []
    for i in range(3):  # plate boxes jump (no IoU overlap) but stay inside vehicle track 7
        out += pr.process(frame(i), plates_at(20 + 100 * i, vehicle=7))
    out += pr.close()
    assert len(out) == 1
    built = event(out[0], LocalSnapshotStore(tmp_path))
    ev, jpeg = built.event, built.snapshot_jpeg
    assert ev.track_id == 7 and ev.vehicle_box is not None and ev.country == "RU"
    assert jpeg is not None and ev.snapshot is not None and ev.snapshot.size == len(jpeg)
    assert ev.snapshot.key.startswith("cam-1/2026/03/01/") and ev.snapshot.key.endswith(f"{ev.event_id}.jpg")
    validate("plate-read", ev.model_dump(mode="json"))


def test_early_emit_after_n_reads_and_never_twice() -> None:
    pr = reader(["123ABC02"] * 10, emit_after_reads=3)
    out = []
    for i in range(8):
        out += pr.process(frame(i), plates_at(60, tracker_id=4))
    assert len(out) == 1 and out[0].reads == 3 and out[0].track_id == 4
    out += pr.close()
    assert len(out) == 1


def test_weak_reads_are_marked_candidate() -> None:
    pr = reader([("123ABC02", 0.5)], candidate_below=0.6)
    out = pr.process(frame(0), plates_at(60, tracker_id=1)) + pr.close()
    assert len(out) == 1 and out[0].is_candidate and event(out[0]).event.is_candidate


def test_two_vehicles_two_reads() -> None:
    pr = reader(["123ABC02", "A123BC77"] * 4)
    out = []
    for i in range(4):
        dets = Detections.merge([plates_at(20, tracker_id=1), plates_at(200, tracker_id=2)])
        out += pr.process(frame(i), dets)
    out += pr.close()
    assert sorted(o.plate for o in out) == ["123ABC02", "A123BC77"]


@pytest.mark.parametrize("bad", [{"candidate_below": 2.0}, {"colour": "red"}])
def test_config_is_validated(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PlateReaderConfig(**bad)  # type: ignore[arg-type]


def test_a_plate_lost_for_a_frame_is_still_one_read() -> None:
    """The IoU tracker loses the plate after frame 0 (a skipped frame: it jumps 150 px); one read, whole span."""
    pr = reader(["123ABC02"] * 8, end_after_s=1.0)
    xs = [20, 170, 180, 190, 200, 210]
    out = []
    for i, x in enumerate(xs):
        out += pr.process(frame(i), plates_at(x))
    for i in range(len(xs), len(xs) + 8):
        out += pr.process(frame(i), Detections.empty())
    assert len(out) == 1, [(o.plate, o.first_seen_at, o.last_seen_at) for o in out]
    assert out[0].reads == 6 and out[0].first_seen_at == T0 and pr.fragments_merged == 1
    assert out[0].last_seen_at == T0 + timedelta(seconds=(len(xs) - 1) / 5)


def test_a_tracker_id_switch_is_one_read_whichever_half_ends_first() -> None:
    """Vehicle track 3 becomes track 9 mid-pass: the first half ends while the second is open."""
    pr = reader(["A123BC77"] * 10, end_after_s=0.6)
    out = []
    for i in range(10):
        out += pr.process(frame(i), plates_at(20 + 10 * i, vehicle=3 if i < 3 else 9))
    assert out == [] and pr.fragments_merged == 1
    out += pr.close()
    assert len(out) == 1 and out[0].reads == 10 and out[0].track_id == 9 and out[0].first_seen_at == T0


def test_a_fragment_after_the_pass_was_published_is_not_published_again() -> None:
    # a stray box of the same car turns up as track 3 fades; its first reads fail, so it is no twin when 3 ends
    pr = reader(["A123BC77"] * 4 + [("A123BC77", 0.1)] * 2 + ["A123BC77"] * 3, end_after_s=0.6)
    out = []
    for i in range(4):
        out += pr.process(frame(i), plates_at(20 + 10 * i, vehicle=3))
    for i in range(4, 10):
        out += pr.process(frame(i), plates_at(300, vehicle=11) if i in (5, 6, 8) else Detections.empty())
        if i == 7:
            assert [o.track_id for o in out] == [3]
    out += pr.close()
    assert [o.track_id for o in out] == [3] and pr.fragments_merged == 1


def test_different_plates_side_by_side_are_not_merged_and_the_same_plate_later_is_read_again() -> None:
    pr = reader(["123ABC02", "A123BC77"] * 3 + ["123ABC02"] * 3, end_after_s=0.6)
    out = []
    for i in range(3):
        out += pr.process(frame(i), Detections.merge([plates_at(20, tracker_id=1), plates_at(200, tracker_id=2)]))
    for i in range(3, 10):
        out += pr.process(frame(i), Detections.empty())
    for i in range(10, 13):  # the same plate comes back 2 s later: a new pass
        out += pr.process(frame(i), plates_at(20, tracker_id=5))
    out += pr.close()
    assert [o.plate for o in out] == ["123ABC02", "A123BC77", "123ABC02"] and pr.fragments_merged == 0


def test_a_parked_car_is_still_reported_every_max_pass_s() -> None:
    pr = reader(["123ABC02"] * 100, max_pass_s=2.0)
    out = []
    for i in range(31):  # 6 s in sight at 5 frames/s
        out += pr.process(frame(i), plates_at(60, tracker_id=4))
    out += pr.close()
    assert len(out) == 3 and pr.fragments_merged == 0
