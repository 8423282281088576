"""A rollback leaves the target as it was: also what lives outside the migrated schemas (event triggers,
foreign servers, objects in public, default privileges, the database's own privileges and settings,
access methods). The migration before it carries the database's settings and each table's access method."""
from __future__ import annotations

import psycopg

from dbmigrate.v1 import coordinator_pb2 as C, events_pb2 as E
from tests.coordinator.helpers import wait_phase
from tests.migrations import create, drive

SOURCE = """
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
CREATE SERVER elsewhere FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '1', dbname 'x');
CREATE USER MAPPING FOR postgres SERVER elsewhere OPTIONS (user 'nobody');
CREATE FUNCTION public.on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE EVENT TRIGGER watch_ddl ON ddl_command_end EXECUTE FUNCTION public.on_ddl();
ALTER EVENT TRIGGER watch_ddl DISABLE;
CREATE FUNCTION public.same(int, int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 = $2';
CREATE OPERATOR public.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = public.same);
CREATE COLLATION public.plain (locale = 'C');
CREATE TEXT SEARCH CONFIGURATION public.mine (COPY = pg_catalog.simple);
CREATE TABLE public.t (id int PRIMARY KEY, v text COLLATE public.plain);
INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 50) g;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT SELECT ON TABLES TO pg_read_all_data;
DO $$ BEGIN EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database()); END $$;
-- a qualified name longer than 63 bytes (the length of PostgreSQL's "name" type)
CREATE TABLE public."a table whose name is long enough to pass sixty-three bytes alone" (id int);
-- a zero-argument aggregate (DROP AGGREGATE names it with (*)) and a range type, whose constructors
-- and multirange go with it
CREATE AGGREGATE public.cnt0(*) (sfunc = int8inc, stype = int8, initcond = '0');
CREATE TYPE public.floatrange AS RANGE (subtype = float8);
-- the database's own settings (pg_dump writes them only with --create), one of them a list
DO $$ BEGIN
  EXECUTE format('ALTER DATABASE %I SET search_path = "$user", public, "odd,name"', current_database());
  EXECUTE format('ALTER DATABASE %I SET statement_timeout = %L', current_database(), '5min');
  EXECUTE format('ALTER ROLE postgres IN DATABASE %I SET work_mem = %L', current_database(), '12MB');
  -- the database's comment (pg_dump writes it only with --create too)
  EXECUTE format('COMMENT ON DATABASE %I IS %L', current_database(), 'the source''s database');
END $$;
-- a table access method of its own, on tables among others and on a materialized view
CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler;
CREATE TABLE public.am_a (id int);
CREATE TABLE public.am_b (id int) USING heap2;
CREATE TABLE public.am_c (id int);
CREATE MATERIALIZED VIEW public.am_mv USING heap2 AS SELECT 1 AS one;
-- a shell type, an operator family without classes, a foreign-data wrapper, a transform
CREATE TYPE public.shell_t;
CREATE OPERATOR FAMILY public.empty_fam USING btree;
CREATE FOREIGN DATA WRAPPER dbm_test_fdw;
CREATE TRANSFORM FOR integer LANGUAGE sql (FROM SQL WITH FUNCTION prsd_lextype(internal),
                                           TO SQL WITH FUNCTION int4recv(internal));
"""

STATE = {
    "event_triggers": "SELECT evtname FROM pg_event_trigger ORDER BY 1",
    "servers": "SELECT srvname FROM pg_foreign_server ORDER BY 1",
    "mappings": "SELECT count(*) FROM pg_user_mapping",
    "operators": "SELECT oid::regoperator::text FROM pg_operator WHERE oprnamespace = 'public'::regnamespace",
    "collations": "SELECT collname FROM pg_collation WHERE collnamespace = 'public'::regnamespace",
    "ts_configs": "SELECT cfgname FROM pg_ts_config WHERE cfgnamespace = 'public'::regnamespace",
    "relations": "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1",
    "functions": "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1",
    "extensions": "SELECT extname FROM pg_extension ORDER BY 1",
    "default_privileges": "SELECT defaclrole::regrole::text, defaclobjtype, defaclacl::text FROM pg_default_acl ORDER BY 1, 2",
    "types": "SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace ORDER BY 1",
    "access_methods": "SELECT amname FROM pg_am ORDER BY 1",
    "operator_families": "SELECT opfname FROM pg_opfamily WHERE opfnamespace = 'public'::regnamespace ORDER BY 1",
    "wrappers": "SELECT fdwname FROM pg_foreign_data_wrapper ORDER BY 1",
    "transforms": "SELECT trftype::regtype::text FROM pg_transform ORDER BY 1",
    "storage": """SELECT c.relname, a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam
                   WHERE c.relnamespace = 'public'::regnamespace AND c.relname LIKE 'am\\_%' ORDER BY 1""",
    "settings": """SELECT coalesce(s.setrole::regrole::text, ''), s.setconfig FROM pg_db_role_setting s
                    JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = current_database() ORDER BY 1""",
    "comment": "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()",
    "database": """SELECT a.grantee::regrole::text, a.privilege_type FROM pg_database d,
                    aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                    WHERE d.datname = current_database() ORDER BY 1, 2""",
}


def state(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as c:
        return {k: c.execute(q).fetchall() for k, q in STATE.items()}


def test_a_rollback_returns_everything_the_migration_made_outside_its_schemas(stack_factory, new_database):
    src, dst = new_database("rbsrc"), new_database("rbdst")
    src.execute(SOURCE)
    before = state(dst.url)
    stack = stack_factory().start()
    ch, stub = stack.coordinator_stub()
    with ch:
        wid = create(stub, src.url, dst.url)
        m = drive(stub, wid)
        assert E.Phase.Name(m.phase) == "COMPLETED", m.error
        after = state(dst.url)
        assert after["event_triggers"] and after["servers"] and after["operators"] and after["default_privileges"]
        source = state(src.url)
        for kind in ("types", "operator_families", "wrappers", "transforms"):
            assert after[kind] == source[kind] != before[kind], kind
        assert after["settings"] == source["settings"] and len(source["settings"]) == 2
        assert after["comment"] == source["comment"] == [("the source's database",)] != before["comment"]
        assert after["storage"] == source["storage"] == [("am_a", "heap"), ("am_b", "heap2"), ("am_c", "heap"),
                                                         ("am_mv", "heap2")]
        assert after["database"] != before["database"]  # TEMPORARY revoked from PUBLIC, as on the source
        stub.Rollback(C.RollbackMigrationRequest(id=wid, reason="test"), timeout=30)
        assert E.Phase.Name(wait_phase(stub, wid, "ROLLED_BACK", "FAILED", timeout=120).phase) == "ROLLED_BACK"
    assert state(dst.url) == before
