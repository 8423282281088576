"""pg_dump leaves out exactly the tables the filters removed, whatever their names, in few patterns."""
import re

import pytest

from services.common import pgdump
from services.common.catalog import list_tables
from services.common.pg import parse_url
from services.common.pgtools import installed

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
    grouped = pgdump.exclude_args(every, kept)
    # One pattern a schema, a tree of prefixes: "pre" is one of the names and the prefix of "pre fix",
    # "q?" and 'quo"te' share "q", and "plain2" is kept while "plain" is not.
    assert len(grouped) == 3
    monkeypatch.setattr(pgdump, "EXCLUDED_PER_PATTERN", 4)  # several patterns per schema
    several = pgdump.exclude_args(every, kept)
    assert len(several) == 9  # 12, 12 and 11 names left out in the three schemas, 4 a pattern
    monkeypatch.setattr(pgdump, "GROUPED_UP_TO", 10)  # a large database: one pattern a name
    single = pgdump.exclude_args(every, kept)
    assert len(single) == 35 and all(a.endswith('"') for a in single)  # a quoted name, no group
    tools = next(t for t in installed() if t.major == major)
    for args in (grouped, several, single):
        script = pgdump.dump_section(parse_url(db.url), "pre-data", tools=tools, extra_args=args)
        assert _created(script) == {t.qualified for t in kept}
