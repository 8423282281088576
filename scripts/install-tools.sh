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
[ ${#want[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing: ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${want[@]}" >/dev/null
