"""Following a migration on NATS, as the README shows: every event, in order, on its documented subject."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.cli.helpers import dbmigrate

SRC = "postgresql://postgres:follow-pw-1@127.0.0.1:5432/source_db"
DST = "postgresql://postgres:follow-pw-2@127.0.0.1:5432/target_db"


def test_follow_events_prints_the_migration_from_nats_in_order(stack_factory, nats_url):
    stack = stack_factory({"DOUBLE_UNITS": "2", "DOUBLE_UNIT_SECONDS": "0.01"})
    stack.start_doubles()
    stack.start("coordinator")
    addr = stack.address("coordinator")
    r = dbmigrate("migrate", "--source", SRC, "--target", DST, "--approve", "--json", coordinator=addr)
    assert r.code == 0, r.err
    wid = r.json["id"]
    logged = [json.loads(line) for line in dbmigrate("watch", wid, "--json", coordinator=addr).out.splitlines()]

    p = subprocess.run([sys.executable, "-m", "scripts.follow_events", wid, "--limit", str(len(logged)),
                        "--nats", nats_url, "--stream", "DBMIGRATE_EVENTS"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == len(logged)
    for line, event in zip(lines, logged):
        kind = next(k for k in event if k not in ("workflow_id", "version", "seq", "time"))
        assert f"dbmigrate.events.{wid}.{kind}  seq={event['seq']} version={event['version']}" in line
    assert "follow-pw" not in p.stdout


def test_follow_events_says_clearly_when_nats_is_not_there():
    p = subprocess.run([sys.executable, "-m", "scripts.follow_events", "--nats", "nats://127.0.0.1:1"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "cannot follow DBMIGRATE_EVENTS on nats://127.0.0.1:1" in p.stderr
    assert "Traceback" not in p.stderr
