"""Write traffic on the source: two readings of its write counters, and the finding they make.

Discovery takes the first reading; the sample test migration takes the second when it ends, so the
window between them is the time both phases take anyway (a fixed wait of a second used to cost more
than it told on a small database). PostgreSQL sessions publish their counters when their transactions
end, at most a second late, and a session holding a writing transaction is seen at either reading.
"""
from __future__ import annotations

import psycopg

from dbmigrate.v1 import common_pb2

READING = """SELECT (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint FROM pg_stat_user_tables),
                    (SELECT count(*) FROM pg_stat_activity
                      WHERE datname = current_database() AND pid <> pg_backend_pid()
                        AND backend_type = 'client backend' AND backend_xid IS NOT NULL)::int,
                    extract(epoch FROM clock_timestamp())::float8"""


def reading(conn: psycopg.Connection) -> tuple[int, int, float]:
    """(rows changed so far, sessions holding a writing transaction, server time in seconds)."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    changed, writers, at = conn.execute(READING).fetchone()
    return int(changed), int(writers), float(at)


def write_traffic(delta: int, seconds: float, writers: int, *, online: bool = False) -> common_pb2.Finding | None:
    """WRITE_TRAFFIC, or None when nothing was written. Online (MigrationOptions.online) the writes
    stream to the target, so the finding says so instead of asking to stop them."""
    if delta <= 0 and writers <= 0:
        return None
    if online:
        return common_pb2.Finding(
            code="WRITE_TRAFFIC", severity=common_pb2.INFO, object="source database",
            message=f"the source is being written to: {delta:,} rows changed in {seconds:.1f}s and {writers} sessions "
                    "hold writing transactions. The migration is online: the copy reads a replication slot's "
                    "snapshot and every write after it streams to the target until the cutover",
            remedy="nothing to do; creating the slot waits for the write transactions open at that moment, so keep "
                   "them short when the migration starts")
    return common_pb2.Finding(
        code="WRITE_TRAFFIC", severity=common_pb2.MEDIUM, object="source database",
        message=f"the source is being written to: {delta:,} rows changed in {seconds:.1f}s and {writers} sessions "
                "hold writing transactions. The copy is a snapshot at the moment the migration starts; writes "
                "after it are not copied",
        remedy="stop the applications that write (or make the source read-only) before the migration starts, or "
               "plan a cutover: migrate, then move the writers to the target and replay what changed")
