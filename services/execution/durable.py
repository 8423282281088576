"""Events that claim what the workers committed are sent once those commits are on disk.

The workers commit with synchronous_commit off: a small table's copy, index build, check and ANALYZE
are four commits, and waiting for each one's WAL flush cost more than the work (2,000 small tables:
8,000 flushes). Instead the events that say a unit is copied, a table verified or its indexes built
wait here; every INTERVAL one durable commit on the target (services.common.pgdump.durable: it
flushes the WAL of every commit before it) lets everything that waited go. A crash of the target
before that loses only work no event claimed yet, which a resumed run does again (every unit is
idempotent); the coordinator never records a fact the target could forget.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from dbmigrate.v1 import agents_pb2, common_pb2
from services.common.pg import connect
from services.common.pgdump import durable

log = logging.getLogger(__name__)

INTERVAL = 0.2  # seconds
# Events that state nothing about the target's durable state go out at once.
_AT_ONCE = {"table_progress", "log", "step_started"}


class DurableEvents:
    def __init__(self, target: common_pb2.Connection, emit: Callable[[agents_pb2.ExecutionEvent], None]):
        self.target, self._emit = target, emit
        self._pending: list[agents_pb2.ExecutionEvent] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._conn = None
        self._thread = threading.Thread(target=self._loop, name="durable-events", daemon=True)
        self._thread.start()

    def emit(self, ev: agents_pb2.ExecutionEvent) -> None:
        if ev.WhichOneof("event") in _AT_ONCE:
            self._emit(ev)
            return
        with self._lock:
            self._pending.append(ev)

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.target, "target", autocommit=True, application_name="dbmigrate-durable")
        durable(self._conn)
        for ev in batch:
            self._emit(ev)

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(INTERVAL)
            try:
                self._flush()
            except Exception as err:  # the target away: the events wait for the next round, or are dropped
                log.warning("waiting to confirm the target's commits: %s", err)
                if self._conn is not None:
                    self._conn.close()
                self._conn = None

    def close(self) -> None:
        """The last flush, then stop: what cannot be confirmed is not sent (a resume redoes it)."""
        self._stop = True
        self._wake.set()
        self._thread.join()
        try:
            self._flush()
        except Exception as err:
            with self._lock:
                lost, self._pending = len(self._pending), []
            log.warning("%d events not sent: the target's commits could not be confirmed (%s)", lost, err)
        finally:
            if self._conn is not None:
                self._conn.close()
