#!/usr/bin/env bash
# Installs the validators tests/unit/test_deploy_manifests.py runs; idempotent, cached under ~/.cache/kuzet.
#
#   kubernetes-validate (PyPI)  Kubernetes manifests against the bundled OpenAPI schemas, into the venv
#   kuzet-check-rules          Prometheus rule files through Prometheus' own rulefmt parser (Go module proxy)
#   kuzet-check-dashboard      Grafana dashboards through Grafana's Foundation SDK dashboard model (Go module proxy)
#
# Usage: scripts/install_validators.sh  (PYTHON=path/to/python to pick the venv; KUZET_CACHE to move the cache)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${KUZET_CACHE:-$HOME/.cache/kuzet}"
BIN="$CACHE/bin"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
mkdir -p "$BIN"

if ! "$PY" -c 'import kubernetes_validate' 2>/dev/null; then
  echo "install_validators: installing kubernetes-validate into $PY" >&2
  "$PY" -m pip install --quiet 'kubernetes-validate==1.37.0'
fi

build() {  # build NAME DIR: go build the module in DIR into $BIN/NAME unless its sources are unchanged
  local name="$1" dir="$ROOT/$2" stamp
  stamp="$(cat "$dir/go.mod" "$dir/go.sum" "$dir"/*.go | sha256sum | cut -c1-16)-$(go env GOVERSION)"
  if [[ -x "$BIN/$name" && -f "$BIN/$name.stamp" && "$(cat "$BIN/$name.stamp")" == "$stamp" ]]; then
    return 0
  fi
  echo "install_validators: building $name (first time: downloads modules from the Go proxy)" >&2
  (cd "$dir" && GOFLAGS=-mod=readonly go build -trimpath -o "$BIN/$name.tmp" .)
  mv "$BIN/$name.tmp" "$BIN/$name"
  echo "$stamp" > "$BIN/$name.stamp"
}

if ! command -v go >/dev/null 2>&1; then
  echo "install_validators: the Go toolchain is needed (apt-get install golang, or Go from go.dev)" >&2
  exit 1
fi
build kuzet-check-rules deploy/prometheus/checkrules
build kuzet-check-dashboard deploy/grafana/checkdash
echo "install_validators: ok ($BIN)" >&2
