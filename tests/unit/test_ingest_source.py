"""PyAVSource pieces that need no stream: credential handling, URL kinds, and the polled-read stall logic."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import av.error
import pytest

from core.clock import FakeClock
from core.config import CameraConfig, IngestConfig
from ingest.source import (
    PacketSource,
    PyAVSource,
    SourceOpenError,
    SourceStalled,
    build_stream_url,
    file_path_of,
    is_live_url,
)

SECRET = "p@ss:w/rd%41"  # '@', ':', '/' and '%' all need URL-encoding


def test_credentials_are_resolved_and_encoded_only_when_building_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_CRED", f"op erator:{SECRET}")
    cam = CameraConfig(id="c", url="rtsp://10.1.2.3:554/Streaming/101?x=1", credentials="env:CAM_CRED")
    assert SECRET not in repr(cam) and "CAM_CRED" in repr(cam)  # the config holds a reference, not the secret
    url, scrub = build_stream_url(cam)
    assert url == "rtsp://op%20erator:p%40ss%3Aw%2Frd%2541@10.1.2.3:554/Streaming/101?x=1"
    message = f"cannot open {url}: 401 Unauthorized (user op erator, password {SECRET})"
    cleaned = scrub(message)
    for form in (SECRET, "p%40ss%3Aw%2Frd%2541"):
        assert form not in cleaned
    assert "10.1.2.3:554/Streaming/101" in cleaned and "401 Unauthorized" in cleaned


def test_missing_secret_is_a_clear_open_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_CRED", raising=False)
    cam = CameraConfig(id="c", url="rtsp://10.1.2.3/x", credentials="env:NOPE_CRED")
    with pytest.raises(SourceOpenError, match="credentials unavailable: secret env:NOPE_CRED is not set"):
        build_stream_url(cam)


def test_url_kinds() -> None:
    assert is_live_url("rtsp://h/x") and is_live_url("RTSPS://h/x") and is_live_url("http://h/x.mjpg")
    assert not is_live_url("/data/clip.mp4") and not is_live_url("file:///data/clip.mp4")
    assert str(file_path_of("file:///data/my%20clip.mp4")) == "/data/my clip.mp4"
    assert str(file_path_of("clips/a.mp4")) == "clips/a.mp4"


def test_pyav_source_satisfies_the_protocol() -> None:
    src = PyAVSource(CameraConfig(id="c", url="/x.mp4"), IngestConfig())
    assert isinstance(src, PacketSource)


class _Container:
    """Stands in for an open InputContainer whose reads keep getting interrupted (a silent socket)."""

    def __init__(self, clock: FakeClock, poll_s: float) -> None:
        self.clock = clock
        self.poll_s = poll_s
        self.reads = 0

    def demux(self, _stream: Any) -> Iterator[Any]:
        self.reads += 1
        self.clock.advance(self.poll_s)  # PyAV's interrupt fires after poll_s without data
        raise av.error.ExitError(-1414092869, "Immediate exit requested")
        yield  # pragma: no cover - makes this a generator


def _silent_source(stall_s: float, stop: threading.Event | None = None) -> tuple[PyAVSource, _Container, FakeClock]:
    clock = FakeClock()
    src = PyAVSource(
        CameraConfig(id="c", url="rtsp://127.0.0.1:1/x"),
        IngestConfig(stall_timeout_s=stall_s),
        clock=clock,
        stop_event=stop,
    )
    container = _Container(clock, src._poll_s)
    src._container = container  # type: ignore[assignment]
    src._stream = object()  # type: ignore[assignment]
    src._packets = container.demux(None)
    src._last_data_at = clock.monotonic()
    return src, container, clock


def test_silent_socket_is_polled_then_declared_stalled_after_the_timeout() -> None:
    src, container, clock = _silent_source(5.0)
    t0 = clock.monotonic()
    with pytest.raises(SourceStalled, match=r"no data for 5\.0 s"):
        src.read()
    assert clock.monotonic() - t0 == pytest.approx(5.0)
    assert container.reads == 10  # ten 0.5 s polls: stop() is never more than half a second away


def test_stop_cuts_a_silent_read_short() -> None:
    stop = threading.Event()
    stop.set()
    src, container, clock = _silent_source(30.0, stop)
    t0 = clock.monotonic()
    with pytest.raises(SourceStalled):
        src.read()
    assert clock.monotonic() - t0 <= 0.5 and container.reads == 1
