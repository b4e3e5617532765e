"""Where a model runs: ``cpu``, ``cuda`` (``cuda:0``) or ``cuda:N``, and the check that it is really there.

A model configured for CUDA on a machine without it must stop the worker at
start with a message that says what is missing; running it on the CPU
instead would pass every health check while analysing a fraction of the
frames the operator sized the worker for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from detectors.errors import DetectorError

DEVICE_PATTERN = r"^(cpu|cuda(:[0-9]{1,2})?)$"
_RE = re.compile(DEVICE_PATTERN)


class DeviceUnavailableError(DetectorError):
    """The configured device does not exist here (no CUDA build of onnxruntime, no GPU, or no such index)."""


@dataclass(frozen=True, slots=True)
class Device:
    kind: Literal["cpu", "cuda"]
    index: int = 0

    @classmethod
    def parse(cls, text: str) -> Device:
        if not _RE.match(text):
            raise ValueError(f"device must be cpu, cuda or cuda:N, got {text!r}")
        if text == "cpu":
            return cls("cpu")
        _, _, index = text.partition(":")
        return cls("cuda", int(index or 0))

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


def require_providers(device: Device, model: str, available: list[str], active: list[str] | None = None) -> None:
    """Raise :class:`DeviceUnavailableError` unless onnxruntime can run ``model`` on ``device``.

    ``available`` is ``onnxruntime.get_available_providers()``; ``active`` a
    created session's ``get_providers()``: onnxruntime-gpu quietly drops the
    CUDA provider when the CUDA libraries fail to load, so both are checked.
    """
    if not device.is_cuda:
        return
    gpu = {"CUDAExecutionProvider", "TensorrtExecutionProvider"}
    if not gpu & set(available):
        raise DeviceUnavailableError(
            f"model {model!r} is configured for device {device} but this onnxruntime has no CUDA provider "
            f"(available: {', '.join(available)}). Install the gpu extra (pip install 'kuzet[gpu]', which "
            "brings onnxruntime-gpu) on a machine with an NVIDIA driver, or set device: cpu"
        )
    if active is not None and not gpu & set(active):
        raise DeviceUnavailableError(
            f"model {model!r} is configured for device {device} but onnxruntime could not start CUDA "
            f"(session providers: {', '.join(active)}); check the NVIDIA driver, CUDA libraries and the GPU "
            "index, or set device: cpu"
        )
