"""TensorRT engine cache: one folder per (model file, GPU, TensorRT version).

TensorRT builds an engine for one model on one GPU model with one TensorRT
release; building takes minutes, so engines are kept on disk. The key holds
all three parts, so a changed model file, a different GPU in the node or an
upgraded TensorRT gets a new engine instead of a stale one that TensorRT
would refuse (or worse, a mismatched one it would load).
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

_SLUG = re.compile(r"[^a-z0-9]+")


def engine_cache_key(model_sha256: str, gpu_name: str, trt_version: str) -> str:
    """A folder name like ``3f2a...c1-nvidia-h200-trt10.13.3``; each part must be known (no empty parts)."""
    if not re.fullmatch(r"[0-9a-f]{64}", model_sha256):
        raise ValueError(f"model sha256 must be 64 hex digits, got {model_sha256!r}")
    gpu = _SLUG.sub("-", gpu_name.lower()).strip("-")
    trt = _SLUG.sub(".", trt_version.lower()).strip(".")
    if not gpu or not trt:
        raise ValueError("the GPU name and the TensorRT version are both part of the engine key")
    return f"{model_sha256[:16]}-{gpu}-trt{trt}"


def tensorrt_version() -> str:
    """The installed TensorRT release (the wheel that onnxruntime-gpu's TensorRT provider loads)."""
    for dist in ("tensorrt", "tensorrt-cu12", "tensorrt-cu12-libs", "tensorrt-cu13", "tensorrt-cu13-libs"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise RuntimeError("TensorRT is not installed (pip install 'kuzet[gpu]')")


def gpu_name(index: int) -> str:
    """The product name of GPU ``index`` (NVML through nvidia-ml-py, else nvidia-smi)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(index))
        finally:
            pynvml.nvmlShutdown()
        return name.decode() if isinstance(name, bytes) else str(name)
    except ImportError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        raise RuntimeError("no NVIDIA driver tools here (neither NVML nor nvidia-smi) to name the GPU")
    out = subprocess.run(
        [smi, "--query-gpu=name", "--format=csv,noheader", "-i", str(index)],
        capture_output=True, text=True, check=True, timeout=20,
    )  # fmt: skip
    return out.stdout.strip()


def tensorrt_options(engine_dir: Path, device_index: int, fp16: bool = True) -> dict[str, Any]:
    """onnxruntime TensorRT provider options: FP16, engine and timing caches in ``engine_dir``."""
    engine_dir.mkdir(parents=True, exist_ok=True)
    return {
        "device_id": device_index,
        "trt_fp16_enable": fp16,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(engine_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(engine_dir),
        "trt_builder_optimization_level": 3,
    }
