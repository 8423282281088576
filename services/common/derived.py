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

# Each derived foreign key: the table it is on, the table it references, the key it derives from
# (its table and name), and its own name. search_path = pg_catalog: regclass names are qualified.
_DERIVED = """SELECT k.conrelid::regclass::text, k.confrelid::regclass::text, p.conrelid::regclass::text, p.conname,
                     k.conname
                FROM pg_constraint k
                JOIN pg_constraint p ON p.oid = k.conparentid
               WHERE k.contype = 'f'"""


def _derived(c: psycopg.Connection) -> dict[tuple[str, str, str, str], str]:
    old = c.execute("SELECT current_setting('search_path')").fetchone()[0]
    c.execute("SELECT set_config('search_path', 'pg_catalog', false)")
    try:
        return {(on, to, parent_table, parent): name for on, to, parent_table, parent, name in c.execute(_DERIVED)}
    finally:
        c.execute("SELECT set_config('search_path', %s, false)", (old,))


def rename_derived_keys(source: psycopg.Connection, target: psycopg.Connection) -> tuple[int, list[str]]:
    """Renames the target's derived foreign keys as the source names them; (how many, the ones the
    target refused, with why). `target` is autocommit."""
    want, have = _derived(source), _derived(target)
    renamed, refused = 0, []
    for key, name in sorted(have.items()):
        wanted = want.get(key)
        if wanted is None or wanted == name:
            continue
        on = key[0]
        try:
            target.execute(sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                sql.SQL(on), sql.Identifier(name), sql.Identifier(wanted)))  # `on`: regclass text, quoted
            renamed += 1
        except psycopg.Error as err:
            refused.append(f"{name} on {on} (the source's {wanted}): {err.diag.message_primary or err}")
    return renamed, refused
