#!/usr/bin/env bash
# The main job: install what is missing, then build the example image and push it with jr-push to a
# local registry (a private Docker engine and registry are started when none is reachable).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bootstrap.sh
python scripts/demo.py
