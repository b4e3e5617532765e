"""Every Kubernetes manifest, the Prometheus alert rules and the Grafana dashboard pass maintained validators.

Validators (installed by ``scripts/install_validators.sh``, cached under ~/.cache/kuzet):

* Kubernetes: ``kubernetes-validate`` (PyPI) against the OpenAPI schemas it bundles, strict (unknown
  fields are errors), for the Kubernetes version named below;
* Prometheus rules: ``kuzet-check-rules``, Prometheus' own ``rulefmt`` parser (what ``promtool check rules``
  runs), built from deploy/prometheus/checkrules;
* Grafana: ``kuzet-check-dashboard``, a strict decode into Grafana's Foundation SDK dashboard model plus
  its Validate(), built from deploy/grafana/checkdash.

A missing validator FAILS (never skips): a manifest check that silently skips proves nothing. Each
validator is also shown a broken input, so a validator that accepts anything would fail here too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
RULES = REPO / "deploy" / "prometheus" / "alerts.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "kuzet-dashboard.json"
K8S_VERSION = "1.33.0"
BIN = Path(os.environ.get("KUZET_CACHE", Path.home() / ".cache" / "kuzet")) / "bin"


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run scripts/install_validators.sh", pytrace=False)
    return found


def _k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                docs.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


def _validate_k8s(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize(("where", "doc"), _k8s_documents(), ids=[w for w, _ in _k8s_documents()])
def test_kubernetes_manifest_is_valid(where: str, doc: dict[str, Any]) -> None:
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        pytest.fail("kubernetes-validate is not installed: run scripts/install_validators.sh", pytrace=False)
    _validate_k8s(doc)


def test_kubernetes_validator_rejects_a_broken_manifest() -> None:
    import kubernetes_validate

    doc = next(d for _w, d in _k8s_documents() if d["kind"] == "StatefulSet")
    broken = json.loads(json.dumps(doc))
    broken["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = {"many": True}
    broken["spec"]["replicaz"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate_k8s(broken)


def test_manifests_cover_what_operations_need() -> None:
    docs = [d for _w, d in _k8s_documents()]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for needed in [
        ("StatefulSet", "kuzet-worker-cpu"),
        ("StatefulSet", "kuzet-worker-gpu"),
        ("Deployment", "kuzet-plate-indexer"),
        ("Deployment", "kuzet-console"),
        ("PodDisruptionBudget", "kuzet-worker-cpu"),
        ("HorizontalPodAutoscaler", "kuzet-worker-cpu"),
        ("HorizontalPodAutoscaler", "kuzet-plate-indexer"),
    ]:
        assert needed in kinds, needed
    for d in docs:
        if d["kind"] not in ("StatefulSet", "Deployment"):
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            assert "livenessProbe" in c and "readinessProbe" in c, d["metadata"]["name"]
            assert c["resources"]["limits"] and c["resources"]["requests"], d["metadata"]["name"]
    gpu = next(d for d in docs if d["metadata"]["name"] == "kuzet-worker-gpu" and d["kind"] == "StatefulSet")
    assert gpu["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    kustomized = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))["resources"]
    assert sorted(kustomized) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_tool(tool), *args], capture_output=True, text=True, timeout=60)


def test_prometheus_rules_are_valid(tmp_path: Path) -> None:
    res = _run("kuzet-check-rules", str(RULES))
    assert res.returncode == 0, res.stderr
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    for needed in ("KuzetCameraDown", "KuzetSpoolGrowing", "KuzetConsumerLagGrowing", "KuzetWorkerFull"):
        assert needed in alerts
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "groups:\n  - name: x\n    rules:\n      - alert: Bad\n        expr: sum(rate(kuzet_spool_depth[5m]) >\n",
        encoding="utf-8",
    )
    res = _run("kuzet-check-rules", str(broken))
    assert res.returncode == 1 and "FAILED" in res.stderr


def test_rules_and_dashboard_only_use_exported_metrics() -> None:
    """Every kuzet_* name in the rules and the dashboard is one the worker exports (typos alert on nothing)."""
    import re

    from tests.unit.test_metrics import FakeAssignment, FakeWorker
    from worker.metrics import WorkerMetrics

    metrics = WorkerMetrics()
    metrics.bind(FakeWorker(2), FakeAssignment(2, 1))
    metrics.inference.labels(model="person").observe(0.01)  # labelled histograms appear with their first batch
    exported = {s.name for fam in metrics.registry.collect() for s in fam.samples}
    used = set(re.findall(r"kuzet_[a-z_]+", RULES.read_text() + DASHBOARD.read_text()))
    used -= {"kuzet_plate_indexer"}
    assert used <= exported, sorted(used - exported)


def test_grafana_dashboard_is_valid(tmp_path: Path) -> None:
    res = _run("kuzet-check-dashboard", str(DASHBOARD))
    assert res.returncode == 0, res.stderr
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    doc["panels"][1]["gridPos"]["w"] = "wide"
    doc["panels"][2]["colour"] = "red"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc), encoding="utf-8")
    res = _run("kuzet-check-dashboard", str(broken))
    assert res.returncode == 1 and "gridPos.w" in res.stderr and "colour" in res.stderr
