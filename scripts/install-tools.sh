#!/usr/bin/env bash
# Installs the system tools DBMigrate needs, only when they are missing.
#   (no flag)   pg_dump / psql (postgresql-client), docker-compose (compose file parser)
#   --browser   Chromium and ChromeDriver for the browser tests
#   --bench     pgcopydb and pgbench for `make bench`
set -euo pipefail
want=(); updated=0
need() { command -v "$1" >/dev/null 2>&1 || want+=("$2"); }
need pg_dump postgresql-client
need psql postgresql-client
need docker-compose docker-compose  # its `config` validates compose.yaml in tests/ops (no engine needed)
case "${1:-}" in
  --browser) need chromium chromium; need chromedriver chromium-driver ;;
  --bench) need pgcopydb pgcopydb; need pgbench postgresql-contrib ;;
esac
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if [ ${#want[@]} -gt 0 ]; then
  echo "installing: ${want[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${want[@]}" >/dev/null
fi

# pgcopydb `compare data` (the verify benchmark's yardstick) arrived in 0.13; Debian bookworm ships
# 0.10. Build 0.17 from Debian's own source package (trixie) into /usr/local/bin when it is missing.
if [ "${1:-}" = "--bench" ] && ! pgcopydb compare --help >/dev/null 2>&1; then
  echo "building pgcopydb 0.17 from Debian's source package (bookworm's 0.10 has no compare command)"
  $SUDO apt-get install -y -qq postgresql-server-dev-all libpq-dev libgc-dev libncurses-dev libedit-dev \
    libssl-dev libkrb5-dev zlib1g-dev liblz4-dev libzstd-dev libxslt1-dev libselinux1-dev libpam0g-dev \
    libsqlite3-dev make gcc >/dev/null
  work=$(mktemp -d)
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    > "$work/sources.list"
  mkdir -p "$work/lists/partial"
  apt_tmp=(-o Dir::Etc::sourcelist="$work/sources.list" -o Dir::Etc::sourceparts=/nonexistent
           -o Dir::State::Lists="$work/lists")
  apt-get "${apt_tmp[@]}" update -qq >/dev/null 2>&1 || true
  (cd "$work" && apt-get "${apt_tmp[@]}" source --download-only pgcopydb >/dev/null 2>&1 || true)
  orig=$(ls "$work"/pgcopydb_*.orig.tar.gz 2>/dev/null | head -1)
  if [ -n "$orig" ]; then
    tar -xzf "$orig" -C "$work"
    (cd "$work"/pgcopydb-*/ && make -j"$(nproc)" >/dev/null 2>&1) \
      && $SUDO install -m 0755 "$work"/pgcopydb-*/src/bin/pgcopydb/pgcopydb /usr/local/bin/pgcopydb \
      && echo "pgcopydb: $(/usr/local/bin/pgcopydb --version 2>&1 | grep -o 'version [0-9.]*' | head -1)"
  else
    echo "pgcopydb source not available: the verify benchmark will report pgcopydb compare as unavailable"
  fi
  rm -rf "$work"
fi
