"""Extensions' configuration tables and sequences (pg_extension_config_dump): what of them is the
database's own data, as pg_dump reads it. The migration copies it (services.execution.extdata) and
the verification compares it (services.validation.objects)."""
from __future__ import annotations

import re

import psycopg
from psycopg import sql

from services.common.checksum import Checksum, row_hash

# Every configuration table and sequence of every extension, with its filter condition ("WHERE ...",
# or empty: all of it), as pg_dump reads them.
CONFIG_SQL = """SELECT n.nspname, c.relname, c.relkind::text, e.extname,
       coalesce(e.extcondition[array_position(e.extconfig, c.oid)], '')
  FROM pg_extension e
  CROSS JOIN LATERAL unnest(e.extconfig) AS cfg(oid)
  JOIN pg_class c ON c.oid = cfg.oid AND c.relkind IN ('r', 'S')
  JOIN pg_namespace n ON n.oid = c.relnamespace
 ORDER BY e.extname, n.nspname, c.relname"""

COLUMNS_SQL = """SELECT a.attname FROM pg_attribute a
 WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
   AND coalesce(to_jsonb(a) ->> 'attgenerated', '') = ''
 ORDER BY a.attnum"""

_WHERE = re.compile(r"^\s*WHERE\s+", re.I)


def condition(text: str) -> sql.Composable | None:
    """An extension's filter ("WHERE NOT builtin") as the part after WHERE; None for all rows."""
    text = text.strip()
    return sql.SQL(_WHERE.sub("", text)) if text else None


def columns(conn: psycopg.Connection, ident: sql.Identifier) -> list[str]:
    return [r[0] for r in conn.execute(COLUMNS_SQL, (ident.as_string(conn),))]


def rows_of(ident: sql.Identifier, where: sql.Composable | None) -> sql.Composed:
    """"ONLY table WHERE condition": the rows pg_dump dumps of a configuration table. As pg_dump writes
    it: the condition may name the table itself, so the table has no alias."""
    filtered = sql.SQL(" WHERE {}").format(where) if where is not None else sql.SQL("")
    return sql.SQL("ONLY {}{}").format(ident, filtered)


def selected(ident: sql.Identifier, cols: list[str], where: sql.Composable | None) -> sql.Composed:
    listed = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    return sql.SQL("SELECT {} FROM {}").format(listed, rows_of(ident, where))


def checksum_sql(ident: sql.Identifier, cols: list[str], where: sql.Composable | None) -> sql.Composed:
    """Count and order-independent checksum (services.common.checksum) of those rows."""
    return sql.SQL("SELECT count(*), coalesce(sum({}), 0) FROM ({}) AS t").format(
        row_hash(cols), selected(ident, cols, where))


def row_hashes_sql(ident: sql.Identifier, cols: list[str], where: sql.Composable | None,
                   limit: int) -> sql.Composed:
    """Each of those rows' hash (the checksum's terms), at most `limit`."""
    return sql.SQL("SELECT {} FROM ({}) AS t LIMIT {}").format(row_hash(cols), selected(ident, cols, where),
                                                              sql.Literal(limit))


def checksum(conn: psycopg.Connection, ident: sql.Identifier, cols: list[str],
             where: sql.Composable | None) -> Checksum:
    count, total = conn.execute(checksum_sql(ident, cols, where)).fetchone()
    return Checksum(int(count), int(total))
