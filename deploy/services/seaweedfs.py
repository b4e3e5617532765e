"""SeaweedFS with its S3 gateway, as one ``weed server`` process (master, volume, filer, S3) on loopback.

SeaweedFS (Apache-2.0) stands in for MinIO, whose open-source server went into
maintenance mode; our code talks to it with the ``minio`` client like to any S3
service. The binary is built from the Go module proxy by
``scripts/install_system.sh`` into ``~/.cache/kuzet/bin/weed``.

Every port is chosen explicitly (HTTP and gRPC of each component; the Iceberg
and Lance side servers are switched off), because the defaults are fixed
numbers that collide when several engineers run tests on one machine.
Credentials are generated on the first start of a data directory, written to an
S3 config JSON readable by the owner only, and handed to tests through the
service object; nothing secret is committed or printed unless asked for.
``stop()`` then ``start()`` on the same data directory keeps buckets and objects.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import urllib.request
from pathlib import Path
from typing import Any

from deploy.services._proc import ServiceError, Spawned, cache_dir, spawn, wait_until
from deploy.services.base import Service

_PORT_NAMES = (
    "s3",
    "s3_grpc",
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "filer",
    "filer_grpc",
)


def weed_bin() -> Path:
    """The weed binary: KUZET_WEED, else the cached build, else PATH."""
    env = os.environ.get("KUZET_WEED")
    if env:
        return Path(env)
    cached = cache_dir() / "bin" / "weed"
    if cached.exists():
        return cached
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise ServiceError(f"weed not found at {cached}: run scripts/install_system.sh")


class SeaweedS3Service(Service):
    """An S3 endpoint at ``127.0.0.1:PORT`` (plain HTTP) with generated credentials."""

    name = "s3"
    default_timeout = 60.0
    # weed stops serving at once on SIGTERM but its retry loops keep the process alive; don't wait long.
    stop_grace = 4.0

    def __init__(self, data_dir: Path | str, *, port: int | None = None, die_with_parent: bool = False) -> None:
        super().__init__(data_dir, die_with_parent=die_with_parent)
        self._fix_ports(s3=port)

    # ---------------------------------------------------------------- address
    @property
    def port(self) -> int:
        return self._port("s3")

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT`` as the ``minio`` client's endpoint (use ``secure=False``)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    secure = False

    @property
    def access_key(self) -> str:
        return str(self.state["access_key"])

    @property
    def secret_key(self) -> str:
        return str(self.state["secret_key"])

    @property
    def s3_config_file(self) -> Path:
        return self.data_dir / "s3.json"

    def client(self) -> Any:
        """A ``minio.Minio`` client for this endpoint."""
        from minio import Minio

        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False)

    # ------------------------------------------------------------- life cycle
    def _prepare(self) -> None:
        weed_bin()
        self._choose_ports(*_PORT_NAMES)
        self.state.setdefault("access_key", "KZ" + secrets.token_hex(9).upper())
        self.state.setdefault("secret_key", secrets.token_urlsafe(30))
        config = {
            "identities": [
                {
                    "name": "kuzet",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        fd = os.open(self.s3_config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(config, fh)
        (self.data_dir / "store").mkdir(exist_ok=True)

    def _launch(self) -> Spawned:
        p = self.state["ports"]
        argv = [
            str(weed_bin()),
            "server",
            f"-dir={self.data_dir / 'store'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            # One master: a short election timeout makes a restart healthy in seconds, not ~12 s.
            "-master.electionTimeout=1s",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            "-volume.max=0",  # auto: free disk / volume size; every bucket grows its own volumes
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self.data_dir / 'filer.sock'}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            f"-s3.config={self.s3_config_file}",
            f"-s3.localSocket={self.data_dir / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        return spawn(
            argv,
            log_file=self.log_file,
            pid_file=self.pid_file,
            cwd=self.data_dir,
            die_with_parent=self.die_with_parent,
        )

    def _volume_ready(self) -> bool:
        """The master knows a volume server with room, so the first PUT will not fail."""
        url = f"http://127.0.0.1:{self.state['ports']['master']}/dir/status"
        with urllib.request.urlopen(url, timeout=3) as resp:
            topo = json.loads(resp.read()).get("Topology", {})
        return int(topo.get("Max", 0)) > 0 and bool(topo.get("DataCenters"))

    def healthy(self) -> bool:
        """An authenticated S3 request (ListBuckets) succeeds and a volume server is registered."""
        self.client().list_buckets()
        return self._volume_ready()

    def _wait_healthy(self, timeout: float, alive: Any) -> None:
        """Health, then one real write: the filer's lock ring comes up after ListBuckets already works,
        and the first PUT before it does stalls for seconds. The probe bucket is removed again."""
        super()._wait_healthy(timeout, alive)
        wait_until(self._write_probe, timeout=timeout, what="s3 write probe", alive=alive, log_file=self.log_file)

    def _write_probe(self) -> bool:
        client = self.client()
        bucket = f"kuzet-probe-{secrets.token_hex(4)}"
        client.make_bucket(bucket)
        try:
            client.put_object(bucket, "probe", io.BytesIO(b"ok"), 2)
            client.remove_object(bucket, "probe")
        finally:
            client.remove_bucket(bucket)
        return True

    def info(self, show_secrets: bool = False) -> dict[str, Any]:
        ports = self.state.get("ports") or {}
        return {
            "endpoint": f"127.0.0.1:{ports['s3']}" if "s3" in ports else None,
            "secure": False,
            "access_key": self.state.get("access_key") if show_secrets else "***",
            "secret_key": self.state.get("secret_key") if show_secrets else "***",
            "master": f"http://127.0.0.1:{ports['master']}" if "master" in ports else None,
        }
