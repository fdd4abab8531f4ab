# The two README commands. Both run scripts/setup.sh first (idempotent: apt, npm ci, build).
.PHONY: setup build demo test test-unit test-e2e bench

setup:
	bash scripts/setup.sh

build:
	npx tsc -p tsconfig.json

demo: setup
	node dist/src/cli/main.js demo

test:
	bash scripts/test.sh all

test-unit:
	bash scripts/test.sh unit

test-e2e:
	bash scripts/test.sh e2e

bench: setup
	bash bench/run.sh
