"""Verify against real PostgreSQL: databases that differ in known ways, reported exactly."""
from __future__ import annotations

import json

import pytest

from dbmigrate.v1 import agents_pb2, common_pb2
from services.common.errors import DBMigrateError, InvalidInput
from services.validation.verify import verify

BASE = """
CREATE TABLE public.orders (id int PRIMARY KEY, customer text NOT NULL, amount numeric(10,2) DEFAULT 0,
                            placed timestamptz DEFAULT '2024-01-01 00:00+00');
INSERT INTO public.orders (id, customer, amount)
     SELECT g, 'c' || (g % 37), g * 1.25 FROM generate_series(1, 1000) g;
CREATE INDEX orders_customer_idx ON public.orders (customer);
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON public.orders FOR EACH ROW EXECUTE FUNCTION public.touch();
CREATE SEQUENCE public.order_seq;
SELECT setval('public.order_seq', 42);
CREATE TABLE public.customers (name text PRIMARY KEY, city text);
INSERT INTO public.customers SELECT 'c' || g, 'city ' || g FROM generate_series(0, 36) g;
CREATE VIEW public.big_orders AS SELECT id, amount FROM public.orders WHERE amount > 100;
"""


def request(src, dst, **kw) -> agents_pb2.VerifyRequest:
    options = common_pb2.MigrationOptions(include=kw.pop("include", []), exclude=kw.pop("exclude", []))
    return agents_pb2.VerifyRequest(workflow_id="wf-test", source=src.conn, target=dst.conn, options=options, **kw)


def pair(new_database, script: str):
    """Two equal databases: the script run on the source, the target copied from it."""
    src = new_database("vsrc")
    src.execute(script)
    dst = new_database("vdst", template=src.name)
    return src, dst


def objects(report) -> set[tuple[str, str, str]]:
    return {(o.kind, o.name, o.difference) for o in report.objects}


def table(report, name: str) -> common_pb2.TableDiff:
    return next(t for t in report.tables if t.table == name)


def test_identical_databases_are_equal(new_database):
    src, dst = pair(new_database, BASE)
    report = verify(request(src, dst))
    assert report.equal, report
    assert not report.objects
    assert {t.table for t in report.tables} == {"public.orders", "public.customers"}
    assert all(t.equal and t.source_checksum == t.target_checksum for t in report.tables)
    assert table(report, "public.orders").source_rows == 1000
    assert report.summary.startswith("Databases are equal: 2 tables, 1,037 rows,")
    assert report.seconds > 0


def test_the_database_comment_is_compared(new_database):
    src, dst = new_database("vcsrc"), new_database("vcdst")
    src.execute(f"COMMENT ON DATABASE {src.name} IS 'orders of the shop'")
    report = verify(request(src, dst))
    assert not report.equal
    assert [(o.kind, o.difference) for o in report.objects] == [("database_comment", "missing_in_target")]
    dst.execute(f"COMMENT ON DATABASE {dst.name} IS 'orders of the shop'")
    assert verify(request(src, dst)).equal
    # a comment the target database has and the source not is its operator's: kept, a note
    src.execute(f"COMMENT ON DATABASE {src.name} IS NULL")
    report = verify(request(src, dst))
    assert report.equal and [(n.kind, n.difference) for n in report.notes] == [("database_comment", "target_only")]


def test_definitions_are_summed_whatever_order_the_server_returns_them_in():
    """Both sides' objects are summed, not kept, on one major version: equal sets of objects give
    equal sums in any order; one changed definition, one object more or one renamed does not."""
    from services.validation import objects as ob

    rows = [("table", "public", None, f"t{i}", f"def {i}") for i in range(50)] + \
           [("column", "public", f"t{i}", "id", "integer NOT NULL") for i in range(50)]

    class Side:
        def __init__(self, rows):
            self._rows = rows

        def each(self, query):
            return iter(self._rows)

    opts = common_pb2.MigrationOptions()
    summed = ob.sum_definitions(Side(rows), [], [], opts)
    assert summed == ob.sum_definitions(Side(list(reversed(rows))), [], [], opts) and summed.rows == 100
    assert summed.rows == len(ob.read_definitions(Side(rows), [], [], opts))
    changed = rows[:-1] + [("column", "public", "t49", "id", "bigint NOT NULL")]
    renamed = rows[:-1] + [("column", "public", "t49", "id2", "integer NOT NULL")]
    for other in (changed, renamed, rows + [("index", "public", "t0", "i", "CREATE INDEX i")]):
        assert ob.sum_definitions(Side(other), [], [], opts) != summed
    assert ob.sum_definitions(Side(rows), ["public.t1"], [], opts).rows == \
        len(ob.read_definitions(Side(rows), ["public.t1"], [], opts)) == 51  # the same filters as the map


def test_known_differences_are_reported_exactly(new_database):
    src, dst = pair(new_database, BASE)
    dst.execute("""
        DROP TRIGGER orders_touch ON public.orders;
        DROP INDEX public.orders_customer_idx;
        UPDATE public.orders SET amount = amount + 1 WHERE id = 500;
        DELETE FROM public.orders WHERE id = 10;
        INSERT INTO public.orders (id, customer, amount) VALUES (5000, 'new', 1);
        SELECT setval('public.order_seq', 40);
    """)
    report = verify(request(src, dst))
    assert not report.equal
    assert objects(report) == {
        ("index", "public.orders.orders_customer_idx", "missing_in_target"),
        ("trigger", "public.orders.orders_touch", "missing_in_target"),
        ("sequence", "public.order_seq", "changed"),
    }
    seq = next(o for o in report.objects if o.kind == "sequence")
    assert "42" in seq.detail and "40" in seq.detail
    assert table(report, "public.customers").equal
    orders = table(report, "public.orders")
    assert not orders.equal
    assert (orders.missing_total, orders.extra_total, orders.changed_total) == (1, 1, 1)
    assert (orders.source_rows, orders.target_rows) == (1000, 1000)
    rows = {(r.kind, r.key) for r in orders.rows}
    assert rows == {("missing", '{"id": 10}'), ("extra", '{"id": 5000}'), ("changed", '{"id": 500}')}
    changed = next(r for r in orders.rows if r.kind == "changed")
    assert "amount" in changed.detail and "625.00" in changed.detail and "626.00" in changed.detail
    assert report.summary.startswith("Differences: 1 table differs (public.orders: 1 missing, 1 extra, 1 changed)")
    assert "1 index missing in target" in report.summary and "1 trigger missing in target" in report.summary


def test_awkward_names_and_composite_key(new_database):
    script = """
        CREATE SCHEMA "Odd Schema";
        CREATE TABLE "Odd Schema"."Weird ""Name"" T" ("Key Col" int, "Part" text, "Val ue" text,
                                                    PRIMARY KEY ("Key Col", "Part"));
        INSERT INTO "Odd Schema"."Weird ""Name"" T"
             SELECT g / 3, 'p''' || (g % 3), 'v' || g FROM generate_series(0, 8999) g;
        CREATE INDEX "Mixed Idx" ON "Odd Schema"."Weird ""Name"" T" ("Val ue");
    """
    src, dst = pair(new_database, script)
    dst.execute("""
        UPDATE "Odd Schema"."Weird ""Name"" T" SET "Val ue" = 'changed' WHERE "Key Col" = 1234 AND "Part" = 'p''1';
        DELETE FROM "Odd Schema"."Weird ""Name"" T" WHERE "Key Col" = 7 AND "Part" = 'p''0';
        INSERT INTO "Odd Schema"."Weird ""Name"" T" VALUES (99999, 'x y', 'z');
    """)
    report = verify(request(src, dst))
    assert not report.objects
    (t,) = report.tables
    assert t.table == '"Odd Schema"."Weird ""Name"" T"'
    assert (t.missing_total, t.extra_total, t.changed_total) == (1, 1, 1)
    keys = {(r.kind, json.dumps(json.loads(r.key), sort_keys=True)) for r in t.rows}
    assert keys == {
        ("changed", json.dumps({"Key Col": 1234, "Part": "p'1"}, sort_keys=True)),
        ("missing", json.dumps({"Key Col": 7, "Part": "p'0"}, sort_keys=True)),
        ("extra", json.dumps({"Key Col": 99999, "Part": "x y"}, sort_keys=True)),
    }
    assert "Val ue" in next(r.detail for r in t.rows if r.kind == "changed")
    # exclude the table: nothing left to differ
    report = verify(request(src, dst, exclude=["Odd Schema.*"]))
    assert report.equal and not report.tables


def test_text_key_large_table_is_narrowed(new_database):
    script = """
        CREATE TABLE public.docs (code text PRIMARY KEY, body text);
        INSERT INTO public.docs SELECT 'doc-' || lpad(g::text, 6, '0'), md5(g::text) FROM generate_series(1, 30000) g;
    """
    src, dst = pair(new_database, script)
    dst.execute("""
        UPDATE public.docs SET body = 'x' WHERE code IN ('doc-000001', 'doc-015000', 'doc-030000');
        DELETE FROM public.docs WHERE code = 'doc-020000';
    """)
    t = table(verify(request(src, dst)), "public.docs")
    assert (t.missing_total, t.extra_total, t.changed_total) == (1, 0, 3)
    assert {(r.kind, r.key) for r in t.rows} == {
        ("changed", '{"code": "doc-000001"}'), ("changed", '{"code": "doc-015000"}'),
        ("changed", '{"code": "doc-030000"}'), ("missing", '{"code": "doc-020000"}')}


def test_table_without_primary_key_duplicate_removed(new_database):
    script = """
        CREATE TABLE public.events (msg text, n int);
        INSERT INTO public.events VALUES ('dup', 1), ('dup', 1), ('dup', 1), ('other', 2);
        CREATE TABLE public.big_log (msg text, n int);
        INSERT INTO public.big_log SELECT 'm' || (g % 5000), g % 5000 FROM generate_series(1, 20000) g;
    """
    src, dst = pair(new_database, script)
    dst.execute("""
        DELETE FROM public.events WHERE ctid = (SELECT min(ctid) FROM public.events WHERE msg = 'dup');
        DELETE FROM public.big_log WHERE ctid = (SELECT min(ctid) FROM public.big_log WHERE msg = 'm42');
        INSERT INTO public.big_log VALUES ('new', -1);
    """)
    report = verify(request(src, dst))
    assert not report.objects
    ev = table(report, "public.events")
    assert (ev.source_rows, ev.target_rows) == (4, 3)
    assert (ev.missing_total, ev.extra_total, ev.changed_total) == (1, 0, 0)
    assert "no primary key: multiset comparison" in ev.note
    (row,) = ev.rows
    assert row.kind == "missing" and json.loads(row.key) == {"msg": "dup", "n": 1}
    assert "1 of 3" in row.detail
    big = table(report, "public.big_log")
    assert (big.missing_total, big.extra_total) == (1, 1)
    assert {(r.kind, r.key) for r in big.rows} == {("missing", '{"msg":"m42","n":42}'),
                                                   ("extra", '{"msg":"new","n":-1}')}


def test_200k_rows_ten_changed_found_exactly(new_database):
    script = """
        CREATE TABLE public.items (id bigint PRIMARY KEY, name text, qty int, price float8);
        INSERT INTO public.items SELECT g, 'item ' || g, g % 100, g / 7.0 FROM generate_series(1, 200000) g;
    """
    src, dst = pair(new_database, script)
    changed = [3, 17, 4_096, 50_000, 77_777, 100_001, 123_456, 150_000, 199_999, 200_000]
    dst.execute("UPDATE public.items SET qty = qty + 1 WHERE id = ANY(%s)", (changed,))
    report = verify(request(src, dst))
    t = table(report, "public.items")
    assert (t.missing_total, t.extra_total, t.changed_total) == (0, 0, 10)
    assert sorted(json.loads(r.key)["id"] for r in t.rows) == changed
    assert all(r.kind == "changed" and r.detail.startswith("changed columns: qty") for r in t.rows)
    # the cap limits the list, not the totals
    t = table(verify(request(src, dst, max_rows_reported=3)), "public.items")
    assert len(t.rows) == 3 and t.changed_total == 10


def test_empty_target_table_counts_without_listing_everything(new_database):
    src, dst = pair(new_database, BASE)
    dst.execute("DELETE FROM public.orders")
    t = table(verify(request(src, dst, max_rows_reported=5)), "public.orders")
    assert (t.missing_total, t.extra_total, t.changed_total) == (1000, 0, 0)
    assert [r.key for r in t.rows] == [f'{{"id": {i}}}' for i in range(1, 6)]


def test_views_functions_large_objects_and_missing_tables(new_database):
    src, dst = pair(new_database, BASE + "SELECT lo_from_bytea(424242, 'hello');")
    dst.execute("""
        CREATE OR REPLACE VIEW public.big_orders AS SELECT id, amount FROM public.orders WHERE amount > 200;
        CREATE OR REPLACE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$;
        SELECT lo_unlink(424242);
        DROP TABLE public.customers;
        CREATE TABLE public.extra_t (id int);
    """)
    report = verify(request(src, dst))
    found = objects(report)
    assert {("view", "public.big_orders", "changed"), ("function", "public.touch()", "changed"),
            ("large_object", "424242", "missing_in_target"), ("table", "public.customers", "missing_in_target"),
            ("table", "public.extra_t", "extra_in_target")} <= found
    assert {k for k, _, _ in found} <= {"view", "function", "large_object", "table", "column", "constraint", "index"}
    assert {t.table for t in report.tables} == {"public.orders"}


def test_connection_failure_is_a_clear_error(new_database):
    src = new_database("vsrc")
    bad = common_pb2.Connection()
    bad.CopyFrom(src.conn)
    bad.dbname = "dbm_no_such_database"
    with pytest.raises(DBMigrateError) as err:
        verify(agents_pb2.VerifyRequest(source=src.conn, target=bad))
    assert "target database" in str(err.value) and "does not exist" in str(err.value)
    with pytest.raises(InvalidInput):
        verify(agents_pb2.VerifyRequest(source=src.conn))


def test_sparse_and_extreme_integer_keys(new_database):
    script = """
        CREATE TABLE public.wide (id bigint PRIMARY KEY, v text);
        INSERT INTO public.wide SELECT g::bigint * 1000003, 'v' || g FROM generate_series(-3000, 3000) g;
        INSERT INTO public.wide VALUES (-9223372036854775808, 'min'), (9223372036854775807, 'max');
        CREATE TABLE public.only_target (id int PRIMARY KEY);
    """
    src, dst = pair(new_database, script)
    dst.execute("""
        UPDATE public.wide SET v = 'x' WHERE id IN (-9223372036854775808, 0, 2000 * 1000003::bigint);
        DELETE FROM public.wide WHERE id = 9223372036854775807;
        INSERT INTO public.only_target SELECT generate_series(1, 3000);
    """)
    report = verify(request(src, dst))
    wide = table(report, "public.wide")
    assert (wide.missing_total, wide.extra_total, wide.changed_total) == (1, 0, 3)
    assert {(r.kind, json.loads(r.key)["id"]) for r in wide.rows} == {
        ("changed", -9223372036854775808), ("changed", 0), ("changed", 2000 * 1000003),
        ("missing", 9223372036854775807)}
    only = table(report, "public.only_target")
    assert (only.source_rows, only.target_rows, only.extra_total, len(only.rows)) == (0, 3000, 3000, 100)


def test_a_proof_of_the_migration_stands_for_a_table_nothing_wrote_to_and_the_others_are_read(new_database):
    """The final verification of a migration takes its execution's proof of a table nothing has
    written to since, without reading that table; a table written to since, or without a proof, is
    read on both sides and its difference named."""
    from services.common.catalog import table_writes
    src, dst = pair(new_database, BASE)
    with dst.connect(autocommit=True) as c:
        writes = table_writes(c)
    proven = common_pb2.ExecutionReport()
    for name in ("public.orders", "public.customers"):
        proven.tables.add(table=name, verified=True, source_rows=1, target_rows=1,
                          source_checksum=f"proof of {name}", target_checksum=f"proof of {name}")
        i, u, d = writes[name]
        proven.target_writes.add(table=name, inserted=i, updated=u, deleted=d)
    report = verify(request(src, dst, proven=proven))
    assert report.equal, report.summary
    assert all(t.source_checksum.startswith("proof of") and "proven by the migration" in t.note
               for t in report.tables), list(report.tables)

    with dst.connect(autocommit=True) as c:  # written to after its proof: read again, and found changed
        c.execute("UPDATE public.customers SET city = 'elsewhere' WHERE name = 'c7'")
        c.execute("SELECT pg_stat_force_next_flush()")
    report = verify(request(src, dst, proven=proven))
    assert not report.equal
    assert "proven by the migration" in table(report, "public.orders").note
    customers = table(report, "public.customers")
    assert not customers.equal and not customers.note.startswith("proven") and customers.source_rows == 37
