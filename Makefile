# The two README commands. Both run scripts/setup.sh first (idempotent: apt, npm ci, build).
.PHONY: setup build lint demo test test-unit test-e2e bench bench-datapath bench-verify bench-egress bench-identity bench-flood bench-path

setup:
	bash scripts/setup.sh

build:
	npx tsc -p tsconfig.json

# Formatter and linter (Biome) and the type checker; CI runs it before the tests.
lint: setup
	npx biome ci .
	npx tsc -p tsconfig.json --noEmit

demo: setup
	node bin/labelwall demo

test:
	bash scripts/test.sh all

test-unit:
	bash scripts/test.sh unit

test-e2e:
	bash scripts/test.sh e2e

# Benchmarks (root; each prints ratios against a baseline measured in the same run).
bench: bench-verify bench-datapath bench-egress bench-identity bench-flood bench-path

bench-datapath: setup
	bash bench/datapath-bench.sh

bench-verify: setup
	bash bench/verify-bench.sh

bench-egress: setup
	bash bench/egress-bench.sh

bench-identity: setup
	bash bench/identity-bench.sh

bench-flood: setup
	bash bench/flood-bench.sh

bench-path: setup
	bash bench/path-bench.sh
