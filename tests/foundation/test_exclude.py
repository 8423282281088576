"""pg_dump leaves out exactly the tables the filters removed, whatever their names, in few patterns."""
import re

import pytest

from services.common import pgdump
from services.common.catalog import Named, left_out_parents, left_out_relations, list_tables, select_tables
from services.common.pg import parse_url
from services.common.pgtools import for_source, installed

ODD = ["plain", "Mixed Case", 'quo"te', "dot.ted", "a|b", "paren(s)", "star*", "q?", "dollar$", "back\\slash",
       "[br]", "^caret", "plain2", "pre", "pre fix"]


def _created(script: str) -> set[str]:
    return set(re.findall(r"^CREATE TABLE (.+?) \($", script, re.M))


@pytest.mark.parametrize("major", sorted({t.major for t in installed()}))
def test_excluded_tables_are_exactly_those_left_out(new_database, major, monkeypatch):
    db = new_database("excl")
    db.execute('CREATE SCHEMA "Odd Schema"; CREATE SCHEMA "x|y";')
    for schema in ("public", "Odd Schema", "x|y"):
        for name in ODD:
            q = '"' + name.replace('"', '""') + '"'
            s = '"' + schema.replace('"', '""') + '"'
            db.execute(f"CREATE TABLE {s}.{q} (id int)")
    with db.connect() as c:
        every = list_tables(c)
    kept = [t for t in every if t.name in ("plain2", "a|b", "star*") or t.schema == "x|y" and t.name == "plain"]
    # ODD's names share little: one pattern a name. Names like t_N go as a tree of their prefixes, in
    # one pattern a schema ("pre" is one of the names and the prefix of "pre fix"; "plain2" is kept
    # while "plain" is not), and in several with fewer names a pattern.
    single = pgdump.exclude_args(every, kept)
    assert len(single) == 35 and all(a.endswith('"') for a in single)  # a quoted name, no group
    monkeypatch.setattr(pgdump, "TREE_RATIO", 10.0)
    grouped = pgdump.exclude_args(every, kept)
    assert len(grouped) == 3
    monkeypatch.setattr(pgdump, "EXCLUDED_PER_PATTERN", 4)
    several = pgdump.exclude_args(every, kept)
    assert len(several) == 9  # 12, 12 and 11 names left out in the three schemas, 4 a pattern
    tools = next(t for t in installed() if t.major == major)
    for args in (single, grouped, several):
        script = pgdump.dump_section(parse_url(db.url), "pre-data", tools=tools, extra_args=args)
        assert _created(script) == {t.qualified for t in kept}


def test_names_that_share_prefixes_go_as_trees_and_others_one_a_pattern():
    from services.common.catalog import Column, Table

    def table(name: str) -> Table:
        return Table(schema="public", name=name, oid=0, unlogged=False, is_partition=False,
                     is_inheritance_child=False, bytes=0, row_estimate=0, owner="o", primary_key=(), int_key=None,
                     columns=(Column("id", "integer", "", False, True, True),))
    numbered = [table(f"t_{k}") for k in range(1, 20001)]
    args = pgdump.exclude_args(numbered, numbered[:50])
    assert len(args) == 40 and all(a.endswith(")") for a in args)  # 19,950 names, 500 a pattern
    import random
    rng = random.Random(7)
    scattered = [table("".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(8, 30))))
                 for _ in range(2000)]
    args = pgdump.exclude_args(scattered, scattered[:50])
    assert len(args) == len({t.name for t in scattered[50:]}) and all(a.endswith('"') for a in args)


def test_a_partitioned_table_is_left_out_once_nothing_under_it_is_kept(new_database):
    db = new_database("exclparts")
    db.execute("""
        CREATE TABLE pt (id int, k int) PARTITION BY RANGE (id);
        CREATE TABLE pt_1 PARTITION OF pt FOR VALUES FROM (0) TO (10);
        CREATE TABLE pt_2 PARTITION OF pt FOR VALUES FROM (10) TO (20) PARTITION BY LIST (k);
        CREATE TABLE pt_2a PARTITION OF pt_2 FOR VALUES IN (1);
        CREATE TABLE empty_parent (id int) PARTITION BY RANGE (id);
        CREATE TABLE other (id int);
    """)
    with db.connect() as c:
        every = list_tables(c)
        # everything under pt matches: pt and its sub-partitioned pt_2 go too (pg_dump would make them empty)
        assert left_out_parents(c, [], ["public.pt*"]) == [Named("public", "pt"), Named("public", "pt_2")]
        # a partition that is kept keeps its parents
        assert left_out_parents(c, [], ["public.pt_1", "public.pt_2*"]) == [Named("public", "pt_2")]
        assert left_out_parents(c, [], ["public.pt_1"]) == []
        assert left_out_parents(c, ["public.other"], []) == [Named("public", "empty_parent"), Named("public", "pt"),
                                                             Named("public", "pt_2")]
        assert left_out_parents(c, [], []) == []
        kept = select_tables(every, [], ["public.pt*"])
        script = pgdump.dump_section(parse_url(db.url), "pre-data", tools=for_source(c.info.server_version),
                                     extra_args=pgdump.exclude_args(every + left_out_parents(c, [], ["public.pt*"]),
                                                                    kept))
    assert _created(script) == {"public.empty_parent", "public.other"}


def _made(script: str, kind: str) -> set[str]:
    return set(re.findall(rf"^CREATE {kind} (\S+)", script, re.M))


def test_views_matviews_and_foreign_tables_follow_the_patterns(new_database):
    """As pg_dump's --table/--exclude-table: an excluded view or materialized view is not created (it
    was, only left out of the comparison), nor a foreign table; --include selects them too."""
    db = new_database("exclviews")
    db.execute("""
        CREATE TABLE orders (id int); CREATE TABLE archive (id int);
        CREATE VIEW recent AS SELECT * FROM orders; CREATE VIEW old AS SELECT * FROM archive;
        CREATE MATERIALIZED VIEW totals AS SELECT count(*) FROM orders;
        CREATE FOREIGN DATA WRAPPER w; CREATE SERVER s FOREIGN DATA WRAPPER w;
        CREATE FOREIGN TABLE remote (id int) SERVER s;
    """)
    with db.connect() as c:
        every = list_tables(c)
        assert left_out_relations(c, [], []) == []
        excl = ["public.archive", "public.old", "public.totals", "public.remote"]
        left = left_out_relations(c, [], excl)
        assert sorted(left) == [Named("public", "old"), Named("public", "remote"), Named("public", "totals")]
        assert sorted(left_out_relations(c, ["public.orders", "public.recent"], [])) == sorted(left)
        script = pgdump.dump_section(parse_url(db.url), "pre-data", tools=for_source(c.info.server_version),
                                     extra_args=pgdump.exclude_args(every + left, select_tables(every, [], excl)))
    assert _created(script) == {"public.orders"}
    assert _made(script, "VIEW") == {"public.recent"}
    assert not _made(script, "MATERIALIZED VIEW") and not _made(script, "FOREIGN TABLE")
