#!/usr/bin/env bash
# `make install` and `make uninstall` (the Makefile passes the directories; see its header).
#   install:   the built program (dist/src without the demo and the lab), its production
#              dependencies (npm ci --omit=dev, staged in build/prod), `labelwall` on PATH, the
#              systemd units, the Wireshark dissector, and the example config when none exists.
#              Idempotent: a second run replaces the program and keeps the config.
#   uninstall: on this host (no DESTDIR) first stops the installed units and runs `labelwall
#              cleanup` (rules a crashed daemon left), then removes what the install manifest
#              ($LIBDIR/install-manifest) lists: the files it put, the config only while it is
#              byte for byte the example, and the directories it created once they are empty
#              (never a key or a changed config).
# Paths in the manifest are the final ones (without DESTDIR), so a staged tree is uninstalled
# from its final place as well as from the stage.
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:?usage: install.sh install|uninstall|stage-prod}
: "${PREFIX:=/usr/local}" "${DESTDIR:=}"
: "${BINDIR:=$PREFIX/bin}" "${LIBDIR:=$PREFIX/lib/labelwall}" "${SYSCONFDIR:=/etc}"
: "${SYSTEMDUNITDIR:=$PREFIX/lib/systemd/system}"
: "${WIRESHARK_PLUGIN_DIR:=}"
# INSTALL_CONFIG=0: the example only goes to $LIBDIR (the .deb's postinst copies it).
: "${INSTALL_CONFIG:=1}"
CONFDIR=$SYSCONFDIR/labelwall
UNITS=(labelwall-agent.service labelwall-verifier.service labelwall-verifier@.service)

for v in PREFIX BINDIR LIBDIR SYSCONFDIR SYSTEMDUNITDIR; do
  case ${!v} in /*) ;; *) echo "install: $v must be an absolute path, got '${!v}'" >&2; exit 2 ;; esac
done

if [ -z "$WIRESHARK_PLUGIN_DIR" ]; then
  # Where this host's Wireshark looks for Lua plugins of every user (compiled into Wireshark,
  # whatever PREFIX is); Debian's path when no tshark is installed.
  WIRESHARK_PLUGIN_DIR=$(tshark -G folders 2>/dev/null | sed -n 's/^Global Lua Plugins:[[:space:]]*//p' || true)
  [ -n "$WIRESHARK_PLUGIN_DIR" ] || WIRESHARK_PLUGIN_DIR=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)/wireshark/plugins
fi

manifest=$LIBDIR/install-manifest
declare -a entries=()

# The production dependencies, installed from the lockfile into build/prod (again only when the
# lockfile changed). dist/ is built by tsc, a development dependency: the Makefile builds first.
stage_prod() {
  local stage=build/prod hash
  hash=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ ! -f "$stage/.lock-hash" ] || [ "$(cat "$stage/.lock-hash")" != "$hash" ]; then
    rm -rf "$stage"
    mkdir -p "$stage"
    cp package.json package-lock.json "$stage/"
    (cd "$stage" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error)
    echo "$hash" >"$stage/.lock-hash"
  fi
}

# Directories are recorded only when this install creates them (parents first).
make_dir() {
  local dir=$1 mode=${2:-0755} missing=() d
  d=$dir
  # A staging DESTDIR that does not exist yet is the packager's to create, not ours to record.
  [ -z "$DESTDIR" ] || mkdir -p "$DESTDIR"
  while [ ! -d "$DESTDIR$d" ] && [ "$d" != / ] && [ "$d" != . ]; do
    missing=("$d" "${missing[@]}")
    d=$(dirname "$d")
  done
  for d in "${missing[@]}"; do
    # Parents 0755; only the directory asked for gets its mode (the config's 0700).
    if [ "$d" = "$dir" ]; then install -d -m "$mode" "$DESTDIR$d"; else install -d -m 0755 "$DESTDIR$d"; fi
    entries+=("d $d")
  done
}

put_file() { # mode source target
  install -m "$1" "$2" "$DESTDIR$3"
  entries+=("f $3")
}

do_install() {
  [ -f dist/src/cli/main.js ] || { echo "install: dist/ is not built (run make build)" >&2; exit 2; }
  stage_prod
  local old=()
  [ -f "$DESTDIR$manifest" ] && mapfile -t old <"$DESTDIR$manifest"
  make_dir "$LIBDIR"
  make_dir "$BINDIR"
  make_dir "$SYSTEMDUNITDIR"
  make_dir "$WIRESHARK_PLUGIN_DIR"

  # The program tree, built next to the old one and swapped in.
  local tree=$DESTDIR$LIBDIR.new
  rm -rf "$tree"
  mkdir -p "$tree/bin" "$tree/dist" "$tree/doc"
  cp bin/labelwall "$tree/bin/"
  cp -r dist/src "$tree/dist/src"
  rm -rf "$tree/dist/src/demo" "$tree/dist/src/lab" # the demo needs the lab's Python peers: a clone's business
  cp -r build/prod/node_modules "$tree/node_modules"
  mkdir -p "$tree/src/ui"
  cp -r src/ui/page "$tree/src/ui/page" # labelwall ui serves its page as written (no build step)
  cp package.json package-lock.json "$tree/"
  cp README.md "$tree/doc/"
  cp docs/*.md "$tree/doc/"
  install -m 0644 packaging/labelwall.yaml "$tree/labelwall.yaml.example"
  chmod -R u=rwX,go=rX "$tree"
  chmod 0755 "$tree/bin/labelwall"
  if [ -d "$DESTDIR$LIBDIR" ]; then
    rm -rf "$DESTDIR$LIBDIR.old"
    mv "$DESTDIR$LIBDIR" "$DESTDIR$LIBDIR.old"
  fi
  mv "$tree" "$DESTDIR$LIBDIR"
  rm -rf "$DESTDIR$LIBDIR.old"
  entries+=("t $LIBDIR")

  ln -sfn "$LIBDIR/bin/labelwall" "$DESTDIR$BINDIR/labelwall"
  entries+=("f $BINDIR/labelwall")

  local u tmp
  tmp=$(mktemp)
  for u in "${UNITS[@]}"; do
    sed -e "s|@BINDIR@|$BINDIR|g" -e "s|@CONFDIR@|$CONFDIR|g" -e "s|@LIBDIR@|$LIBDIR|g" "packaging/systemd/$u.in" >"$tmp"
    put_file 0644 "$tmp" "$SYSTEMDUNITDIR/$u"
  done
  rm -f "$tmp"
  put_file 0644 contrib/wireshark/labelwall.lua "$WIRESHARK_PLUGIN_DIR/labelwall.lua"

  if [ "$INSTALL_CONFIG" = 1 ]; then
    make_dir "$CONFDIR" 0700
    if [ ! -e "$DESTDIR$CONFDIR/labelwall.yaml" ]; then
      install -m 0600 packaging/labelwall.yaml "$DESTDIR$CONFDIR/labelwall.yaml"
      # With its SHA-256: uninstall removes it only while it is unchanged.
      entries+=("c $(sha256sum packaging/labelwall.yaml | cut -d' ' -f1) $CONFDIR/labelwall.yaml")
    fi
  fi

  # This run's entries after the earlier runs' (a directory or config an earlier run created
  # stays recorded), without repeats.
  printf '%s\n' "${old[@]}" "${entries[@]}" | awk 'NF && !seen[$0]++' >"$DESTDIR$manifest"
  chmod 0644 "$DESTDIR$manifest"
  echo "installed labelwall in $DESTDIR$LIBDIR ($DESTDIR$BINDIR/labelwall, units in $DESTDIR$SYSTEMDUNITDIR)"
  if [ "$INSTALL_CONFIG" = 1 ] && ! printf '%s\n' "${entries[@]}" | grep -q "^c .* $CONFDIR/labelwall.yaml\$"; then
    echo "kept the existing $DESTDIR$CONFDIR/labelwall.yaml"
  fi
  if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
}

# Before the program goes: its units stop (only when systemd loads them from this install) and
# `labelwall cleanup` removes the rules a crashed daemon left in this network namespace (a
# fail-closed agent's would drop all traffic with nothing left to remove them). A refusal (a
# labelwall started by hand runs) is said and does not stop the uninstall.
stop_and_clean() {
  local u
  if [ -d /run/systemd/system ]; then
    for u in labelwall-agent.service labelwall-verifier.service labelwall-verifier@x.service; do
      if [ "$(systemctl show -P FragmentPath "$u" 2>/dev/null)" = "$SYSTEMDUNITDIR/${u/@x/@}" ]; then
        systemctl stop "${u/@x/@*}" || true
      fi
    done
  fi
  # Only root can have (and remove) iptables rules.
  if [ "$(id -u)" = 0 ] && [ -x "$BINDIR/labelwall" ]; then
    "$BINDIR/labelwall" cleanup ||
      echo "uninstall: labelwall cleanup did not remove every labelwall iptables rule (above); uninstalling anyway" >&2
  fi
}

do_uninstall() {
  if [ ! -f "$DESTDIR$manifest" ]; then
    echo "uninstall: no $DESTDIR$manifest: nothing installed here (PREFIX=$PREFIX)" >&2
    exit 0
  fi
  [ -n "$DESTDIR" ] || stop_and_clean
  local lines=() line kind path sum
  mapfile -t lines <"$DESTDIR$manifest"
  for line in "${lines[@]}"; do
    kind=${line%% *}
    path=$DESTDIR${line#* }
    case $kind in
      f) rm -f "$path" ;;
      c)
        sum=${line#c }
        path=$DESTDIR${sum#* }
        sum=${sum%% *}
        if [ -f "$path" ] && [ "$(sha256sum "$path" | cut -d' ' -f1)" = "$sum" ]; then rm -f "$path"; else
          [ -e "$path" ] && echo "uninstall: kept $path (changed since it was installed)"
        fi
        ;;
    esac
  done
  for line in "${lines[@]}"; do
    [ "${line%% *}" = t ] && rm -rf "$DESTDIR${line#* }"
  done
  # Directories this install created, deepest first, each only when empty.
  local i
  for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
    line=${lines[i]}
    if [ "${line%% *}" = d ] && [ -d "$DESTDIR${line#* }" ]; then
      rmdir "$DESTDIR${line#* }" 2>/dev/null || echo "uninstall: kept ${line#* } (not empty)"
    fi
  done
  echo "uninstalled labelwall from $DESTDIR$PREFIX"
  if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
}

case $action in
  install) do_install ;;
  uninstall) do_uninstall ;;
  stage-prod) stage_prod ;;
  *) echo "usage: install.sh install|uninstall|stage-prod" >&2; exit 2 ;;
esac
