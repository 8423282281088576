"""Materialized views populated on the target where they are populated on the source."""
from __future__ import annotations

import psycopg
from psycopg import sql

from services.common.errors import DatabaseError


def refresh_matviews(source: psycopg.Connection, target: psycopg.Connection) -> int:
    todo = [(s, n) for s, n, populated in source.execute(
        "SELECT schemaname, matviewname, ispopulated FROM pg_matviews ORDER BY 1, 2") if populated]
    todo = [(s, n) for s, n in todo
            if target.execute("SELECT to_regclass(%s)", (sql.Identifier(s, n).as_string(target),)).fetchone()[0]]
    done = 0
    # A view may read another one: refresh in passes until nothing more succeeds.
    while todo:
        failed, last_error = [], None
        for s, n in todo:
            try:
                target.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.Identifier(s, n)))
                done += 1
            except psycopg.Error as err:
                failed.append((s, n))
                last_error = err
        if len(failed) == len(todo):
            raise DatabaseError(f"materialized view {failed[0][0]}.{failed[0][1]} cannot be refreshed: {last_error}")
        todo = failed
    return done
