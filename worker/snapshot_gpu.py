"""Snapshot JPEG encoding on the GPU with nvImageCodec (the ``gpu`` extra).

Same contract as :func:`worker.snapshot._encode`: a BGR frame in, JPEG bytes
out, at the same quality. ``benchmarks/device.sh`` measures it against
OpenCV's encoder; the worker's sink still encodes on the CPU (a snapshot is
taken once per incident, not per frame, so it is rarely the bottleneck).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

JPEG_QUALITY = 85


class GpuJpegEncoder:
    """nvImageCodec JPEG encoder bound to one GPU."""

    def __init__(self, gpu: int = 0, quality: int = JPEG_QUALITY) -> None:
        try:
            from nvidia import nvimgcodec
        except ImportError as exc:
            raise RuntimeError("GPU JPEG encoding needs the gpu extra: pip install 'kuzet[gpu]'") from exc
        self._nv: Any = nvimgcodec
        # GPU backends only: with every backend allowed, nvImageCodec quietly encodes on the CPU (libjpeg-turbo)
        # when its nvJPEG extension cannot load libnvjpeg (the nvidia-nvjpeg-cu12 wheel, which the gpu extra
        # pulls through nvimgcodec's `nvjpeg` extra), and a GPU figure would be a CPU one.
        self._encoder = nvimgcodec.Encoder(
            device_id=gpu, backends=[nvimgcodec.Backend(nvimgcodec.BackendKind.GPU_ONLY)]
        )
        self._params = nvimgcodec.EncodeParams(quality_type=nvimgcodec.QualityType.QUALITY, quality_value=quality)

    def encode(self, bgr: npt.NDArray[np.uint8]) -> bytes:
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        out = self._encoder.encode(rgb, "jpeg", params=self._params)
        if out is None:  # nvImageCodec returns None when no allowed backend could encode the image
            raise RuntimeError("no GPU JPEG encoder: nvJPEG did not load (pip install 'nvidia-nvjpeg-cu12')")
        return bytes(out)
