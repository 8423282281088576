"""Sequences (serial and identity included) set to the values they have in the source snapshot."""
from __future__ import annotations

import psycopg


def copy_sequences(source: psycopg.Connection, target: psycopg.Connection) -> int:
    """`source` is inside the snapshot; returns how many sequences were set."""
    rows = source.execute(
        "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename), last_value, start_value FROM pg_sequences "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')").fetchall()
    done = 0
    for name, last_value, start_value in rows:
        if target.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None:
            continue  # excluded from the migration
        if last_value is None:
            target.execute("SELECT setval(%s::regclass, %s, false)", (name, start_value))
        else:
            target.execute("SELECT setval(%s::regclass, %s, true)", (name, last_value))
        done += 1
    return done
