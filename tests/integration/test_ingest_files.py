"""CameraRunner on real files through PyAV: key-frame-only decoding, rate, looping, bad input, redaction."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from pathlib import Path

import av
import pytest

from core.config import CameraConfig, IngestConfig
from core.frame import Frame
from core.health import CameraState
from ingest.camera import CameraRunner, StatusChange

PASSWORD = "s3cr3t-P@ss/word"


def _count_key_packets(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        packets = [p for p in c.demux(stream) if p.size]
    return len(packets), sum(1 for p in packets if p.is_keyframe)


def _run_to_end(cam: CameraConfig, ingest: IngestConfig | None = None, timeout: float = 120.0):
    frames: list[Frame] = []
    statuses: list[StatusChange] = []
    runner = CameraRunner(cam, ingest or IngestConfig(), frames.append, statuses.append)
    runner.start()
    assert runner.join(timeout), "file camera did not finish"
    return runner, frames, statuses


def _cam(path: Path | str, **kw) -> CameraConfig:
    kw.setdefault("realtime", False)
    return CameraConfig(id="file-cam", url=str(path), **kw)


def test_keyframe_only_decodes_only_key_frames_and_full_decodes_all(vtest_h264: Path) -> None:
    n_packets, n_keys = _count_key_packets(vtest_h264)
    assert (n_packets, n_keys) == (795, 80)

    key_runner, key_frames, key_status = _run_to_end(_cam(vtest_h264, analysis_fps=1.0, keyframe_only="always"))
    ks = key_runner.stats()
    assert ks.packets_read == n_packets and ks.key_packets_read == n_keys
    assert ks.packets_decoded == ks.frames_decoded == ks.key_frames_decoded == n_keys  # 80 of 795
    assert ks.frames_analysed == n_keys and all(f.keyframe for f in key_frames)

    full_runner, full_frames, _ = _run_to_end(_cam(vtest_h264, analysis_fps=1.0, keyframe_only="never"))
    fs = full_runner.stats()
    assert fs.packets_decoded == fs.frames_decoded == n_packets
    assert fs.frames_analysed == len(full_frames) == 80

    assert ks.decode_cpu_s_per_analysed_frame is not None and fs.decode_cpu_s_per_analysed_frame is not None
    ratio = ks.decode_cpu_s_per_analysed_frame / fs.decode_cpu_s_per_analysed_frame
    print(
        f"\ndecode CPU per analysed frame at 1 fps (10 fps, GOP 10): key-only "
        f"{ks.decode_cpu_s_per_analysed_frame * 1e3:.2f} ms, full {fs.decode_cpu_s_per_analysed_frame * 1e3:.2f} ms, "
        f"ratio {ratio:.2f}"
    )
    assert ratio < 0.9  # a key frame costs several P-frames, but skipping 9 of 10 frames must still win clearly

    assert [s.state for s in key_status] == [CameraState.UP, CameraState.DOWN]
    assert key_status[-1].reason == "end of stream"
    f0 = key_frames[0]
    assert f0.image.shape == (576, 768, 3) and f0.image.dtype.name == "uint8"
    assert f0.camera_id == "file-cam" and f0.captured_at.tzinfo is not None


def test_auto_mode_goes_key_frame_only_after_measuring_the_gop(vtest_h264: Path) -> None:
    runner, frames, _ = _run_to_end(_cam(vtest_h264, analysis_fps=1.0, keyframe_only="auto"))
    st = runner.stats()
    assert st.keyframe_only and st.keyframe_interval_s == pytest.approx(1.0)
    assert 80 <= st.packets_decoded <= 80 + 3 * 10  # a few GOPs decoded fully while the interval is measured
    assert len(frames) == 80


def test_auto_mode_decodes_everything_when_the_rate_needs_it(vtest_h264: Path) -> None:
    runner, frames, _ = _run_to_end(_cam(vtest_h264, analysis_fps=3.0, keyframe_only="auto"))
    st = runner.stats()
    assert not st.keyframe_only and st.packets_decoded == 795
    # analysis rate kept in stream time (79.5 s of video) although the file was read as fast as possible
    assert abs(len(frames) - 79.5 * 3) <= 2
    pts = [f.pts_s for f in frames]
    assert pts == sorted(pts) and min(b - a for a, b in itertools.pairwise(pts)) >= 1 / 3 - 0.1 - 1e-6
    assert [f.seq for f in frames] == list(range(len(frames)))


def test_realtime_pacing_and_prompt_stop(vtest_h264: Path) -> None:
    frames: list[Frame] = []
    runner = CameraRunner(_cam(vtest_h264, analysis_fps=5.0, realtime=True, keyframe_only="never"), None, frames.append)
    runner.start()
    time.sleep(2.0)
    t0 = time.monotonic()
    assert runner.stop(5.0)
    stop_s = time.monotonic() - t0
    assert stop_s < 0.5, f"stop took {stop_s:.2f} s"
    # ~2 s of video at 5 analysed fps: paced, not the whole clip in two seconds
    assert 6 <= len(frames) <= 14, len(frames)
    assert frames[-1].pts_s <= 2.5


def test_loop_replays_with_increasing_timestamps(vtest_h264: Path) -> None:
    got_enough = threading.Event()
    frames: list[Frame] = []

    def on_frame(f: Frame) -> None:
        frames.append(f)
        if len(frames) >= 100:
            got_enough.set()

    runner = CameraRunner(_cam(vtest_h264, analysis_fps=1.0, loop=True, keyframe_only="always"), None, on_frame)
    runner.start()
    assert got_enough.wait(60)
    assert runner.stop(5.0)
    pts = [f.pts_s for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts)), "timestamps must keep increasing across loops"
    assert pts[85] == pytest.approx(85.0, abs=1.0)  # second pass continues after 79.5 s
    assert runner.status is not None and runner.status.state is CameraState.UP


@pytest.mark.parametrize(
    ("make", "reason_part"),
    [
        ("not_video", "not a readable video file"),
        ("truncated_h264", "end of stream"),
        ("truncated_mp4", "end of stream"),
        ("missing", "file not found"),
        ("empty", "empty file"),
    ],
)
def test_bad_files_mark_the_camera_down_with_a_clear_reason(tmp_path: Path, make: str, reason_part: str) -> None:
    from deploy.services import media

    path = tmp_path / f"{make}.mp4"
    if make == "not_video":
        media.not_video(path)
    elif make == "truncated_h264":
        path = media.truncated_h264(tmp_path / "broken.h264")
    elif make == "truncated_mp4":
        media.truncated_mp4(path)
    elif make == "empty":
        path.write_bytes(b"")
    runner, frames, statuses = _run_to_end(_cam(path, analysis_fps=2.0), timeout=60)
    assert statuses, "no status reported"
    last = statuses[-1]
    assert last.state is CameraState.DOWN
    assert reason_part in last.reason, last.reason
    assert not runner.is_alive()
    if make == "truncated_h264":
        # the damaged middle shows up in the reason, and the good frames before it were still analysed
        assert frames and ("corrupt" in last.reason or "could not be decoded" in last.reason), last.reason
    print(f"\n{make}: {last.reason}")


def test_unreachable_rtsp_is_down_with_reason_and_no_credential_anywhere(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("KUZET_CAM_TEST_CRED", f"admin:{PASSWORD}")
    cam = CameraConfig(id="gate-3", url=f"rtsp://127.0.0.1:{port}/x", credentials="env:KUZET_CAM_TEST_CRED")
    statuses: list[StatusChange] = []
    caplog.set_level(logging.DEBUG)
    runner = CameraRunner(
        cam, IngestConfig(open_timeout_s=2.0, backoff_initial_s=0.2, backoff_max_s=0.4), None, statuses.append
    )
    runner.start()
    deadline = time.monotonic() + 10
    while runner.stats().reconnects < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    t0 = time.monotonic()
    assert runner.stop(5.0)
    assert time.monotonic() - t0 < 1.0
    assert runner.stats().reconnects >= 3, "it must keep retrying an unreachable camera"
    assert len(statuses) == 1, "repeated failures are one status change"
    down = statuses[0]
    assert down.state is CameraState.DOWN
    assert "refused" in down.reason.lower() and f"127.0.0.1:{port}/x" in down.reason, down.reason
    out, err = capfd.readouterr()
    everything = " ".join([caplog.text, out, err, *(repr(s) for s in statuses)])
    for secret in (PASSWORD, "s3cr3t", "s3cr3t-P%40ss%2Fword", "admin:"):
        assert secret not in everything


def test_stats_survive_and_stop_is_idempotent(vtest_h264: Path) -> None:
    runner = CameraRunner(_cam(vtest_h264, analysis_fps=1.0, keyframe_only="always"))
    assert runner.stop() is True  # never started
    runner2 = CameraRunner(_cam(vtest_h264, analysis_fps=1.0, keyframe_only="always"))
    runner2.start()
    assert runner2.join(60)
    assert runner2.stop() and runner2.stop()
    assert runner2.stats().frames_analysed == 80
