"""The COPY pump: source COPY TO STDOUT streamed into target COPY FROM STDIN, in bounded memory.

The source side runs in `psql` (it imports the migration's snapshot, then writes COPY output to a
pipe); Python reads the pipe in 1 MiB chunks and writes them to the target connection's COPY. A
psycopg loop on the source would pay Python overhead per row (one block per row); chunks keep the
pump at the speed of a raw `psql | psql` pipe. Memory is one chunk per running copy. A small table
(below PSQL_BYTES) is copied on connections the worker holds (copy_direct), through libpq's COPY calls
(read_copy, write_copy): no process to start, and no Python per row.

    stats = copy_into(dst_conn, source, snapshot, copy_out_sql, copy_in_sql, on_bytes=...)

`dst_conn` is a psycopg connection whose transaction the caller owns (empty the table or range
first, commit after), so a copy is all or nothing.
"""
from __future__ import annotations

import select
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import psycopg
from psycopg import pq, sql

from dbmigrate.v1 import common_pb2
from services.common.catalog import Table
from services.common.checksum import stream_hash
from services.common.errors import Cancelled
from services.common.pgdump import _fail, tool_dsn, tool_env
from services.common.pgtools import psql

CHUNK = 1 << 20

# Below this size a table's COPY runs in-process on a connection the worker already has (no psql to
# start); from it on through psql: psycopg's COPY iteration yields about one block per row, so the
# in-process path pays Python per row and loses on larger tables. Used for the copy and the check.
PSQL_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class CopyStats:
    rows: int
    bytes: int
    seconds: float
    digest: str = ""   # digest of the COPY stream as it left the source (see execution/verify.py)
    binary: bool = True  # the stream's format (binary, or text where the binary form was refused)


def copy_out_sql(table: Table, *, binary: bool, where: sql.Composable | None = None,
                 limit: int | None = None, order_by: list[str] | None = None) -> sql.Composed:
    """COPY of a table's copyable columns (generated ones are computed by the target) TO STDOUT."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in table.copy_columns)
    fmt = sql.SQL("(FORMAT binary)" if binary else "(FORMAT text)")
    ident = sql.Identifier(table.schema, table.name)
    if where is None and limit is None:
        # A table without copyable columns (none at all, or only generated ones) still holds rows:
        # COPY without a column list moves them ("()" would be a syntax error).
        listed = sql.SQL(" ({})").format(cols) if table.copy_columns else sql.SQL("")
        return sql.SQL("COPY {}{} TO STDOUT {}").format(ident, listed, fmt)
    query = sql.SQL("SELECT {} FROM ONLY {}").format(cols, ident)
    if where is not None:
        query = sql.SQL("{} WHERE {}").format(query, where)
    if order_by:
        query = sql.SQL("{} ORDER BY {}").format(query, sql.SQL(", ").join(sql.Identifier(c) for c in order_by))
    if limit is not None:
        query = sql.SQL("{} LIMIT {}").format(query, sql.Literal(limit))
    return sql.SQL("COPY ({}) TO STDOUT {}").format(query, fmt)


def copy_in_sql(schema: str, name: str, columns: list[str], *, binary: bool, freeze: bool = False) -> sql.Composed:
    opts = ["FORMAT binary" if binary else "FORMAT text"] + (["FREEZE"] if freeze else [])
    listed = sql.SQL(" ({})").format(sql.SQL(", ").join(sql.Identifier(c) for c in columns)) if columns else sql.SQL("")
    return sql.SQL("COPY {}{} FROM STDIN ({})").format(sql.Identifier(schema, name), listed, sql.SQL(", ".join(opts)))


# psql writes COPY output row by row through stdio, whose buffer on a pipe is 4 KB: a write(2)
# every 4 KB. stdbuf (coreutils) gives psql's stdout a 1 MiB buffer instead: for a 343 MB stream
# psql's CPU goes from 0.47-0.51 s to 0.25-0.28 s, and ours from 0.36-0.40 s to 0.25 s.
_STDBUF = ["stdbuf", "-o", "1M"] if shutil.which("stdbuf") else []


class _PsqlCopyOut:
    """`psql` running one COPY ... TO STDOUT (inside `snapshot` when given), read from its stdout in
    chunks of CHUNK bytes. psql takes libpq's one message per row in C; Python sees chunks."""

    def __init__(self, conn: common_pb2.Connection, copy_out: str, *, snapshot: str | None = None,
                 settings: list[str] | tuple[str, ...] = (), application_name: str = "dbmigrate-copy"):
        self.conn = conn
        args = _STDBUF + [psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", tool_dsn(conn, application_name)]
        for statement in settings:
            args += ["-c", statement]
        if snapshot:
            args += ["-c", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                     "-c", f"SET TRANSACTION SNAPSHOT '{snapshot}'"]
        args += ["-c", copy_out]
        # Buffered: read(CHUNK) returns a full chunk, gathered by C from psql's 4-32 KB writes; an
        # unbuffered read returned each of those to Python (11,000-19,000 reads for 343 MB instead of
        # 393, and as many writes into the target's COPY): 0.2 s of CPU per 343 MB on each side.
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=tool_env(conn),
                                     bufsize=CHUNK)

    def chunks(self, cancel: threading.Event | None = None):
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("the copy was cancelled")
            chunk = self.proc.stdout.read(CHUNK)
            if not chunk:
                return
            yield chunk

    def check(self, what: str) -> None:
        """After the last chunk: raises the database's error when psql failed."""
        stderr = self.proc.stderr.read().decode(errors="replace")
        if self.proc.wait() != 0:
            raise _fail(what, self.conn, stderr)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


def pump(chunks: Iterable[bytes], write: Callable[[bytes], object] | None = None, *,
         on_bytes: Callable[[int], None] | None = None, cancel: threading.Event | None = None) -> tuple[str, int]:
    """The one COPY pump: every chunk of a COPY stream into `write` (when given) and into the stream's
    digest (XXH3-128, services.common.checksum); returns the digest and the bytes."""
    digest = stream_hash()
    total = 0
    for chunk in chunks:
        if cancel is not None and cancel.is_set():
            raise Cancelled("the copy was cancelled")
        if write is not None:
            write(chunk)
        digest.update(chunk)
        total += len(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))
    return digest.hexdigest(), total


def read_copy(conn: psycopg.Connection, copy_out: sql.Composable, *, cancel: threading.Event | None = None,
              counted: list[int] | None = None):
    """The chunks (of CHUNK bytes, the last one shorter) of one COPY ... TO STDOUT run on `conn`.

    psycopg's COPY iteration yields one block per row, each through a Python generator and a wait on
    the socket: about 20 us of CPU per row, 1.2 ms for a table of 50 rows, which on 2,000 small tables
    kept a core busy. Here libpq hands over every row it already holds in one C call each, and Python
    waits on the socket only when libpq has nothing buffered. `counted` receives the row count the
    server reported. When the generator is left before the COPY ended (an error, a cancel; close it),
    the connection is closed: it is mid-COPY and of no further use. The session is the calling
    thread's own (psycopg's lock is not taken across the yields).
    """
    if not _plain_session(conn):  # psycopg's own COPY
        with conn.cursor() as cur, cur.copy(copy_out) as cp:
            yield from _gathered(bytes(block) for block in cp)
            if counted is not None:
                counted.append(max(cur.rowcount, 0))
        return
    pgconn = conn.pgconn
    wait_readable, wait_writable = _waits(pgconn, cancel)
    done = False

    def rows():
        nonlocal done
        while True:
            nbytes, data = pgconn.get_copy_data(1)
            if nbytes > 0:
                yield data
            elif nbytes == 0:
                wait_readable()
            else:
                break
        result = _last_result(pgconn, wait_readable)
        done = True
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise _error(result, conn)
        if counted is not None:
            counted.append(result.command_tuples or 0)

    try:
        refused = _start_copy(conn, copy_out, pq.ExecStatus.COPY_OUT, wait_readable, wait_writable)
        if refused is not None:
            done = True
            raise refused
        yield from _gathered(rows())  # the last chunk only after the server's answer
    finally:
        if not done:
            pgconn.finish()  # mid-COPY: nothing else can run on this session


def write_copy(conn: psycopg.Connection, copy_in: sql.Composable, chunks: Iterable[bytes], *,
               on_bytes: Callable[[int], None] | None = None, cancel: threading.Event | None = None
               ) -> tuple[str, int, int]:
    """COPY ... FROM STDIN on `conn` fed with `chunks`: (digest, bytes, rows written), the digest as
    pump() takes it. The libpq counterpart of read_copy (psycopg's COPY costs three waits of its own per
    COPY). Outside an open transaction or an idle autocommit session (see read_copy), psycopg's COPY."""
    if not _plain_session(conn):
        with conn.cursor() as cur:
            with cur.copy(copy_in) as cp:
                digest, total = pump(chunks, cp.write, on_bytes=on_bytes, cancel=cancel)
            return digest, total, max(cur.rowcount, 0)
    pgconn = conn.pgconn
    wait_readable, wait_writable = _waits(pgconn, cancel)
    done = False

    def write(data: bytes) -> None:
        while not pgconn.put_copy_data(data):  # 0: libpq's buffer is full, wait until it drains
            wait_writable()

    def end(error: bytes | None):
        while not pgconn.put_copy_end(error):
            wait_writable()
        while pgconn.flush():
            wait_writable()
        return _last_result(pgconn, wait_readable)

    try:
        refused = _start_copy(conn, copy_in, pq.ExecStatus.COPY_IN, wait_readable, wait_writable)
        if refused is not None:
            done = True
            raise refused
        try:
            digest, total = pump(chunks, write, on_bytes=on_bytes, cancel=cancel)
        except BaseException as err:  # the COPY ends with an error (none of its rows stay); the session lives on
            end(f"dbmigrate: {type(err).__name__}".encode())
            done = True
            raise
        result = end(None)
        done = True
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise _error(result, conn)
        return digest, total, result.command_tuples or 0
    finally:
        if not done:
            pgconn.finish()  # mid-COPY: nothing else can run on this session


def _gathered(blocks: Iterable) -> Iterable[bytes]:
    """The blocks (rows) joined into chunks of at least CHUNK bytes, the last one shorter."""
    parts, size = [], 0
    for block in blocks:
        parts.append(block)
        size += len(block)
        if size >= CHUNK:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)


def _start_copy(conn: psycopg.Connection, statement: sql.Composable, status, wait_readable, wait_writable):
    """Sends a COPY statement and waits for the server to enter COPY (`status`). When the server
    refuses it (an unknown table, say), returns psycopg's error, the session idle again."""
    pgconn = conn.pgconn
    pgconn.send_query(statement.as_bytes(conn))  # raises psycopg.OperationalError when it fails
    while pgconn.flush():  # a nonblocking session: the statement may not have left at once
        wait_writable()
    result = _next_result(pgconn, wait_readable)
    if result.status == status:
        return None
    _drain(pgconn, wait_readable)
    return _error(result, conn)


def _plain_session(conn: psycopg.Connection) -> bool:
    """An idle autocommit session or one inside an open transaction: where a statement sent through
    libpq runs as psycopg would run it (on an idle session without autocommit psycopg BEGINs first)."""
    status = conn.pgconn.transaction_status
    return not conn.closed and (status == pq.TransactionStatus.INTRANS
                                or (status == pq.TransactionStatus.IDLE and conn.autocommit))


def _waits(pgconn, cancel: threading.Event | None):
    """wait_readable (then consume what arrived) and wait_writable on the session's socket, each giving
    the cancel event a look every 0.5 s."""
    readable, writable = select.poll(), select.poll()
    readable.register(pgconn.socket, select.POLLIN)
    writable.register(pgconn.socket, select.POLLOUT)

    def wait(poller) -> None:
        while not poller.poll(500):
            if cancel is not None and cancel.is_set():
                raise Cancelled("the copy was cancelled")

    def wait_readable() -> None:
        wait(readable)
        pgconn.consume_input()

    return wait_readable, lambda: wait(writable)


def _next_or_none(pgconn, wait_readable):
    """libpq's next result, once it is all in; None when the session is idle again."""
    while pgconn.is_busy():
        wait_readable()
    return pgconn.get_result()


def _next_result(pgconn, wait_readable):
    result = _next_or_none(pgconn, wait_readable)
    if result is None:
        raise psycopg.OperationalError(pgconn.get_error_message() or "the server sent no result")
    return result


def _drain(pgconn, wait_readable) -> None:
    """Reads the results left until the session is idle again."""
    while _next_or_none(pgconn, wait_readable) is not None:
        pass


def _last_result(pgconn, wait_readable):
    """The COPY's own result, once the session is idle again."""
    result = _next_result(pgconn, wait_readable)
    _drain(pgconn, wait_readable)
    return result


def _error(result, conn: psycopg.Connection) -> psycopg.Error:
    return psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


def copy_direct(src: psycopg.Connection, dst: psycopg.Connection, copy_out: sql.Composable, copy_in: sql.Composable,
                *, on_bytes: Callable[[int], None] | None = None, cancel: threading.Event | None = None) -> CopyStats:
    """COPY TO on the source connection streamed into COPY FROM on the target, inside dst's transaction."""
    t0 = time.monotonic()
    chunks = read_copy(src, copy_out, cancel=cancel)
    try:
        digest, total, rows = write_copy(dst, copy_in, chunks, on_bytes=on_bytes, cancel=cancel)
    finally:
        chunks.close()
    return CopyStats(rows=max(rows, 0), bytes=total, seconds=time.monotonic() - t0, digest=digest)


def copy_into(dst: psycopg.Connection, source: common_pb2.Connection, snapshot: str | None,
              copy_out: sql.Composable, copy_in: sql.Composable, *,
              on_bytes: Callable[[int], None] | None = None, cancel: threading.Event | None = None,
              settings: list[str] | tuple[str, ...] = ()) -> CopyStats:
    """Streams one COPY from the source into `dst` inside dst's open transaction; returns rows and bytes.
    `settings` are SET statements for the source session (e.g. to keep a key-ordered read on its index)."""
    t0 = time.monotonic()
    reader = _PsqlCopyOut(source, copy_out.as_string(dst), snapshot=snapshot, settings=settings)
    try:
        with dst.cursor() as cur:
            with cur.copy(copy_in) as cp:
                digest, total = pump(reader.chunks(cancel), cp.write, on_bytes=on_bytes)
                # Leaving the block with an exception makes psycopg end the COPY with an error.
                reader.check("reading the source (COPY TO)")
            rows = cur.rowcount
    finally:
        reader.close()
    return CopyStats(rows=max(rows, 0), bytes=total, seconds=time.monotonic() - t0, digest=digest)


def read_digest(conn: psycopg.Connection, copy_out: sql.Composable, *,
                cancel: threading.Event | None = None) -> tuple[int, str]:
    """(rows, digest) of one COPY ... TO STDOUT run on `conn` in-process: the digest copy_into and
    copy_direct take of the stream they copy, for a stream small enough not to need psql."""
    counted: list[int] = []
    chunks = read_copy(conn, copy_out, cancel=cancel, counted=counted)
    try:
        digest, _ = pump(chunks)
    finally:
        chunks.close()
    return counted[0], digest


def stream_digest(conn: common_pb2.Connection, copy_out: str, *, settings: list[str] | tuple[str, ...] = (),
                  cancel: threading.Event | None = None) -> str:
    """Digest of one COPY ... TO STDOUT run by psql on `conn`: the same digest copy_into takes of the
    source stream, at a fraction of the CPU of iterating psycopg's one-block-per-row COPY."""
    reader = _PsqlCopyOut(conn, copy_out, settings=settings, application_name="dbmigrate-verify")
    try:
        digest, _ = pump(reader.chunks(cancel))
        reader.check("reading the target (COPY TO)")
    finally:
        reader.close()
    return digest
