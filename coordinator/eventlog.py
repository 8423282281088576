"""The SQLite event log: append-only, one row per fact, the truth the coordinator replays."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Iterator, NamedTuple

from google.protobuf.message import DecodeError

from services.common.memory import import_without


# The log stores bytes and numbers: sqlite-utils goes without the pandas and numpy it would import.
Database = import_without("sqlite_utils", ("pandas", "numpy")).Database

from dbmigrate.v1 import events_pb2
from services.common.errors import ConcurrencyConflict, ConfigError, DBMigrateError

APPLICATION_ID = 0x44424D47  # "DBMG": marks the file as a DBMigrate event log
SCHEMA_VERSION = 1


class CorruptEvent(DBMigrateError):
    """A stored event cannot be decoded or names an event type this version does not know."""


class Stored(NamedTuple):
    """An event as those who only pass it on need it: its envelope and its serialized form, seq included.

    The NATS publisher and WatchEvents send events without reading their payloads. A parsed report
    takes about six times its serialized size (the discovery of 2,000 tables: 0.7 MB on the wire,
    4.3 MB parsed; ten times that for 20,000 tables), so the coordinator keeps and passes on these.
    """
    seq: int
    workflow_id: str
    version: int
    type: str
    data: bytes

    def parsed(self) -> events_pb2.WorkflowEvent:
        return EventLog._decode(self.seq, self.data)


def _with_seq(seq: int, payload: bytes) -> bytes:
    """The stored payload (written with seq 0, so without the field) with its seq: a serialized message
    followed by another is parsed as their merge, so this is the event as read() returns it, serialized."""
    return payload + events_pb2.WorkflowEvent(seq=seq).SerializeToString()


def event_type(event: events_pb2.WorkflowEvent) -> str:
    kind = event.WhichOneof("payload")
    if kind is None:
        raise CorruptEvent(f"event {event.workflow_id}:{event.version} has no payload this version knows")
    return kind


class EventLog:
    """Append-only log in SQLite (WAL, synchronous=FULL), UNIQUE(workflow_id, version), global seq."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            self.db = Database(str(self.path))
            app_id = self.db.execute("PRAGMA application_id").fetchone()[0]
            tables = set(self.db.table_names())
        except sqlite3.DatabaseError as err:
            raise ConfigError(
                f"DBMIGRATE_EVENT_LOG={self.path}: not a DBMigrate event log ({err}); "
                "point DBMIGRATE_EVENT_LOG at the right file or at a new path") from None
        if existed and app_id != APPLICATION_ID and tables:
            raise ConfigError(
                f"DBMIGRATE_EVENT_LOG={self.path}: this SQLite file belongs to something else "
                f"(application_id {app_id}, tables {', '.join(sorted(tables)[:5])}); refusing to use it")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.enable_wal()
        self.db.execute("PRAGMA synchronous=FULL")
        if app_id != APPLICATION_ID:
            self.db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        events = self.db["events"]
        if not events.exists():
            events.create({"seq": int, "workflow_id": str, "version": int, "type": str,
                           "payload": bytes, "recorded_at": str}, pk="seq", not_null={"workflow_id", "version", "type", "payload"})
            events.create_index(["workflow_id", "version"], unique=True)
        cursors = self.db["cursors"]
        if not cursors.exists():
            cursors.create({"name": str, "seq": int}, pk="name")

    def close(self) -> None:
        self.db.close()

    def append(self, workflow_id: str, expected_version: int,
               events: list[events_pb2.WorkflowEvent]) -> list[events_pb2.WorkflowEvent]:
        """Appends events after `expected_version` in one transaction; returns them with version and seq.

        A version that is already taken raises ConcurrencyConflict: someone else appended first.
        """
        return self.append_stored(workflow_id, expected_version, events)[0]

    def append_stored(self, workflow_id: str, expected_version: int, events: list[events_pb2.WorkflowEvent]
                      ) -> tuple[list[events_pb2.WorkflowEvent], list[Stored]]:
        """As append(), with the events also as Stored, from the bytes written (not serialized again)."""
        rows = []
        for i, ev in enumerate(events, start=1):
            ev.workflow_id = workflow_id
            ev.version = expected_version + i
            ev.seq = 0
            rows.append((workflow_id, ev.version, event_type(ev), ev.SerializeToString(),
                         ev.time.ToJsonString()))
        conn = self.db.conn
        # BEGIN IMMEDIATE takes the write lock up front, so a second writer waits (busy_timeout)
        # instead of failing on the read-to-write upgrade.
        self.db.execute("BEGIN IMMEDIATE")
        try:
            seqs = []
            for row in rows:
                cur = conn.execute(
                    "INSERT INTO events (workflow_id, version, type, payload, recorded_at) VALUES (?, ?, ?, ?, ?)", row)
                seqs.append(cur.lastrowid)
            self.db.commit()
        except sqlite3.IntegrityError:
            self.db.rollback()
            raise ConcurrencyConflict(
                f"workflow {workflow_id} already has version {expected_version + 1}; reload and retry") from None
        except BaseException:
            self.db.rollback()
            raise
        for ev, seq in zip(events, seqs):
            ev.seq = seq
        return events, [Stored(seq, workflow_id, version, kind, _with_seq(seq, payload))
                        for seq, (_, version, kind, payload, _) in zip(seqs, rows)]

    def read(self, from_seq: int = 0, workflow_id: str | None = None,
             limit: int | None = None) -> list[events_pb2.WorkflowEvent]:
        """Events with seq > from_seq in global order, optionally of one workflow."""
        return [stored.parsed() for stored in self.read_stored(from_seq, workflow_id, limit)]

    def read_stored(self, from_seq: int = 0, workflow_id: str | None = None,
                    limit: int | None = None) -> list[Stored]:
        """As read(), each event as Stored: its payload is not parsed."""
        sql = "SELECT seq, workflow_id, version, type, payload FROM events WHERE seq > ?"
        params: list = [from_seq]
        if workflow_id:
            sql += " AND workflow_id = ?"
            params.append(workflow_id)
        sql += " ORDER BY seq"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [Stored(seq, wid, version, kind, _with_seq(seq, payload))
                for seq, wid, version, kind, payload in self.db.execute(sql, params)]

    def iter_all(self, batch: int = 5000) -> Iterator[events_pb2.WorkflowEvent]:
        last = 0
        while True:
            rows = self.db.execute("SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                   [last, batch]).fetchall()
            if not rows:
                return
            for seq, payload in rows:
                yield self._decode(seq, payload)
            last = rows[-1][0]

    @staticmethod
    def _decode(seq: int, payload: bytes) -> events_pb2.WorkflowEvent:
        ev = events_pb2.WorkflowEvent()
        try:
            ev.ParseFromString(payload)
        except DecodeError as err:
            raise CorruptEvent(f"event at seq {seq} cannot be decoded: {err}") from None
        ev.seq = seq
        return ev

    def last_seq(self) -> int:
        return self.db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]

    def cursor(self, name: str) -> int:
        row = self.db.execute("SELECT seq FROM cursors WHERE name = ?", [name]).fetchone()
        return row[0] if row else 0

    def set_cursor(self, name: str, seq: int) -> None:
        self.db.execute("INSERT INTO cursors (name, seq) VALUES (?, ?) "
                        "ON CONFLICT(name) DO UPDATE SET seq = excluded.seq", [name, seq])
