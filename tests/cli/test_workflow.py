"""The CLI against a real coordinator driving the scripted stand-in agents: commands, JSON shapes, errors."""
from __future__ import annotations

import pytest

from tests.cli.helpers import dbmigrate

PW_SRC, PW_DST = "src-Pa55word-1", "dst-Pa55word-2"
SRC = f"postgresql://postgres:{PW_SRC}@127.0.0.1:5432/source_db"
DST = f"postgresql://postgres:{PW_DST}@127.0.0.1:5432/target_db"


@pytest.fixture
def doubles(stack_factory):
    def make(**env):
        stack = stack_factory({"DOUBLE_UNITS": "4", "DOUBLE_UNIT_SECONDS": "0.02", **env})
        stack.start_doubles()
        stack.start("coordinator")
        return stack.address("coordinator")
    return make


def _no_password(*texts: str) -> None:
    for t in texts:
        assert PW_SRC not in t and PW_DST not in t


def test_create_start_watch_approve_and_the_json_shapes(doubles):
    addr = doubles()
    r = dbmigrate("create", "--source", SRC, "--target", DST, "--name", "shop", "--jobs", "3",
                  "--include", "public.*", "--exclude", "public.tmp_*", "--split-threshold", "64MB",
                  "--replace-target", coordinator=addr)
    assert r.code == 0, r.err
    wid = r.out.strip()
    assert wid and "\n" not in wid

    status = dbmigrate("status", wid, "--json", coordinator=addr)
    assert status.code == 0, status.err
    m = status.json
    for key in ("id", "phase", "recommendation", "risk", "error"):
        assert key in m
    assert m["id"] == wid and m["phase"] == "CREATED" and m["name"] == "shop"
    assert m["options"]["jobs"] == 3 and m["options"]["split_threshold_bytes"] == str(64 * 1024 ** 2)
    assert m["options"]["include"] == ["public.*"] and m["options"]["exclude"] == ["public.tmp_*"]
    assert m["options"]["on_target_not_empty"] == "REPLACE"
    assert m["source"]["password"] == "" and m["source"]["secret_ref"]

    r = dbmigrate("start", wid, coordinator=addr)
    assert r.code == 0 and wid in r.out
    w = dbmigrate("watch", wid, coordinator=addr)
    assert w.code == 0, w.err
    assert "discovery done: 4 tables" in w.out and "validation passed" in w.out and "waiting for approval" in w.out
    assert "AWAITING_APPROVAL" in w.out and f"dbmigrate approve {wid}" in w.out

    m = dbmigrate("status", wid, "--json", coordinator=addr).json
    assert (m["phase"], m["recommendation"], m["risk"]) == ("AWAITING_APPROVAL", "APPROVE", "RISK_LOW")

    human = dbmigrate("status", wid, coordinator=addr)
    assert "AWAITING_APPROVAL" in human.out and "recommendation APPROVE" in human.out

    r = dbmigrate("approve", wid, "--comment", "looks fine", coordinator=addr)
    assert r.code == 0, r.err
    w = dbmigrate("watch", wid, coordinator=addr)
    assert w.code == 0, w.err
    assert "copied public.t3" in w.out and "verified public.t3" in w.out and "migration COMPLETED" in w.out
    assert "[########################] 100%" in w.out  # a progress bar per table, also without a terminal

    m = dbmigrate("status", wid, "--json", coordinator=addr).json
    assert m["phase"] == "COMPLETED" and m["approval_comment"] == "looks fine"
    assert {t["table"]: t["status"] for t in m["tables"]} == {f"public.t{i}": "verified" for i in range(4)}

    listed = dbmigrate("list", "--json", coordinator=addr)
    assert [x["id"] for x in listed.json["migrations"]] == [wid]
    table = dbmigrate("list", coordinator=addr)
    assert wid in table.out and "COMPLETED" in table.out

    rep = dbmigrate("report", wid, "--json", coordinator=addr).json
    assert set(rep) >= {"id", "discovery", "validation", "generation", "execution", "verification"}
    assert rep["generation"]["recommendation"] == "APPROVE" and rep["verification"]["equal"] is True
    gen = dbmigrate("report", wid, "generation", coordinator=addr)
    assert "recommendation: APPROVE" in gen.out and "public.t0" in gen.out and "== discovery" not in gen.out
    only = dbmigrate("report", wid, "execution", "--json", coordinator=addr).json
    assert only["execution"]["verified"] is True and "discovery" not in only

    events = dbmigrate("watch", wid, "--json", coordinator=addr)
    kinds = [line for line in events.out.splitlines() if line.strip()]
    assert '"migration_created"' in kinds[0] and '"migration_completed"' in kinds[-1]
    _no_password(status.out, human.out, w.out, listed.out, table.out, events.out, gen.out)


def test_bad_input_gives_a_clear_message_and_exit_code(doubles):
    addr = doubles()
    r = dbmigrate("status", "nosuchmigration", coordinator=addr)
    r.assert_clean_error(2, "migration 'nosuchmigration' not found")
    r = dbmigrate("approve", "bad id!", coordinator=addr)
    r.assert_clean_error(2, "is not a migration id")

    wid = dbmigrate("create", "--source", SRC, "--target", DST, "--start", coordinator=addr).out.strip()
    assert dbmigrate("watch", wid, coordinator=addr).code == 0
    r = dbmigrate("deny", wid, "--reason", "  ", coordinator=addr)
    r.assert_clean_error(2, "a reason is required")
    assert dbmigrate("approve", wid, coordinator=addr).code == 0
    twice = dbmigrate("approve", wid, coordinator=addr)
    twice.assert_clean_error(1, f"migration {wid} is", "approval is only possible while it is AWAITING_APPROVAL")
    r = dbmigrate("start", wid, coordinator=addr)
    r.assert_clean_error(1, "only a CREATED migration can be started")
    r = dbmigrate("create", "--source", SRC, "--target", SRC, coordinator=addr)
    r.assert_clean_error(2, "source and target are the same database")
    _no_password(r.err)


def test_deny_and_cancel(doubles):
    addr = doubles()
    a = dbmigrate("create", "--source", SRC, "--target", DST, "--start", coordinator=addr).out.strip()
    assert dbmigrate("watch", a, coordinator=addr).code == 0
    r = dbmigrate("deny", a, "--reason", "not tonight", "--json", coordinator=addr)
    assert r.code == 0 and r.json["phase"] == "DENIED" and r.json["deny_reason"] == "not tonight"
    w = dbmigrate("watch", a, coordinator=addr)
    assert w.code == 1 and "denied: not tonight" in w.out

    b = dbmigrate("create", "--source", SRC, "--target", DST, coordinator=addr).out.strip()
    r = dbmigrate("cancel", b, "--reason", "wrong target", coordinator=addr)
    assert r.code == 0 and "CANCELLED" in r.out
    dbmigrate("rollback", a, coordinator=addr).assert_clean_error(1, "rollback is possible once it is COMPLETED")
    # Cancelled before it started: it never wrote to the target, so there is nothing to roll back.
    status = dbmigrate("status", b, coordinator=addr)
    assert "allowed now    nothing" in status.out and "stopped in     CREATED" in status.out
    dbmigrate("rollback", b, "--reason", "clean up", coordinator=addr).assert_clean_error(1, "nothing to roll back")


def test_migrate_without_approve_stops_at_approval_with_the_id(doubles):
    addr = doubles()
    r = dbmigrate("migrate", "--source", SRC, "--target", DST, coordinator=addr)
    assert r.code == 3, r.err
    assert "waits for approval" in r.err and "--approve was not given" in r.err
    wid = r.err.split("migration ", 1)[1].split()[0]
    m = dbmigrate("status", wid, "--json", coordinator=addr).json
    assert m["phase"] == "AWAITING_APPROVAL"
    _no_password(r.out, r.err)


def test_migrate_approve_does_not_approve_a_deny_recommendation(doubles):
    addr = doubles(DOUBLE_RECOMMENDATION="DENY")
    r = dbmigrate("migrate", "--source", SRC, "--target", DST, "--approve", coordinator=addr)
    assert r.code == 3, r.err
    assert "the recommendation is DENY" in r.err


def test_migrate_approve_runs_to_the_end_and_exits_zero(doubles):
    addr = doubles()
    r = dbmigrate("migrate", "--source", SRC, "--target", DST, "--approve", coordinator=addr)
    assert r.code == 0, r.err + r.out
    assert "approved automatically" in r.out and "COMPLETED and verified" in r.out
    assert "== verification" in r.out and "equal: yes" in r.out
    j = dbmigrate("migrate", "--source", SRC, "--target", DST, "--approve", "--json", coordinator=addr)
    assert j.code == 0, j.err
    assert j.json["phase"] == "COMPLETED"
    assert "approved automatically" in j.err  # progress to stderr, stdout stays JSON
    _no_password(r.out, r.err, j.out, j.err)


def test_migrate_reports_a_failed_migration_with_the_agent_message(doubles):
    addr = doubles(DOUBLE_DISCOVER_ERROR="source database is on fire; call the fire brigade")
    r = dbmigrate("migrate", "--source", SRC, "--target", DST, "--approve", coordinator=addr)
    r.assert_clean_error(1, "ended FAILED", "source database is on fire")
    assert "migration FAILED in DISCOVERING: discovery agent: source database is on fire" in r.out


def test_supply_secrets_after_the_coordinator_lost_its_store(stack_factory):
    stack = stack_factory({"DOUBLE_UNITS": "2", "DOUBLE_UNIT_SECONDS": "0.01"})
    stack.start_doubles()
    stack.start("coordinator")
    addr = stack.address("coordinator")
    wid = dbmigrate("create", "--source", SRC, "--target", DST, coordinator=addr).out.strip()
    stack.procs["coordinator"].stop()
    (stack.data_dir / "secrets.json").unlink()
    stack.procs["coordinator"].start()
    status = dbmigrate("status", wid, coordinator=addr)
    assert "secrets        MISSING" in status.out
    assert dbmigrate("status", wid, "--json", coordinator=addr).json["secrets_missing"] is True
    r = dbmigrate("supply-secrets", wid, "--source", SRC, "--target", DST, coordinator=addr)
    assert r.code == 0, r.err
    assert "secrets complete" in r.out
    _no_password(r.out, r.err)
    assert dbmigrate("status", wid, "--json", coordinator=addr).json["secrets_missing"] is False
    r = dbmigrate("supply-secrets", wid, coordinator=addr)
    r.assert_clean_error(2, "nothing to supply")


def test_watch_on_a_terminal_draws_live_progress_bars(doubles):
    import os
    import pty
    import subprocess

    from tests.cli.helpers import DBMIGRATE

    addr = doubles()
    r = dbmigrate("migrate", "--source", SRC, "--target", DST, "--approve", "--json", coordinator=addr)
    assert r.code == 0, r.err
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBMIGRATE_")}
    p = subprocess.Popen([DBMIGRATE, "watch", r.json["id"]], stdout=slave, stderr=slave,
                         env={**env, "DBMIGRATE_COORDINATOR": addr, "COLUMNS": "160"})
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert p.wait(30) == 0
    text = out.decode()
    assert "\x1b[" in text  # the bar block is redrawn in place
    assert "tables 4/4 copied" in text and "migration COMPLETED" in text


def test_migrate_follows_on_across_a_coordinator_restart_without_missing_or_repeating_an_event(stack_factory):
    import subprocess
    import time

    from tests.cli.helpers import DBMIGRATE
    stack = stack_factory({"DOUBLE_UNITS": "30", "DOUBLE_UNIT_SECONDS": "0.15"})
    stack.start_doubles()
    stack.start("coordinator")
    env = {"DBMIGRATE_COORDINATOR": stack.address("coordinator"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([DBMIGRATE, "migrate", "--source", SRC, "--target", DST, "--approve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        from dbmigrate.v1 import coordinator_pb2 as C, events_pb2 as E
        ch, stub = stack.coordinator_stub()
        with ch:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until the copy is under way
                ms = stub.ListMigrations(C.ListMigrationsRequest(), timeout=5).migrations
                if ms and ms[0].phase == E.EXECUTING and ms[0].progress.tables_verified >= 3:
                    break
                time.sleep(0.1)
        stack.restart("coordinator")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err + out[-2000:]
    assert "reconnecting" in out and "cannot reach" not in err
    assert "COMPLETED and verified" in out
    for i in range(30):  # every table's copy printed exactly once
        assert out.count(f"copied public.t{i}:") == 1, (i, out[-3000:])


def test_watch_of_many_tables_prints_a_summary_and_the_tables_asked_for(doubles):
    addr = doubles(DOUBLE_UNITS="120", DOUBLE_UNIT_SECONDS="0.001")
    r = dbmigrate("migrate", "--source", SRC, "--target", DST, "--approve", coordinator=addr, timeout=120)
    assert r.code == 0, r.err
    assert "copied public.t7:" not in r.out and "tables: 120 of 120 verified, 0 copying, 0 failed" in r.out
    wid = r.out.split("migration ", 1)[1].split()[0]
    w = dbmigrate("watch", wid, "--tables", "public.t1?", coordinator=addr)
    assert w.code == 0, w.err
    shown = {line.split("copied ", 1)[1].split(":")[0] for line in w.out.splitlines() if " copied public." in line}
    assert shown == {f"public.t1{i}" for i in range(10)}, shown
