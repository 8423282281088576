"""Online migrations end to end: a PostgreSQL 15 source with wal_level=logical that keeps taking
writes, the session's PostgreSQL 18 as target, the whole stack; and the offline path on a source
that moves on after its snapshot."""
from __future__ import annotations

import random
import signal
import subprocess
import threading
import time

import grpc
import psycopg

from dbmigrate.v1 import coordinator_pb2 as C, events_pb2 as E
from tests.coordinator.helpers import logged_events
from tests.migrations import create, drive

SCHEMA = """
CREATE TABLE acct (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0, note text);
INSERT INTO acct SELECT g, 0, md5(g::text) FROM generate_series(1, 20000) g;
CREATE TABLE ev (id bigserial PRIMARY KEY, acct int REFERENCES acct, at timestamptz DEFAULT now());
INSERT INTO ev (acct) SELECT (g % 20000) + 1 FROM generate_series(1, 5000) g;
CREATE TABLE nopk (k int, v text);
ALTER TABLE nopk REPLICA IDENTITY FULL;
INSERT INTO nopk SELECT g, 'x' FROM generate_series(1, 500) g;
CREATE TABLE part (id int GENERATED ALWAYS AS IDENTITY, k int NOT NULL, v int NOT NULL DEFAULT 0,
                   PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
CREATE TABLE part_a PARTITION OF part FOR VALUES FROM (0) TO (50);
CREATE TABLE part_b PARTITION OF part FOR VALUES FROM (50) TO (100);
INSERT INTO part (k) SELECT g % 100 FROM generate_series(1, 2000) g;
"""

DIGEST = {
    "acct": "SELECT count(*), md5(string_agg(id || ':' || v || ':' || coalesce(note, ''), ',' ORDER BY id)) FROM acct",
    "ev": "SELECT count(*), md5(string_agg(id || ':' || acct, ',' ORDER BY id)) FROM ev",
    "nopk": "SELECT count(*), md5(string_agg(k || ':' || v, ',' ORDER BY k, v)) FROM nopk",
    "part": "SELECT count(*), md5(string_agg(id || ':' || k || ':' || v, ',' ORDER BY id)) FROM part",
}


class Writer:
    """pgbench-like transactions on the source: an UPDATE, an INSERT into a serial-keyed table, a
    change to the table without a key, until stopped."""

    def __init__(self, url: str):
        self.url, self.stop_flag, self.count, self.errors = url, threading.Event(), 0, []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rnd = random.Random(7)
        try:
            with psycopg.connect(self.url, autocommit=False) as c:
                while not self.stop_flag.is_set():
                    a = rnd.randint(1, 20000)
                    c.execute("UPDATE acct SET v = v + 1 WHERE id = %s", [a])
                    c.execute("INSERT INTO ev (acct) VALUES (%s)", [a])
                    if rnd.random() < 0.2:
                        c.execute("UPDATE nopk SET v = v || 'y' WHERE k = %s", [rnd.randint(1, 500)])
                    if rnd.random() < 0.05:
                        c.execute("DELETE FROM ev WHERE id = (SELECT min(id) FROM ev)")
                    if rnd.random() < 0.3:  # a partitioned table, rows moving between its partitions too
                        c.execute("INSERT INTO part (k) VALUES (%s)", [rnd.randint(0, 99)])
                        c.execute("UPDATE part SET v = v + 1, k = %s WHERE id = %s",
                                  [rnd.randint(0, 99), rnd.randint(1, 2000)])
                    c.commit()
                    self.count += 1
                    time.sleep(0.002)
        except Exception as err:  # noqa: BLE001 - the test asserts there was none
            self.errors.append(err)

    def __enter__(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(30)
        assert not self.errors, f"the source's own writes failed: {self.errors}"

    def __exit__(self, *exc):
        if not self.stop_flag.is_set():
            self.stop()


PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
PGBENCH_DIGEST = {
    "pgbench_accounts": "SELECT count(*), md5(string_agg(aid || ':' || abalance, ',' ORDER BY aid)) FROM pgbench_accounts",
    "pgbench_branches": "SELECT count(*), md5(string_agg(bid || ':' || bbalance, ',' ORDER BY bid)) FROM pgbench_branches",
    "pgbench_tellers": "SELECT count(*), md5(string_agg(tid || ':' || tbalance, ',' ORDER BY tid)) FROM pgbench_tellers",
    "pgbench_history": "SELECT count(*), md5(string_agg(tid || ':' || bid || ':' || aid || ':' || delta || ':' || "
                       "mtime, ',' ORDER BY mtime, aid, tid, delta)) FROM pgbench_history",
}


def _pgbench_init(url: str) -> None:
    subprocess.run([PGBENCH, "-i", "-s", "2", "--foreign-keys", "-q", url], check=True, capture_output=True)
    with psycopg.connect(url, autocommit=True) as c:
        # pgbench_history has no key: the remedy NO_REPLICA_IDENTITY names, so its writes can be published.
        c.execute("ALTER TABLE pgbench_history REPLICA IDENTITY FULL")


def _pgbench(url: str) -> subprocess.Popen:
    """pgbench's TPC-B-like transactions at about 200 per second, until stopped."""
    return subprocess.Popen([PGBENCH, "-n", "-c", "2", "-j", "1", "-R", "200", "-T", "600", url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _digests(url: str, pgbench: bool = False) -> dict:
    with psycopg.connect(url, autocommit=True) as c:
        out = {t: c.execute(q).fetchone() for t, q in {**DIGEST, **(PGBENCH_DIGEST if pgbench else {})}.items()}
        out["ev_id_seq"] = c.execute("SELECT last_value FROM ev_id_seq").fetchone()[0]
        out["part_id_seq"] = c.execute("SELECT last_value FROM part_id_seq").fetchone()[0]
        return out


def _leftovers(src_url: str, dst_url: str) -> list:
    with psycopg.connect(src_url, autocommit=True) as c:
        left = c.execute("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'dbmigrate%'").fetchall()
        left += c.execute("SELECT pubname FROM pg_publication WHERE pubname LIKE 'dbmigrate%'").fetchall()
    with psycopg.connect(dst_url, autocommit=True) as c:
        left += c.execute("SELECT subname FROM pg_subscription WHERE subname LIKE 'dbmigrate%'").fetchall()
    return left


def _until(stub, wid: str, check, timeout: float = 240, what: str = "") -> C.Migration:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            m = stub.GetMigration(C.MigrationRef(id=wid), timeout=5)
            if m.phase == E.AWAITING_APPROVAL and m.actions.approve:
                stub.Approve(C.ApproveRequest(id=wid, comment="test"), timeout=5)
            elif check(m):
                return m
            assert m.phase not in (E.FAILED, E.CANCELLED, E.DENIED, E.ROLLED_BACK), f"{E.Phase.Name(m.phase)}: {m.error}"
        except grpc.RpcError as err:
            if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
        time.sleep(0.2)
    raise AssertionError(f"migration {wid}: {what or 'condition'} not reached within {timeout}s")


def _cli(stack, *args: str) -> subprocess.CompletedProcess:
    import sys
    from pathlib import Path
    return subprocess.run([str(Path(sys.executable).parent / "dbmigrate"), "--coordinator", stack.address("coordinator"),
                           *args], capture_output=True, text=True, timeout=300)


def _cutover(stub, wid: str) -> None:
    for _ in range(100):
        try:
            stub.Cutover(C.CutoverRequest(id=wid), timeout=10)
            return
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            time.sleep(0.2)


def test_online_copy_stream_crash_and_cutover(new_database15_logical, new_database18, stack_factory):
    """Writes run through the copy and SYNCING; the execution agent and the coordinator are killed
    -9 while SYNCING; a cutover with writes still running is refused without losing anything; after
    the writes stop, cutover completes: the target equals the source row for row, sequences at the
    source's values, and no slot, publication or subscription is left."""
    src, dst = new_database15_logical("onl"), new_database18("onl")
    src.execute(SCHEMA)
    _pgbench_init(src.url)
    stack = stack_factory({"DBMIGRATE_CUTOVER_WAIT_SECONDS": "60"}).start()
    ch, stub = stack.coordinator_stub()
    bench = _pgbench(src.url)
    with ch, Writer(src.url) as writer:
        wid = create(stub, src.url, dst.url, online=True)
        m = _until(stub, wid, lambda m: m.phase == E.SYNCING and m.sync.changes_applied > 0, what="SYNCING")
        assert m.actions.cutover and m.settled and m.running
        assert writer.count > 0
        for service in ("execution", "coordinator"):
            stack.kill9(service)
            time.sleep(1)
            stack.restart(service)
            before = m.sync.changes_applied
            m = _until(stub, wid, lambda m: m.phase == E.SYNCING and m.sync.changes_applied > before,
                       what=f"the stream after kill -9 of the {service}")
        assert m.sync.lag_bytes >= 0 and m.sync.lag_seconds >= 0 and m.sync.wal_status
        # Cutover while the writes go on: refused, still SYNCING, nothing lost.
        _cutover(stub, wid)
        m = _until(stub, wid, lambda m: m.cutover.startswith("refused") or m.phase == E.COMPLETED,
                   what="the cutover's answer")
        assert m.phase == E.SYNCING and m.cutover.startswith("refused"), m.cutover
        writer.stop()
        bench.send_signal(signal.SIGINT)
        out, _ = bench.communicate(timeout=30)
        assert "number of failed transactions: 0" in out or "aborted" not in out, out
        _cutover(stub, wid)
        stack.kill9("coordinator")  # during the cutover: the replayed log says which of its steps is next
        stack.restart("coordinator")
        m = _until(stub, wid, lambda m: m.phase == E.COMPLETED and m.settled, what="COMPLETED", timeout=300)
        report = stub.GetReport(C.GetReportRequest(id=wid), timeout=10)
    assert report.verification.equal, report.verification.summary
    assert _digests(src.url, pgbench=True) == _digests(dst.url, pgbench=True)
    assert src.scalar("SELECT count(*) FROM pgbench_history") > 0  # pgbench wrote during the copy and the stream
    assert _leftovers(src.url, dst.url) == []
    kinds = [e.WhichOneof("payload") for e in logged_events(stack, wid)]
    for kind in ("sync_started", "sync_progress", "cutover_requested", "cutover_refused", "cutover_caught_up",
                 "cutover_verified", "replication_released", "migration_completed"):
        assert kind in kinds, kind


def test_online_ddl_while_syncing_is_reported_and_cutover_refused(new_database15_logical, new_database18, stack_factory):
    src, dst = new_database15_logical("ddl"), new_database18("ddl")
    src.execute(SCHEMA)
    stack = stack_factory({"DBMIGRATE_CUTOVER_WAIT_SECONDS": "8"}).start()
    ch, stub = stack.coordinator_stub()
    with ch:
        wid = create(stub, src.url, dst.url, online=True)
        _until(stub, wid, lambda m: m.phase == E.SYNCING, what="SYNCING")
        src.execute("ALTER TABLE ev ADD COLUMN extra int; INSERT INTO ev (acct, extra) VALUES (1, 42)")
        m = _until(stub, wid, lambda m: any("DDL" in p for p in m.sync.problems), what="the DDL problem", timeout=120)
        refused = _cli(stack, "cutover", wid)
        assert refused.returncode == 1 and "refused" in refused.stderr, refused.stderr
        m = stub.GetMigration(C.MigrationRef(id=wid), timeout=5)
        assert m.phase == E.SYNCING and m.cutover.startswith("refused")
        # The remedy the status names: the same change on the target; the stream goes on by itself.
        dst.execute("ALTER TABLE ev ADD COLUMN extra int")
        done = _cli(stack, "cutover", wid)
        assert done.returncode == 0, done.stderr
        m = stub.GetMigration(C.MigrationRef(id=wid), timeout=5)
        assert m.phase == E.COMPLETED
    assert dst.scalar("SELECT extra FROM ev WHERE extra IS NOT NULL") == 42
    assert _digests(src.url) == _digests(dst.url)
    assert _leftovers(src.url, dst.url) == []


def test_online_cancel_removes_slot_publication_subscription(new_database15_logical, new_database18, stack_factory):
    src, dst = new_database15_logical("cnl"), new_database18("cnl")
    src.execute(SCHEMA)
    stack = stack_factory().start()
    ch, stub = stack.coordinator_stub()
    with ch:
        wid = create(stub, src.url, dst.url, online=True)
        _until(stub, wid, lambda m: m.phase == E.SYNCING, what="SYNCING")
        assert _leftovers(src.url, dst.url)  # the stream's three objects exist while SYNCING
        stub.Cancel(C.CancelRequest(id=wid, reason="test"), timeout=10)
        m = drive(stub, wid)
    assert m.phase == E.CANCELLED and not m.rollback_pending
    assert _leftovers(src.url, dst.url) == []
    assert dst.scalar("SELECT count(*) FROM pg_tables WHERE tablename IN ('acct', 'ev', 'nopk')") == 0


def test_offline_source_that_moves_on_completes_with_its_drift_named(new_database, new_database18, stack_factory):
    """Offline: writes after the snapshot neither fail the migration nor roll it back; the target is
    proven equal to the snapshot, and the migration names what the source changed since."""
    src, dst = new_database("mov"), new_database18("mov")
    src.execute(SCHEMA.replace("20000) g;\nCREATE TABLE ev", "200000) g;\nCREATE TABLE ev"))
    stack = stack_factory().start()
    ch, stub = stack.coordinator_stub()
    with ch:
        wid = create(stub, src.url, dst.url)
        _until(stub, wid, lambda m: m.phase == E.EXECUTING, what="EXECUTING")
        with Writer(src.url) as writer:
            m = drive(stub, wid)
            writer.stop()
        report = stub.GetReport(C.GetReportRequest(id=wid), timeout=10)
    assert m.phase == E.COMPLETED, m.error
    assert report.verification.equal, report.verification.summary
    assert m.source_moved, "the source's writes after the snapshot are named"
    assert any("ev" in line for line in m.source_moved)
    watched = _cli(stack, "watch", wid)  # the exit code says it plainly too
    assert watched.returncode == 4, watched.stderr
    status = _cli(stack, "status", wid)
    assert "source moved" in status.stdout and "--online" in status.stdout, status.stdout


def test_online_copy_interrupted_starts_again_from_a_new_slot(new_database15_logical, new_database18, stack_factory):
    """kill -9 of the execution agent in the middle of the online copy: the next attempt drops the
    slot the copy read, starts again from a new slot's snapshot, and the rows copied and the stream
    still meet exactly (no write lost, none applied twice)."""
    src, dst = new_database15_logical("cpy"), new_database18("cpy")
    src.execute(SCHEMA.replace("20000) g;\nCREATE TABLE ev", "20000) g;\nCREATE TABLE big (id int PRIMARY KEY, "
                                                            "pad text);\nINSERT INTO big SELECT g, repeat('x', 100) "
                                                            "FROM generate_series(1, 1000000) g;\nCREATE TABLE ev"))
    stack = stack_factory().start()
    ch, stub = stack.coordinator_stub()
    with ch, Writer(src.url) as writer:
        wid = create(stub, src.url, dst.url, online=True)
        deadline = time.monotonic() + 120
        while not any(e.WhichOneof("payload") == "step_started" and e.step_started.step == "data"
                      for e in logged_events(stack, wid)):
            m = stub.GetMigration(C.MigrationRef(id=wid), timeout=5)
            if m.phase == E.AWAITING_APPROVAL and m.actions.approve:
                stub.Approve(C.ApproveRequest(id=wid, comment="test"), timeout=5)
            assert time.monotonic() < deadline, "the copy never started"
            time.sleep(0.05)
        stack.kill9("execution")
        stack.restart("execution")
        m = _until(stub, wid, lambda m: m.phase == E.SYNCING and m.sync.changes_applied > 0, what="SYNCING")
        writer.stop()
        _cutover(stub, wid)
        m = _until(stub, wid, lambda m: m.phase == E.COMPLETED and m.settled, what="COMPLETED", timeout=300)
    events = logged_events(stack, wid)
    assert max(e.execution_attempted.attempt for e in events if e.WhichOneof("payload") == "execution_attempted") >= 2
    assert any(e.WhichOneof("payload") == "log" and "new slot" in e.log.message for e in events)
    assert _digests(src.url) == _digests(dst.url)
    assert src.scalar("SELECT count(*) FROM big") == dst.scalar("SELECT count(*) FROM big") == 1000000
    assert _leftovers(src.url, dst.url) == []


def test_online_slot_lost_while_syncing_fails_and_cleans_up(new_database15_logical, new_database18, stack_factory):
    """A slot that disappears from the source (invalidated, or dropped by someone) cannot carry the
    writes any more: the migration fails naming it, rolls the target back and leaves nothing behind."""
    src, dst = new_database15_logical("lost"), new_database18("lost")
    src.execute(SCHEMA)
    stack = stack_factory().start()
    ch, stub = stack.coordinator_stub()
    with ch:
        wid = create(stub, src.url, dst.url, online=True)
        _until(stub, wid, lambda m: m.phase == E.SYNCING, what="SYNCING")
        dst.execute(f"ALTER SUBSCRIPTION dbmigrate_{wid} DISABLE")
        for _ in range(100):  # the walsender lets go of the slot once the subscription is disabled
            try:
                src.execute(f"SELECT pg_drop_replication_slot('dbmigrate_{wid}')")
                break
            except psycopg.errors.ObjectInUse:
                time.sleep(0.1)
        m = drive(stub, wid)
    assert m.phase == E.FAILED and "slot" in m.error, m.error
    assert _leftovers(src.url, dst.url) == []
    assert dst.scalar("SELECT count(*) FROM pg_tables WHERE tablename IN ('acct', 'ev', 'nopk')") == 0


def test_online_between_two_databases_of_postgresql_18(new_database18, stack_factory):
    """The newest server as the source too (PostgreSQL 18's catalogs, its subscriber asking for
    protocol 4 and parallel streaming), with the partitioned table and the writes of the others."""
    src, dst = new_database18("o18s"), new_database18("o18t")
    src.execute(SCHEMA)
    stack = stack_factory().start()
    ch, stub = stack.coordinator_stub()
    with ch, Writer(src.url) as writer:
        wid = create(stub, src.url, dst.url, online=True)
        _until(stub, wid, lambda m: m.phase == E.SYNCING and m.sync.changes_applied > 0, what="SYNCING")
        writer.stop()
        _cutover(stub, wid)
        m = _until(stub, wid, lambda m: m.phase == E.COMPLETED and m.settled, what="COMPLETED", timeout=300)
    assert m.cutover.startswith("verified")
    assert _digests(src.url) == _digests(dst.url)
    assert _leftovers(src.url, dst.url) == []
