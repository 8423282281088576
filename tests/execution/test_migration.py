"""Whole migrations through the coordinator and the four real agents, on real PostgreSQL and NATS.

Every run ends with a target identical to the source (every row, every object), or with a clean,
reported failure and the target exactly as it was before.
"""
from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

import grpc
import psycopg
import pytest

from dbmigrate.v1 import common_pb2, coordinator_pb2 as C, events_pb2 as E
from tests.coordinator.helpers import wait_phase
from tests.execution.compare import assert_identical, snapshot
from tests.migrations import create, events_of, logged_events, units_copied, wait_for_copies

FIXTURE = Path(__file__).parents[1] / "fixtures" / "awkward.sql"
BIG = """
CREATE TABLE app.big (id bigint PRIMARY KEY, account int NOT NULL, payload text, amount numeric(12, 2));
INSERT INTO app.big SELECT g, g % 1000, md5(g::text) || repeat('z', 60), g / 7.0 FROM generate_series(1, 600000) g;
CREATE INDEX big_account ON app.big (account);
CREATE TABLE app.bigger_nokey (v text, n int);
INSERT INTO app.bigger_nokey SELECT md5(g::text), g FROM generate_series(1, 300000) g;
ANALYZE;
"""


# Keys to small lookup tables (whose primary keys their seals make): from a table large enough for its
# primary key to be built beside its check (validated before that build), and from a small one.
LOOKUPS = """
CREATE TABLE app.kind (id int PRIMARY KEY, name text);
INSERT INTO app.kind SELECT g, 'kind ' || g FROM generate_series(1, 10) g;
CREATE TABLE app.ledger (id bigint PRIMARY KEY, kind_id int NOT NULL REFERENCES app.kind, pad text);
INSERT INTO app.ledger SELECT g, 1 + g % 10, repeat(md5(g::text), 2) FROM generate_series(1, 100000) g;
CREATE TABLE app.note (id int PRIMARY KEY, kind_id int REFERENCES app.kind, ledger_id bigint REFERENCES app.ledger);
INSERT INTO app.note SELECT g, g % 10 + 1, g * 7 FROM generate_series(1, 50) g;
ANALYZE;
"""


def load_awkward(db, extra: str = "") -> None:
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.url, "-f", str(FIXTURE)], check=True,
                   capture_output=True)
    if extra:
        db.execute(extra)


def approve_when_asked(stub, wid: str) -> C.Migration:
    m = wait_phase(stub, wid, "AWAITING_APPROVAL", "FAILED", timeout=240)
    assert E.Phase.Name(m.phase) == "AWAITING_APPROVAL", m.error
    return stub.Approve(C.ApproveRequest(id=wid, comment="test"), timeout=30)


def test_an_awkward_database_migrates_identically_through_all_agents(stack_factory, new_database):
    src, dst = new_database("esrc"), new_database("edst")
    load_awkward(src, LOOKUPS)
    stack = stack_factory().start()
    ch, stub = stack.coordinator_stub()
    wid = create(stub, src.url, dst.url)
    m = approve_when_asked(stub, wid)
    m = wait_phase(stub, wid, "COMPLETED", "FAILED", timeout=300)
    assert E.Phase.Name(m.phase) == "COMPLETED", m.error
    assert_identical(src.url, dst.url)
    report = stub.GetReport(C.GetReportRequest(id=wid), timeout=30)
    assert report.discovery.tables and report.validation.passed and report.verification.equal
    assert report.generation.plan.tables and report.execution.verified
    copied = [t for t in report.execution.tables if t.source_rows > 0]
    assert copied and all(t.bytes > 0 and t.seconds > 0 and t.verified for t in copied)
    # Triggers never fired during the load: the fixture's trigger writes an audit row per insert.
    assert dst.scalar("SELECT count(*) FROM app.audit") == src.scalar("SELECT count(*) FROM app.audit")
    keys = ("SELECT conname, convalidated FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid::regclass::text IN ('app.ledger', 'app.note') ORDER BY 1")
    with psycopg.connect(src.url) as s, psycopg.connect(dst.url) as d:
        assert d.execute(keys).fetchall() == s.execute(keys).fetchall()
        assert len(s.execute(keys).fetchall()) == 3
    ch.close()


@pytest.mark.parametrize("victim", ["execution", "coordinator"])
def test_kill_9_mid_data_then_restart_ends_identical(stack_factory, new_database, victim):
    src, dst = new_database("ksrc"), new_database("kdst")
    load_awkward(src, BIG)
    stack = stack_factory().start()
    ch, stub = stack.coordinator_stub()
    # Small split threshold: app.big goes in parts, so the kill lands between and inside units.
    wid = create(stub, src.url, dst.url, split_threshold_bytes=16 * 1024 * 1024)
    approve_when_asked(stub, wid)
    # Anywhere from the first units to the small tables' indexes, checks and foreign keys.
    seed = int(os.environ.get("DBMIGRATE_FAULT_SEED", str(time.time_ns())))
    after = random.Random(seed).randint(3, 100)
    print(f"kill -9 of {victim} after {after} units (seed {seed})")
    wait_for_copies(stack, wid, after)
    before_kill = units_copied(logged_events(stack, wid))
    stack.kill9(victim)
    time.sleep(0.5)
    stack.procs[victim].start()
    m = wait_phase(stub, wid, "COMPLETED", "FAILED", timeout=400)
    assert E.Phase.Name(m.phase) == "COMPLETED", m.error
    attempts = events_of(stack, wid, "execution_attempted")
    assert len(attempts) >= 2 and before_kill >= 3
    assert_identical(src.url, dst.url)
    assert dst.scalar("SELECT count(*) FROM app.big") == 600000
    ch.close()


def test_a_fatal_error_fails_the_migration_and_rollback_leaves_the_target_as_before(stack_factory, new_database):
    src, dst = new_database("fsrc"), new_database("fdst")
    src.execute("CREATE TABLE public.items (id int PRIMARY KEY, v text); CREATE INDEX items_v_idx ON public.items (v);"
                "INSERT INTO public.items SELECT g, 'v' || g FROM generate_series(1, 1000) g;"
                "CREATE TABLE public.other (id int PRIMARY KEY); INSERT INTO public.other VALUES (1), (2);")
    # The target already has a relation named like the source's index: the index cannot be built.
    dst.execute("CREATE TABLE public.items_v_idx (x int); INSERT INTO public.items_v_idx VALUES (42);"
                "CREATE SCHEMA keep; CREATE TABLE keep.t (id int); INSERT INTO keep.t VALUES (7);")
    before = snapshot(dst.url)
    stack = stack_factory().start()
    ch, stub = stack.coordinator_stub()
    wid = create(stub, src.url, dst.url)
    approve_when_asked(stub, wid)
    m = wait_phase(stub, wid, "FAILED", "COMPLETED", timeout=300)
    assert E.Phase.Name(m.phase) == "FAILED"
    assert "items_v_idx" in m.error and "already exists" in m.error, m.error
    deadline = time.monotonic() + 120
    while not events_of(stack, wid, "rolled_back"):
        assert time.monotonic() < deadline, "no rollback recorded"
        time.sleep(0.2)
    assert snapshot(dst.url) == before
    ch.close()


def test_a_non_empty_target_is_refused_and_left_alone(stack_factory, new_database):
    src, dst = new_database("nsrc"), new_database("ndst")
    src.execute("CREATE TABLE public.accounts (id int PRIMARY KEY, name text);"
                "INSERT INTO public.accounts SELECT g, 'a' || g FROM generate_series(1, 100) g;")
    dst.execute("CREATE TABLE public.accounts (id int PRIMARY KEY, name text); INSERT INTO public.accounts VALUES (1, 'mine');")
    before = snapshot(dst.url)
    stack = stack_factory().start()
    ch, stub = stack.coordinator_stub()
    wid = create(stub, src.url, dst.url)
    m = wait_phase(stub, wid, "AWAITING_APPROVAL", "FAILED", timeout=240)
    assert m.recommendation == common_pb2.DENY
    report = stub.GetReport(C.GetReportRequest(id=wid), timeout=30)
    blockers = [f for f in report.discovery.findings if f.severity == common_pb2.BLOCKER]
    assert any(f.code == "TARGET_NOT_EMPTY" and "accounts" in f.object for f in blockers), blockers
    with pytest.raises(grpc.RpcError) as err:
        stub.Approve(C.ApproveRequest(id=wid), timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "TARGET_NOT_EMPTY" in err.value.details()
    stub.Deny(C.DenyRequest(id=wid, reason="target in use"), timeout=30)
    assert snapshot(dst.url) == before
    ch.close()
