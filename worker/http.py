"""``/metrics``, ``/healthz`` and ``/readyz`` for any Kuzet process, on a port of its own.

Why a separate small server (stdlib ``ThreadingHTTPServer``) rather than the
console's web app: workers and the plate indexer have no web app, and probes
must answer even when the process's main work is stuck or busy.

* ``/healthz``: the process is alive and its HTTP thread runs (liveness: a
  failure means restart me).
* ``/readyz``: every readiness check passes (model loaded, spool writable, bus
  reachable...); 503 with the failing checks otherwise (readiness: a failure
  means do not count on me yet). The body is JSON naming each check.
* ``/metrics``: the process's own :class:`prometheus_client.CollectorRegistry`
  in the Prometheus text format (OpenMetrics when the scraper asks for it).
* ``/status``: optional JSON detail (cameras and their states) for operators.

Check messages pass through :func:`core.redact.redact_text`: a probe body must
never carry a credential.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from core.redact import redact_text

Check = Callable[[], tuple[bool, str]]
"""A readiness check: (ok, short explanation)."""


class DaemonHttpServer:
    """A stdlib ``ThreadingHTTPServer`` on ``host:port`` (0 picks a free port; see :attr:`port`), served from
    daemon threads (one accepts, one more per request), so it never holds a process open. Subclasses answer GET
    requests in :meth:`_get`; the health server here and the live-view server (:mod:`worker.live`) share it."""

    thread_name = "http"
    log_label = "http"
    protocol_version = "HTTP/1.0"

    def __init__(self, host: str, port: int) -> None:
        server = self
        module_log = logging.getLogger(type(self).__module__)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = server.protocol_version

            def do_GET(self) -> None:
                server._get(self)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: scrapes every 15 s, viewers
                module_log.debug("%s %s", server.log_label, format % args)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        host = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _get(self, req: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError


class HealthServer(DaemonHttpServer):
    """Serves the endpoints on ``host:port`` (port 0 picks a free one; see :attr:`port`) from daemon threads."""

    thread_name = "health-http"

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str = "127.0.0.1",
        port: int = 9400,
        checks: Mapping[str, Check] | None = None,
        status: Callable[[], Any] | None = None,
    ) -> None:
        self.registry = registry
        self.checks: dict[str, Check] = dict(checks or {})
        self.status = status
        super().__init__(host, port)

    def readiness(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        results: dict[str, dict[str, Any]] = {}
        for name, check in self.checks.items():
            try:
                ok, detail = check()
            except Exception as exc:
                ok, detail = False, f"check raised {type(exc).__name__}: {exc}"
            results[name] = {"ok": bool(ok), "detail": redact_text(str(detail))[:300]}
        return all(r["ok"] for r in results.values()), results

    def _get(self, req: BaseHTTPRequestHandler) -> None:
        path = req.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(req.headers.get("Accept", ""))
            body = encoder(self.registry)
            self._send(req, 200, body, content_type)
        elif path == "/healthz":
            self._send(req, 200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            ok, results = self.readiness()
            payload = json.dumps({"ready": ok, "checks": results}, indent=1).encode()
            self._send(req, 200 if ok else 503, payload, "application/json")
        elif path == "/status" and self.status is not None:
            payload = json.dumps(self.status(), default=str, indent=1).encode()
            self._send(req, 200, payload, "application/json")
        else:
            self._send(req, 404, b"not found\n", "text/plain; charset=utf-8")

    @staticmethod
    def _send(req: BaseHTTPRequestHandler, code: int, body: bytes, content_type: str) -> None:
        try:
            req.send_response(code)
            req.send_header("Content-Type", content_type)
            req.send_header("Content-Length", str(len(body)))
            req.send_header("Cache-Control", "no-store")
            req.end_headers()
            req.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
