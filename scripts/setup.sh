#!/usr/bin/env bash
# Idempotent setup for a Debian host, as root: system packages the datapath, the tests and
# the demo use, then the locked npm dependencies, then the TypeScript build.
# Re-running it does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  iptables iproute2 ethtool            # rules, namespaces, offload settings
  iperf3 tcpdump tshark iputils-ping    # peers, captures, the path benchmark's RTT
  python3 python3-flask python3-scapy python3-paramiko  # HTTP peer, forged packets, SSH client
  openssh-server openssh-client         # SSH peer
  libnetfilter-queue-dev libssl-dev gcc # the C reference labeller of the benchmark
  chromium fonts-dejavu-core            # headless browser of the `labelwall ui` tests (playwright-core drives it)
  curl                                  # the application `labelwall demo --ui` shows denied
  prometheus                            # scrapes the daemons in the metrics e2e test (and promtool)
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; the answer does not matter here.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci only when the lockfile changed since the last install.
lockhash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f node_modules/.labelwall-lock ] || [ "$(cat node_modules/.labelwall-lock)" != "$lockhash" ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lockhash" > node_modules/.labelwall-lock
fi

echo "setup: building"
npx tsc -p tsconfig.json
