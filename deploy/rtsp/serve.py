"""RTSP server for test cameras: H.264 from files, looped at real-time pace, with stall/resume.

Runs under Debian's system Python (``/usr/bin/python3``), because the GStreamer
RTSP server bindings (python3-gi, gir1.2-gst-rtsp-server-1.0) exist only there;
the venv side (``deploy/services/rtsp_server.py``) starts and drives it. Only
the standard library and ``gi`` are imported.

Why appsrc and not ``filesrc ! qtdemux``: a stream must be able to *stall*, i.e.
keep every client's RTSP/TCP connection open while sending no data, then
resume; and it must loop forever without seeks. Each file is converted once
(ffmpeg, ``-c copy`` when it is already H.264) to Annex-B with access-unit
delimiters, split into access units in memory, and a feeder thread per stream
pushes one access unit per frame period into the ``appsrc`` of the stream's
shared media. Stalling just stops pushing. No stream is re-encoded at run time,
so two dozen streams cost little CPU (parse + payload only).

Control API (HTTP, JSON, loopback only):
  GET    /health                    -> {"ok": true, "streams": N}
  GET    /streams                   -> [{name, path, fps, stalled, clients, pushed, frame, frames}]
                                       (frame: index in the file of the unit sent last, of `frames`)
  POST   /streams {"name", "path", "fps"?}  -> {"name", "url"}
  DELETE /streams/<name>
  POST   /streams/<name>/stall      -> stop sending, keep connections open
  POST   /streams/<name>/resume     -> send again (from the next key frame)

Why one file over 400 lines: it is a stand-alone script run by the RTSP launcher in its own process
(outside the packages), so it carries its own probing, H.264 framing and HTTP control handler.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
NAL_IDR = 5
NAL_AUD = 9


def log(msg: str) -> None:
    print(f"[rtsp-serve {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ media prep
def probe(path: Path) -> tuple[str, Fraction]:
    """Codec name and frame rate of the first video stream (ffprobe)."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,avg_frame_rate,r_frame_rate",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise ValueError(f"not a readable video: {path.name}: {out.stderr.strip()[-300:]}")
    streams = json.loads(out.stdout).get("streams") or []
    if not streams:
        raise ValueError(f"no video stream in {path.name}")
    codec = str(streams[0].get("codec_name", ""))
    fps = Fraction(0)
    for key in ("avg_frame_rate", "r_frame_rate"):
        try:
            fps = Fraction(str(streams[0].get(key, "0/0")))
        except (ValueError, ZeroDivisionError):
            continue
        if 0 < fps <= 240:
            break
    if not 0 < fps <= 240:
        fps = Fraction(25)
    return codec, fps


def to_annexb(path: Path, cache: Path, fps: Fraction, codec: str) -> Path:
    """Annex-B H.264 with an access-unit delimiter before every frame, cached by file identity."""
    st = path.stat()
    digest = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    out = cache / f"{path.stem}-{digest}.h264"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    if codec == "h264":
        video = ["-c:v", "copy", "-bsf:v", "h264_mp4toannexb,h264_metadata=aud=insert"]
    else:
        # Not H.264: encode once here (never per client), one key frame a second.
        gop = str(max(1, round(fps)))
        video = [
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            gop,
            "-bsf:v",
            "h264_metadata=aud=insert",
        ]
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-y",
        "-v",
        "error",
        "-i",
        str(path),
        "-map",
        "0:v:0",
        "-an",
        *video,
        "-f",
        "h264",
        str(tmp),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"cannot convert {path.name} to H.264: {res.stderr.strip()[-300:]}")
    tmp.replace(out)
    return out


def split_access_units(data: bytes) -> list[tuple[bytes, bool]]:
    """Split an Annex-B stream at its access-unit delimiters: [(access unit bytes, has IDR)]."""
    starts: list[int] = []  # offsets of start codes (the 00 00 01 or 00 00 00 01)
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        begin = i - 1 if i > 0 and data[i - 1] == 0 else i
        starts.append(begin)
        i = data.find(b"\x00\x00\x01", i + 3)
    units: list[tuple[bytes, bool]] = []
    au_start: int | None = None
    key = False
    for pos in starts:
        header = data.find(b"\x00\x00\x01", pos) + 3
        if header >= len(data):
            break
        nal_type = data[header] & 0x1F
        if nal_type == NAL_AUD:
            if au_start is not None:
                units.append((data[au_start:pos], key))
            au_start, key = pos, False
        elif nal_type == NAL_IDR:
            key = True
    if au_start is not None and au_start < len(data):
        units.append((data[au_start:], key))
    return units


_AU_CACHE: dict[Path, list[tuple[bytes, bool]]] = {}
_AU_LOCK = threading.Lock()


def load_units(annexb: Path) -> list[tuple[bytes, bool]]:
    """Access units of a converted file, shared between streams serving the same file."""
    with _AU_LOCK:
        units = _AU_CACHE.get(annexb)
        if units is None:
            units = split_access_units(annexb.read_bytes())
            if not units or not any(k for _, k in units):
                raise ValueError(f"{annexb.name}: no H.264 access units with a key frame")
            _AU_CACHE[annexb] = units
        return units


# --------------------------------------------------------------------- streams
class Stream:
    """One mount point: a shared media whose appsrc a feeder thread fills at the frame rate."""

    def __init__(self, name: str, path: Path, units: list[tuple[bytes, bool]], fps: Fraction) -> None:
        self.name = name
        self.path = path
        self.units = units
        self.fps = fps
        self.lock = threading.Lock()
        self.appsrcs: dict[Any, bool] = {}  # appsrc -> waiting for a key frame
        self.stalled = False
        self.pushed = 0
        self.frame = -1  # index in the file of the access unit sent last: the source clock for latency tests
        self.stop_event = threading.Event()
        self.factory = GstRtspServer.RTSPMediaFactory()
        caps = f"video/x-h264,stream-format=byte-stream,alignment=au,framerate={fps.numerator}/{fps.denominator}"
        # SPS/PPS go in per access unit (h264parse), never per NAL (rtph264pay): the payloader put them before
        # each IDR *slice*, so clients split a key frame sent as several slices into several frames.
        self.factory.set_launch(
            f"( appsrc name=src is-live=true format=time do-timestamp=true leaky-type=downstream "
            f'max-bytes=4000000 caps="{caps}" ! h264parse config-interval=-1 '
            "! rtph264pay name=pay0 pt=96 config-interval=0 )"
        )
        self.factory.set_shared(True)
        self.factory.connect("media-configure", self._on_media_configure)
        self.thread = threading.Thread(target=self._feed, name=f"feed-{name}", daemon=True)

    def _on_media_configure(self, _factory: Any, media: Any) -> None:
        appsrc = media.get_element().get_by_name_recurse_up("src")
        with self.lock:
            self.appsrcs[appsrc] = True
        media.connect("unprepared", self._on_unprepared, appsrc)
        log(f"{self.name}: media configured ({len(self.appsrcs)} active)")

    def _on_unprepared(self, _media: Any, appsrc: Any) -> None:
        with self.lock:
            self.appsrcs.pop(appsrc, None)
        log(f"{self.name}: media unprepared")

    def _feed(self) -> None:
        period = 1.0 / float(self.fps)
        duration = int(Gst.SECOND / float(self.fps))
        index = 0
        next_t = time.monotonic()
        while not self.stop_event.is_set():
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                self.stop_event.wait(delay)
            elif delay < -1.0:
                next_t = time.monotonic()  # fell far behind (machine busy): don't burst
            data, key = self.units[index]
            sent_index = index
            index = (index + 1) % len(self.units)
            with self.lock:
                if self.stalled:
                    for src in self.appsrcs:
                        self.appsrcs[src] = True  # after resume, start clean at a key frame
                    continue
                targets = [src for src, waiting in self.appsrcs.items() if key or not waiting]
                for src in targets:
                    self.appsrcs[src] = False
            for src in targets:
                buf = Gst.Buffer.new_wrapped(data)
                buf.duration = duration
                src.emit("push-buffer", buf)
            if targets:
                self.pushed += 1
                self.frame = sent_index

    def close(self) -> None:
        self.stop_event.set()
        with self.lock:
            srcs = list(self.appsrcs)
        for src in srcs:
            src.emit("end-of-stream")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "fps": float(self.fps),
            "stalled": self.stalled,
            "clients": len(self.appsrcs),
            "pushed": self.pushed,
            "frame": self.frame,
            "frames": len(self.units),
            "frames_in_loop": len(self.units),
        }


class App:
    """The RTSP server, its streams and the control API."""

    def __init__(self, address: str, port: int, cache: Path) -> None:
        self.address = address
        self.port = port
        self.cache = cache
        self.streams: dict[str, Stream] = {}
        self.lock = threading.Lock()
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(address)
        self.server.set_service(str(port))
        self.mounts = self.server.get_mount_points()

    def add(self, name: str, path_str: str, fps_value: float | None) -> dict[str, Any]:
        if not NAME_RE.match(name):
            raise ValueError(f"bad stream name {name!r}: letters, digits, '_', '.', '-'")
        path = Path(path_str)
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
        codec, fps = probe(path)
        if fps_value:
            fps = Fraction(fps_value).limit_denominator(1001)
        units = load_units(to_annexb(path, self.cache, fps, codec))
        with self.lock:
            if name in self.streams:
                raise ValueError(f"stream {name!r} exists")
            stream = Stream(name, path, units, fps)
            self.streams[name] = stream
        self.mounts.add_factory(f"/{name}", stream.factory)
        stream.thread.start()
        log(f"added {name} <- {path} ({len(units)} frames, {float(fps):g} fps)")
        return {"name": name, "url": f"rtsp://{self.address}:{self.port}/{name}"}

    def remove(self, name: str) -> None:
        with self.lock:
            stream = self.streams.pop(name, None)
        if stream is None:
            raise KeyError(name)
        self.mounts.remove_factory(f"/{name}")
        stream.close()
        log(f"removed {name}")

    def set_stalled(self, name: str, stalled: bool) -> dict[str, Any]:
        with self.lock:
            stream = self.streams.get(name)
        if stream is None:
            raise KeyError(name)
        with stream.lock:
            stream.stalled = stalled
        log(f"{name}: {'stalled' if stalled else 'resumed'}")
        return stream.describe()


def make_handler(app: App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _reply(self, status: int, body: Any) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _parts(self) -> list[str]:
            return [p for p in self.path.split("?", 1)[0].split("/") if p]

        def do_GET(self) -> None:
            parts = self._parts()
            if parts == ["health"]:
                self._reply(HTTPStatus.OK, {"ok": True, "streams": len(app.streams), "rtsp_port": app.port})
            elif parts == ["streams"]:
                self._reply(HTTPStatus.OK, [s.describe() for s in list(app.streams.values())])
            else:
                self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})

        def do_POST(self) -> None:
            parts = self._parts()
            try:
                if parts == ["streams"]:
                    length = int(self.headers.get("Content-Length") or 0)
                    if length > 65536:
                        raise ValueError("request too large")
                    doc = json.loads(self.rfile.read(length) or b"{}")
                    if (
                        not isinstance(doc, dict)
                        or not isinstance(doc.get("name"), str)
                        or not isinstance(doc.get("path"), str)
                    ):
                        raise ValueError('expected {"name": str, "path": str, "fps"?: number}')
                    fps = doc.get("fps")
                    if fps is not None and (not isinstance(fps, int | float) or not 0 < fps <= 240):
                        raise ValueError("fps must be a number in (0, 240]")
                    self._reply(HTTPStatus.CREATED, app.add(doc["name"], doc["path"], fps))
                elif len(parts) == 3 and parts[0] == "streams" and parts[2] in ("stall", "resume"):
                    self._reply(HTTPStatus.OK, app.set_stalled(parts[1], parts[2] == "stall"))
                else:
                    self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})
            except KeyError as exc:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no stream {exc.args[0]!r}"})
            except (ValueError, json.JSONDecodeError) as exc:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})

        def do_DELETE(self) -> None:
            parts = self._parts()
            if len(parts) == 2 and parts[0] == "streams":
                try:
                    app.remove(parts[1])
                except KeyError:
                    self._reply(HTTPStatus.NOT_FOUND, {"error": f"no stream {parts[1]!r}"})
                    return
                self._reply(HTTPStatus.OK, {"removed": parts[1]})
            else:
                self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="RTSP port")
    parser.add_argument("--control-port", type=int, required=True, help="HTTP control API port (loopback)")
    parser.add_argument("--cache-dir", type=Path, required=True, help="where converted Annex-B files are cached")
    args = parser.parse_args()

    Gst.init(None)
    app = App(args.address, args.port, args.cache_dir)
    if app.server.attach(None) == 0:
        log(f"cannot listen on {args.address}:{args.port}")
        return 2
    try:
        httpd = ThreadingHTTPServer((args.address, args.control_port), make_handler(app))
    except OSError as exc:
        log(f"cannot listen for control on {args.address}:{args.control_port}: {exc}")
        return 2
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="control", daemon=True).start()

    loop = GLib.MainLoop()
    pool = app.server.get_session_pool()

    def cleanup() -> bool:
        pool.cleanup()  # drop sessions whose clients went away without TEARDOWN
        return True

    GLib.timeout_add_seconds(2, cleanup)
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, lambda: (loop.quit(), False)[1])
    log(f"serving rtsp://{args.address}:{args.port}/<name>, control http://{args.address}:{args.control_port}")
    loop.run()
    httpd.shutdown()
    for name in list(app.streams):
        app.streams[name].close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
