"""Every Kuzet container in deploy/k8s/*.yaml and every Kuzet service in deploy/compose.yaml is EXECUTED.

Validation alone missed that the manifests passed only ``args`` to an image with an empty ENTRYPOINT, that
compose ran ``kuzet console --host`` (no such command) and that the console ignored the environment names
the files set. So each container's ``command`` + ``args`` is run as written, with its environment, against
the installed package (the ``kuzet`` entry point of this venv), and must start and answer its readiness
probe. What a cluster or Docker would provide is substituted, and only that: service addresses (Kafka,
S3, PostgreSQL) point at this test's real services (Kafka: a SASL_SSL broker with the ACL recipe applied,
so each service connects as the principal its file names), secrets (passwords, the broker CA) come from
the test, mounted ConfigMaps, Secrets and volumes are files in a temporary directory, container ports are
free loopback ports and ``0.0.0.0`` binds become ``127.0.0.1``. The third-party services of compose
(kafka, s3, postgres images) are those real services. The GPU worker runs only where onnxruntime offers
CUDA; elsewhere it is skipped, saying so.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dispatch.testing import free_port
from tests.integration.kafka_sasl_support import ROLES, secure_kafka_service

pytestmark = [pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
COMPOSE = REPO / "deploy" / "compose.yaml"
MODELS = Path(os.environ.get("KUZET_CACHE", Path.home() / ".cache" / "kuzet")) / "models"
KUZET = shutil.which("kuzet", path=str(Path(sys.executable).parent)) or "kuzet"


def k8s_containers() -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(name, container, {path: configmap key text, or ``secret:NAME/KEY`` for a Secret's key}) per container."""
    docs = [d for p in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    out = []
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        spec = d["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            files: dict[str, str] = {}
            for m in c.get("volumeMounts", []):
                cm = volumes.get(m["name"], {}).get("configMap")
                if cm:
                    for key, text in maps[cm["name"]].items():
                        files[f"{m['mountPath']}/{key}"] = text
                secret = volumes.get(m["name"], {}).get("secret")
                if secret:
                    for item in secret["items"]:
                        files[f"{m['mountPath']}/{item['path']}"] = f"secret:{secret['secretName']}/{item['key']}"
            out.append((f"k8s:{d['metadata']['name']}/{c['name']}", c, files))
    return out


def compose_services() -> list[tuple[str, dict[str, Any]]]:
    doc = yaml.safe_load(COMPOSE.read_text())
    return [(f"compose:{n}", s) for n, s in doc["services"].items() if str(s.get("image", "")).startswith("kuzet")]


class Rewriter:
    """Replaces what a cluster / Docker host provides with this test's real services and temporary paths."""

    def __init__(self, tmp: Path, kafka: Any, s3: Any, pg: str) -> None:
        self.tmp = tmp
        endpoint = str(s3.endpoint).removeprefix("http://").removeprefix("https://").rstrip("/")
        self.hosts = {
            "kafka-bootstrap.kafka.svc:9093": kafka.bootstrap,
            "kafka:9092": kafka.bootstrap,
            "s3.kuzet.svc:9000": endpoint,
            "s3:8333": endpoint,
        }
        self.paths = {
            "/etc/kuzet": str(tmp / "etc"),
            "/var/lib/kuzet": str(tmp / "state"),
            "/app/var": str(tmp / "var"),
            "/models": str(MODELS),
            "/root/.cache/kuzet/models": str(MODELS),
            "/etc/kafka-ca": str(tmp / "kafka-ca"),
            "/run/secrets": str(tmp / "run-secrets"),
        }
        self.secrets = {
            "s3-access-key": s3.access_key,
            "s3-secret-key": s3.secret_key,
            "console-db-url": pg,
            "plates-db-url": pg,
            "console-link-key": "a-link-key-for-the-deploy-test",
            **{f"kafka-{role}-password": kafka.state["scram"][user] for role, user in ROLES.items()},
            "kafka-admin-password": kafka.state["scram"]["admin"],
        }
        # the Secrets mounted as files, and compose's secrets: the broker's CA (the test's secure broker)
        ca = (kafka.tls_dir / "ca.pem").read_text()
        self.secret_files = {"kuzet-kafka-ca/ca.crt": ca, "kafka_ca": ca}
        self.pg = pg
        self.ports: dict[str, str] = {}

    def port(self, number: str) -> str:
        return self.ports.setdefault(number, str(free_port()))

    def text(self, value: str) -> str:
        if value.startswith(("postgresql://", "postgres://")):
            return self.pg
        for a, b in self.hosts.items():
            value = value.replace(a, b)
        for a, b in sorted(self.paths.items(), key=lambda kv: -len(kv[0])):
            value = re.sub(rf"(?<![\w/.]){re.escape(a)}(?=/|$|\s|\")", b, value)
        return value.replace("0.0.0.0", "127.0.0.1")

    def arg(self, value: str) -> str:
        value = self.text(value)
        m = re.fullmatch(r"(--(?:metrics-)?port=)(\d+)", value)
        return m.group(1) + self.port(m.group(2)) if m else value


def run_once(name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
    """A one-shot service (compose ``restart: "no"``): it must finish with exit status 0."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KUZET_")} | env
    full_env["PYTHONPATH"] = str(REPO)
    with log.open("wb") as fh:
        rc = subprocess.run(argv, env=full_env, stdout=fh, stderr=subprocess.STDOUT, cwd=log.parent, timeout=180)
    assert rc.returncode == 0, f"{name} exited {rc.returncode}: {log.read_text()[-3000:]}"


def run_and_probe(name: str, argv: list[str], env: dict[str, str], probe: str | None, log: Path) -> None:
    """Start the process; it must stay up and (if it has one) answer its readiness probe with 200."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KUZET_")} | env
    full_env["PYTHONPATH"] = str(REPO)  # this checkout's code behind the installed entry point
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, env=full_env, stdout=fh, stderr=subprocess.STDOUT, cwd=log.parent)
        try:
            deadline = time.monotonic() + 180
            status = None
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited {proc.returncode}: {log.read_text()[-3000:]}")
                if probe is None:
                    if time.monotonic() > deadline - 160:  # no probe: alive for 20 s
                        return
                else:
                    try:
                        status = httpx.get(probe, timeout=3).status_code
                    except httpx.HTTPError:
                        status = None
                    if status == 200:
                        return
                time.sleep(0.5)
            raise AssertionError(f"{name}: {probe} never answered 200 (last {status}): {log.read_text()[-3000:]}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(45)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _cuda() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The deploy files speak SASL_SSL with their services' principals: a secure broker with the ACL recipe."""
    yield from secure_kafka_service(tmp_path_factory.mktemp("kafka-deploy"))


@pytest.fixture
def rewriter(secure_kafka: Any, s3_service: Any, postgres_dsn: str, tmp_path: Path) -> Rewriter:
    return Rewriter(tmp_path, secure_kafka, s3_service, postgres_dsn)


@pytest.mark.parametrize("name", [n for n, _, _ in k8s_containers()])
def test_every_k8s_container_starts_as_written(name: str, rewriter: Rewriter, tmp_path: Path) -> None:
    _, c, files = next(x for x in k8s_containers() if x[0] == name)
    if "gpu" in name and not _cuda():
        pytest.skip("the GPU worker needs CUDA (onnxruntime CUDAExecutionProvider); this box has none")
    assert c.get("command"), f"{name}: no command; the image's ENTRYPOINT is empty"
    for path, text in files.items():
        target = Path(rewriter.text(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        secret = text.removeprefix("secret:") if text.startswith("secret:") else None
        target.write_text(rewriter.secret_files[secret] if secret else rewriter.text(text))
    env: dict[str, str] = {}
    for e in c.get("env", []):
        if "value" in e:
            value = str(e["value"])
            env[e["name"]] = rewriter.port(value) if e["name"].endswith("_PORT") else rewriter.text(value)
        elif "secretKeyRef" in e.get("valueFrom", {}):
            env[e["name"]] = rewriter.secrets[e["valueFrom"]["secretKeyRef"]["key"]]
        elif "fieldRef" in e.get("valueFrom", {}):
            env[e["name"]] = f"{name.rsplit('/', maxsplit=1)[-1]}-0"
    argv = [KUZET if c["command"][0] == "kuzet" else c["command"][0], *c["command"][1:]]
    argv += [rewriter.arg(str(a)) for a in c.get("args", [])]
    probe = c.get("readinessProbe", {}).get("httpGet")
    ports = {p["name"]: str(p["containerPort"]) for p in c.get("ports", [])}
    url = None
    if probe:
        port = probe["port"] if isinstance(probe["port"], int) else ports[probe["port"]]
        url = f"http://127.0.0.1:{rewriter.port(str(port))}{probe['path']}"
    run_and_probe(name, argv, env, url, tmp_path / "process.log")


def _compose_env(value: str, env: dict[str, str]) -> str:
    """Compose interpolation (${VAR}, ${VAR:?message}, ${VAR:-default}) from the test's deploy/.env."""
    return re.sub(r"\$\{(\w+)(?::[?-][^}]*)?\}", lambda m: env.get(m.group(1), ""), value)


@pytest.mark.parametrize("name", [n for n, _ in compose_services()])
def test_every_compose_service_starts_as_written(name: str, rewriter: Rewriter, tmp_path: Path) -> None:
    _, svc = next(x for x in compose_services() if x[0] == name)
    dotenv = {
        "KUZET_S3_ACCESS_KEY": rewriter.secrets["s3-access-key"],
        "KUZET_S3_SECRET_KEY": rewriter.secrets["s3-secret-key"],
        "POSTGRES_PASSWORD": "unused-trust-auth",
        "KUZET_CAM_GATE_1": "viewer:not-a-real-password",
        "KAFKA_ADMIN_PASSWORD": rewriter.secrets["kafka-admin-password"],
        **{f"KUZET_KAFKA_{role.upper()}_PASSWORD": rewriter.secrets[f"kafka-{role}-password"] for role in ROLES},
    }
    for secret in svc.get("secrets", []):  # compose mounts each at /run/secrets/<name>
        target = Path(rewriter.text(f"/run/secrets/{secret}"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(rewriter.secret_files[secret])
    for volume in svc.get("volumes", []):
        src, _, rest = str(volume).partition(":")
        dest = rest.split(":")[0]
        if src.startswith("./"):
            target = Path(rewriter.text(dest))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rewriter.text((COMPOSE.parent / src).read_text()))
    env = {k: rewriter.text(_compose_env(str(v), dotenv)) for k, v in svc.get("environment", {}).items()}
    env |= {k: v for k, v in dotenv.items() if k.startswith("KUZET_CAM_")}
    # compose writes a literal $ as $$ (the shell in the container then expands it)
    cmd = [str(a).replace("$$", "$") for a in svc["command"]]
    entrypoint = [str(a) for a in svc.get("entrypoint", [])]
    if entrypoint:
        # Shell form: the entrypoint (a shell) runs the command string; `kuzet` is found on PATH as in the
        # image, here this venv's entry point. Docker sets HOSTNAME to the container's name.
        argv = [*entrypoint, *(rewriter.text(a) for a in cmd)]
        env["PATH"] = f"{Path(KUZET).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env["HOSTNAME"] = f"kuzet-{name.removeprefix('compose:')}-1"
    else:
        argv = [KUZET if cmd[0] == "kuzet" else cmd[0]]
        it = iter(cmd[1:])
        for a in it:
            if a in ("--port", "--metrics-port"):
                argv += [a, rewriter.port(next(it))]
            else:
                argv.append(rewriter.arg(a))
    url = None
    if cmd[1:3] == ["console", "serve"]:
        port = rewriter.port("8080")
        argv += ["--metrics-port", "0"]
        url = f"http://127.0.0.1:{port}/api/ready"
    if svc.get("restart") == "no":
        run_once(name, argv, env, tmp_path / "process.log")
        return
    run_and_probe(name, argv, env, url, tmp_path / "process.log")
