"""Copies one unit into the target in one transaction, so a retry or a resume never duplicates rows."""
from __future__ import annotations

import threading
import time
from typing import Callable

from psycopg import sql

from dbmigrate.v1 import common_pb2
from services.common.copy import CopyStats, copy_in_sql, copy_into, copy_out_sql
from services.common.errors import DBMigrateError, Unavailable
from services.common.pg import connect, is_transient
from services.execution.units import Unit

RETRIES = 5


def copy_unit(unit: Unit, source: common_pb2.Connection, target: common_pb2.Connection, snapshot: str,
              *, on_bytes: Callable[[int], None] | None = None, cancel: threading.Event | None = None) -> CopyStats:
    """A whole table: TRUNCATE and COPY FREEZE in one transaction. A part: COPY in one transaction
    (the runner empties a split table before its parts when it is not known to be complete)."""
    t = unit.table
    binary = t.binary_ok
    attempt = 0
    while True:
        attempt += 1
        try:
            with connect(target, "target", application_name="dbmigrate-copy") as dst:
                if unit.whole:
                    dst.execute(sql.SQL("TRUNCATE ONLY {}").format(sql.Identifier(t.schema, t.name)))
                stats = copy_into(dst, source, snapshot, copy_out_sql(t, binary=binary, where=unit.where),
                                  copy_in_sql(t.schema, t.name, t.copy_columns, binary=binary, freeze=unit.whole),
                                  on_bytes=on_bytes, cancel=cancel)
                dst.commit()
                return stats
        except DBMigrateError as err:
            if not err.retryable or attempt >= RETRIES:
                raise
            time.sleep(min(2 ** attempt, 16))
        except Exception as err:  # psycopg errors from the target side
            if not is_transient(err):
                raise
            if attempt >= RETRIES:
                raise Unavailable(f"copying {t.qualified}: {err}") from None
            time.sleep(min(2 ** attempt, 16))


def truncate(target: common_pb2.Connection, schema: str, name: str) -> None:
    with connect(target, "target", autocommit=True) as dst:
        dst.execute(sql.SQL("TRUNCATE ONLY {}").format(sql.Identifier(schema, name)))
