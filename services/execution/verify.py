"""Per-table verification: row count and checksum on both sides, the source inside the snapshot."""
from __future__ import annotations

import threading
import time

import psycopg
from psycopg import sql

from dbmigrate.v1 import common_pb2
from services.common.catalog import Table
from services.common.checksum import Checksum, table_checksum
from services.common.pg import connect


def source_in_snapshot(source: common_pb2.Connection, snapshot: str, application_name: str):
    """A source connection whose transaction sees exactly the migration's snapshot."""
    c = connect(source, "source", application_name=application_name)
    c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    c.read_only = True
    c.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))  # first statement of the tx
    return c


def verify_table(table: Table, source: common_pb2.Connection, target: common_pb2.Connection,
                 snapshot: str) -> common_pb2.TableResult:
    """Both checksums run at the same time (one scan each side); equal count and sum = verified."""
    t0 = time.monotonic()
    columns = table.all_columns
    out: dict[str, Checksum | BaseException] = {}

    def source_side():
        try:
            with source_in_snapshot(source, snapshot, "dbmigrate-verify") as c:
                out["source"] = table_checksum(c, table.schema, table.name, columns)
        except BaseException as err:  # re-raised in the caller's thread
            out["source"] = err

    th = threading.Thread(target=source_side)
    th.start()
    with connect(target, "target", application_name="dbmigrate-verify") as c:
        dst = table_checksum(c, table.schema, table.name, columns)
    th.join()
    src = out["source"]
    if isinstance(src, BaseException):
        raise src
    return result(table, src, dst, time.monotonic() - t0)


def result(table: Table, src: Checksum, dst: Checksum, seconds: float) -> common_pb2.TableResult:
    ok = src == dst
    return common_pb2.TableResult(
        table=table.qualified, source_rows=src.rows, target_rows=dst.rows, source_checksum=src.hex,
        target_checksum=dst.hex, verified=ok, seconds=seconds,
        copy_format="binary" if table.binary_ok else "text",
        error="" if ok else (f"rows differ: source {src.rows}, target {dst.rows}" if src.rows != dst.rows
                             else f"checksums differ: source {src.hex}, target {dst.hex}"))


def verify_table_on(table: Table, src: psycopg.Connection, dst: psycopg.Connection) -> common_pb2.TableResult:
    """verify_table on a worker's own connections (src inside the snapshot): both scans at once."""
    t0 = time.monotonic()
    columns = table.all_columns
    out: dict[str, Checksum | BaseException] = {}

    def source_side():
        try:
            out["source"] = table_checksum(src, table.schema, table.name, columns)
        except BaseException as err:  # re-raised in the caller's thread
            out["source"] = err

    th = threading.Thread(target=source_side)
    th.start()
    try:
        dst_sum = table_checksum(dst, table.schema, table.name, columns)
    finally:
        th.join()
    src_sum = out["source"]
    if isinstance(src_sum, BaseException):
        raise src_sum
    return result(table, src_sum, dst_sum, time.monotonic() - t0)
