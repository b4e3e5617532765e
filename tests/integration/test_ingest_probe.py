"""probe_video: a clear verdict on a file before a camera is built on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.probe import ProbeError, probe_video


def test_probe_describes_a_good_clip(vtest_h264: Path) -> None:
    info = probe_video(vtest_h264)
    assert (info.codec, info.width, info.height) == ("h264", 768, 576)
    assert info.fps == pytest.approx(10.0)
    assert info.keyframe_interval_s == pytest.approx(1.0)
    assert info.duration_s == pytest.approx(79.5, abs=0.2)
    assert probe_video(f"file://{vtest_h264}").path == vtest_h264


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "not found"),
        ("empty", "is empty"),
        ("text", "not a readable video file"),
        ("audio_only", "no video"),
    ],
)
def test_probe_rejects_bad_files_clearly(tmp_path: Path, kind: str, message: str) -> None:
    path = tmp_path / "x.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not a video\n" * 50)
    elif kind == "audio_only":
        import subprocess

        path = tmp_path / "tone.wav"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=d=0.5", str(path)], check=True)
    with pytest.raises(ProbeError, match=message):
        probe_video(path)


def test_probe_rejects_garbage_with_a_video_header(tmp_path: Path, vtest_h264: Path) -> None:
    data = bytearray(vtest_h264.read_bytes()[:400_000])
    # keep the mp4 index, destroy the media: no frame decodes cleanly
    moov = data.find(b"mdat")
    assert moov > 0
    for i in range(moov + 8, len(data)):
        data[i] = (i * 7919) % 256
    path = tmp_path / "garbage.mp4"
    path.write_bytes(bytes(data))
    with pytest.raises(ProbeError, match=r"no decodable video frame|reading"):
        probe_video(path)
