"""Where a table's and an index's rows are stored arrives as on the source: the tablespace of tables,
indexes and primary keys (pg_dump writes it as a SET default_tablespace before the object, which each
statement run on a session of its own must carry), in a schema large enough to be created by several
sessions at once, and the final verification compares it."""
from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg

from dbmigrate.v1 import events_pb2 as E
from services.common.pgdump import PARALLEL_OBJECTS
from services.validation.verify import verify
from tests.migrations import create, drive
from tests.validation.test_verify import request

WHERE = """SELECT c.relname, coalesce(t.spcname, '(default)'), coalesce(a.amname, '') FROM pg_class c
             LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace LEFT JOIN pg_am a ON a.oid = c.relam
                                                                  AND c.relkind <> 'i'
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i', 'm')
              AND c.relname NOT LIKE 'filler%' ORDER BY 1"""


def test_tablespaces_of_tables_indexes_and_keys_arrive_and_are_verified(stack_factory, new_database, pg_admin_url):
    space = f"dbm_ts_{uuid.uuid4().hex[:8]}"
    where = Path(tempfile.mkdtemp(prefix=space))  # the server's user must reach it: not under pytest's tmp_path
    os.chown(where, pwd.getpwnam("postgres").pw_uid, -1)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE TABLESPACE {space} LOCATION '{where}'")
    src, dst = new_database("tssrc"), new_database("tsdst")
    try:
        src.execute(f"""
            DO $$ BEGIN FOR k IN 1..{PARALLEL_OBJECTS + 10} LOOP
              EXECUTE format('CREATE TABLE filler_%s (id int)', k); END LOOP; END $$;
            CREATE TABLE a_plain (id int PRIMARY KEY, v int);
            CREATE TABLE b_there (id int PRIMARY KEY, v int) TABLESPACE {space};
            CREATE TABLE c_plain (id int PRIMARY KEY, v int);
            CREATE INDEX a_v ON a_plain (v) TABLESPACE {space};
            CREATE INDEX c_v ON c_plain (v);
            -- large enough (4 MB) that its key is built as an index, then attached
            CREATE TABLE d_big (id int, pad text);
            INSERT INTO d_big SELECT g, repeat('x', 80) FROM generate_series(1, 60000) g;
            ALTER TABLE d_big ADD PRIMARY KEY (id) USING INDEX TABLESPACE {space};
            CREATE INDEX d_pad ON d_big (pad);
            CREATE MATERIALIZED VIEW e_mv TABLESPACE {space} AS SELECT 1 AS one;
            -- a table and then a materialized view with the same access method and tablespace: pg_dump
            -- SETs them once, before the table, which another session creates
            CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler;
            CREATE TABLE f_base (id int) USING heap2 TABLESPACE {space};
            CREATE MATERIALIZED VIEW f_mv USING heap2 TABLESPACE {space} AS SELECT 1 AS one;
            ANALYZE;
        """)
        stack = stack_factory().start()
        ch, stub = stack.coordinator_stub()
        with ch:
            m = drive(stub, create(stub, src.url, dst.url))
        assert E.Phase.Name(m.phase) == "COMPLETED", m.error
        with psycopg.connect(src.url) as s, psycopg.connect(dst.url) as d:
            expected = s.execute(WHERE).fetchall()
            assert d.execute(WHERE).fetchall() == expected
        assert ("a_v", space, "") in expected and ("b_there", space, "heap") in expected
        assert ("d_big_pkey", space, "") in expected and ("f_mv", space, "heap2") in expected
        assert ("c_v", "(default)", "") in expected and ("a_plain", "(default)", "heap") in expected
        # the verification sees where rows are stored: an index moved on the target is a difference
        dst.execute(f"ALTER INDEX c_v SET TABLESPACE {space}")
        report = verify(request(src, dst))
        assert not report.equal
        assert {(o.kind, o.name, o.difference) for o in report.objects} == {
            ("index", "public.c_plain.c_v", "changed")}
    finally:
        for db in (src, dst):
            db.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public; DROP ACCESS METHOD IF EXISTS heap2")
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f"DROP TABLESPACE IF EXISTS {space}")
        shutil.rmtree(where, ignore_errors=True)
