"""The loop a user would write with ultralytics, as the baseline Kuzet's worker is compared with.

One reader thread per stream decodes at the stream's own rate and keeps the
latest frame; the main loop runs ``YOLO(pt).predict`` on the latest frame of
each stream in turn (frames it has already seen are not predicted again),
with the same ``.pt`` weights Kuzet's ONNX models were exported from.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from detectors.backends.ultralytics_backend import _import_yolo


class _Latest:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frame: npt.NDArray[np.uint8] | None = None
        self.seq = -1


def _reader(clip: Path, fps: float, slot: _Latest, stop: threading.Event) -> None:
    seq = 0
    t0 = time.monotonic()
    while not stop.is_set():
        with av.open(str(clip)) as container:
            for frame in container.decode(video=0):
                if stop.is_set():
                    return
                image = np.asarray(frame.to_ndarray(format="bgr24"), np.uint8)
                with slot.lock:
                    slot.frame, slot.seq = image, seq
                seq += 1
                delay = t0 + seq / fps - time.monotonic()  # paced at the stream's own rate
                if delay > 0:
                    time.sleep(delay)


def user_loop_fps(pt: Path, clips: list[Path], fps: float, seconds: float, pre_import: str | None = None) -> float:
    """Frames/s the user's loop predicts over ``seconds`` (after one warm-up prediction)."""
    os.environ["YOLO_OFFLINE"] = "1"  # before fire_detector imports ultralytics
    if pre_import:
        importlib.import_module(pre_import)  # fire_detector registers the custom layers of its .pt
    model = _import_yolo()(str(pt), task="detect")
    slots = [_Latest() for _ in clips]
    stop = threading.Event()
    threads = [
        threading.Thread(target=_reader, args=(clip, fps, slot, stop), daemon=True)
        for clip, slot in zip(clips, slots, strict=True)
    ]
    for t in threads:
        t.start()
    while any(s.frame is None for s in slots):
        time.sleep(0.01)
    model.predict(slots[0].frame, imgsz=640, verbose=False, device="cpu")  # warm-up
    seen = [-1] * len(slots)
    done = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        for i, slot in enumerate(slots):
            with slot.lock:
                image, seq = slot.frame, slot.seq
            if image is None or seq == seen[i]:
                continue
            seen[i] = seq
            model.predict(image, imgsz=640, verbose=False, device="cpu")
            done += 1
    elapsed = time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join(5)
    return done / elapsed
