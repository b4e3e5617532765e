"""The worker's live-view endpoint: ``GET /live/<camera id>[?masked=1]`` streams fragmented MP4 from the ring.

Why a server of its own (stdlib ``ThreadingHTTPServer``, a thread per viewer)
rather than the health server: a live stream holds its connection open for
minutes, and probes must never queue behind one. It listens on loopback (or
the worker's private network) only and does no authentication: the console
is what viewers reach, and it checks the role, writes the audit record, and
proxies from the address the operator configured for this worker. A viewer
the console proxies with ``masked=1`` gets the camera's privacy masks burned
in (a re-encode); without it the packets pass through unchanged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from core.config import CAMERA_ID_PATTERN
from ingest.live_stream import live_fmp4, mime_type
from worker.clips import CameraClips
from worker.http import DaemonHttpServer

log = logging.getLogger(__name__)

CAMERA_ID_RE = re.compile(CAMERA_ID_PATTERN)
CameraLookup = Callable[[str], CameraClips | None]


class LiveServer(DaemonHttpServer):
    """Serves live views of this worker's cameras on ``host:port`` (0 picks a free port) from daemon threads."""

    thread_name = "live-http"
    log_label = "live"
    protocol_version = "HTTP/1.1"

    def __init__(self, cameras: CameraLookup, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._cameras = cameras
        super().__init__(host, port)

    def _get(self, req: BaseHTTPRequestHandler) -> None:
        req.close_connection = True  # one stream per connection: no waiting for a next request after it
        parts = urlsplit(req.path)
        camera_id = parts.path.removeprefix("/live/")
        if not parts.path.startswith("/live/") or not CAMERA_ID_RE.fullmatch(camera_id):
            req.send_error(HTTPStatus.NOT_FOUND, "no such stream")
            return
        cam = self._cameras(camera_id)
        source = cam.live() if cam is not None else None
        if cam is None or source is None:
            req.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "camera not running or not connected on this worker")
            return
        ring, template = source
        masked = parse_qs(parts.query).get("masked") == ["1"]
        masks = cam.masks if masked else []
        req.send_response(HTTPStatus.OK)
        req.send_header("Content-Type", 'video/mp4; codecs="avc1.42e01e"' if masks else mime_type(template))
        req.send_header("Cache-Control", "no-store")
        req.send_header("Transfer-Encoding", "chunked")
        req.end_headers()
        try:
            for chunk in live_fmp4(ring, template, masks):
                req.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                req.wfile.flush()
            req.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            log.debug("live viewer of camera %s left", camera_id)
