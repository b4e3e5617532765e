#!/usr/bin/env bash
# The demo: installs what it needs, then runs one worker on the bundled clip with embedded defaults
# (local bus, local snapshots; no Kafka, S3 or PostgreSQL). Extra arguments go to `kuzet demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/kuzet demo "$@"
