"""Sessions the agents keep for a whole run: a source connection inside the migration's snapshot, and
one connection per worker thread to each side, reused for every table the worker handles.

Opening a connection (and a psql process) per table costs more than copying a small table. After any
error a worker's connections are dropped (they may be broken, or inside an aborted transaction) and
the next use opens new ones.
"""
from __future__ import annotations

import threading
from typing import Sequence

import psycopg
from psycopg import sql

from dbmigrate.v1 import common_pb2
from services.common.pg import connect


def source_in_snapshot(source: common_pb2.Connection, snapshot: str, application_name: str) -> psycopg.Connection:
    """A source connection whose transaction sees exactly the migration's snapshot."""
    c = connect(source, "source", application_name=application_name)
    c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    c.read_only = True
    c.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))  # first statement of the tx
    return c


class WorkerConnections:
    """Per thread: target() (autocommit: work opens its own transaction blocks on it, after
    `target_settings` ran once) and source() (in `snapshot` for as long as the run lasts)."""

    def __init__(self, source: common_pb2.Connection, target: common_pb2.Connection, snapshot: str,
                 target_settings: Sequence[str] = (), application_name: str = "dbmigrate-worker"):
        self.source_conn, self.target_conn, self.snapshot = source, target, snapshot
        self.target_settings = list(target_settings)
        self.application_name = application_name
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[psycopg.Connection] = set()

    def _keep(self, c: psycopg.Connection) -> psycopg.Connection:
        with self._lock:
            self._open.add(c)
        return c

    def target(self) -> psycopg.Connection:
        c = getattr(self._local, "target", None)
        if c is None or c.closed:
            c = self._keep(connect(self.target_conn, "target", autocommit=True,
                                   application_name=self.application_name))
            for statement in self.target_settings:
                c.execute(statement)
            self._local.target = c
        return c

    def source(self) -> psycopg.Connection:
        c = getattr(self._local, "source", None)
        if c is None or c.closed:
            c = self._keep(source_in_snapshot(self.source_conn, self.snapshot, self.application_name))
            self._local.source = c
        return c

    def reset(self) -> None:
        """Drops this thread's connections (after an error); the next use opens new ones."""
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
