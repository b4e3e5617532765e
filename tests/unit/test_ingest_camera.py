"""CameraRunner driven by a scripted fake packet source and a fake clock.

Every fault the real world produces (refused connection, stall, reset, corrupt
packets, a server that ends the stream) is injected here without FFmpeg, and
all timing (stall watchdog, back-off, health windows) runs on a FakeClock, so
these tests are exact and fast.

Why one module over 400 lines: the camera runner's states (connect, read, stall, back-off, health) are
tested against one fake source and clock; the cases are short and read best together.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from core.clock import FakeClock
from core.config import CameraConfig, IngestConfig
from core.frame import Frame
from core.health import CameraState
from ingest.camera import CameraRunner, StatusChange
from ingest.source import (
    DecodeError,
    SourceOpenError,
    SourcePacket,
    SourceReadError,
    SourceStalled,
    StreamInfo,
)

_IMG = np.zeros((4, 6, 3), np.uint8)


@dataclass
class FakeImage:
    pts_s: float | None
    keyframe: bool
    corrupt: bool = False

    def to_bgr(self) -> np.ndarray:
        return _IMG


@dataclass
class Pkt:
    pts: float
    key: bool = False
    corrupt: bool = False  # decoding it raises DecodeError
    held: bool = False  # the decoder holds it back until drained (reordering delay)


class Stall:
    """read() blocks for the read timeout, then raises SourceStalled (PyAV's interrupt callback)."""


class Abort:
    """read() fails: connection reset."""


class Silent:
    """A packet arrives but decodes to nothing (e.g. an undecodable stream): advances the clock by ``dt``."""

    def __init__(self, dt: float) -> None:
        self.dt = dt


class Stop:
    """The test wants the runner to stop here (as if ``stop()`` came from another thread)."""


@dataclass
class FakeSource:
    clock: FakeClock
    script: list[Any]
    fps: float = 10.0
    live: bool = True
    read_timeout_s: float = 5.0
    open_error: SourceOpenError | None = None
    runner: CameraRunner | None = None
    decoded: list[Pkt] = field(default_factory=list)
    held: list[Pkt] = field(default_factory=list)
    closed: bool = False
    opened_at: float | None = None

    def open(self) -> StreamInfo:
        self.opened_at = self.clock.monotonic()
        if self.open_error is not None:
            raise self.open_error
        return StreamInfo(codec="fake", width=6, height=4, fps=self.fps, live=self.live)

    def read(self) -> SourcePacket | None:
        if not self.script:
            return None
        item = self.script.pop(0)
        if isinstance(item, Stall):
            self.clock.advance(self.read_timeout_s)
            raise SourceStalled(f"no data for {self.read_timeout_s:g} s")
        if isinstance(item, Abort):
            raise SourceReadError("read failed: Connection reset by peer")
        if isinstance(item, Stop):
            assert self.runner is not None
            self.runner._stop.set()
            return self.read()
        if isinstance(item, Silent):
            self.clock.advance(item.dt)
            return SourcePacket(pts_s=None, keyframe=False, size=10, raw=Pkt(-1, corrupt=True))
        assert isinstance(item, Pkt)
        self.clock.advance(1.0 / self.fps)  # packets arrive in real time
        return SourcePacket(pts_s=item.pts, keyframe=item.key, size=100, corrupt=item.corrupt, raw=item)

    def decode(self, packet: SourcePacket | None) -> list[FakeImage]:
        if packet is None:
            out = [FakeImage(p.pts, p.key) for p in self.held]
            self.held.clear()
            return out
        pkt = packet.raw
        self.decoded.append(pkt)
        if pkt.corrupt:
            raise DecodeError("decode failed: Invalid data found when processing input")
        if pkt.held:
            self.held.append(pkt)
            return []
        return [FakeImage(pkt.pts, pkt.key)]

    def reset_decoder(self) -> None:
        self.held.clear()

    def close(self) -> None:
        self.closed = True


def stream(seconds: float, fps: float = 10.0, gop: int = 10, start: float = 0.0) -> list[Pkt]:
    n = round(seconds * fps)
    return [Pkt(start + i / fps, key=(i % gop == 0)) for i in range(n)]


class Harness:
    def __init__(
        self,
        sources: Iterable[FakeSource | Callable[[], FakeSource]],
        *,
        analysis_fps: float = 2.0,
        keyframe_only: str = "never",
        ingest: IngestConfig | None = None,
        url: str = "rtsp://127.0.0.1:8554/cam",
        seed: int = 1,
    ) -> None:
        self.clock = FakeClock()
        self.frames: list[Frame] = []
        self.statuses: list[StatusChange] = []
        self.sources = list(sources)
        self.made: list[FakeSource] = []
        cam = CameraConfig(id="cam-1", url=url, analysis_fps=analysis_fps, keyframe_only=keyframe_only)  # type: ignore[arg-type]
        self.ingest = ingest or IngestConfig(stall_timeout_s=5.0, backoff_initial_s=0.5, backoff_max_s=8.0)
        self.runner = CameraRunner(
            cam,
            self.ingest,
            self.frames.append,
            self.statuses.append,
            source_factory=self._next,
            clock=self.clock,
            rng=random.Random(seed),
        )

    def _next(self) -> FakeSource:
        if self.sources:
            item = self.sources.pop(0)
            src = item() if callable(item) and not isinstance(item, FakeSource) else item
        else:  # nothing scripted any more: a permanent failure ends run()
            src = FakeSource(self.clock, [], open_error=SourceOpenError("script over", permanent=True))
        src.runner = self.runner
        self.made.append(src)
        return src

    def src(self, script: list[Any], **kw: Any) -> FakeSource:
        return FakeSource(self.clock, script, read_timeout_s=self.ingest.stall_timeout_s, **kw)

    def run(self) -> None:
        self.runner.run()

    def states(self) -> list[tuple[str, str]]:
        return [(s.state.value, s.reason) for s in self.statuses]


def test_full_decoding_samples_by_pts_and_reports_up() -> None:
    h = Harness([], analysis_fps=2.0)
    h.sources = [h.src(stream(10), live=False)]
    h.run()
    assert [f.pts_s for f in h.frames] == pytest.approx([i * 0.5 for i in range(20)])
    assert [f.seq for f in h.frames] == list(range(20))
    st = h.runner.stats()
    assert st.packets_read == 100 and st.packets_decoded == 100 and st.frames_decoded == 100
    assert st.frames_analysed == 20 and st.key_frames_decoded == 10
    assert h.states() == [("up", "frames flowing"), ("down", "end of stream")]
    assert h.made[0].closed
    assert all(f.captured_at.tzinfo is not None for f in h.frames)


def test_keyframe_only_always_decodes_only_key_packets() -> None:
    h = Harness([], analysis_fps=1.0, keyframe_only="always")
    h.sources = [h.src(stream(20), live=False)]
    h.run()
    decoded = h.made[0].decoded
    assert decoded and all(p.key for p in decoded), "a non-key packet reached the decoder"
    st = h.runner.stats()
    assert st.packets_decoded == st.frames_decoded == st.key_frames_decoded == st.key_packets_read == 20
    assert st.frames_analysed == 20 and all(f.keyframe for f in h.frames)
    assert st.keyframe_only


def test_keyframe_only_skips_key_frames_beyond_the_analysis_rate() -> None:
    h = Harness([], analysis_fps=0.5, keyframe_only="always")
    h.sources = [h.src(stream(20), live=False)]
    h.run()
    assert len(h.made[0].decoded) == 10  # every other key frame: the rest are never decoded at all
    assert [f.pts_s for f in h.frames] == pytest.approx([2.0 * i for i in range(10)])


def test_keyframe_only_drains_a_decoder_that_holds_frames_back() -> None:
    h = Harness([], analysis_fps=1.0, keyframe_only="always")
    script = stream(5)
    for p in script:
        p.held = p.key
    h.sources = [h.src(script, live=False)]
    h.run()
    assert len(h.frames) == 5 and [f.pts_s for f in h.frames] == pytest.approx([0, 1, 2, 3, 4])


def test_auto_mode_switches_to_keyframes_after_observing_the_gop() -> None:
    h = Harness([], analysis_fps=1.0, keyframe_only="auto")
    h.sources = [h.src(stream(30), live=False)]
    h.run()
    decoded = h.made[0].decoded
    # the first two GOPs are decoded fully while the interval is measured, then key frames only
    assert len(decoded) == 20 + 28
    assert all(p.key for p in decoded[20:])
    assert len(h.frames) == 30
    assert h.runner.stats().keyframe_interval_s == pytest.approx(1.0)


def test_auto_mode_decodes_everything_when_analysis_needs_more_than_key_frames() -> None:
    h = Harness([], analysis_fps=5.0, keyframe_only="auto")
    h.sources = [h.src(stream(10), live=False)]
    h.run()
    assert len(h.made[0].decoded) == 100 and len(h.frames) == 50


def test_leading_non_key_packets_are_not_decoded() -> None:
    h = Harness([], analysis_fps=10.0)
    h.sources = [h.src(stream(3, start=0.0)[5:], live=False)]  # joins mid-GOP, like a live camera
    h.run()
    assert h.made[0].decoded[0].key
    assert len(h.made[0].decoded) == 20


def test_stall_reports_down_then_reconnects_and_comes_back_up() -> None:
    h = Harness([])
    h.sources = [
        h.src([*stream(3), Stall()]),
        h.src(stream(3, start=100.0), live=False),
    ]
    h.run()
    assert h.states() == [
        ("up", "frames flowing"),
        ("down", "stalled: no data for 5 s"),
        ("up", "frames flowing"),
        ("down", "end of stream"),
    ]
    down, up = h.statuses[1], h.statuses[2]
    assert (down.at - h.statuses[0].at).total_seconds() <= 3 + 5 + 1e-6
    assert up.reconnects == 1
    assert (up.at - down.at).total_seconds() < 1.0  # first retry waits at most backoff_initial_s
    assert h.made[0].closed and h.made[1].closed
    assert [f.seq for f in h.frames][:6] == list(range(6)) and h.frames[6].seq == 0  # seq restarts per connection


def test_watchdog_catches_a_connection_that_delivers_packets_but_no_frames() -> None:
    h = Harness([])
    h.sources = [h.src([*stream(2), *[Silent(0.5) for _ in range(40)]]), h.src([], live=False)]
    h.run()
    states = h.states()
    # it may look degraded first (the rate falls before the timeout), then the watchdog declares it down
    down = next(r for s, r in states if s == "down")
    assert [s for s, _ in states][:1] == ["up"] and states.index(("down", down)) in (1, 2)
    assert down.startswith("stalled: no frames for 5.")
    assert "packets could not be decoded" in down
    # caught on the first packet past the timeout, not at the end of the garbage
    assert len(h.made[0].script) == 40 - 11


def test_read_error_and_server_end_reconnect_but_file_end_does_not() -> None:
    h = Harness([])
    h.sources = [h.src([*stream(1), Abort()]), h.src(stream(1)), h.src(stream(1), live=False)]
    h.run()
    assert h.states() == [
        ("up", "frames flowing"),
        ("down", "read failed: Connection reset by peer"),
        ("up", "frames flowing"),
        ("down", "stream ended by server"),
        ("up", "frames flowing"),
        ("down", "end of stream"),
    ]
    assert h.runner.stats().reconnects == 2
    assert len(h.made) == 3  # the file's end stopped the runner: no fourth connection


def test_open_failures_back_off_capped_and_jittered_and_reset_after_success() -> None:
    h = Harness([])
    refused = [
        h.src([], open_error=SourceOpenError("cannot open rtsp://127.0.0.1:8554/cam: Connection refused"))
        for _ in range(8)
    ]
    h.sources = [
        *refused,
        h.src([*stream(2), Abort()]),
        h.src([], open_error=SourceOpenError("refused")),
        h.src(stream(1), live=False),
    ]
    h.run()
    opens = [s.opened_at for s in h.made]
    gaps = [b - a for a, b in itertools.pairwise(opens)]
    # attempts 0..7 after the refusals: equal jitter in [cap/2, cap], cap = min(8, 0.5 * 2**n)
    for n, gap in enumerate(gaps[:8]):
        cap = min(8.0, 0.5 * 2**n)
        assert cap / 2 <= gap <= cap, (n, gap)
    assert max(gaps) <= 8.0 + 2.1  # never above the cap (+ the 2 s the working connection ran)
    # the connection after the 8 refusals delivered frames (for 2 s): the next failure starts again at attempt 0
    assert 0.25 <= gaps[8] - 2.0 <= 0.5
    assert 0.5 <= gaps[9] <= 1.0
    # status only on change: 8 refusals are one "down"
    assert [s for s, _ in h.states()] == ["down", "up", "down", "up", "down"]
    assert h.statuses[0].reason == "cannot open rtsp://127.0.0.1:8554/cam: Connection refused"


def test_same_seed_same_schedule_different_seed_different() -> None:
    def schedule(seed: int) -> list[float]:
        h = Harness([], seed=seed)
        h.sources = [h.src([], open_error=SourceOpenError("refused")) for _ in range(6)]
        h.run()
        return [s.opened_at or 0.0 for s in h.made]

    assert schedule(5) == schedule(5)
    assert schedule(5) != schedule(6)


def test_permanent_open_error_stops_without_retrying() -> None:
    h = Harness([])
    h.sources = [h.src([], open_error=SourceOpenError("not a video file", permanent=True)), h.src(stream(1))]
    h.run()
    assert h.states() == [("down", "not a video file")]
    assert len(h.made) == 1


def test_corrupt_packets_are_counted_and_skipped() -> None:
    h = Harness([], analysis_fps=10.0)
    script = stream(3)
    for i in (3, 4, 15):
        script[i].corrupt = True
    h.sources = [h.src(script, live=False)]
    h.run()
    st = h.runner.stats()
    assert st.decode_errors == 3 and st.corrupt_packets == 3
    assert len(h.frames) == 27
    assert h.states()[-1] == ("down", "end of stream (3 packets could not be decoded)")


def test_degraded_when_frames_thin_out_and_up_when_they_return() -> None:
    h = Harness([], analysis_fps=5.0, ingest=IngestConfig(stall_timeout_s=5.0, degraded_ratio=0.5))
    good1 = stream(8)
    # the camera keeps its key frames but drops most other frames: 2 analysed fps instead of 5
    thin = [p for p in stream(8, start=8.0) if round(p.pts * 10) % 5 == 0]
    good2 = stream(12, start=16.0)
    h.sources = [h.src([*good1, *thin, *good2], live=False)]
    # thin packets arrive at 2 per second of real time; FakeSource advances 1/fps per packet
    src = h.sources[0]
    orig_read = src.read

    def read() -> SourcePacket | None:
        pkt = orig_read()
        if pkt is not None and pkt.pts_s is not None and 8.0 <= pkt.pts_s < 16.0:
            h.clock.advance(0.5 - 0.1)
        return pkt

    src.read = read  # type: ignore[method-assign]
    h.run()
    states = [s for s, _ in h.states()]
    assert states == ["up", "degraded", "up", "down"]
    degraded = h.statuses[1]
    assert "expected 5.00 fps" in degraded.reason
    assert degraded.analysed_fps < 2.5


def test_callback_exceptions_do_not_kill_the_camera() -> None:
    h = Harness([], analysis_fps=10.0)
    h.sources = [h.src(stream(2), live=False)]

    def boom(_f: Frame) -> None:
        raise RuntimeError("consumer bug")

    h.runner._on_frame = boom
    h.run()
    assert h.runner.stats().callback_errors == 20
    assert h.states()[-1] == ("down", "end of stream")


def test_internal_error_becomes_down_and_retry() -> None:
    h = Harness([])
    bad = h.src(stream(1))

    def broken_decode(packet: SourcePacket | None) -> list[FakeImage]:
        raise KeyError("bug")

    bad.decode = broken_decode  # type: ignore[method-assign]
    h.sources = [bad, h.src(stream(1), live=False)]
    h.run()
    assert h.states()[0] == ("down", "internal error: KeyError")
    assert h.states()[-1] == ("down", "end of stream")


def test_stop_ends_run_and_closes_the_source() -> None:
    h = Harness([])
    h.sources = [h.src([*stream(1), Stop(), *stream(100, start=1.0)])]
    h.run()
    assert h.made[0].closed
    assert len(h.frames) <= 3  # the packet already read when the stop arrived may still be handled
    assert h.runner.stats().reconnects == 0


def test_reasons_are_redacted() -> None:
    h = Harness([])
    h.sources = [h.src([], open_error=SourceOpenError("cannot open rtsp://admin:hunter2@10.0.0.9/live: 401"))]
    h.run()
    assert "hunter2" not in h.statuses[0].reason
    assert h.statuses[0].state is CameraState.DOWN


def test_stop_from_a_callback_on_the_camera_thread_does_not_deadlock() -> None:
    h = Harness([], analysis_fps=10.0)
    h.sources = [h.src(stream(5), live=False)]
    results: list[bool] = []

    def on_frame(_f: Frame) -> None:
        if not results:
            results.append(h.runner.stop())

    h.runner._on_frame = on_frame
    h.runner.start()
    assert h.runner.join(5.0)
    assert results == [False]
    assert h.runner.stats().frames_analysed <= 2
