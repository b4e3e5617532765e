"""Test media: the vtest clip as H.264, plus deliberately broken inputs for bad-input tests.

The vtest clip (``../shared/data/vtest.avi``, MPEG-4 part 2, 768x576, 10 fps)
is re-encoded once with ffmpeg to H.264 (yuv420p, a key frame every ``gop``
frames) and cached under ``~/.cache/kuzet/media``, so RTSP streams and file
cameras serve H.264 without any encoding at test time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from deploy.services._proc import ServiceError, cache_dir

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """The shared data folder: KUZET_SHARED_DIR, else ``../shared`` next to the repository."""
    env = os.environ.get("KUZET_SHARED_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def vtest_source() -> Path:
    path = shared_dir() / "data" / "vtest.avi"
    if not path.is_file():
        raise ServiceError(
            f"vtest clip not found at {path} (set KUZET_SHARED_DIR to the folder holding data/vtest.avi)"
        )
    return path


def media_cache() -> Path:
    path = cache_dir() / "media"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if not found:
        raise ServiceError("ffmpeg not found: run scripts/install_system.sh")
    return found


def encode_h264(
    src: Path, dst: Path, *, gop: int = 10, fps: float | None = None, max_frames: int | None = None
) -> Path:
    """Re-encode src to H.264 mp4 at dst (atomic: written to a temp name, then renamed)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.{os.getpid()}.tmp{dst.suffix}")
    cmd = [_ffmpeg(), "-nostdin", "-y", "-v", "error", "-i", str(src), "-map", "0:v:0", "-an"]
    if fps is not None:
        cmd += ["-r", f"{fps:g}"]
    if max_frames is not None:
        cmd += ["-frames:v", str(max_frames)]
    cmd += [
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
        # Fixed GOP, no scene-cut key frames: tests count key frames and rely on the interval.
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "0",
        "-movflags", "+faststart", str(tmp),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise ServiceError(f"ffmpeg could not encode {src.name}: {res.stderr.strip()[-500:]}")
    tmp.replace(dst)
    return dst


def vtest_h264(path: Path | None = None, *, gop: int = 10) -> Path:
    """The vtest clip as H.264 mp4 (key frame every ``gop`` frames at 10 fps), cached; copied to path if given."""
    cached = media_cache() / f"vtest-h264-g{gop}.mp4"
    if not cached.exists():
        encode_h264(vtest_source(), cached, gop=gop)
    if path is None:
        return cached
    path = Path(path)
    if path.resolve() != cached.resolve():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, path)
    return path


def truncated_h264(path: Path, *, keep_fraction: float = 0.4, corrupt: bool = True) -> Path:
    """A damaged H.264 file: the vtest mp4 cut short (no moov index survives in a plain cut of
    a non-faststart file, so it is written as raw Annex-B), with a run of garbage bytes in the middle.

    Decoders must report errors or stop early on it; the worker must mark the camera down, not crash.
    """
    src = vtest_h264()
    annexb = media_cache() / "vtest-h264-g10.h264"
    if not annexb.exists():
        tmp = annexb.with_name(f".{annexb.name}.{os.getpid()}.tmp")
        res = subprocess.run(
            [_ffmpeg(), "-nostdin", "-y", "-v", "error", "-i", str(src), "-c:v", "copy",
             "-bsf:v", "h264_mp4toannexb", "-f", "h264", str(tmp)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if res.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise ServiceError(f"ffmpeg could not extract Annex-B: {res.stderr.strip()[-500:]}")
        tmp.replace(annexb)
    data = bytearray(annexb.read_bytes()[: int(annexb.stat().st_size * keep_fraction)])
    if corrupt and len(data) > 4096:
        mid = len(data) // 2
        data[mid : mid + 2048] = bytes((i * 131 + 7) % 256 for i in range(2048))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def truncated_mp4(path: Path, *, keep_fraction: float = 0.5) -> Path:
    """The vtest mp4 cut at keep_fraction of its bytes (index intact, media data missing at the end)."""
    data = vtest_h264().read_bytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def not_video(path: Path) -> Path:
    """A file with a video extension whose bytes are text: opening it must give a clear error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not a video file\n" * 64)
    return path
