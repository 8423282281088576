"""A large pre-data script is applied by several sessions, tables sent in chunks: every object
arrives, a table that needs a later one of the same chunk is made after it, and a table the target
refuses is named in the error."""
from __future__ import annotations

import psycopg
import pytest

from services.common import pgtools
from services.common.errors import DatabaseError
from services.common.pg import parse_url
from services.common.pgdump import PARALLEL_OBJECTS, TABLES_PER_STATEMENT, apply_schema, dump_section

TABLES = PARALLEL_OBJECTS + 3 * TABLES_PER_STATEMENT + 7


def _source(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"""DO $$ BEGIN FOR k IN 1..{TABLES} LOOP
            EXECUTE format('CREATE TABLE t_%s (id int PRIMARY KEY, v text)', k); END LOOP; END $$""")
        # t_a's column is of t_z's row type: pg_dump orders t_a first, in the same run of tables
        c.execute("CREATE TABLE t_z (id int, w text)")
        c.execute("CREATE TABLE t_a (id int, z t_z)")
        c.execute("CREATE TABLE t_b (id int, z t_z) PARTITION BY RANGE (id)")
        c.execute("CREATE TABLE t_b1 PARTITION OF t_b FOR VALUES FROM (0) TO (10)")


def _tables(url: str) -> dict[str, str]:
    with psycopg.connect(url) as c:
        return dict(c.execute("SELECT c.relname, pg_catalog.format_type(c.reltype, NULL) FROM pg_class c "
                              "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')").fetchall())


def _pre_data(url: str) -> str:
    conn = parse_url(url)
    with psycopg.connect(url) as c:
        version = c.info.server_version
    return dump_section(conn, "pre-data", tools=pgtools.for_source(version))


def test_a_large_schema_arrives_whole_by_several_sessions(new_database):
    src, dst = new_database("src"), new_database("dst")
    _source(src.url)
    apply_schema(parse_url(dst.url), _pre_data(src.url), "pre-data")
    assert _tables(dst.url) == _tables(src.url)
    assert len(_tables(dst.url)) == TABLES + 4
    with psycopg.connect(dst.url) as c:
        assert c.execute("SELECT format_type(atttypid, NULL) FROM pg_attribute "
                         "WHERE attrelid = 't_a'::regclass AND attname = 'z'").fetchone()[0] == "t_z"


def test_a_refused_table_in_a_chunk_is_named(new_database):
    src, dst = new_database("src"), new_database("dst")
    _source(src.url)
    script = _pre_data(src.url).replace("CREATE TABLE public.t_150 (", "CREATE TABLE public.t_150 (\n    bad no_such_type,")
    with pytest.raises(DatabaseError) as err:
        apply_schema(parse_url(dst.url), script, "pre-data")
    assert "t_150" in str(err.value) and "no_such_type" in str(err.value)
