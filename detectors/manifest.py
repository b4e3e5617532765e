"""The model manifest: what each model is, where its weights come from, how to convert them.

Parsed into frozen pydantic models with ``extra="forbid"`` so that a typo in
the manifest fails loudly at build time rather than producing a silently
different model.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.yaml_file import read_yaml
from detectors.errors import ManifestError

DEFAULT_MANIFEST = Path(__file__).with_name("manifest.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceFile(_Strict):
    """A file the source file needs beside it (a TF.js graph's weight shards)."""

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Source(_Strict):
    registry: Literal["pypi", "npm"] = Field(
        default="pypi",
        description="pypi: an installed distribution; npm: a tarball made by `npm pack` in the npm directory",
    )
    package: str
    version: str
    file: str = Field(
        description="path inside the installed distribution (as listed in its RECORD) or inside the npm tarball"
    )
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    install: str = Field(description="the pip (or npm pack) command that provides the package")
    pre_import: list[str] = Field(default_factory=list, description="modules to import before unpickling")
    companions: list[SourceFile] = Field(
        default_factory=list, description="files from the same package the conversion reads next to `file`"
    )


class Conversion(_Strict):
    tool: Literal["tf2onnx", "tf2onnx-tfjs", "ultralytics-export"]
    opset: int = Field(ge=11, le=22)
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    dynamic_batch: bool = True
    uint8_input: bool = Field(default=False, description="tf2onnx-tfjs: cast a uint8 NHWC input to the graph's float")
    input_mean: list[float] = Field(default_factory=list, description="tf2onnx-tfjs: subtracted after the cast")
    input_std: list[float] = Field(default_factory=list, description="tf2onnx-tfjs: divided by after the mean")
    input_nchw: bool = Field(default=False, description="tf2onnx-tfjs: the graph input is channels-first")


class InputSpec(_Strict):
    size: int = Field(ge=32, le=2048)
    resize: Literal["stretch", "letterbox"]
    layout: Literal["nhwc", "nchw"]
    dtype: Literal["uint8", "float32"]
    color: Literal["rgb", "bgr"] = "rgb"
    rect_stride: int | None = Field(
        default=None, ge=1, description="letterbox same-shape batches into a stride-aligned rectangle (dynamic H, W)"
    )
    resample: Literal["opencv", "tf-asymmetric"] = Field(
        default="opencv", description="tf-asymmetric reproduces a TF1 graph's own resize_bilinear"
    )


class ModelEntry(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    task: Literal["detect"]
    head: Literal["ssd", "yolov8", "centernet", "nanodet"]
    description: str = ""
    source: Source
    conversion: Conversion
    input: InputSpec
    class_names: dict[int, str]
    keep_source: bool = False
    optional: bool = Field(
        default=False, description="built only when named (`kuzet models build --only ID`), never by a plain build"
    )
    licence: str

    @property
    def source_suffix(self) -> str:
        return Path(self.source.file).suffix


class Manifest(_Strict):
    schema_version: Literal[1]
    models: list[ModelEntry]

    def get(self, model_id: str) -> ModelEntry:
        for entry in self.models:
            if entry.id == model_id:
                return entry
        known = ", ".join(e.id for e in self.models)
        raise ManifestError(f"model {model_id!r} is not in the model manifest; known models: {known}")


def load_manifest(path: Path | None = None) -> Manifest:
    """Read and validate a manifest file (the packaged one by default)."""
    return _load_manifest(Path(path) if path is not None else DEFAULT_MANIFEST)


@lru_cache(maxsize=8)
def _load_manifest(path: Path) -> Manifest:
    data = read_yaml(path, "model manifest", ManifestError)
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"model manifest {path} is invalid:\n{exc}") from None
    ids = [e.id for e in manifest.models]
    if len(ids) != len(set(ids)):
        raise ManifestError(f"model manifest {path} has duplicate ids")
    return manifest
