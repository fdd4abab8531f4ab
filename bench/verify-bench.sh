#!/usr/bin/env bash
# Offline verify throughput vs bare HMAC-SHA256 (see bench/verify-bench.ts).
#   bash bench/verify-bench.sh [--bytes N] [--runs N]     (or LW_BENCH_BYTES=... LW_BENCH_RUNS=...)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/bench/verify-bench.js ] || npx tsc -p tsconfig.json
exec node dist/bench/verify-bench.js "$@"
