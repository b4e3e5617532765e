"""A throw-away PostgreSQL cluster from Debian's ``postgresql`` package, on a loopback port.

``initdb`` once, then the ``postgres`` server directly (not ``pg_ctl``), so the
launcher owns the process like every other service. Trust authentication on
127.0.0.1 only: it is a test and development database, never exposed.

PostgreSQL refuses to run as root. When we are root (build machines and CI
containers), the server runs as the ``postgres`` system user and its cluster
directory lives under ``/var/lib/kuzet/postgres/`` (owned by that user; not a
world-writable temp dir, where another user could plant a symlink),
because the caller's data directory may sit below a root-only parent, such as
pytest's temp dir, which the ``postgres`` user cannot traverse. The launcher's
own state and log stay in the data directory. ``destroy()`` removes the cluster.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from deploy.services._proc import ServiceError, Spawned, log_tail, spawn
from deploy.services.base import Service


def pg_bin_dir() -> Path:
    """Debian's PostgreSQL binaries (KUZET_PG_BIN, else the newest /usr/lib/postgresql/*/bin)."""
    env = os.environ.get("KUZET_PG_BIN")
    if env:
        return Path(env)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not candidates:
        raise ServiceError("PostgreSQL server binaries not found: apt-get install postgresql (install_system.sh)")
    return candidates[-1].parent


class PostgresService(Service):
    """PostgreSQL on ``127.0.0.1:PORT``; ``dsn`` is ``postgresql://postgres@127.0.0.1:PORT/postgres``."""

    name = "postgres"
    default_timeout = 60.0
    stop_grace = 20.0
    # SIGINT is PostgreSQL's "fast" shutdown (SIGTERM waits for every client to leave), sent to the postmaster only.
    stop_signal = signal.SIGINT
    stop_signal_group = False

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int | None = None,
        durable: bool = False,
        die_with_parent: bool = False,
    ) -> None:
        super().__init__(data_dir, die_with_parent=die_with_parent)
        self.durable = durable
        self._fix_ports(postgres=port)

    # ---------------------------------------------------------------- address
    @property
    def port(self) -> int:
        return self._port("postgres")

    @property
    def dsn(self) -> str:
        """libpq URI: ``postgresql://postgres@127.0.0.1:PORT/postgres`` (no password: trust on loopback)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run_as(self) -> tuple[int | None, int | None]:
        if os.geteuid() != 0:
            return None, None
        try:
            user = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise ServiceError(
                "running as root but there is no 'postgres' user (install the postgresql package)"
            ) from exc
        return user.pw_uid, user.pw_gid

    @property
    def pgdata(self) -> Path:
        if "pgdata" in self.state:
            return Path(self.state["pgdata"])
        if os.geteuid() == 0:
            digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
            return Path(os.environ.get("KUZET_PG_ROOT", "/var/lib/kuzet/postgres")) / digest
        return self.data_dir / "pgdata"

    # ------------------------------------------------------------- life cycle
    def _prepare(self) -> None:
        bindir = pg_bin_dir()
        self._choose_ports("postgres")
        pgdata = self.pgdata
        self.state["pgdata"] = str(pgdata)
        uid, gid = self._run_as()
        if (pgdata / "PG_VERSION").exists():
            return
        if uid is not None and gid is not None:
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            pgdata.parent.chmod(0o711)  # traversable, not listable
            if pgdata.exists():
                shutil.rmtree(pgdata)
            pgdata.mkdir(mode=0o700)
            os.chown(pgdata, uid, gid)
        argv = [
            str(bindir / "initdb"),
            "-D",
            str(pgdata),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-instructions",
        ]
        if not self.durable:
            argv.append("--no-sync")
        with self.log_file.open("ab") as log:
            proc = subprocess.run(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=180,
                check=False,
                cwd="/",
                user=uid,
                group=gid,
                extra_groups=[] if uid is not None else None,
            )
        if proc.returncode != 0:
            raise ServiceError(f"initdb failed (exit {proc.returncode})\n{log_tail(self.log_file)}")

    def _launch(self) -> Spawned:
        uid, gid = self._run_as()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",
            "max_connections": "100",
            "logging_collector": "off",
        }
        if not self.durable:
            # Throw-away cluster: trade crash safety for speed (tests, benchmarks of query time).
            settings.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        argv = [str(pg_bin_dir() / "postgres"), "-D", str(self.pgdata)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return spawn(
            argv,
            log_file=self.log_file,
            pid_file=self.pid_file,
            cwd=Path("/"),
            die_with_parent=self.die_with_parent,
            uid=uid,
            gid=gid,
        )

    def _cmd_marker(self) -> str | None:
        return str(self.pgdata)

    def query(self, sql: str, database: str = "postgres") -> str:
        """Run one SQL statement with psql and return its unaligned output (for health and small set-up)."""
        proc = subprocess.run(
            [
                str(pg_bin_dir() / "psql"),
                "-X",
                "-q",
                "-tA",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ, "PGCONNECT_TIMEOUT": "3"},
        )
        if proc.returncode != 0:
            raise ServiceError(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def healthy(self) -> bool:
        """``SELECT 1`` over TCP."""
        return self.query("SELECT 1") == "1"

    def destroy(self) -> None:
        """Stop the server and delete the cluster directory (the throw-away part)."""
        self.stop()
        pgdata = self.state.get("pgdata")
        if pgdata:
            shutil.rmtree(pgdata, ignore_errors=True)
        self.state.pop("pgdata", None)
        self._save_state()

    def info(self, show_secrets: bool = False) -> dict[str, Any]:
        ports = self.state.get("ports") or {}
        return {
            "dsn": f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres" if "postgres" in ports else None,
            "pgdata": self.state.get("pgdata"),
            "bin": str(pg_bin_dir()),
        }
