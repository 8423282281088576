#!/usr/bin/env bash
# Starts the local PostgreSQL and NATS JetStream the tests use, when they are not running.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    for v in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "PostgreSQL is not answering on 127.0.0.1:5432 and could not be started" >&2; exit 1; }
fi
nats_up() { (exec 3<>/dev/tcp/127.0.0.1/4222) >/dev/null 2>&1; }
if ! nats_up; then
  bin=$(command -v nats-server || echo "$here/.venv/bin/nats-server")
  mkdir -p "$here/var/nats"
  nohup "$bin" -js -a 127.0.0.1 -p 4222 -sd "$here/var/nats" >"$here/var/nats/nats.log" 2>&1 &
  for _ in $(seq 1 30); do nats_up && break; sleep 0.5; done
  nats_up || { echo "NATS is not answering on 127.0.0.1:4222 and could not be started" >&2; exit 1; }
fi
echo "PostgreSQL and NATS are up"
