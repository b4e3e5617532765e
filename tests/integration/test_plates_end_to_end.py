"""Vehicles with plates driving through a rendered clip, over RTSP: one PlateRead per pass on Kafka,
indexed into PostgreSQL and found by the investigators' search."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from event_bus import schemas, topics
from event_bus.events import PlateRead
from event_bus.kafka_publisher import KafkaPublisher
from event_bus.kafka_subscriber import KafkaSubscriber
from kuzet.demo import DEMO_CLIP
from plate_reader.synthetic import PlateSpec, available_fonts, place_plate, render_plate
from services.plate_indexer import PlateIndexer
from storage.plates.factory import open_stores
from storage.plates.query import SearchMode, SearchQuery
from storage.plates.search import Principal, search_plates
from tests.integration.h264 import write_h264
from tests.integration.worker_support import camera, read_topic, worker_config
from worker.runtime import Worker

pytestmark = [pytest.mark.services, pytest.mark.slow]

PLATES = [
    PlateSpec("123ABC02", "kz", "kz-2012"),
    PlateSpec("505KLM17", "kz", "kz-2012"),
    PlateSpec("A777MP77", "ru", "ru-2"),
]
FPS = 10
PASS_FRAMES = 30  # 3 s to cross the picture
GAP_FRAMES = 15
TAIL_FRAMES = 90  # an empty road before the clip loops, so passes never run into each other


def _background() -> np.ndarray:
    with av.open(str(DEMO_CLIP)) as container:
        frame = next(container.decode(video=0))
        return np.asarray(frame.to_ndarray(format="bgr24"), np.uint8)


def render_passes(path: Path) -> Path:
    """A clip where each plate's car drives left to right once, then the road stays empty."""
    background = _background()
    font = "hershey-duplex" if "hershey-duplex" in available_fonts() else available_fonts()[0]
    frames: list[np.ndarray] = []
    for i, spec in enumerate(PLATES):
        plate = render_plate(spec, font, np.random.default_rng(100 + i))
        for k in range(PASS_FRAMES):
            x = 0.2 + 0.6 * k / (PASS_FRAMES - 1)
            # same seed every frame: the car keeps its look, only its position changes
            placed = place_plate(background, plate, np.random.default_rng(200 + i), (200, 200), True, (x, 0.62))
            frames.append(placed.image)
        frames += [background] * GAP_FRAMES
    frames += [background] * TAIL_FRAMES
    return write_h264(frames, path, FPS, crf=18)


def test_one_plate_read_per_pass_on_kafka_and_searchable_in_postgres(
    kafka_bootstrap: str, rtsp_server: Any, postgres_dsn: str, tmp_path: Path
) -> None:
    clip = render_passes(tmp_path / "plates.mp4")
    rtsp_server.add_stream("cam-plates-1", clip)
    cam = camera("cam-plates-1", rtsp_server.url("cam-plates-1"), detectors=["plate"], zones=[], analysis_fps=5.0)
    cfg = worker_config(tmp_path, [cam], kafka=kafka_bootstrap)
    reads: list[PlateRead] = []
    lock = threading.Lock()

    def seen(read: PlateRead) -> None:
        with lock:
            reads.append(read)

    wanted = {p.text for p in PLATES}
    worker = Worker(cfg, publisher=KafkaPublisher(cfg.bus.kafka), on_plate=seen)
    worker.start()
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            with lock:
                if wanted <= {r.plate for r in reads}:
                    break
            time.sleep(0.3)
    finally:
        worker.stop(flush_timeout_s=30)

    # The RTSP server loops the clip, so a plate may pass again one clip length later. One read per pass
    # means: every plate read, and two reads of one plate never closer than (almost) a clip length apart.
    clip_s = (len(PLATES) * (PASS_FRAMES + GAP_FRAMES) + TAIL_FRAMES) / FPS
    timeline = sorted((r.first_seen_at, r.last_seen_at, r.plate) for r in reads)
    assert wanted <= {r.plate for r in reads}, timeline
    for plate in wanted:
        starts = sorted(r.first_seen_at for r in reads if r.plate == plate)
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
        assert all(g > 0.8 * clip_s for g in gaps), f"{plate} read more than once in one pass: {timeline}"
    assert all(not r.is_candidate for r in reads if r.plate in wanted)

    records = [r for r in read_topic(kafka_bootstrap, topics.PLATES, expect_at_least=len(reads)) if r.key == cam.id]
    on_topic = {PlateRead.model_validate_json(r.value).event_id for r in records}
    for rec in records:
        schemas.validate("plate-read", json.loads(rec.value))
    assert {r.event_id for r in reads} <= on_topic

    stores = open_stores(postgres_dsn)
    try:
        sub = KafkaSubscriber(kafka_bootstrap, [topics.PLATES], group_id="test-plate-indexer", from_beginning=True)
        indexer = PlateIndexer(sub, stores.history, KafkaPublisher(cfg.bus.kafka))
        deadline = time.monotonic() + 60
        while indexer.stats.stored < len(reads) and time.monotonic() < deadline:
            indexer.step()
        indexer.close()
        investigator = Principal(user="inv-1", role="investigator")
        for text in ("123ABC02", "123ABCO2"):  # exact, and fuzzy with an O/0 confusion
            mode = SearchMode.EXACT if text == "123ABC02" else SearchMode.FUZZY
            result = search_plates(
                SearchQuery(text=text, mode=mode, cameras=(cam.id,)),
                principal=investigator,
                reason="case 2026-114: e2e test",
                store=stores.history,
                audit=stores.audit,
            )
            assert [h.plate for h in result.hits][:1] == ["123ABC02"], result.to_json()
            assert result.hits[0].camera_id == cam.id
    finally:
        stores.close()
