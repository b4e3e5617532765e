"""``kuzet check-config``: every problem in a configuration, all at once, before a worker trips on one.

Two things pydantic alone does not give an operator:

* all problems in one run. A model validator (unknown detector, duplicate ids)
  only runs once every field is valid, so a key typo used to hide an unknown
  detector until it was fixed. :func:`reference_problems` checks those cross
  references on the raw YAML, whatever else is wrong.
* secrets that are actually there. A secret reference is only resolved when a
  worker opens the stream or the bucket, which used to be a 58-line traceback
  at start-up. :func:`secret_problems` checks that each reference in use
  exists (the variable is set, the file is readable) without reading a value.

A field holds a secret reference when its description starts with "secret
reference"; new secret settings follow that convention and are checked too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from core.config import ConfigError, KuzetConfig, format_validation_error, read_config_file

_SECRET_MARK = "secret reference"  # noqa: S105 - a marker in field descriptions, not a secret


@dataclass(frozen=True)
class ConfigCheck:
    """The outcome of a check: the config when it is valid, and every problem found (empty when fine)."""

    config: KuzetConfig | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_config_file(path: Path) -> ConfigCheck:
    """Validate ``path`` (plus ``KUZET_*`` environment) and list every problem, secrets included."""
    try:
        data = read_config_file(path)
    except ConfigError as exc:
        return ConfigCheck(None, [str(exc)])
    problems: list[str] = []
    cfg: KuzetConfig | None = None
    try:
        cfg = KuzetConfig(**data)
    except ValidationError as exc:
        lines = format_validation_error(exc, str(path)).splitlines()[1:]
        # the model's own detector check has no location; reference_problems names the camera's key instead
        problems += [line.removeprefix("  - ") for line in lines if "uses unknown detector" not in line]
    problems += reference_problems(data)
    if cfg is not None:
        problems += secret_problems(cfg)
    return ConfigCheck(cfg, problems)


def reference_problems(data: dict[str, Any]) -> list[str]:
    """Cameras naming detectors that no model defines, checked on the raw mapping (works when other keys are bad)."""
    models = data.get("models")
    if isinstance(models, list):
        names = {m.get("name") for m in models if isinstance(m, dict)}
    else:
        names = {m.name for m in KuzetConfig.model_fields["models"].get_default(call_default_factory=True)}
    cameras = data.get("cameras")
    out: list[str] = []
    for i, cam in enumerate(cameras if isinstance(cameras, list) else []):
        detectors = cam.get("detectors") if isinstance(cam, dict) else None
        if not isinstance(detectors, list):
            continue
        unknown = [d for d in detectors if isinstance(d, str) and d not in names]
        if unknown:
            cid = cam.get("id", i)
            out.append(
                f"cameras.{i}.detectors: camera {cid} uses unknown detector(s) {unknown}; "
                f"configured: {sorted(str(n) for n in names)}"
            )
    return out


def secret_problems(cfg: KuzetConfig) -> list[str]:
    """Each secret reference in use that does not resolve: unset variable or unreadable file (values never read)."""
    out: list[str] = []
    for where, ref in secret_references(cfg):
        kind, _, name = ref.partition(":")
        if kind == "env" and name not in os.environ:
            out.append(f"{where}: secret {ref} is not set in the environment")
        elif kind == "file" and not (Path(name).is_file() and os.access(name, os.R_OK)):
            out.append(f"{where}: secret file {name} does not exist or cannot be read")
    return out


def secret_references(cfg: KuzetConfig) -> Iterator[tuple[str, str]]:
    """(setting path, reference) for every secret reference the configuration will use.

    The S3 keys count only when snapshots go to S3: their defaults name variables a local setup never sets.
    """
    for where, ref in _walk(cfg, ""):
        if where.startswith("storage.s3.") and cfg.storage.kind != "s3":
            continue
        yield where, ref


def _walk(model: BaseModel, prefix: str) -> Iterator[tuple[str, str]]:
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        where = f"{prefix}{name}"
        if isinstance(value, str) and (info.description or "").startswith(_SECRET_MARK):
            yield where, value
        elif isinstance(value, BaseModel):
            yield from _walk(value, where + ".")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from _walk(item, f"{where}.{i}.")
