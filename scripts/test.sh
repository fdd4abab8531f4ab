#!/usr/bin/env bash
# The whole test suite: setup (idempotent), then unit tests, then end-to-end tests that build
# network namespaces (root needed). `scripts/test.sh unit` or `scripts/test.sh e2e` runs one part.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
what=${1:-all}
files=()
if [ "$what" = all ] || [ "$what" = unit ]; then
  files+=(dist/test/unit/*.test.js)
fi
if [ "$what" = all ] || [ "$what" = e2e ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test: end-to-end tests need root (network namespaces, iptables)" >&2
    exit 1
  fi
  files+=(dist/test/e2e/*.test.js)
fi
# One file at a time: e2e files each build namespaces and saturate both cores.
exec node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
