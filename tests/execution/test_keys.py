"""Keys built as unique indexes beside the table's check, then attached: same keys as the source,
and a resumed attempt finishes a key whose index an interrupted one had built."""
from __future__ import annotations

import psycopg

from services.common import pgtools
from services.common.pg import parse_url
from services.common.pgdump import apply_script, dump_section
from services.execution.postdata import run_statements
from services.execution.schema import parse_post_data, unique_constraint_indexes, unique_via_index

DDL = '''
CREATE SCHEMA "Odd ""S""";
CREATE TABLE "Odd ""S"""."T 1" (
    id integer NOT NULL, code text, note text, during tsrange,
    CONSTRAINT "T 1 pk" PRIMARY KEY (id) WITH (fillfactor = 70),
    CONSTRAINT t1_code UNIQUE (code) INCLUDE (note) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT t1_no_overlap EXCLUDE USING gist (during WITH &&)
);
INSERT INTO "Odd ""S"""."T 1" SELECT g, 'c' || g, 'n' || g, tsrange(TIMESTAMP '2024-01-01' + g * INTERVAL '1 d',
    TIMESTAMP '2024-01-01' + (g + 1) * INTERVAL '1 d') FROM generate_series(1, 100) g;
'''

KEYS = ("SELECT conname, contype, pg_get_constraintdef(oid), condeferrable, condeferred FROM pg_constraint "
        "WHERE conrelid = '\"Odd \"\"S\"\"\".\"T 1\"'::regclass ORDER BY conname")
INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'Odd \"S\"' ORDER BY indexname"


def test_keys_are_split_into_index_and_attach_and_a_resume_finishes_them(new_database):
    src, dst = new_database("ksrc"), new_database("kdst")
    src.execute(DDL)
    source, target = parse_url(src.url), parse_url(dst.url)
    with psycopg.connect(src.url) as c:
        tools = pgtools.for_source(c.info.server_version)
    apply_script(target, dump_section(source, "pre-data", tools=tools))
    post = parse_post_data(dump_section(source, "post-data", tools=tools))
    with src.connect() as c:
        assert unique_via_index(post, unique_constraint_indexes(c)) == 2  # the exclusion constraint stays whole
    (statements,) = post.per_table.values()
    builds = [st for st in statements if st.beside_reads]
    assert [st.sql.split(" ON ")[0] for st in builds] == ['CREATE UNIQUE INDEX "T 1 pk"', "CREATE UNIQUE INDEX t1_code"]
    assert sum(st.attach for st in statements) == 2
    # An attempt that built the indexes and stopped before attaching them ...
    run_statements(target, post.preamble, builds, resuming=False)
    # ... then the resumed attempt runs everything (what exists counts as done), and once more.
    for _ in range(2):
        run_statements(target, post.preamble, builds, resuming=True)
        run_statements(target, post.preamble, [st for st in statements if not st.beside_reads], resuming=True)
    with src.connect() as s, dst.connect() as d:
        assert d.execute(KEYS).fetchall() == s.execute(KEYS).fetchall()
        assert d.execute(INDEXES).fetchall() == s.execute(INDEXES).fetchall()
        assert len(s.execute(KEYS).fetchall()) == 3
