"""The rows of extensions' configuration tables, copied as pg_dump copies them.

An extension marks a table it makes as configuration (pg_extension_config_dump) when users add
rows of their own to it: PostGIS's spatial_ref_sys (an SRID of one's own), pg_cron's jobs, an
extension's settings. CREATE EXTENSION on the target makes the table with the rows the extension
ships; the rows its filter condition selects (every row without one) are the database's own data.
pg_dump writes them with the data, and the copy of the user's tables, which leaves extension
members out, did not: they were lost without a word. The same goes for a configuration sequence's
value.

Each table's rows go in one transaction on the target: the rows its condition selects there are
deleted (none on a new extension; our own on a resumed attempt; the shipped ones of a table dumped
whole, which the source's rows replace), then the source's are copied. They are proven by count and
checksum of the selected rows on both sides.
"""
from __future__ import annotations

import psycopg
from psycopg import sql

from dbmigrate.v1 import common_pb2
from services.common import extconfig
from services.common.copy import copy_direct
from services.common.errors import DatabaseError
from services.common.pg import connect, is_transient


def copy_extension_data(source: psycopg.Connection, target: common_pb2.Connection) -> str:
    """Copies the rows (and sequence values) of every extension's configuration tables; `source`
    reads in the migration's snapshot. Returns what it did, for the step's line."""
    config = source.execute(extconfig.CONFIG_SQL).fetchall()
    if not config:
        return "no extension has configuration tables"
    # Row-level security must not hide rows from the copy (pg_cron's cron.job has it on): with it off a
    # read that a policy would filter fails instead, as in pg_dump (discovery names such a user first).
    source.execute("SET LOCAL row_security = off")
    try:
        return _copy_all(source, target, config)
    finally:
        if not source.closed and source.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
            source.execute("SET LOCAL row_security = on")


def _copy_all(source: psycopg.Connection, target: common_pb2.Connection, config: list[tuple]) -> str:
    copied, rows, sequences = [], 0, 0
    with connect(target, "target", autocommit=True, application_name="dbmigrate-extension-data") as dst:
        # A configuration table may hold a foreign key to another (PostGIS's topology.layer to
        # topology.topology): one refused for it waits for the next pass, as long as a pass gets on.
        pending = config
        while pending:
            waiting: list[tuple[tuple, psycopg.Error]] = []
            for item in pending:
                schema, name, kind, extension, condition = item
                ident = sql.Identifier(schema, name)
                what = f"{extension}'s configuration {'sequence' if kind == 'S' else 'table'} {ident.as_string(dst)}"
                try:
                    if dst.execute("SELECT to_regclass(%s)", (ident.as_string(dst),)).fetchone()[0] is None:
                        raise DatabaseError(f"{what} is not on the target: its rows cannot be copied (is the "
                                            "extension there, in the same version?)")
                    if kind == "S":
                        last, called = source.execute(
                            sql.SQL("SELECT last_value, is_called FROM {}").format(ident)).fetchone()
                        dst.execute("SELECT pg_catalog.setval(%s, %s, %s)", (ident.as_string(dst), last, called))
                        sequences += 1
                        continue
                    n = _copy_table(source, dst, ident, extconfig.condition(condition), what)
                except psycopg.errors.ForeignKeyViolation as err:
                    waiting.append((item, err))
                    continue
                except psycopg.Error as err:
                    raise DatabaseError(f"copying {what}: {err.diag.message_primary or err}",
                                        retryable=is_transient(err)) from None
                if n:
                    copied.append(f"{ident.as_string(dst)} {n:,}")
                    rows += n
            if waiting and len(waiting) == len(pending):
                (schema, name, _, extension, _), err = waiting[0]
                raise DatabaseError(f"copying {extension}'s configuration table {schema}.{name}: "
                                    f"{err.diag.message_primary or err}")
            pending = [item for item, _ in waiting]
    parts = [f"{rows:,} rows of extensions' configuration tables copied and verified ({', '.join(copied)})"
             if copied else "no rows of their own in extensions' configuration tables"]
    if sequences:
        parts.append(f"{sequences} configuration sequences set")
    return "; ".join(parts)


def _copy_table(source: psycopg.Connection, dst: psycopg.Connection, ident: sql.Identifier,
                where: sql.Composable | None, what: str) -> int:
    cols = extconfig.columns(source, ident)
    lacking = set(cols) - set(extconfig.columns(dst, ident))
    if lacking:
        raise DatabaseError(f"{what} lacks the columns {', '.join(sorted(lacking))} on the target (another version "
                            "of the extension): its rows cannot be copied")
    want = extconfig.checksum(source, ident, cols, where)
    listed = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    with dst.transaction():
        dst.execute(sql.SQL("DELETE FROM {}").format(extconfig.rows_of(ident, where)))
        if want.rows:
            copy_direct(source, dst, sql.SQL("COPY ({}) TO STDOUT").format(extconfig.selected(ident, cols, where)),
                        sql.SQL("COPY {} ({}) FROM STDIN").format(ident, listed))
    got = extconfig.checksum(dst, ident, cols, where)
    if got != want:
        raise DatabaseError(f"{what}: the target holds {got.rows:,} of the rows its condition selects, with "
                            f"checksum {got.hex}, the source {want.rows:,} with {want.hex}")
    return want.rows
