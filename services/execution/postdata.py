"""Post-data: indexes, constraints, foreign keys, triggers, policies, comments; each statement idempotent."""
from __future__ import annotations

import weakref

import psycopg

from dbmigrate.v1 import common_pb2
from services.common.errors import DatabaseError
from services.common.pg import connect, is_transient
from services.common.pgdump import durable
from services.execution.schema import Statement

# An object that already exists was made by an earlier attempt: the statement counts as done.
ALREADY_DONE = {"42P07", "42710", "42P16"}
# ADD CONSTRAINT ... USING INDEX of an index that already carries its constraint.
ATTACHED = ALREADY_DONE | {"55000"}


def run_statements(target: common_pb2.Connection, preamble: str, statements: list[Statement],
                   *, resuming: bool, conn: psycopg.Connection | None = None) -> int:
    """Runs each statement in its own transaction; returns how many it ran.

    When `resuming`, an object that already exists was made by the interrupted attempt and counts
    as done; on a first attempt it is a real conflict with something else in the target, and fails.
    """
    if conn is not None:  # a worker's connection: autocommit, preamble already run
        return _run(conn, statements, resuming)
    with connect(target, "target", autocommit=True, application_name="dbmigrate-post-data") as c:
        if preamble:
            c.execute(preamble)
        # Each statement commits without waiting for its WAL flush; one durable commit at the end
        # covers them all before the step is claimed.
        c.execute("SET maintenance_work_mem = '256MB'; SET synchronous_commit = off")
        ran = _run(c, statements, resuming)
        durable(c)
        return ran


# The SETs (Statement.settings) a session last ran: run again only when a statement's differ, not a
# round trip before each of 2,000 tables' index builds (0.15-0.25 s of the data step at 2,000 tables).
_SETTINGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _run(c: psycopg.Connection, statements: list[Statement], resuming: bool) -> int:
    ran = 0
    for st in statements:
        try:
            if st.settings and _SETTINGS.get(c) != st.settings:
                c.execute(st.settings)
                _SETTINGS[c] = st.settings
            c.execute(st.sql)
            ran += 1
        except psycopg.Error as err:
            if resuming and err.sqlstate in (ATTACHED if st.attach else ALREADY_DONE):
                continue
            # A lost connection, a restart of the target, a lock or serialization conflict: retried.
            raise DatabaseError(f"{st.type.lower()} {st.name}: {err.diag.message_primary or err}",
                                retryable=is_transient(err)) from None
    return ran
