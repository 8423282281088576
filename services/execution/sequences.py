"""Sequences (serial and identity included) set to the position they have in the source snapshot.

The position is last_value and is_called, read from each sequence itself: pg_sequences shows NULL for
a sequence set with setval(..., false), whose next value is last_value itself. Read and set in
batches of BATCH sequences, one statement each way per batch.
"""
from __future__ import annotations

import psycopg
from psycopg import sql

from services.common.catalog import quote_ident

BATCH = 500

_SEQUENCES = """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                      AND d.objid = c.oid AND d.deptype = 'e')
                 ORDER BY 1, 2"""


def copy_sequences(source: psycopg.Connection, target: psycopg.Connection) -> dict[str, int]:
    """`source` is inside the snapshot (or, at an online cutover, the live source); returns what was
    set: schema.name (quoted where needed) -> last_value."""
    names = [tuple(r) for r in source.execute(_SEQUENCES)]
    there = {tuple(r) for r in target.execute(_SEQUENCES)}
    names = [n for n in names if n in there]  # the others are excluded from the migration
    out: dict[str, int] = {}
    for i in range(0, len(names), BATCH):
        batch = names[i:i + BATCH]
        read = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {}, last_value, is_called FROM {}").format(sql.Literal(k), sql.Identifier(s, n))
            for k, (s, n) in enumerate(batch))
        positions = {k: (v, called) for k, v, called in source.execute(read)}
        target.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
            sql.SQL("setval({}::regclass, {}, {})").format(
                sql.Literal(sql.Identifier(s, n).as_string(target)), sql.Literal(positions[k][0]),
                sql.Literal(positions[k][1]))
            for k, (s, n) in enumerate(batch))))
        out.update((f"{quote_ident(s)}.{quote_ident(n)}", int(positions[k][0])) for k, (s, n) in enumerate(batch))
    return out
