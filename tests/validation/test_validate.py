"""Validate: the sample test migration into a scratch database on the target (real PostgreSQL)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from coordinator.state import agents_discovery
from dbmigrate.v1 import agents_pb2, common_pb2
from services.validation.sample import validate
from services.validation.scratch import scratch_name

FIXTURE = Path(__file__).parents[1] / "fixtures" / "awkward.sql"
RELATIONS = "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " \
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2"


def load(db, path: Path) -> None:
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.url, "-f", str(path)], check=True,
                   capture_output=True)


def scratch_exists(db, wid: str) -> bool:
    return bool(db.scalar("SELECT count(*) FROM pg_database WHERE datname = %s", (scratch_name(wid),)))


def request(src, dst, wid: str, **options) -> agents_pb2.ValidateRequest:
    return agents_pb2.ValidateRequest(workflow_id=wid, source=src.conn, target=dst.conn,
                                      options=common_pb2.MigrationOptions(**options))


def test_every_table_of_an_awkward_database_is_sampled_exactly_and_the_target_is_untouched(new_database):
    src, dst = new_database("vsrc"), new_database("vdst")
    load(src, FIXTURE)
    dst.execute("CREATE TABLE keep_me (id int PRIMARY KEY)")
    dst.execute("INSERT INTO keep_me VALUES (1), (2)")
    with dst.connect() as c:
        before = c.execute(RELATIONS).fetchall()
    report = validate(request(src, dst, "wf-val-awkward", sample_rows=150))
    assert report.passed, report.summary
    with src.connect() as c:
        tables = c.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')").fetchone()[0]
    assert len(report.tables) == tables and all(t.passed for t in report.tables)
    by_name = {t.table: t for t in report.tables}
    assert by_name['"Sales ""Dept"""."Order Items"'].copy_format == "text"  # a type without binary I/O
    assert any(t.copy_format == "binary" for t in report.tables)
    assert report.rows_per_second > 0 and report.bytes_per_second > 0
    assert "exact" in report.summary and "dropped" in report.scratch_database
    with dst.connect() as c:
        assert c.execute(RELATIONS).fetchall() == before
    assert not scratch_exists(dst, "wf-val-awkward")


def test_a_large_table_is_sampled_not_copied_whole(new_database):
    src, dst = new_database("vsrc"), new_database("vdst")
    src.execute("CREATE TABLE big (id bigint PRIMARY KEY, v text)")
    src.execute("INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 200000) g")
    src.execute("ANALYZE big")
    report = validate(request(src, dst, "wf-val-big", sample_rows=5000))
    (t,) = report.tables
    assert t.passed and 2000 <= t.rows_sampled <= 10000 and "ctid range" in t.reason


def test_a_copy_is_proven_by_its_stream_and_a_changed_or_reordered_copy_is_judged_by_its_rows(new_database,
                                                                                              monkeypatch):
    """A sample's copy is proven by the digest of its COPY stream read back (with count and checksum);
    when the stream read back differs, the rows decide: equal rows in another order pass, a changed
    row fails."""
    from services.validation import sample
    src, dst = new_database("vsrc"), new_database("vdst")
    src.execute("CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, md5(g::text) "
                "FROM generate_series(1, 300) g; CREATE TABLE b (id int PRIMARY KEY, v text); "
                "INSERT INTO b SELECT g, 'x' || g FROM generate_series(1, 50) g")
    digests = []
    real = sample.fingerprint_query
    monkeypatch.setattr(sample, "fingerprint_query", lambda k, t, where, rows_digest=True: (
        digests.append((t.name, rows_digest)), real(k, t, where, rows_digest))[1])
    report = validate(request(src, dst, "wf-val-stream"))
    assert report.passed and all(t.passed for t in report.tables), report.summary
    assert {d for d in digests if d[1]} == set(), digests  # both proven by their streams

    copy = sample.Sampler._copy

    def reordered(self, table, *args):  # the copy holds the same rows, in another order
        out = copy(self, table, *args)
        if table.name == "a":
            self.conns.target().execute("UPDATE a SET v = v WHERE id % 2 = 0")  # moved to the end
        return out
    digests.clear()
    monkeypatch.setattr(sample.Sampler, "_copy", reordered)
    report = validate(request(src, dst, "wf-val-stream"))
    assert report.passed, report.summary
    assert ("a", True) in digests and ("b", True) not in digests, digests

    def changed(self, table, *args):
        out = copy(self, table, *args)
        if table.name == "b":
            self.conns.target().execute("UPDATE b SET v = 'y' WHERE id = 7")
        return out
    monkeypatch.setattr(sample.Sampler, "_copy", changed)
    report = validate(request(src, dst, "wf-val-stream"))
    assert not report.passed
    (bad,) = [t for t in report.tables if not t.passed]
    assert bad.table == "public.b" and "2 sampled rows differ" in bad.reason, bad.reason  # the old row, the new
    assert any(f.code == "SAMPLE_MISMATCH" and f.object == "public.b" for f in report.findings)


def test_a_killed_validation_leaves_no_scratch_database_after_it_is_resumed(new_database):
    src, dst = new_database("vsrc"), new_database("vdst")
    src.execute("CREATE TABLE big (id bigint PRIMARY KEY, v text, w text)")
    src.execute("INSERT INTO big SELECT g, md5(g::text), repeat('x', 200) FROM generate_series(1, 600000) g")
    wid = "wf-val-killed"
    code = ("import sys; from dbmigrate.v1 import agents_pb2, common_pb2; from services.common.pg import parse_url; "
            "from services.validation.sample import validate; "
            f"validate(agents_pb2.ValidateRequest(workflow_id={wid!r}, source=parse_url({src.url!r}), "
            f"target=parse_url({dst.url!r}), options=common_pb2.MigrationOptions(sample_rows=10_000_000)))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[2], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not scratch_exists(dst, wid):
            assert proc.poll() is None and time.monotonic() < deadline, "the validation never created its scratch area"
            time.sleep(0.05)
        time.sleep(0.5)  # mid-way through the copy
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert scratch_exists(dst, wid)  # the kill left it behind ...
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    report = validate(request(src, dst, wid, sample_rows=1000))  # ... and the resumed run removes it
    assert report.passed
    assert not scratch_exists(dst, wid)


def test_a_schema_the_target_cannot_create_fails_validation_with_a_blocker(new_database):
    src, dst = new_database("vsrc"), new_database("vdst")
    # A table in a tablespace the target server does not have: pre-data cannot be applied there.
    src.execute("CREATE TABLE t (id int)")
    script = ("CREATE TABLE t (id int);\nSELECT no_such_function_on_the_target();\n")
    from services.validation import sample
    original = sample.dump_section
    try:
        sample.dump_section = lambda *a, **k: script  # the source side only; the target is real
        report = validate(request(src, dst, "wf-val-schema"))
    finally:
        sample.dump_section = original
    assert not report.passed
    (f,) = report.findings
    assert f.code == "SCHEMA_APPLY_FAILED" and f.severity == common_pb2.BLOCKER
    assert "no_such_function_on_the_target" in f.message
    assert not scratch_exists(dst, "wf-val-schema")


def test_every_object_the_newer_target_refuses_is_named_in_one_run(new_database, new_database18):
    """The sample's schema stops at the first object the target refuses; the findings name them all
    (here C functions bound to PostgreSQL 15's libraries, and a view that reads one), so one run says
    what to fix instead of one object a run."""
    src, dst = new_database("vsrc"), new_database18("vdst")
    lib = "/usr/lib/postgresql/15/lib"
    src.execute(f"""
        CREATE TABLE t (id int PRIMARY KEY, at timestamptz);
        CREATE FUNCTION old_autoinc() RETURNS trigger AS '{lib}/autoinc.so', 'autoinc' LANGUAGE C;
        CREATE FUNCTION old_moddatetime() RETURNS trigger AS '{lib}/moddatetime.so', 'moddatetime' LANGUAGE C;
        CREATE FUNCTION old_refint() RETURNS trigger AS '{lib}/refint.so', 'check_primary_key' LANGUAGE C;
        CREATE VIEW v AS SELECT id FROM t;""")
    report = validate(request(src, dst, "wf-val-refused"))
    assert not report.passed
    refused = [f for f in report.findings if f.code == "SCHEMA_APPLY_FAILED"]
    assert [f.object for f in refused] == ["FUNCTION old_autoinc()", "FUNCTION old_moddatetime()",
                                           "FUNCTION old_refint()"], [f.message for f in report.findings]
    assert all(f.severity == common_pb2.BLOCKER and "incompatible library" in f.message and "$libdir" in f.remedy
               for f in refused)
    assert "refuses 3 objects" in report.summary, report.summary
    assert not scratch_exists(dst, "wf-val-refused")


def test_a_wrong_password_is_a_clear_error(new_database):
    import pytest
    from services.common.errors import DBMigrateError
    src, dst = new_database("vsrc"), new_database("vdst")
    bad = common_pb2.Connection()
    bad.CopyFrom(src.conn)
    bad.dbname = "dbm_no_such_db_for_validation"
    with pytest.raises(DBMigrateError) as err:
        validate(agents_pb2.ValidateRequest(workflow_id="wf-val-bad", source=bad, target=dst.conn))
    assert "dbm_no_such_db_for_validation" in str(err.value) and "does not exist" in str(err.value)
    assert not scratch_exists(dst, "wf-val-bad")


def test_many_tables_are_sampled_by_their_column_types_and_the_schema_scales_with_the_sample(new_database,
                                                                                            monkeypatch):
    from services.validation import sample
    monkeypatch.setattr(sample, "MAX_SAMPLED_TABLES", 4)
    src, dst = new_database("vsrc"), new_database("vdst")
    src.execute("""
        DO $$ BEGIN FOR k IN 1..12 LOOP
          EXECUTE format('CREATE TABLE t_%s (id int PRIMARY KEY, v text)', k);
          EXECUTE format('INSERT INTO t_%s SELECT g, md5(g::text) FROM generate_series(1, %s) g', k, k * 10);
        END LOOP; END $$;
        CREATE TABLE other_shape (id bigint PRIMARY KEY, at timestamptz, n numeric);
        INSERT INTO other_shape SELECT g, '2024-01-01'::timestamptz + g * interval '1 h', g / 3.0 FROM generate_series(1, 50) g;
        -- objects that depend on tables that are not sampled: their tables' schema must still be made
        CREATE VIEW t_1_view AS SELECT * FROM t_1;
        CREATE FUNCTION first_of_t2() RETURNS SETOF t_2 LANGUAGE sql AS 'SELECT * FROM t_2 LIMIT 1';
        CREATE TABLE refers (id int PRIMARY KEY, t3 int REFERENCES t_3 (id));
        ANALYZE;""")
    report = validate(request(src, dst, "wf-val-many"))
    assert report.passed, report.summary
    assert len(report.tables) == 14 and all(t.passed for t in report.tables)
    sampled = [t for t in report.tables if not t.reason.startswith("not sampled")]
    assert len(sampled) == 4 and {"other_shape", "refers"} <= {t.table.split(".")[1] for t in sampled}
    assert "standing for all 14" in report.summary
    assert not scratch_exists(dst, "wf-val-many")


def test_writes_between_discovery_and_the_end_of_the_sample_are_named(new_database):
    from services.discovery.discover import discover
    src, dst = new_database("vsrc"), new_database("vdst")
    src.execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 10) g")
    time.sleep(1.2)  # the inserts' counters are published
    found = discover(agents_pb2.DiscoverRequest(source=src.conn, target=dst.conn, options=common_pb2.MigrationOptions()))
    assert not [f for f in found.findings if f.code == "WRITE_TRAFFIC"]
    quiet = validate(agents_pb2.ValidateRequest(workflow_id="wf-val-quiet", source=src.conn, target=dst.conn,
                                                discovery=found))
    assert not [f for f in quiet.findings if f.code == "WRITE_TRAFFIC"]
    src.execute("UPDATE t SET v = 'y' WHERE id <= 5")  # an application writes meanwhile
    brief = common_pb2.DiscoveryReport.FromString(agents_discovery(found))  # the report as the coordinator sends it
    report = validate(agents_pb2.ValidateRequest(workflow_id="wf-val-traffic", source=src.conn, target=dst.conn,
                                                 discovery=brief))
    traffic = [f for f in report.findings if f.code == "WRITE_TRAFFIC"]
    assert traffic and "5 rows changed" in traffic[0].message and traffic[0].severity == common_pb2.MEDIUM
