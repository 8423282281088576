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


FK_DDL = '''
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE "Child 1" (id int PRIMARY KEY, p int REFERENCES parent ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE child2 (id int PRIMARY KEY, p int);
INSERT INTO parent SELECT generate_series(1, 10);
INSERT INTO "Child 1" SELECT g, g FROM generate_series(1, 10) g;
INSERT INTO child2 VALUES (1, 99);  -- breaks the key the source holds NOT VALID
ALTER TABLE child2 ADD CONSTRAINT c2_p FOREIGN KEY (p) REFERENCES parent NOT VALID;
'''
FKS = "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint WHERE contype = 'f' ORDER BY 1"


def test_foreign_keys_added_not_valid_then_validated_end_as_the_sources(new_database):
    """The early keys' two statements (NOT VALID, then VALIDATE) give the source's keys: validated
    where the source's is, NOT VALID where it is not; a resumed attempt finishes a key left NOT VALID."""
    from services.execution.schema import split_validation
    src, dst = new_database("fksrc"), new_database("fkdst")
    src.execute(FK_DDL)
    tools = pgtools.for_source(150000)
    post = parse_post_data(dump_section(parse_url(src.url), "post-data", tools=tools))
    apply_script(parse_url(dst.url), dump_section(parse_url(src.url), "pre-data", tools=tools))
    keys = [st for st in post.rest if st.type == "FK CONSTRAINT"]
    split = {st.name: split_validation(st) for st in keys}
    assert sorted(len(v) for v in split.values()) == [1, 2]  # the source's NOT VALID key stays one statement
    run_statements(parse_url(dst.url), post.preamble, [st for sts in post.per_table.values() for st in sts],
                   resuming=False)  # the tables' keys
    two = next(v for v in split.values() if len(v) == 2)
    run_statements(parse_url(dst.url), post.preamble, two[:1], resuming=False)  # an attempt stopped after NOT VALID
    run_statements(parse_url(dst.url), post.preamble, [s for v in split.values() for s in v], resuming=True)
    with psycopg.connect(src.url) as s, psycopg.connect(dst.url) as d:
        assert d.execute(FKS).fetchall() == s.execute(FKS).fetchall()
