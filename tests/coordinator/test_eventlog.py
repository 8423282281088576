"""The event log: append-only with a global order, conflicts detected, foreign files refused."""
from __future__ import annotations

import sqlite3

import pytest

from coordinator.eventlog import EventLog
from dbmigrate.v1 import events_pb2 as E
from services.common.errors import ConcurrencyConflict, ConfigError


def started():
    return E.WorkflowEvent(migration_started=E.MigrationStarted())


def test_append_assigns_versions_and_global_sequence(tmp_path):
    log = EventLog(tmp_path / "e.db")
    a = log.append("a", 0, [started(), started()])
    b = log.append("b", 0, [started()])
    c = log.append("a", 2, [started()])
    assert [(e.workflow_id, e.version, e.seq) for e in a + b + c] == [("a", 1, 1), ("a", 2, 2), ("b", 1, 3), ("a", 3, 4)]
    assert [e.seq for e in log.read(from_seq=1, workflow_id="a")] == [2, 4]
    journal, sync = log.db.execute("PRAGMA journal_mode").fetchone()[0], log.db.execute("PRAGMA synchronous").fetchone()[0]
    assert (journal, sync) == ("wal", 2)


def test_same_version_twice_is_a_concurrency_conflict_and_nothing_is_half_written(tmp_path):
    log = EventLog(tmp_path / "e.db")
    log.append("a", 0, [started()])
    with pytest.raises(ConcurrencyConflict):
        log.append("a", 0, [started(), started()])
    assert log.last_seq() == 1


def test_nothing_updates_or_deletes_events(tmp_path):
    log = EventLog(tmp_path / "e.db")
    log.append("a", 0, [started()])
    assert [e.version for e in log.read()] == [1]
    log.close()
    again = EventLog(tmp_path / "e.db")
    assert [e.version for e in again.read()] == [1]


def test_a_file_that_is_not_sqlite_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "events.db"
    path.write_bytes(b"this is a text file, not a database" * 100)
    with pytest.raises(ConfigError, match="not a DBMigrate event log"):
        EventLog(path)
    assert path.read_bytes().startswith(b"this is a text file")


def test_a_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(ConfigError, match="belongs to something else"):
        EventLog(path)


_APPENDER = """
import sys
from coordinator.eventlog import EventLog
from dbmigrate.v1 import events_pb2 as E, common_pb2
log = EventLog(sys.argv[1])
version = log.db.execute("select coalesce(max(version), 0) from events").fetchone()[0]
big = common_pb2.DiscoveryReport(summary="x" * 200_000)  # multi-page rows make a torn write likelier
print("ready", flush=True)
while True:
    log.append("w", version, [E.WorkflowEvent(discovery_completed=E.DiscoveryCompleted(report=big)),
                              E.WorkflowEvent(migration_started=E.MigrationStarted())])
    version += 2
"""


def test_kill9_during_appends_never_leaves_a_torn_event(tmp_path):
    import random
    import signal
    import subprocess
    import sys
    import time
    path = tmp_path / "events.db"
    script = tmp_path / "appender.py"
    script.write_text(_APPENDER)
    rounds = 8
    for _ in range(rounds):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(random.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        log = EventLog(path)
        events = log.read()
        versions = [e.version for e in events]
        assert versions == list(range(1, len(versions) + 1))
        assert len(versions) % 2 == 0, "a two-event append was half written"
        assert all(e.WhichOneof("payload") for e in events)
        log.close()
    assert len(versions) > 0
