"""The names of the foreign keys PostgreSQL derives from one on a partitioned table, as the source has them.

A foreign key on a partitioned table (or to one) has a constraint of its own on each partition (or
for each partition referenced), made by the server with a name it chooses (conparentid is the key
they derive from). pg_dump writes only the partitioned table's key, so the target's derived ones get
the target server's names: a partition that had a key of its own before it was attached keeps that
key's name on the source (fk1_own_fkey), and versions number the rest differently (fk_a_fkey1 on 15,
fk_a_fkey_1 on 18). Execution (after post-data) and the rendering of the source's schema on the
target (services/validation/verify.py) rename them as the source has them.
"""
from __future__ import annotations

import psycopg
from psycopg import sql

from services.common.pg import catalog_search_path, is_transient

# Each derived foreign key: the table it is on, the table it references, the key at the top of its
# line (conparentid followed up to a key pg_dump writes, which has the same name on both sides: a key
# on a partition of a partition derives from one that is derived itself), and its own name.
# search_path = pg_catalog: regclass names are qualified.
_DERIVED = """WITH RECURSIVE up(oid, root) AS (
    SELECT k.oid, k.oid FROM pg_constraint k WHERE k.contype = 'f' AND k.conparentid = 0
    UNION ALL
    SELECT k.oid, up.root FROM pg_constraint k JOIN up ON k.conparentid = up.oid)
SELECT k.conrelid::regclass::text, k.confrelid::regclass::text, r.conrelid::regclass::text, r.conname, k.conname
  FROM up
  JOIN pg_constraint k ON k.oid = up.oid
  JOIN pg_constraint r ON r.oid = up.root
 WHERE k.conparentid <> 0"""


def _derived(c: psycopg.Connection) -> dict[tuple[str, str, str, str], str]:
    """(on, references, top key's table, top key's name) -> name; a key that is not unique left out."""
    with catalog_search_path(c):
        rows = c.execute(_DERIVED).fetchall()
    out: dict[tuple[str, str, str, str], str] = {}
    twice = set()
    for on, to, top_table, top, name in rows:
        key = (on, to, top_table, top)
        if key in out:
            twice.add(key)
        out[key] = name
    return {k: v for k, v in out.items() if k not in twice}


def rename_derived_keys(source: psycopg.Connection, target: psycopg.Connection) -> tuple[int, list[str]]:
    """Renames the target's derived foreign keys as the source names them; (how many, the ones the
    target refused, with why). In two rounds, through a name of the migration's own, so that two keys
    whose names the versions gave the other way round swap. `target` is autocommit."""
    want, have = _derived(source), _derived(target)
    todo = [(key[0], name, want[key]) for key, name in sorted(have.items()) if want.get(key) not in (None, name)]
    refused: list[str] = []
    parked = []
    for i, (on, name, wanted) in enumerate(todo):
        temporary = f"dbmigrate_rename_{i}"
        if _rename(target, on, name, temporary, refused, wanted):
            parked.append((on, temporary, wanted, name))
    renamed = 0
    for on, temporary, wanted, name in parked:
        if _rename(target, on, temporary, wanted, refused, wanted):
            renamed += 1
        else:
            _rename(target, on, temporary, name, [], wanted)  # back to the name it had
    return renamed, refused


def _rename(target: psycopg.Connection, on: str, name: str, to: str, refused: list[str], wanted: str) -> bool:
    try:
        target.execute(sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
            sql.SQL(on), sql.Identifier(name), sql.Identifier(to)))  # `on`: regclass text, quoted
        return True
    except psycopg.Error as err:
        if is_transient(err):  # the target went away: the step is retried, not a name left behind
            raise
        refused.append(f"{name} on {on} (the source's {wanted}): {err.diag.message_primary or err}")
        return False
