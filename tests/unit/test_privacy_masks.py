"""Privacy masks: validated like zones, burned into incident and plate-read snapshots before they leave the worker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from core.config import CameraConfig, PrivacyMask
from core.frame import Frame
from event_bus.events import IncidentState, IncidentType
from ingest.masking import mask_image, masks_digest
from plate_reader.formats import FormatMatch
from plate_reader.ocr import OcrRead
from plate_reader.pipeline import PlateObservation
from plate_reader.reader import PlatePass
from storage.local_store import LocalSnapshotStore
from worker.events import EventBuilder, IncidentDraft, PlateDraft
from worker.incident_change import IncidentChange

WINDOW = [(0.5, 0.0), (1.0, 0.0), (1.0, 0.5), (0.5, 0.5)]  # top-right quarter


def test_masks_are_validated_like_zones() -> None:
    cam = CameraConfig(id="cam-1", url="rtsp://10.0.0.5/s", privacy_masks=[{"name": "window", "polygon": WINDOW}])
    assert cam.privacy_masks[0].polygon == WINDOW
    with pytest.raises(ValidationError, match="outside the frame"):
        PrivacyMask(polygon=[(0.0, 0.0), (1.5, 0.0), (1.0, 1.0)])
    with pytest.raises(ValidationError, match="simple"):
        PrivacyMask(polygon=[(0, 0), (1, 1), (1, 0), (0, 1)])  # a bow tie


def test_mask_image_fills_only_the_polygon() -> None:
    img = np.full((100, 200, 3), 200, np.uint8)
    out = mask_image(img, [WINDOW])
    assert out[:50, 100:].max() == 0 and out[60:, :90].min() == 200
    assert img.min() == 200, "the input frame is not modified (other stages still use it)"
    assert mask_image(img, []) is img
    assert masks_digest([WINDOW]) == masks_digest([list(WINDOW)]) != masks_digest([])


def test_incident_snapshot_is_masked_in_the_worker(tmp_path: object) -> None:
    store = LocalSnapshotStore(str(tmp_path))
    cam = CameraConfig(id="cam-1", url="rtsp://10.0.0.5/s", privacy_masks=[{"polygon": WINDOW}])
    frame = np.full((240, 320, 3), 180, np.uint8)
    now = datetime.now(UTC)
    change = IncidentChange(uuid.uuid4(), IncidentType.PERSON_IN_ZONE, IncidentState.START, 0, "high", now, now, None,
                            None, 1, [[10.0, 150.0, 60.0, 230.0]], 0.9)  # fmt: skip
    out = EventBuilder("w-1", store.ref_for).incident(IncidentDraft(cam, change, {}, image=frame))
    assert out.snapshot_jpeg is not None and out.event.snapshot is not None
    pic = cv2.imdecode(np.frombuffer(out.snapshot_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert pic[5:110, 170:315].max() <= 12, "the masked region is black in the JPEG that leaves the worker"
    assert pic[130:, 100:].mean() > 150, "the rest of the picture is kept"


def test_plate_read_snapshot_is_masked_in_the_worker(tmp_path: object) -> None:
    store = LocalSnapshotStore(str(tmp_path))
    now = datetime.now(UTC)
    frame = np.full((240, 320, 3), 180, np.uint8)
    read = OcrRead("123ABC02", 0.9, tuple({c: 0.9} for c in "123ABC02"))
    box = (20.0, 150.0, 120.0, 180.0)  # plate in the bottom-left, away from the mask
    obs = PlateObservation(box, 0.8, read, (FormatMatch("kz-2012", "KZ", "123ABC02", 0.9, -0.1),))
    result = PlatePass(
        camera_id="cam-1", plate="123ABC02", raw_text="123ABC02", format_id="kz-2012", country="KZ",
        confidence=0.9, is_candidate=False, candidates=(("123ABC02", 1.0),), reads=3, track_id=None,
        first_seen_at=now, last_seen_at=now, observed_at=now, vehicle_box=None, plate_box=box,
        best=obs, frame=Frame("cam-1", 0, now, 0.0, False, frame),
    )  # fmt: skip
    masks = (PrivacyMask(polygon=WINDOW).polygon,)
    out = EventBuilder("w-1", store.ref_for).build(PlateDraft(result, {}, masks))
    assert out.snapshot_jpeg is not None and out.event.snapshot is not None
    pic = cv2.imdecode(np.frombuffer(out.snapshot_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert pic[5:110, 170:315].max() <= 12, "the masked region is black in the plate snapshot that leaves the worker"
    assert pic[200:, 200:].mean() > 150, "the rest of the picture is kept"
    unmasked = EventBuilder("w-1", store.ref_for).build(PlateDraft(result, {}))
    assert unmasked.snapshot_jpeg is not None
    plain = cv2.imdecode(np.frombuffer(unmasked.snapshot_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert plain[5:110, 170:315].mean() > 150, "without masks nothing is blacked out"
