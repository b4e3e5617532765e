"""Command line for the service launchers, for humans and the README.

    python -m deploy.services kafka start [--dir DIR] [--port PORT] [--secure]
    python -m deploy.services s3 status --show-secrets
    python -m deploy.services rtsp start
    python -m deploy.services rtsp add cam-1 path/to/video.mp4
    python -m deploy.services rtsp stall cam-1 | resume cam-1 | remove cam-1
    python -m deploy.services postgres stop

Connection details are printed as one JSON document. Servers started here keep
running after the command returns (their state lives in ``--dir``, by default
``var/services/<service>``); ``stop`` with the same ``--dir`` stops them.
Secrets (S3 keys, SCRAM passwords) are masked unless ``--show-secrets`` is given.
``kafka start --secure`` starts a SASL_SSL broker with ACLs (first start of a
data directory only) and applies the ACL recipe of :mod:`event_bus.acls` for
the users ``kuzet-worker``, ``kuzet-console``, ``kuzet-indexer`` and ``kuzet-watch``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deploy.services._proc import ServiceError
from deploy.services.base import Service

SERVICES = ("kafka", "s3", "rtsp", "postgres")
RTSP_ACTIONS = ("add", "remove", "stall", "resume")


def make_service(kind: str, data_dir: Path, port: int | None, *, secure: bool = False) -> Service:
    """The launcher for kind on data_dir (imports lazily so each works without the others' deps)."""
    if kind == "kafka":
        from deploy.services.kafka import KafkaService

        return KafkaService(data_dir, port=port, secure=secure)
    if kind == "s3":
        from deploy.services.seaweedfs import SeaweedS3Service

        return SeaweedS3Service(data_dir, port=port)
    if kind == "rtsp":
        from deploy.services.rtsp_server import RtspServer

        return RtspServer(data_dir, port=port)
    if kind == "postgres":
        from deploy.services.postgres import PostgresService

        return PostgresService(data_dir, port=port)
    raise ValueError(kind)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.services", description="Kuzet development services")
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("action", choices=("start", "stop", "status", *RTSP_ACTIONS))
    parser.add_argument("args", nargs="*", help="rtsp add NAME PATH | rtsp remove/stall/resume NAME")
    parser.add_argument("--dir", type=Path, default=None, help="data directory (default var/services/<service>)")
    parser.add_argument("--port", type=int, default=None, help="main port (first start only; random free if unset)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for health")
    parser.add_argument("--show-secrets", action="store_true", help="print credentials (S3 keys) in clear")
    parser.add_argument("--secure", action="store_true", help="kafka: SASL_SSL (SCRAM) with ACLs")
    ns = parser.parse_args(argv)

    data_dir = ns.dir or Path("var") / "services" / ns.service
    service = make_service(ns.service, data_dir, ns.port, secure=ns.secure)
    try:
        if ns.action == "start":
            service.start(ns.timeout)
            if ns.service == "kafka" and ns.secure:
                _apply_acls(service)
        elif ns.action == "stop":
            service.stop()
        elif ns.action in RTSP_ACTIONS:
            if ns.service != "rtsp":
                parser.error(f"{ns.action} is an rtsp action")
            from deploy.services.rtsp_server import RtspServer

            assert isinstance(service, RtspServer)
            want = 2 if ns.action == "add" else 1
            if len(ns.args) != want:
                parser.error(f"rtsp {ns.action} takes {want} argument(s)")
            if ns.action == "add":
                service.add_stream(ns.args[0], Path(ns.args[1]))
            elif ns.action == "remove":
                service.remove_stream(ns.args[0])
            elif ns.action == "stall":
                service.stall(ns.args[0])
            else:
                service.resume(ns.args[0])
    except ServiceError as exc:
        print(json.dumps({"service": ns.service, "error": str(exc)}), file=sys.stderr)
        return 1
    print(json.dumps(service.describe(ns.show_secrets), indent=2))
    return 0


def _apply_acls(service: Service) -> None:
    from deploy.services.kafka import KafkaService
    from event_bus.acls import apply_acls

    assert isinstance(service, KafkaService)
    roles = {"worker": "kuzet-worker", "console": "kuzet-console", "indexer": "kuzet-indexer", "watch": "kuzet-watch"}
    apply_acls(service.bootstrap, service.client_settings("admin"), roles)


if __name__ == "__main__":
    sys.exit(main())
