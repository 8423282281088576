"""Migrations between two servers of different major versions: the local PostgreSQL 15 and the session's 18."""
from __future__ import annotations

import psycopg
from psycopg import sql

from dbmigrate.v1 import agents_pb2 as A, common_pb2, coordinator_pb2 as C, events_pb2 as E
from services.discovery.discover import discover
from services.validation.sample import validate
from services.validation.verify import verify
from tests.execution.test_migration import load_awkward
from tests.migrations import create, drive


def rows_as_text(url: str) -> dict[str, list[str]]:
    """Every user table's rows, each as the text of its columns taken in name order, sorted: an
    independent check of the data (not our checksums), by column name, since an inheritance child
    may get its columns in another order."""
    out = {}
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; "
                  "SET IntervalStyle = 'postgres'; SET bytea_output = 'hex'")
        tables = c.execute(
            "SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 2").fetchall()
        for oid, t in tables:
            cols = sorted(r[0] for r in c.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped", (oid,)))
            row = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(sql.SQL("r_.{}").format(sql.Identifier(x))
                                                                     for x in cols)) if cols else sql.SQL("'()'")
            q = sql.SQL("SELECT {} FROM ONLY {} r_").format(row, sql.SQL(t))
            out[t] = sorted(r[0] for r in c.execute(q))
    return out


def test_the_awkward_database_upgrades_from_15_to_18_exactly(stack_factory, new_database, new_database18):
    src, dst = new_database("x15"), new_database18("x18")
    # The 18 server of the tests is built without libxml: its xml type takes no value (a test below).
    load_awkward(src, 'ALTER TABLE "Sales ""Dept"""."Order Items" DROP COLUMN x')
    stack = stack_factory().start()
    ch, stub = stack.coordinator_stub()
    with ch:
        wid = create(stub, src.url, dst.url)
        m = drive(stub, wid)
        assert E.Phase.Name(m.phase) == "COMPLETED", m.error
        report = stub.GetReport(C.GetReportRequest(id=wid), timeout=30)
    v = report.verification
    assert v.equal and not v.objects, v.summary
    assert v.method.startswith("rendered"), v.method
    # Rendered by validation before the load: the final verification created no scratch database after it.
    assert "before the data was loaded" in v.method, v.method
    assert report.validation.rendered.objects > 0
    assert any(n.kind == "extension" and n.difference == "upgraded" for n in v.notes), list(v.notes)
    print(v.summary)
    assert rows_as_text(src.url) == rows_as_text(dst.url)


SCHEMA = """CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10, 2) CHECK (price >= 0));
            CREATE INDEX items_name ON items (name);
            CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 10;"""


def test_the_rendering_taken_before_the_load_stands_only_for_the_schema_it_rendered(new_database, new_database18):
    """Validation renders the source's schema on the 18 server while the target is empty; the final
    verification takes that rendering for the source's schema only while the source still has it
    (and the target matches it): after a change on the source it renders again and names the
    difference, as it always did."""
    src, dst = new_database("rb15"), new_database18("rb18")
    src.execute(SCHEMA + "INSERT INTO items VALUES (1, 'a', 5), (2, 'b', 20)")
    discovery = discover(A.DiscoverRequest(source=src.conn, target=dst.conn))
    validation = validate(A.ValidateRequest(workflow_id="rb", source=src.conn, target=dst.conn,
                                            discovery=discovery))
    assert validation.passed, validation.summary
    rendered = validation.rendered
    assert rendered.source_digest and rendered.rendered_digest and rendered.objects > 0, rendered
    assert rendered.target_version_num // 10000 == 18
    with psycopg.connect(dst.url, autocommit=True) as c:
        assert not c.execute("SELECT datname FROM pg_database WHERE datname LIKE 'dbmigrate_%'").fetchall()

    dst.execute(SCHEMA + "INSERT INTO items VALUES (1, 'a', 5), (2, 'b', 20)")  # as the migration leaves it
    req = A.VerifyRequest(workflow_id="rb", source=src.conn, target=dst.conn, rendered=rendered)
    v = verify(req)
    assert v.equal and "before the data was loaded" in v.method, (v.summary, v.method)

    src.execute("ALTER TABLE items ADD COLUMN note text")  # after the rendering
    v = verify(req)
    assert not v.equal and "before the data was loaded" not in v.method, (v.summary, v.method)
    assert any(d.kind == "column" and "note" in d.name and d.difference == "missing_in_target" for d in v.objects), \
        list(v.objects)

    dst.execute("ALTER TABLE items ADD COLUMN note text")
    v = verify(req)
    assert v.equal and "before the data was loaded" not in v.method, (v.summary, v.method)


def test_a_target_without_libxml_is_refused_before_anything_is_copied(stack_factory, new_database, new_database18):
    src, dst = new_database("xml15"), new_database18("xml18")
    src.execute("CREATE TABLE docs (id int PRIMARY KEY, body xml); INSERT INTO docs VALUES (1, '<a>1</a>')")
    stack = stack_factory().start()
    ch, stub = stack.coordinator_stub()
    with ch:
        wid = create(stub, src.url, dst.url)
        m = wait_for_approval(stub, wid)
        report = stub.GetReport(C.GetReportRequest(id=wid), timeout=30)
    assert m.recommendation == common_pb2.DENY
    assert any("XML_UNSUPPORTED" in b for b in blockers(report)), blockers(report)
    assert report.validation.skipped
    assert dst.scalar("SELECT count(*) FROM pg_class WHERE relname = 'docs'") == 0


def test_a_downgrade_is_denied_with_its_reason_not_failed(stack_factory, new_database, new_database18):
    src, dst = new_database18("down18"), new_database("down15")
    src.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10)")
    stack = stack_factory().start()
    ch, stub = stack.coordinator_stub()
    with ch:
        wid = create(stub, src.url, dst.url)
        m = wait_for_approval(stub, wid)
        report = stub.GetReport(C.GetReportRequest(id=wid), timeout=30)
    assert E.Phase.Name(m.phase) == "AWAITING_APPROVAL" and m.recommendation == common_pb2.DENY, m.error
    older = [f for f in report.discovery.findings if f.code == "TARGET_VERSION_OLDER"]
    assert older and older[0].severity == common_pb2.BLOCKER and "downgrade" in older[0].message
    assert report.validation.skipped and "TARGET_VERSION_OLDER" in report.validation.summary


def wait_for_approval(stub, wid: str) -> C.Migration:
    from tests.coordinator.helpers import wait_phase
    return wait_phase(stub, wid, "AWAITING_APPROVAL", "FAILED", "COMPLETED", timeout=240)


def blockers(report) -> list[str]:
    return [f"{f.code}: {f.message}" for f in report.generation.findings if f.severity == common_pb2.BLOCKER]
