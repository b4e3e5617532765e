"""NVDEC decoding through PyNvVideoCodec (the ``gpu`` extra), with key-frame-only mode kept.

The demuxer is FFmpeg's (inside PyNvVideoCodec), so files and ``rtsp://``
URLs both work; only the decode runs on the GPU's NVDEC engines. In
key-frame-only mode the packets between key frames are never handed to the
decoder, as in the CPU path (:mod:`ingest.camera`): at 1-5 analysed frames a
second from a 25 fps stream that is most of the decode work saved.

Frames come out as NV12. :meth:`NvdecDecoder.frames_bgr` copies each one to
the host once (1.5 bytes a pixel) and converts it there, so it can feed the
worker's host-side :class:`core.frame.Frame`; a device-resident frame handed
straight to the model is not built yet (the benchmark measures decode alone).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt


def _nvc() -> Any:
    try:
        import PyNvVideoCodec as nvc
    except ImportError as exc:
        raise RuntimeError("NVDEC decoding needs the gpu extra: pip install 'kuzet[gpu]'") from exc
    return nvc


class NvdecDecoder:
    """One stream on one GPU's NVDEC; iterate :meth:`frames` (device NV12) or :meth:`frames_bgr` (host BGR)."""

    def __init__(self, url: str, gpu: int = 0, keyframes_only: bool = False, device_memory: bool = True) -> None:
        nvc = _nvc()
        self.keyframes_only = keyframes_only
        self.device_memory = device_memory
        self._demuxer = nvc.CreateDemuxer(filename=url)
        self._decoder = nvc.CreateDecoder(
            gpuid=gpu,
            codec=self._demuxer.GetNvCodecId(),
            cudacontext=0,
            cudastream=0,
            usedevicememory=device_memory,
        )
        self.width = int(self._demuxer.Width())
        self.height = int(self._demuxer.Height())
        self.packets = 0
        self.decoded = 0

    def frames(self) -> Iterator[Any]:
        """Decoded frames (PyNvVideoCodec ``DecodedFrame``, NV12), key frames only when asked."""
        for packet in self._demuxer:
            self.packets += 1
            if self.keyframes_only and not bool(getattr(packet, "key", True)):
                continue
            for frame in self._decoder.Decode(packet):
                self.decoded += 1
                yield frame

    def frames_bgr(self) -> Iterator[npt.NDArray[np.uint8]]:
        """Host BGR frames (needs ``device_memory=False``: the decoder then writes NV12 to host memory)."""
        if self.device_memory:
            raise ValueError("frames_bgr needs NvdecDecoder(..., device_memory=False)")
        h, w = self.height, self.width
        for frame in self.frames():
            size = int(frame.framesize())
            buf = (ctypes.c_uint8 * size).from_address(int(frame.GetPtrToPlane(0)))
            nv12 = np.frombuffer(memoryview(buf), np.uint8, count=h * w * 3 // 2).reshape(h * 3 // 2, w)
            yield np.asarray(cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12), np.uint8)
