"""Connections each copy worker keeps for the whole run: one to the target, one to the source in the snapshot.

Opening a connection (and a psql process) per table costs more than copying a small table; a
worker reuses its two connections for every unit, index build and check it runs. After any error
the worker's connections are dropped (they may be broken or inside an aborted transaction) and
the retry opens new ones.
"""
from __future__ import annotations

import threading

import psycopg

from dbmigrate.v1 import common_pb2
from services.common.config import env_float
from services.common.pg import connect
from services.execution.verify import source_in_snapshot


def lock_timeout_sql() -> str:
    """A lock another session holds on the target makes a statement fail (retried), not wait forever."""
    seconds = env_float("DBMIGRATE_LOCK_TIMEOUT_SECONDS", 30.0, minimum=0.1)
    return f"SET lock_timeout = '{int(seconds * 1000)}ms'"


class WorkerConnections:
    def __init__(self, source: common_pb2.Connection, target: common_pb2.Connection, snapshot: str,
                 preamble: str = ""):
        self.source_conn, self.target_conn, self.snapshot, self.preamble = source, target, snapshot, preamble
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[psycopg.Connection] = set()

    def _keep(self, c: psycopg.Connection) -> psycopg.Connection:
        with self._lock:
            self._open.add(c)
        return c

    def target(self) -> psycopg.Connection:
        """Autocommit; units open their own transaction block on it."""
        c = getattr(self._local, "target", None)
        if c is None or c.closed:
            c = self._keep(connect(self.target_conn, "target", autocommit=True, application_name="dbmigrate-worker"))
            if self.preamble:
                c.execute(self.preamble)
            c.execute("SET maintenance_work_mem = '256MB'")
            c.execute("SET max_parallel_maintenance_workers = 0")
            c.execute("SET synchronize_seqscans = off")  # verification reads a table from its first page
            c.execute(lock_timeout_sql())
            self._local.target = c
        return c

    def source(self) -> psycopg.Connection:
        """Inside the migration's snapshot for as long as the run lasts."""
        c = getattr(self._local, "source", None)
        if c is None or c.closed:
            c = self._keep(source_in_snapshot(self.source_conn, self.snapshot, "dbmigrate-worker"))
            self._local.source = c
        return c

    def reset(self) -> None:
        """Drops this worker's connections (after an error); the next use opens new ones."""
        for name in ("target", "source"):
            c = getattr(self._local, name, None)
            setattr(self._local, name, None)
            if c is not None:
                with self._lock:
                    self._open.discard(c)
                try:
                    c.close()
                except Exception:
                    pass

    def close_all(self) -> None:
        with self._lock:
            conns, self._open = list(self._open), set()
        for c in conns:
            try:
                c.close()
            except Exception:
                pass
