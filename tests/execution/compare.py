"""Source == target, table by table (every row, every value) and object by object, as a test asserts it."""
from __future__ import annotations

import psycopg

from services.common.pg import pin_session

TABLES = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
 ORDER BY 1"""

OBJECTS = {
    "indexes": "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes "
               "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2, 3",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE connamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal "
                "ORDER BY 1, 2",
    "views": "SELECT schemaname, viewname, definition FROM pg_views "
             "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    "matviews": "SELECT schemaname, matviewname, ispopulated, definition FROM pg_matviews ORDER BY 1, 2",
    "functions": "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid) FROM pg_proc p "
                 "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
                 "AND p.prokind = 'f' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') "
                 "ORDER BY 1",
    "sequences": "SELECT schemaname, sequencename, last_value, start_value, increment_by FROM pg_sequences ORDER BY 1, 2",
    "comments": "SELECT classoid::regclass::text, objoid::regclass::text, objsubid, description FROM pg_description "
                "WHERE classoid = 'pg_class'::regclass AND objoid >= 16384 ORDER BY 2, 3",
    "policies": "SELECT schemaname, tablename, policyname, qual FROM pg_policies ORDER BY 1, 2, 3",
    "rls": "SELECT relname, relrowsecurity FROM pg_class WHERE relrowsecurity ORDER BY 1",
    "persistence": "SELECT c.oid::regclass::text, relpersistence FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                   "WHERE relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    "large_objects": "SELECT oid, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY 1",
    "extensions": "SELECT extname FROM pg_extension ORDER BY 1",
    "types": "SELECT t.typname, t.typtype, format_type(t.oid, NULL) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
             "WHERE n.nspname = 'app' AND t.typtype IN ('e', 'd', 'c') ORDER BY 1",
}


def snapshot(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as c:
        pin_session(c)
        out = {kind: c.execute(q).fetchall() for kind, q in OBJECTS.items()}
        for (table,) in c.execute(TABLES).fetchall():
            # Every row as text under pinned settings, as a sorted multiset: every value of every row.
            out[f"rows {table}"] = sorted("\\N" if r[0] is None else r[0]
                                      for r in c.execute(f"SELECT t::text FROM ONLY {table} t"))
        return out


def assert_identical(source_url: str, target_url: str) -> None:
    src, dst = snapshot(source_url), snapshot(target_url)
    assert src.keys() == dst.keys(), f"tables differ: {sorted(set(src) ^ set(dst))}"
    for key in src:
        assert src[key] == dst[key], f"{key} differs"
