"""Two plate indexer processes in one consumer group, as ``deploy/k8s/plate-indexer.yaml`` runs them.

Real Kafka and PostgreSQL; the processes are started with the manifest's own
command and arguments (``kuzet plates index --bus=kafka ...``), as many as its
``replicas``. The test shows what the deployment promises:

* the group shares the topic: both processes store reads;
* no read is lost and none is stored twice, even with reads sent twice by the
  producer (at-least-once bus) and with one indexer SIGKILLed mid-stream, so
  that its uncommitted batch is re-delivered to the survivor (the insert is
  idempotent on the event id).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
import yaml

from core.config import KafkaConfig
from event_bus import topics
from event_bus.events import PlateRead
from event_bus.interfaces import OutRecord
from event_bus.kafka_admin import ensure_topics
from event_bus.kafka_publisher import KafkaPublisher
from services.plate_indexer import GROUP
from tests.shared_broker import delete_records

pytestmark = [pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"


def _deployment(name: str, kind: str = "Deployment") -> dict[str, Any]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == kind and doc["metadata"]["name"] == name:
                return dict(doc)
    raise AssertionError(f"no {kind} {name} in {K8S}")


def test_manifests_run_two_indexers_in_one_group_and_two_consoles() -> None:
    indexer = _deployment("kuzet-plate-indexer")
    console = _deployment("kuzet-console")
    assert indexer["spec"]["replicas"] == 2
    assert console["spec"]["replicas"] == 2
    container = indexer["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["kuzet"]
    assert container["args"][:3] == ["plates", "index", "--bus=kafka"]
    assert not any(a.startswith("--group") for a in container["args"])  # one group: the service's own
    # the autoscaler never takes the indexers below the two the deployment runs
    assert _deployment("kuzet-plate-indexer", "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2


SASL_ENV = {
    "KUZET_BUS__KAFKA__SECURITY_PROTOCOL",
    "KUZET_BUS__KAFKA__SASL_USERNAME",
    "KUZET_BUS__KAFKA__SASL_PASSWORD",
    "KUZET_BUS__KAFKA__SSL_CAFILE",
    "KUZET_KAFKA_PASSWORD",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metric(port: int, line_start: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return -1.0
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _stored(port: int) -> float:
    return _metric(port, 'kuzet_indexer_records_total{outcome="stored"}')


def _holds_partitions(port: int) -> bool:
    """Whether this indexer has held plate partitions: it exports the group's lag only for partitions it was given.

    Waited for before sending, so that the first member to join cannot consume the whole first wave before the
    group hands the second its share (it did once in a full run: the second stored nothing in 180 s).
    """
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return False
    prefix = f'kuzet_kafka_consumer_lag{{group="{GROUP}",topic="{topics.PLATES}"}}'
    return any(line.startswith(prefix) for line in text.splitlines())


class Indexer:
    """One ``kuzet plates index`` process started from the manifest's container spec."""

    def __init__(self, container: dict[str, Any], bootstrap: str, db: str, log: Path) -> None:
        self.port = _free_port()
        args = [a for a in container["args"] if not a.startswith("--metrics-host")]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUZET_")}
        env.update(
            {
                "PYTHONPATH": str(REPO),
                "KUZET_BUS__KAFKA__BOOTSTRAP_SERVERS": bootstrap,  # the manifest's service address, substituted
                "KUZET_PLATES_DB": db,  # the manifest's secret, substituted
                "KUZET_METRICS_PORT": str(self.port),
            }
        )
        # The manifest's SASL_SSL settings are left out here: this test's broker is the session's plaintext
        # one (test_deploy_files_run runs the same containers against a SASL_SSL broker with the ACLs).
        assert {e["name"] for e in container["env"]} == {
            "KUZET_BUS__KAFKA__BOOTSTRAP_SERVERS",
            "KUZET_METRICS_PORT",
            "KUZET_PLATES_DB",
            *SASL_ENV,
        }
        self.log = log
        self._log = log.open("wb")
        # small batches, so a kill lands mid-stream with stored-but-uncommitted work more often
        argv = [sys.executable, "-m", "kuzet.cli", *args, "--batch-size", "100"]
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)

    def stop(self, sig: int = signal.SIGTERM) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.log.read_text(errors="replace")


def _read(camera: str, at: datetime, i: int) -> PlateRead:
    plate = f"{i % 1000:03d}{'ABCDEFGH'[i % 8]}{'KLMNPRST'[(i // 8) % 8]}Z02"
    return PlateRead(
        camera_id=camera,
        observed_at=at,
        first_seen_at=at,
        last_seen_at=at,
        plate=plate,
        raw_text=plate,
        format_id="kz",
        country="KZ",
        confidence=0.9,
        is_candidate=False,
        reads=3,
        plate_box=[1, 2, 3, 4],
    )


def _send(pub: KafkaPublisher, reads: list[PlateRead]) -> None:
    for start in range(0, len(reads), 500):
        chunk = reads[start : start + 500]
        results = pub.publish([OutRecord(topics.PLATES, r.camera_id, r.model_dump_json().encode()) for r in chunk])
        assert results == [None] * len(chunk)


def _rows(db: str, tag: str) -> tuple[int, set[UUID]]:
    with psycopg.connect(db) as c:
        rows = c.execute("SELECT event_id FROM plate_reads WHERE camera_id LIKE %s", (f"grp{tag}-%",)).fetchall()
    return len(rows), {r[0] for r in rows}


def _wait(check: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return bool(check())


@pytest.fixture
def plates_topic_cleared(kafka_bootstrap: str) -> Iterator[None]:
    """This test's 7,000 reads are deleted after it: later tests read the plate topic from its oldest record."""
    yield
    delete_records(kafka_bootstrap, topics.PLATES)


@pytest.mark.usefixtures("plates_topic_cleared")
def test_two_indexers_share_the_group_and_lose_or_duplicate_nothing_when_one_is_killed(
    kafka_bootstrap: str, db_url: str, tmp_path: Path
) -> None:
    ensure_topics(kafka_bootstrap, [topics.PLATES, topics.DLQ])
    deployment = _deployment("kuzet-plate-indexer")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    tag = uuid4().hex[:6]
    cameras = [f"grp{tag}-{i:02d}" for i in range(48)]  # keys spread over every partition
    now = datetime.now(UTC).replace(microsecond=0)
    reads = [_read(cameras[i % len(cameras)], now - timedelta(seconds=i), i) for i in range(6000)]
    first, second = reads[:4000], reads[4000:]

    pub = KafkaPublisher(KafkaConfig(bootstrap_servers=kafka_bootstrap, client_id=f"grp-test-{tag}"))
    indexers = [
        Indexer(container, kafka_bootstrap, db_url, tmp_path / f"indexer{n}.log")
        for n in range(deployment["spec"]["replicas"])
    ]
    logs: list[str] = []
    try:
        assert _wait(lambda: all(_stored(ix.port) >= 0 for ix in indexers), 120), "metrics endpoints never came up"
        assert _wait(lambda: all(_holds_partitions(ix.port) for ix in indexers), 120), "a member never got partitions"
        _send(pub, first)
        # both members hold partitions and store; stop one while its share is still flowing
        assert _wait(lambda: all(_stored(ix.port) > 0 for ix in indexers), 180), [ix.log.read_text() for ix in indexers]
        victim, survivor = indexers
        stored_by_victim = _stored(victim.port)
        logs.append(victim.stop(signal.SIGKILL))
        assert victim.proc.returncode == -signal.SIGKILL
        # the producer retries too: a quarter of the first wave again, same event ids, plus new reads
        _send(pub, second + first[::4])

        want = {r.event_id for r in reads}
        assert _wait(lambda: _rows(db_url, tag)[1] >= want, 240), (
            f"{len(want - _rows(db_url, tag)[1])} read(s) never stored; survivor log:\n{survivor.log.read_text()}"
        )
        time.sleep(3)  # anything still in flight (re-delivered batches) lands now, and must not add rows
        count, ids = _rows(db_url, tag)
        assert ids == want  # none lost, nothing foreign
        assert count == len(want)  # none twice
        survivor_duplicates = _metric(survivor.port, 'kuzet_indexer_records_total{outcome="duplicates"}')
        assert survivor_duplicates >= len(first[::4])  # the resent reads reached the store and were ignored there
        assert stored_by_victim > 0
    finally:
        for ix in indexers:
            if ix.proc.poll() is None:
                logs.append(ix.stop())
        pub.close()
    assert any(line.startswith("indexed ") for text in logs for line in text.splitlines())  # clean SIGTERM exit
