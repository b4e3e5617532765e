"""Session-wide fixtures that start real services on demand (no Docker).

Each service starts lazily, the first time a test asks for it, on free
loopback ports picked at run time and in a data directory under this
session's pytest temp dir, so several engineers can run the suite on one
machine at once. All of them stop at the end of the session; their processes
also carry PR_SET_PDEATHSIG, so a killed pytest leaves nothing running.

A service that cannot start FAILS the test that asked for it (never skips):
a test bed that silently skips its integration tests would prove nothing.

Fixture API (see deploy/README.md):

- ``kafka_broker``: ``KafkaService`` with ``.bootstrap`` (``"127.0.0.1:PORT"``),
  ``.stop()``, ``.start()`` (same port and data dir, so records survive).
- ``kafka_bootstrap``: ``str``, the bootstrap address.
- ``s3_service``: ``SeaweedS3Service`` with ``.endpoint`` (``"127.0.0.1:PORT"``),
  ``.access_key``, ``.secret_key``, ``.secure`` (False), ``.stop()``, ``.start()``.
- ``rtsp_server``: ``RtspServer`` with ``.url(name)``, ``.add_stream(name, path)``,
  ``.remove_stream(name)``, ``.stall(name)``, ``.resume(name)``.
- ``postgres_dsn``: ``str`` (``postgresql://postgres@127.0.0.1:PORT/postgres``).
- ``vtest_h264``: ``Path`` of the vtest clip as H.264 mp4 (key frame every 10 frames).

``kafka_broker``, ``s3_service`` and ``rtsp_server`` are function-scoped views
of one session-wide server: each test gets it running again even when an
earlier test stopped it and failed before starting it back.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def _start_or_fail(what: str, start: Callable[[], T]) -> T:
    from deploy.services._proc import ServiceError

    try:
        return start()
    except ServiceError as exc:
        pytest.fail(f"could not start {what} for the tests: {exc}", pytrace=False)
    except Exception as exc:
        pytest.fail(f"could not start {what} for the tests: {type(exc).__name__}: {exc}", pytrace=False)


def _session_fixture(name: str, factory: str, close: str = "stop") -> Any:
    """The session-wide fixture ``_{name}_session``: one service (``module:Class``) under a temp dir of its own.

    Created by the first test that needs it (the class is imported only then, so a run of unit tests loads no
    launcher) and closed with ``close`` after the last; each test's own fixture starts it again if it is down.
    """
    module, cls = factory.split(":")

    @pytest.fixture(scope="session", name=f"_{name}_session")
    def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
        service = getattr(importlib.import_module(module), cls)(tmp_path_factory.mktemp(name), die_with_parent=True)
        try:
            yield service
        finally:
            getattr(service, close)()

    return session


# ---------------------------------------------------------------------- Kafka
_kafka_session = _session_fixture("kafka", "deploy.services.kafka:KafkaService")


@pytest.fixture
def kafka_broker(_kafka_session: Any) -> Any:
    """The session's Kafka broker, running (restarted if an earlier test left it stopped)."""
    return _start_or_fail("Kafka (KRaft, deploy/services/kafka.py)", _kafka_session.start)


@pytest.fixture
def kafka_bootstrap(kafka_broker: Any) -> str:
    """``127.0.0.1:PORT`` of the running session broker."""
    return str(kafka_broker.bootstrap)


# ------------------------------------------------------------------------- S3
_s3_session = _session_fixture("s3", "deploy.services.seaweedfs:SeaweedS3Service")


@pytest.fixture
def s3_service(_s3_session: Any) -> Any:
    """The session's SeaweedFS S3 gateway, running."""
    return _start_or_fail("SeaweedFS S3 (deploy/services/seaweedfs.py)", _s3_session.start)


# ----------------------------------------------------------------------- RTSP
_rtsp_session = _session_fixture("rtsp", "deploy.services.rtsp_server:RtspServer")


@pytest.fixture
def rtsp_server(_rtsp_session: Any) -> Iterator[Any]:
    """The session's RTSP server (GStreamer), running; streams a test left stalled are resumed after it."""
    server = _start_or_fail("RTSP server (deploy/services/rtsp_server.py)", _rtsp_session.start)
    yield server
    if server.pid is not None:
        try:
            for stream in server.streams():
                if stream["stalled"]:
                    server.resume(stream["name"])
        except Exception as exc:  # a dead server is reported by the next test's start, not here
            print(f"rtsp_server teardown: {exc}")


# ----------------------------------------------------------------- PostgreSQL
_postgres_session = _session_fixture("postgres", "deploy.services.postgres:PostgresService", close="destroy")


@pytest.fixture
def postgres_dsn(_postgres_session: Any) -> str:
    """DSN of the session's throw-away PostgreSQL cluster (trust auth on loopback)."""
    service = _start_or_fail("PostgreSQL (deploy/services/postgres.py)", _postgres_session.start)
    return str(service.dsn)


@pytest.fixture
def db_url(postgres_dsn: str) -> Iterator[str]:
    """A fresh database per test on the session's cluster, so tests never see each other's rows."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield postgres_dsn.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_dsn, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# ---------------------------------------------------------------------- media
@pytest.fixture(scope="session")
def vtest_h264() -> Path:
    """The vtest clip re-encoded to H.264 mp4 (cached in ~/.cache/kuzet/media)."""
    from deploy.services.media import vtest_h264 as make

    return _start_or_fail("the vtest H.264 clip (deploy/services/media.py)", make)
