"""rapidocr's PP-OCRv4 text-line recogniser, run directly with onnxruntime on plate crops.

Only the recognition model of ``rapidocr-onnxruntime`` is used (its text
detector splits tight plate crops into pieces), and it is run here rather
than through rapidocr's pipeline for two reasons: crops of one batch go
through one ``session.run``, and the full CTC output is kept. The model
predicts 6,625 symbols (mostly Chinese); they are folded onto the plate
alphabet (``x``/``X``/Cyrillic ``х`` -> ``X``), everything else becomes one
"junk" symbol, and greedy CTC decoding runs on that reduced alphabet. Each
decoded character keeps its distribution over the plate alphabet at its
most confident frame, which is what format correction and voting use.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from plate_reader.normalize import ALPHABET, fold_char
from plate_reader.ocr import OcrRead

PLATE_CHARS = "".join(sorted(ALPHABET))
_BLANK, _JUNK = 0, len(PLATE_CHARS) + 1
MODEL_FILE = "models/ch_PP-OCRv4_rec_infer.onnx"
TOP_ALTERNATIVES = 5


def packaged_model() -> Path:
    """The recognition model inside the installed ``rapidocr-onnxruntime`` (no import of its pipeline)."""
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("rapidocr-onnxruntime is not installed; run `pip install rapidocr-onnxruntime==1.4.4`")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"rapidocr recognition model missing at {path}; reinstall rapidocr-onnxruntime==1.4.4")
    return path


class RapidRecognizer:
    """Batched PP-OCRv4 recognition constrained to plate characters."""

    name = "rapidocr"
    height = 48

    def __init__(self, model_path: Path | None = None, threads: int = 1) -> None:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        # Sleep, don't spin, between operators: the recogniser shares the cores with the detectors' sessions
        # (see detectors.backends.onnxruntime_backend.NO_SPIN for the measurement).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        self.model_path = Path(model_path) if model_path else packaged_model()
        self.session = ort.InferenceSession(str(self.model_path), sess_options=so, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        chars = self.session.get_modelmeta().custom_metadata_map.get("character", "").splitlines()
        if not chars:
            raise ValueError(f"{self.model_path} carries no character list in its metadata")
        vocab = ["", *chars, " "]  # CTC blank first, space last: the model's layout
        # reduction matrix: model symbol -> blank / plate character / junk
        target = np.full(len(vocab), _JUNK, np.int64)
        target[0] = _BLANK
        index = {c: i + 1 for i, c in enumerate(PLATE_CHARS)}
        for v, sym in enumerate(vocab[1:], start=1):
            folded = fold_char(sym) if sym.strip() else ""
            if folded:
                target[v] = index[folded]
        self._reduce = np.zeros((len(vocab), _JUNK + 1), np.float32)
        self._reduce[np.arange(len(vocab)), target] = 1.0

    def _prepare(self, crops: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        h = self.height
        widths = [max(8, round(c.shape[1] * h / max(1, c.shape[0]))) for c in crops]
        batch = np.zeros((len(crops), 3, h, max(*widths, 4 * h)), np.float32)  # zero == mid-grey after norm
        for i, (crop, w) in enumerate(zip(crops, widths, strict=True)):
            img = crop if crop.ndim == 3 else cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
            resized = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR if w > crop.shape[1] else cv2.INTER_AREA)
            batch[i, :, :, :w] = resized.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
        return batch

    def read(self, crops: Sequence[npt.NDArray[np.uint8]]) -> list[OcrRead]:
        if not crops:
            return []
        probs = self.session.run(None, {self.input_name: self._prepare(crops)})[0]  # (N, T, V) softmax
        reduced = probs @ self._reduce  # (N, T, 38)
        return [self._decode(r) for r in reduced]

    @staticmethod
    def _decode(frames: npt.NDArray[np.float32]) -> OcrRead:
        """Greedy CTC on the reduced alphabet; each character's distribution taken at its most confident frame."""
        best = frames.argmax(axis=1)
        chars: list[dict[str, float]] = []
        text: list[str] = []
        t, n = 0, len(best)
        while t < n:
            sym = int(best[t])
            end = t + 1
            while end < n and int(best[end]) == sym:
                end += 1
            if sym not in (_BLANK, _JUNK):
                run = frames[t:end, 1:_JUNK]
                peak = run[int(run[:, sym - 1].argmax())]
                order = np.argsort(peak)[::-1][:TOP_ALTERNATIVES]
                hyp = {PLATE_CHARS[k]: float(peak[k]) for k in order if peak[k] >= 0.01}
                chars.append(hyp)
                text.append(PLATE_CHARS[sym - 1])
            t = end
        conf = float(np.mean([max(h.values()) for h in chars])) if chars else 0.0
        return OcrRead("".join(text), conf, tuple(chars))
