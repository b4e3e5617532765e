"""Venv-side control of the GStreamer RTSP test server (``deploy/rtsp/serve.py``).

The server itself must run under Debian's ``/usr/bin/python3``: the GStreamer
RTSP server bindings (python3-gi) are not installable into the venv. This
module starts it as a subprocess on two loopback ports (RTSP and an HTTP
control API) and drives it: add/remove streams, stall (connection kept open,
no data) and resume. Streams added through this object are remembered in the
data directory's state, so a restart of the server brings them back.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from deploy.services._proc import ServiceError, Spawned, cache_dir, spawn
from deploy.services.base import Service

SERVE_PY = Path(__file__).resolve().parents[1] / "rtsp" / "serve.py"


def system_python() -> str:
    """The interpreter that has python3-gi (KUZET_SYSTEM_PYTHON, else /usr/bin/python3)."""
    return os.environ.get("KUZET_SYSTEM_PYTHON", "/usr/bin/python3")


class RtspServer(Service):
    """H.264 test cameras at ``rtsp://127.0.0.1:PORT/<name>`` with stall/resume control."""

    name = "rtsp"
    default_timeout = 30.0
    stop_grace = 5.0

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int | None = None,
        control_port: int | None = None,
        die_with_parent: bool = False,
    ) -> None:
        super().__init__(data_dir, die_with_parent=die_with_parent)
        self._fix_ports(rtsp=port, control=control_port)

    @property
    def port(self) -> int:
        return self._port("rtsp")

    @property
    def control_port(self) -> int:
        return self._port("control")

    def url(self, name: str) -> str:
        """The RTSP URL clients open for stream ``name``."""
        return f"rtsp://127.0.0.1:{self.port}/{name}"

    # ------------------------------------------------------------- life cycle
    def _prepare(self) -> None:
        if not Path(system_python()).exists():
            raise ServiceError(f"{system_python()} not found (the RTSP server needs Debian's python3-gi)")
        self._choose_ports("rtsp", "control")
        self.state.setdefault("streams", {})

    def _launch(self) -> Spawned:
        argv = [
            system_python(),
            "-u",
            str(SERVE_PY),
            "--port",
            str(self.port),
            "--control-port",
            str(self.control_port),
            "--cache-dir",
            str(cache_dir() / "rtsp"),
        ]
        # The system interpreter must not pick up the venv's site-packages or PYTHONPATH.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        return spawn(
            argv, log_file=self.log_file, pid_file=self.pid_file, env=env, die_with_parent=self.die_with_parent
        )

    def start(self, timeout: float | None = None) -> RtspServer:
        was_running = self.pid is not None
        super().start(timeout)
        if not was_running:
            # A new server process knows no streams: bring back the ones added through us.
            for name, spec in dict(self.state.get("streams") or {}).items():
                if name not in {s["name"] for s in self.streams()}:
                    self._request("POST", "/streams", {"name": name, "path": spec["path"], "fps": spec.get("fps")})
        return self

    def _cmd_marker(self) -> str | None:
        ports = self.state.get("ports") or {}
        return f"--control-port {ports['control']}" if "control" in ports else str(SERVE_PY)

    def healthy(self) -> bool:
        return bool(self._request("GET", "/health", timeout=2.0).get("ok"))

    # ------------------------------------------------------------ control API
    def _request(self, method: str, path: str, body: Any = None, timeout: float = 120.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.control_port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("error", "")
            except ValueError:
                detail = ""
            raise ServiceError(f"rtsp control {method} {path}: HTTP {exc.code} {detail}") from exc

    def add_stream(self, name: str, path: Path | str, fps: float | None = None) -> str:
        """Serve the video file at ``rtsp://127.0.0.1:PORT/name`` (looped, real-time); returns the URL.

        H.264 files are served as they are; other codecs are encoded to H.264 once (cached).
        Adding a name that exists with the same file is a no-op.
        """
        path = Path(path).resolve()
        known = {s["name"]: s for s in self.streams()}
        if name in known:
            if Path(known[name]["path"]) == path:
                return self.url(name)
            raise ServiceError(f"rtsp stream {name!r} already serves {known[name]['path']}")
        self._request("POST", "/streams", {"name": name, "path": str(path), "fps": fps})
        self.state.setdefault("streams", {})[name] = {"path": str(path), "fps": fps}
        self._save_state()
        return self.url(name)

    def remove_stream(self, name: str) -> None:
        """Stop serving ``name``; connected clients get end-of-stream."""
        self._request("DELETE", f"/streams/{name}")
        self.state.setdefault("streams", {}).pop(name, None)
        self._save_state()

    def stall(self, name: str) -> None:
        """Stop sending data on ``name`` while every client's connection stays open."""
        self._request("POST", f"/streams/{name}/stall")

    def resume(self, name: str) -> None:
        """Send ``name`` again after a stall (clients get data from the next key frame)."""
        self._request("POST", f"/streams/{name}/resume")

    def streams(self) -> list[dict[str, Any]]:
        """The server's streams: name, path, fps, stalled, clients, pushed frames."""
        result = self._request("GET", "/streams", timeout=10.0)
        return list(result) if isinstance(result, list) else []

    def info(self, show_secrets: bool = False) -> dict[str, Any]:
        ports = self.state.get("ports") or {}
        doc: dict[str, Any] = {
            "rtsp": f"rtsp://127.0.0.1:{ports['rtsp']}/<name>" if "rtsp" in ports else None,
            "control": f"http://127.0.0.1:{ports['control']}" if "control" in ports else None,
        }
        try:
            doc["streams"] = self.streams() if self.pid is not None else []
        except (ServiceError, OSError):
            doc["streams"] = []
        return doc
