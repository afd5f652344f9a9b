#!/usr/bin/env bash
# The whole test suite, from nothing: installs what is missing, then lint, types and tests.
# The tests start (and stop) their own Docker engine and registries on private sockets/loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
JR_BOOTSTRAP_TEST=1
. scripts/bootstrap.sh

echo "== ruff"; ruff check jenkins_registry tests benchmarks
echo "== mypy --strict"; mypy --strict jenkins_registry
echo "== pytest"; python -m pytest -q "$@"
