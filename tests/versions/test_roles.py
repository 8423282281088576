"""Roles, owners and privileges: kept by default, named when the target lacks the roles, made with
--create-roles, left out only by an explicit --no-owner / --no-privileges; verification compares them."""
from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbmigrate.v1 import common_pb2, coordinator_pb2 as C, events_pb2 as E
from tests.migrations import create, drive
from tests.versions.test_cross_version import blockers, rows_as_text, wait_for_approval

FIXTURE = (Path(__file__).parents[1] / "fixtures" / "roles.sql").read_text()

# Owners and privileges of every kind, as the catalogs hold them; roles by name, PUBLIC as "".
PRIVILEGES = {
    "relations": """SELECT c.oid::regclass::text, pg_get_userbyid(c.relowner), c.relacl::text[] FROM pg_class c
                     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'app' ORDER BY 1""",
    "columns": """SELECT a.attrelid::regclass::text, a.attname, a.attacl::text[] FROM pg_attribute a
                   JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE a.attacl IS NOT NULL AND n.nspname = 'app' ORDER BY 1, 2""",
    "schemas": "SELECT nspname, pg_get_userbyid(nspowner), nspacl::text[] FROM pg_namespace WHERE nspname = 'app'",
    "functions": """SELECT p.oid::regprocedure::text, pg_get_userbyid(p.proowner), p.proacl::text[] FROM pg_proc p
                     JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'app' ORDER BY 1""",
    "types": """SELECT t.oid::regtype::text, pg_get_userbyid(t.typowner), t.typacl::text[] FROM pg_type t
                 JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'app' AND t.typtype = 'e'""",
    "large_objects": "SELECT pg_get_userbyid(lomowner), lomacl::text[] FROM pg_largeobject_metadata ORDER BY oid",
    "default_privileges": """SELECT pg_get_userbyid(defaclrole), defaclnamespace::regnamespace::text, defaclobjtype,
                               defaclacl::text[] FROM pg_default_acl ORDER BY 1, 2, 3""",
    "policies": "SELECT tablename, policyname, roles::text[] FROM pg_policies ORDER BY 1, 2",
    "database": """SELECT a.grantee::regrole::text, a.privilege_type FROM pg_database d,
                    aclexplode(d.datacl) a WHERE d.datname = current_database() AND a.grantee <> d.datdba
                    AND a.grantee <> 0 ORDER BY 1, 2""",
}


def privileges(url: str, newer_server: bool = False) -> dict:
    with psycopg.connect(url, autocommit=True) as c:
        out = {k: c.execute(q).fetchall() for k, q in PRIVILEGES.items()}
    if newer_server:  # GRANT ALL on 17+ includes MAINTAIN (m), which 15 does not have
        out = {k: [tuple([x.replace("m/", "/").replace("m*/", "*/") for x in v] if isinstance(v, list) else v
                         for v in row) for row in rows] for k, rows in out.items()}
    return out


@pytest.fixture
def roles_source(new_database, pg_admin_url, pg18):
    """A source database on the local 15 with the roles of tests/fixtures/roles.sql; the roles are
    dropped from both servers afterwards."""
    prefix = f"dbmr{uuid.uuid4().hex[:6]}"
    src = new_database("rsrc")
    src.execute(FIXTURE.replace("{p}", prefix))
    src.execute(sql.SQL("GRANT SELECT ON app.names TO {}").format(sql.Identifier(f"{prefix}_login")))
    dbs: list[str] = [src.url]
    try:
        yield src, prefix, dbs
    finally:
        roles = [f"{prefix}_{r}" for r in ("login", "writer", "reader", "owner")]
        for url in dbs:
            _drop_owned(url, roles)
        for admin in (pg_admin_url, pg18.url):
            with psycopg.connect(admin, autocommit=True) as c:
                for r in roles:
                    c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(r)))


def _drop_owned(url: str, roles: list[str]) -> None:
    try:
        with psycopg.connect(url, autocommit=True) as c:
            have = [r for r in roles if c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (r,)).fetchone()]
            if have:
                c.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.SQL(", ").join(sql.Identifier(r) for r in have)))
    except psycopg.OperationalError:
        pass  # the database is gone already


def migrate(stack, src_url: str, dst_url: str, **options) -> tuple[C.Migration, C.Report]:
    ch, stub = stack.coordinator_stub()
    with ch:
        wid = create(stub, src_url, dst_url, **options)
        m = drive(stub, wid)
        return m, stub.GetReport(C.GetReportRequest(id=wid), timeout=30)


def test_owners_and_privileges_arrive_on_another_database_of_the_same_server(stack_factory, roles_source,
                                                                             new_database):
    src, prefix, dbs = roles_source
    dst = new_database("rdst")
    dbs.append(dst.url)
    m, report = migrate(stack_factory().start(), src.url, dst.url)
    assert E.Phase.Name(m.phase) == "COMPLETED", m.error
    assert report.verification.equal and report.verification.method == "direct", report.verification.summary
    assert privileges(dst.url) == privileges(src.url)
    assert dst.scalar("SELECT has_function_privilege('public', 'app.balance(int)', 'EXECUTE')") is False
    assert rows_as_text(src.url) == rows_as_text(dst.url)


def test_to_another_server_without_the_roles_is_denied_naming_each_one(stack_factory, roles_source, new_database18):
    src, prefix, dbs = roles_source
    dst = new_database18("rnone")
    ch, stub = stack_factory().start().coordinator_stub()
    with ch:
        wid = create(stub, src.url, dst.url)
        m = wait_for_approval(stub, wid)
        report = stub.GetReport(C.GetReportRequest(id=wid), timeout=30)
    assert m.recommendation == common_pb2.DENY
    missing = sorted(f.object for f in report.discovery.findings if f.code == "ROLE_MISSING")
    assert missing == sorted(f"role {prefix}_{r}" for r in ("login", "owner", "reader", "writer")), missing
    assert all(f.severity == common_pb2.BLOCKER and "--create-roles" in f.remedy
               for f in report.discovery.findings if f.code == "ROLE_MISSING")
    assert dst.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'app'") == 0


def test_create_roles_to_18_keeps_owners_and_privileges_and_verify_finds_what_is_changed_after(
        stack_factory, roles_source, new_database18, pg18):
    src, prefix, dbs = roles_source
    dst = new_database18("rmake")
    dbs.append(dst.url)
    stack = stack_factory().start()
    m, report = migrate(stack, src.url, dst.url, create_roles=True)
    assert E.Phase.Name(m.phase) == "COMPLETED", m.error
    v = report.verification
    assert v.equal and v.method.startswith("rendered"), v.summary
    assert privileges(dst.url, newer_server=True) == privileges(src.url)
    assert rows_as_text(src.url) == rows_as_text(dst.url)
    found = [f for f in report.discovery.findings if f.code == "ROLES_TO_CREATE"]
    assert found and f"{prefix}_owner" in found[0].message and "password hash" in found[0].message
    # The roles, their attributes, memberships and the login role's password hash.
    with psycopg.connect(pg18.url, autocommit=True) as c18, psycopg.connect(src.url, autocommit=True) as c15:
        q = ("SELECT rolname, rolcanlogin, rolcreatedb, rolconnlimit, rolpassword FROM pg_authid "
             "WHERE rolname LIKE %s ORDER BY 1")
        assert c18.execute(q, (prefix + "%",)).fetchall() == c15.execute(q, (prefix + "%",)).fetchall()
        q = ("SELECT r.rolname, m.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
             "JOIN pg_roles m ON m.oid = a.member WHERE r.rolname LIKE %s ORDER BY 1, 2")
        assert c18.execute(q, (prefix + "%",)).fetchall() == [(f"{prefix}_reader", f"{prefix}_login")]

    # Differences planted on the 18 side are each found, down to the row and the privilege.
    dst.execute(f"""
        DELETE FROM app.accounts WHERE id = 42;
        DROP INDEX app.accounts_name;
        REVOKE SELECT ON app.accounts FROM {prefix}_reader;
        GRANT EXECUTE ON FUNCTION app.balance(int) TO PUBLIC;
        CREATE OR REPLACE VIEW app.names AS SELECT id, name FROM app.accounts WHERE id < 50;
        ALTER TYPE app.mood OWNER TO postgres;
        DROP TRIGGER accounts_audit ON app.accounts;
        ALTER TABLE app.accounts DROP CONSTRAINT accounts_name_check;
    """)
    ch, stub = stack.coordinator_stub()
    with ch:
        diff = stub.VerifyDatabases(C.VerifyDatabasesRequest(source_url=src.url, target_url=dst.url), timeout=300)
        assert not diff.equal
        found = {(o.kind, o.name, o.difference) for o in diff.objects}
        assert {("index", "app.accounts.accounts_name", "missing_in_target"),
                ("privileges", "table app.accounts", "changed"),
                ("privileges", "function app.balance(integer)", "changed"),
                ("view", "app.names", "changed"),
                ("owner", "type app.mood", "changed"),
                ("trigger", "app.accounts.accounts_audit", "missing_in_target"),
                ("constraint", "app.accounts.accounts_name_check", "missing_in_target")} <= found, found
        widened = [o for o in diff.objects if o.name == "function app.balance(integer)"][0]
        assert "widened: PUBLIC:EXECUTE" in widened.detail
        lost = [o for o in diff.objects if o.name == "table app.accounts" and o.kind == "privileges"][0]
        assert f"lost: {prefix}_reader:SELECT" in lost.detail
        table = [t for t in diff.tables if t.table == "app.accounts"][0]
        assert not table.equal and table.missing_total == 1 and '"id": 42' in table.rows[0].key

        # Rollback drops what the migration made, the roles it created included.
        stub.Rollback(C.RollbackMigrationRequest(id=m.id, reason="test"), timeout=30)
        from tests.coordinator.helpers import wait_phase
        assert E.Phase.Name(wait_phase(stub, m.id, "ROLLED_BACK", "FAILED", timeout=120).phase) == "ROLLED_BACK"
    with psycopg.connect(pg18.url, autocommit=True) as c18:
        assert c18.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE %s", (prefix + "%",)).fetchone()[0] == 0
    assert dst.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'app'") == 0


def test_no_owner_and_no_privileges_are_explicit_choices_recorded_as_findings(stack_factory, roles_source,
                                                                              new_database18):
    src, prefix, dbs = roles_source
    stack = stack_factory().start()
    # A policy names its role whatever the options: still refused, that role named alone.
    dst = new_database18("rpol")
    ch, stub = stack.coordinator_stub()
    with ch:
        wid = create(stub, src.url, dst.url, no_owner=True, no_privileges=True)
        m = wait_for_approval(stub, wid)
        report = stub.GetReport(C.GetReportRequest(id=wid), timeout=30)
    assert [f.object for f in report.discovery.findings if f.code == "ROLE_MISSING"] == [f"role {prefix}_reader"]
    assert "policies" in blockers(report)[0]

    src.execute("DROP POLICY readers_see_low ON app.accounts")
    dst = new_database18("rnoown")
    dbs.append(dst.url)
    m, report = migrate(stack, src.url, dst.url, no_owner=True, no_privileges=True)
    assert E.Phase.Name(m.phase) == "COMPLETED", m.error
    codes = {f.code: f for f in report.discovery.findings}
    assert "OWNERS_NOT_PRESERVED" in codes and "PRIVILEGES_NOT_PRESERVED" in codes
    assert "function app.balance(integer)" in codes["PRIVILEGES_NOT_PRESERVED"].message  # it becomes wider
    assert codes["PRIVILEGES_NOT_PRESERVED"].severity == common_pb2.HIGH
    assert report.verification.equal, report.verification.summary
    assert dst.scalar("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'app.accounts'::regclass") == "postgres"
    assert rows_as_text(src.url) == rows_as_text(dst.url)
