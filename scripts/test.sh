#!/usr/bin/env bash
# The test suite: installs everything (Debian packages, Python packages, Kafka, SeaweedFS, models),
# lints, then runs pytest. The fixtures start Kafka, SeaweedFS S3, PostgreSQL, the RTSP server and
# Chromium on loopback ports as tests need them and stop them at the end. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --services
bash scripts/install_validators.sh
export YOLO_OFFLINE=1

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .

set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit $rc
