"""Copies one unit into the target in one transaction, so a retry or a resume never duplicates rows."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from typing import Callable

import psycopg
from psycopg import sql

from dbmigrate.v1 import common_pb2
from services.common.copy import PSQL_BYTES, CopyStats, copy_direct, copy_in_sql, copy_into, copy_out_sql
from services.common.errors import DBMigrateError, Unavailable
from services.common.pg import connect, is_transient
from services.common.sessions import WorkerConnections
from services.execution.units import Unit

log = logging.getLogger(__name__)

RETRIES = 5
# A key-ordered read of a part walks the key's index instead of sorting (the table is usually close
# to key order, so this reads the heap almost sequentially).
ORDERED_READ = ("SET enable_sort = off",)



def copy_unit(unit: Unit, conns: WorkerConnections, source: common_pb2.Connection, snapshot: str,
              *, on_bytes: Callable[[int], None] | None = None, cancel: threading.Event | None = None,
              fresh: bool = False) -> CopyStats:
    """A whole table: emptied and filled in one transaction. A part: COPY in one transaction
    (the runner empties a split table before its parts when it is not known to be complete).

    A table from PSQL_BYTES on is emptied by TRUNCATE, which lets COPY FREEZE write its rows
    frozen (no hint bits to set and no freezing vacuum later). A smaller one is not: TRUNCATE
    gives the table new files, and dropping the old ones at commit scans all of shared_buffers for
    their pages (2.6 ms of CPU per table at 128 MB of shared_buffers, more on a larger server),
    and a small table gains little from FREEZE. When `fresh` (the table was made empty by this
    attempt's schema, before any trigger or foreign key exists) it is empty for the first try and a
    DELETE empties it for a retry; on a resumed attempt a DELETE could fire triggers, so TRUNCATE.
    """
    t = unit.table
    binary = t.binary_ok
    attempt = 0
    while True:
        attempt += 1
        try:
            dst = conns.target()
            copy_out = copy_out_sql(t, binary=binary, where=unit.where,
                                    order_by=[unit.order_by] if unit.order_by else None)
            small = unit.whole and t.bytes < PSQL_BYTES
            # A small table this attempt's schema just made is empty: nothing to remove before the
            # first try, a DELETE before another (an earlier try may have committed and lost its
            # answer). A larger or resumed one is truncated (which COPY FREEZE needs).
            truncate = unit.whole and not (small and fresh)
            copy_in = copy_in_sql(t.schema, t.name, t.copy_columns, binary=binary, freeze=truncate)
            delete = unit.whole and not truncate and attempt > 1
            # A COPY alone is a transaction of its own on the autocommit session (all its rows or none):
            # a transaction block only when a TRUNCATE or DELETE goes with it (two round trips fewer
            # for each small table of a first try).
            with dst.transaction() if truncate or delete else contextlib.nullcontext():
                if truncate:
                    empty(dst, t.schema, t.name, fresh)
                elif delete:
                    dst.execute(sql.SQL("DELETE FROM ONLY {}").format(sql.Identifier(t.schema, t.name)))
                if small:
                    stats = copy_direct(conns.source(), dst, copy_out, copy_in, on_bytes=on_bytes, cancel=cancel)
                else:
                    stats = copy_into(dst, source, snapshot, copy_out, copy_in, on_bytes=on_bytes, cancel=cancel,
                                      settings=ORDERED_READ if unit.order_by else ())
            return dataclasses.replace(stats, binary=binary)
        except DBMigrateError as err:
            conns.reset()
            if not err.retryable or attempt >= RETRIES:
                raise
            time.sleep(min(2 ** attempt, 16))
        except Exception as err:  # psycopg errors from either side
            conns.reset()
            if binary and isinstance(err, psycopg.Error) and not is_transient(err) \
                    and not isinstance(err, psycopg.errors.IntegrityError):
                # The target refused a value's binary form (PostgreSQL 18 refuses an empty tsquery that
                # 15 writes, say); the text form is what dump and restore carry across versions.
                log.warning("%s: the binary form was refused (%s); copying it as text", unit.id,
                            err.diag.message_primary or err)
                binary = False
                continue
            if not is_transient(err):
                raise
            if attempt >= RETRIES:
                raise Unavailable(f"copying {t.qualified}: {err}") from None
            time.sleep(min(2 ** attempt, 16))


_REFERENCING = ("SELECT conrelid::regclass::text, quote_ident(conname) FROM pg_constraint "
                "WHERE contype = 'f' AND confrelid = %s::regclass AND conrelid <> confrelid")


def empty(dst: psycopg.Connection, schema: str, name: str, fresh: bool) -> None:
    """TRUNCATE ONLY the table, inside dst's transaction. On a resumed attempt the table may be
    referenced by foreign keys an earlier attempt made (it can lose the event of a copy it did before
    making them); TRUNCATE refuses such a table, so those keys are dropped first: post-data makes
    them again, validated against the new rows."""
    table = sql.Identifier(schema, name)
    if not fresh:
        for referencing, key in dst.execute(_REFERENCING, (table.as_string(dst),)).fetchall():
            dst.execute(sql.SQL("ALTER TABLE ONLY {} DROP CONSTRAINT {}").format(sql.SQL(referencing), sql.SQL(key)))
    dst.execute(sql.SQL("TRUNCATE ONLY {}").format(table))


def truncate(target: common_pb2.Connection, schema: str, name: str) -> None:
    """Empties a split table before its parts are copied again (a resumed attempt)."""
    with connect(target, "target", autocommit=True) as dst:
        with dst.transaction():
            empty(dst, schema, name, fresh=False)
