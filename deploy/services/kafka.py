"""A single-node Apache Kafka 4.x broker in KRaft mode (controller and broker in one JVM).

Runs from the jars that ``scripts/install_system.sh`` copies from Maven Central
into ``~/.cache/kuzet/kafka-<version>/libs`` (see ``deploy/kafka/pom.xml``),
so tests and development need neither Docker nor a Kafka tarball. Everything
binds to 127.0.0.1. Replication settings are those a one-node cluster needs
(replication factor 1 for the internal topics, min ISR 1), topics are created
on first use, and the heap is small because several engineers share the box.

``secure=True`` runs the broker as production should: clients connect over
SASL_SSL (SCRAM-SHA-512 over TLS, with a CA and broker certificate generated
by :mod:`deploy.services.kafka_tls`), the SCRAM users (``admin`` plus one per
Kuzet service, passwords generated once and kept in the 0600 state file) are
created when the storage is formatted (``--add-scram``), the controller
listener is mutual TLS, and Kafka's ``StandardAuthorizer`` denies whatever no
ACL allows. ``admin`` is the only super user; :mod:`event_bus.acls` grants the
services what they need, and nobody but ``admin`` writes the camera registry.
:meth:`KafkaService.client_settings` gives the kafka-python settings of a user.

The storage is formatted once (``StorageTool format --standalone``); a later
``start()`` on the same data directory reuses the cluster id, the ports and the
logs, which is what the "broker down, then back" tests rely on.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

from deploy.services._proc import ServiceError, Spawned, cache_dir, log_tail, spawn
from deploy.services.base import Service
from deploy.services.kafka_tls import BROKER_PRINCIPAL, ensure_tls

SCRAM_MECHANISM = "SCRAM-SHA-512"
SERVICE_USERS = ("kuzet-worker", "kuzet-console", "kuzet-indexer", "kuzet-watch")
"""SCRAM users a secure broker is formatted with, besides ``admin`` (the roles of :mod:`event_bus.acls`)."""

KAFKA_VERSION = "4.1.1"

_LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by deploy/services/kafka.py: broker logs go to a file, never the terminal. -->
<Configuration status="WARN">
  <Appenders>
    <File name="file" fileName="{log}" append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="INFO"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
"""


def kafka_libs() -> Path:
    """The directory with the broker's jars (override with KUZET_KAFKA_LIBS)."""
    env = os.environ.get("KUZET_KAFKA_LIBS")
    return Path(env) if env else cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"


def java_bin() -> str:
    """The java executable (JAVA_HOME wins, else PATH)."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise ServiceError("java not found: install a JDK 17+ (scripts/install_system.sh does)")
    return found


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes in URL-safe base64 without padding, as Kafka's Uuid prints them.

    Never one starting with "-" (Kafka's ``Uuid.randomUuid`` draws again too): ``kafka-storage format -t -Xy...``
    reads it as an option and fails ("argument --cluster-id/-t: expected one argument"), one start in 64.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaService(Service):
    """One KRaft broker+controller on 127.0.0.1.

    ``bootstrap`` is the address clients use. ``stop()`` then ``start()``
    brings it back on the same port with the same logs.
    """

    name = "kafka"
    default_timeout = 90.0
    stop_grace = 30.0

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "384m",
        die_with_parent: bool = False,
        extra_config: dict[str, str] | None = None,
        secure: bool = False,
    ) -> None:
        super().__init__(data_dir, die_with_parent=die_with_parent)
        self.secure = secure or bool(self.state.get("secure"))  # a secure data directory stays secure
        self.heap = heap
        self.extra_config = dict(extra_config or {})
        self._fix_ports(broker=port, controller=controller_port)

    # ---------------------------------------------------------------- address
    @property
    def port(self) -> int:
        return self._port("broker")

    @property
    def controller_port(self) -> int:
        return self._port("controller")

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` for kafka-python's ``bootstrap_servers``."""
        return f"127.0.0.1:{self.port}"

    @property
    def kafka_log_dir(self) -> Path:
        return self.data_dir / "kraft-logs"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    # ------------------------------------------------------------- life cycle
    def _prepare(self) -> None:
        libs = kafka_libs()
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise ServiceError(f"Kafka jars missing in {libs}: run scripts/install_system.sh")
        self._choose_ports("broker", "controller")
        self.state.setdefault("cluster_id", new_cluster_id())
        if self.secure:
            self.state["secure"] = True
            users = dict(self.state.get("scram") or {})
            for user in ("admin", *SERVICE_USERS):
                users.setdefault(user, secrets.token_urlsafe(24))
            self.state["scram"] = users
            ensure_tls(self.tls_dir)
        self._write_config()
        if not (self.kafka_log_dir / "meta.properties").exists():
            self._format()

    def _write_config(self) -> None:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.kafka_log_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            # Fewer internal partitions than the default 50: first group join is much faster on a small box.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "min.insync.replicas": "1",
            "default.replication.factor": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.retention.hours": "24",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        if self.secure:
            props.update(self._secure_config())
        props.update(self.extra_config)
        lines = ["# Written by deploy/services/kafka.py; rewritten on every start."]
        lines += [f"{key}={value}" for key, value in props.items()]
        self.config_file.write_text("\n".join(lines) + "\n")
        (self.data_dir / "log4j2.xml").write_text(_LOG4J2.format(log=self.data_dir / "kafka.log"))

    def _java_argv(self, main_class: str, *args: str) -> list[str]:
        return [
            java_bin(),
            f"-Xmx{self.heap}",
            "-Xms64m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp",
            f"{kafka_libs()}/*",
            main_class,
            *args,
        ]

    def _format(self) -> None:
        argv = self._java_argv(
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            str(self.state["cluster_id"]),
            "-c",
            str(self.config_file),
            *(
                arg
                for user, password in (self.state.get("scram") or {}).items()
                for arg in ("--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]")
            ),
        )
        with self.log_file.open("ab") as log:
            proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=120, check=False)
        if proc.returncode != 0:
            raise ServiceError(f"kafka storage format failed (exit {proc.returncode})\n{log_tail(self.log_file)}")

    def _launch(self) -> Spawned:
        return spawn(
            self._java_argv("kafka.Kafka", str(self.config_file)),
            log_file=self.log_file,
            pid_file=self.pid_file,
            cwd=self.data_dir,
            die_with_parent=self.die_with_parent,
        )

    def healthy(self) -> bool:
        """A real metadata round trip: the broker lists its cluster and knows a controller."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            client_id="kuzet-health",
            **self.client_settings("admin"),
            request_timeout_ms=5000,
            connections_max_idle_ms=10000,
        )
        try:
            cluster = admin.describe_cluster()
            brokers = cluster.get("brokers") or []
            return bool(brokers) and cluster.get("controller_id", -1) not in (None, -1)
        finally:
            admin.close()

    # ---------------------------------------------------------------- security
    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    def _secure_config(self) -> dict[str, str]:
        admin = self.state["scram"]["admin"]
        tls = ensure_tls(self.tls_dir)
        return {
            "listeners": f"SASL_SSL://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{self.port}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "CONTROLLER:SSL,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                f'org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="{admin}";'
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(tls.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(tls.ca),
            "listener.name.controller.ssl.client.auth": "required",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:admin;{BROKER_PRINCIPAL}",
        }

    def client_settings(self, user: str = "admin") -> dict[str, Any]:
        """kafka-python settings to connect as ``user`` (empty for a plaintext broker)."""
        if not self.secure:
            return {}
        return {
            "security_protocol": "SASL_SSL",
            "ssl_cafile": str(ensure_tls(self.tls_dir).ca),
            "ssl_check_hostname": True,
            "sasl_mechanism": SCRAM_MECHANISM,
            "sasl_plain_username": user,
            "sasl_plain_password": self.state["scram"][user],
        }

    def info(self, show_secrets: bool = False) -> dict[str, Any]:
        ports = self.state.get("ports") or {}
        return {
            "bootstrap": f"127.0.0.1:{ports['broker']}" if "broker" in ports else None,
            "controller_port": ports.get("controller"),
            "cluster_id": self.state.get("cluster_id"),
            "kafka_version": KAFKA_VERSION,
            "security_protocol": "SASL_SSL" if self.secure else "PLAINTEXT",
            **(
                {
                    "ssl_cafile": str(self.tls_dir / "ca.pem"),
                    "scram_users": {
                        u: (p if show_secrets else "***") for u, p in (self.state.get("scram") or {}).items()
                    },
                }
                if self.secure
                else {}
            ),
        }
