"""The execution workers' sessions (services.common.sessions) with the settings the execution needs."""
from __future__ import annotations

from dbmigrate.v1 import common_pb2
from services.common.config import settings
from services.common.sessions import WorkerConnections


def lock_timeout_sql() -> str:
    """A lock another session holds on the target makes a statement fail (retried), not wait forever."""
    return f"SET lock_timeout = '{int(settings().lock_timeout_seconds * 1000)}ms'"


def worker_connections(source: common_pb2.Connection, target: common_pb2.Connection, snapshot: str,
                       preamble: str = "") -> WorkerConnections:
    """The copy and finishing workers' sessions: the post-data preamble (search_path, ...), room for
    index builds, one maintenance worker each (two builds at once use the two cores better), every
    read of a table from its first page, the lock timeout, and commits that do not wait for their
    WAL flush (the events that claim them wait instead: services.execution.durable)."""
    return WorkerConnections(source, target, snapshot, [s for s in (
        preamble, "SET maintenance_work_mem = '256MB'", "SET max_parallel_maintenance_workers = 0",
        "SET synchronize_seqscans = off", lock_timeout_sql(), "SET synchronous_commit = off") if s])
