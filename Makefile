# The two README commands. Both run scripts/setup.sh first (idempotent: apt, npm ci, build).
.PHONY: setup build lint demo test test-unit test-e2e bench bench-datapath bench-verify bench-egress bench-identity bench-flood bench-path bench-gso install uninstall deb

# Installation (README, "Deployment"). Every directory can be given: make install PREFIX=/usr,
# DESTDIR=/stage (staged install, as for packages), SYSCONFDIR (the config goes in
# $(SYSCONFDIR)/labelwall), SYSTEMDUNITDIR, WIRESHARK_PLUGIN_DIR (default: where this host's
# Wireshark finds Lua plugins, `tshark -G folders`).
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib/labelwall
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
WIRESHARK_PLUGIN_DIR ?=
INSTALL_VARS = PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' BINDIR='$(BINDIR)' LIBDIR='$(LIBDIR)' SYSCONFDIR='$(SYSCONFDIR)' \
	SYSTEMDUNITDIR='$(SYSTEMDUNITDIR)' WIRESHARK_PLUGIN_DIR='$(WIRESHARK_PLUGIN_DIR)'

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
bench: bench-verify bench-datapath bench-egress bench-identity bench-flood bench-path bench-gso

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

bench-gso: setup
	bash bench/gso-bench.sh

# The program with its production dependencies only (npm ci --omit=dev); dist/ is built first
# (tsc is a development dependency). Idempotent; keeps an existing config.
install: build
	$(INSTALL_VARS) bash scripts/install.sh install

# Removes what the install put (its manifest), never a key or a changed config.
uninstall:
	$(INSTALL_VARS) bash scripts/install.sh uninstall

# build/labelwall_<version>_amd64.deb, from the same install (PREFIX=/usr) staged with DESTDIR.
deb: build
	bash scripts/deb.sh
