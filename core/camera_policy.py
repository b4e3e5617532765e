"""Which secrets and hosts a camera definition may name: the operator's allow-list.

Why: a camera record names a secret reference (``credentials``) and a stream
URL, and the worker puts the secret into that URL's user-info and connects.
Without a limit, anyone able to write a record (the registry topic, a config
file) could name ``env:KUZET_S3_SECRET_KEY`` and ``rtsp://attacker/x`` and
receive the object store's key. So credential references must match patterns
the operator configured (by default only ``env:KUZET_CAM_*`` and
``file:/run/secrets/cameras/*``), and, optionally, camera hosts must lie in
allowed networks or match allowed host patterns.

File references are checked as given, after refusing any ``..`` or ``.``
segment and doubled slashes, with ``*`` never crossing a ``/``: the pattern
``file:/run/secrets/cameras/*`` admits ``/run/secrets/cameras/gate-1`` but not
``/run/secrets/cameras/../kuzet/s3``. Messages never repeat a secret value,
only the reference or host that was refused.
"""

from __future__ import annotations

import ipaddress
import json
import os
import posixpath
from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

if TYPE_CHECKING:
    from core.config import CameraConfig

DEFAULT_CREDENTIAL_REFS = ("env:KUZET_CAM_*", "file:/run/secrets/cameras/*")
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CameraPolicyError(ValueError):
    """A camera names a secret or host the operator did not allow; the message names the rule broken."""


class CameraPolicy(BaseModel):
    """Allow-lists applied to every camera, from the configuration file and from the registry alike."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    credential_refs: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CREDENTIAL_REFS),
        max_length=64,
        description="patterns a camera's secret reference must match: env:GLOB or file:/ABSOLUTE/GLOB",
    )
    hosts: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="allowed camera hosts: networks (10.20.0.0/16), addresses or name patterns "
        "(*.cam.city.example); empty allows any host",
    )

    @field_validator("credential_refs")
    @classmethod
    def _ref_patterns(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            kind, sep, rest = p.partition(":")
            if not sep or kind not in ("env", "file") or not rest:
                raise ValueError(f"credential pattern {p!r} must be env:GLOB or file:/ABSOLUTE/GLOB")
            if kind == "file" and not rest.startswith("/"):
                raise ValueError(f"credential pattern {p!r}: file patterns must be absolute paths")
        return patterns

    @field_validator("hosts")
    @classmethod
    def _host_patterns(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            if not p or (any(c in p for c in "/@:") and _network(p) is None):
                raise ValueError(f"host rule {p!r} must be a network (CIDR), an address or a host-name pattern")
        return patterns

    def check(self, camera: CameraConfig) -> None:
        """Raise :class:`CameraPolicyError` when the camera's secret reference or host is not allowed."""
        if camera.credentials is not None and not self.credential_allowed(camera.credentials):
            raise CameraPolicyError(
                f"camera {camera.id}: credentials reference {camera.credentials!r} is not in the operator's "
                f"allow-list (camera_policy.credential_refs: {', '.join(self.credential_refs) or 'none'})"
            )
        host = urlsplit(camera.url).hostname
        if host is not None and not self.host_allowed(host):
            raise CameraPolicyError(
                f"camera {camera.id}: host {host!r} is not in the operator's allowed camera hosts (camera_policy.hosts)"
            )

    def credential_allowed(self, ref: str) -> bool:
        kind, _, name = ref.partition(":")
        if kind == "env":
            return any(fnmatchcase(name, p[4:]) for p in self.credential_refs if p.startswith("env:"))
        if kind == "file":
            if posixpath.normpath(name) != name or "//" in name or not name.startswith("/"):
                return False  # ".." or "." segments, doubled or trailing slashes: never allowed
            path = PurePosixPath(name)
            return any(_path_matches(path, p[5:]) for p in self.credential_refs if p.startswith("file:"))
        return False

    def host_allowed(self, host: str) -> bool:
        if not self.hosts:
            return True
        host = host.lower().rstrip(".")
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            addr = None
        for rule in self.hosts:
            net = _network(rule)
            if net is not None:
                if addr is not None and addr.version == net.version and addr in net:
                    return True
            elif addr is None and fnmatchcase(host, rule.lower()):
                return True
        return False


def _path_matches(path: PurePosixPath, pattern: str) -> bool:
    """Whole-path glob match, segment by segment (so ``*`` never crosses a ``/``)."""
    want = PurePosixPath(pattern).parts
    have = path.parts
    return len(want) == len(have) and all(fnmatchcase(h, w) for h, w in zip(have, want, strict=True))


def _network(rule: str) -> _Network | None:
    try:
        return ipaddress.ip_network(rule, strict=False)
    except ValueError:
        return None


def policy_from_env() -> CameraPolicy:
    """The policy of a process without a config file (the ``kuzet cameras`` CLI): the same variables a
    worker reads, ``KUZET_CAMERA_POLICY__CREDENTIAL_REFS`` and ``KUZET_CAMERA_POLICY__HOSTS`` (JSON lists)."""
    data: dict[str, object] = {}
    for field in ("credential_refs", "hosts"):
        raw = os.environ.get(f"KUZET_CAMERA_POLICY__{field.upper()}")
        if raw is not None:
            try:
                data[field] = json.loads(raw)
            except json.JSONDecodeError:
                raise CameraPolicyError(f"KUZET_CAMERA_POLICY__{field.upper()} must be a JSON list") from None
    try:
        return CameraPolicy.model_validate(data)
    except ValidationError as exc:
        raise CameraPolicyError(f"camera policy from the environment: {exc.errors()[0]['msg']}") from None
