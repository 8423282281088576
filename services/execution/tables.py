"""The data phase of one Execute call: every table copied, finished and proven, by a CopyPool.

Units (whole tables or key ranges) are copied largest first. When a table's last unit is in, the
Finishing state machine (finishing.py) says what it needs next: index builds, the check of its
rows and checksum against the source's snapshot, ANALYZE, the foreign keys validated early, the
seal. This module runs those items against the databases and tells the machine when each is done.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from dbmigrate.v1 import agents_pb2, common_pb2
from services.common.catalog import Table, split_threshold
from services.common.copy import PSQL_BYTES
from services.common.errors import DBMigrateError, DatabaseError, Unavailable
from services.common.pg import is_transient
from services.execution import data
from services.execution.conns import lock_timeout_sql, worker_connections
from services.execution.finishing import Finishing, Item
from services.execution.pool import CopyPool
from services.execution.postdata import run_statements
from services.execution.schema import Statement, foreign_key_tables, split_qualified, split_validation
from services.execution.units import Unit, parts_for, split
from services.execution.verify import verify_by_stream, verify_table_on

if TYPE_CHECKING:
    from services.execution.runner import ExecutionRun

PROGRESS_INTERVAL = 1.0  # seconds between progress events of one table


class DataPhase:
    def __init__(self, run: "ExecutionRun", exporter: psycopg.Connection, snapshot: str, tables: list[Table], post):
        self.run, self.snapshot, self.post = run, snapshot, post
        self.lock = run.lock
        self.per_table = {split_qualified(k): v for k, v in post.per_table.items()}
        self.pending: dict[str, int] = {}       # table -> units still to copy
        self.todo_of: dict[str, list[Unit]] = {}
        self.units_of: dict[str, list[Unit]] = {}
        self.copied: dict[str, tuple[int, str, bool]] = {}  # unit id -> rows, digest and format of its COPY stream
        self.table_bytes: dict[str, int] = {}
        self.table_seconds: dict[str, float] = {}  # copy time of the table's units, the check's added
        self.started: dict[str, float] = {}
        self.progress: dict[str, list] = {}     # table -> [bytes, started, last emit]
        self.deferred: set[str] = set()
        self.retry: list[Unit] = []
        # A small table's copy and proof wait here for its seal: one event says all three (a
        # TableVerified with `copied` and `sealed`), not three (2,000 small tables: 4,000 events fewer
        # for the agent to send, the coordinator to append and publish and every watcher to read).
        self.held: dict[str, agents_pb2.TableVerified] = {}
        self.tables = self._units(exporter, tables)
        self.by_name = {t.qualified: t for t in self.tables}
        self.early_fks, at_seal = self._early_keys()
        self.machine = Finishing(keys={i: (t.qualified, r.qualified) for i, (_, t, r) in enumerate(self.early_fks)},
                                 made_at_seal=at_seal)
        self.conns = worker_connections(run.source, run.target, snapshot, post.preamble)
        self.pool = CopyPool(run.jobs, run.cancel, on_error=self.conns.reset)

    # ---- setting up ----

    def _units(self, exporter: psycopg.Connection, tables: list[Table]) -> list[Table]:
        """The tables this attempt still copies or finishes, with their units."""
        run = self.run
        planned = {(p.schema, p.name): p.parts for p in run.req.plan.tables}
        threshold = split_threshold(run.opts.split_threshold_bytes, run.jobs)
        out = []
        for t in tables:
            if t.qualified in run.verified and f"indexes:{t.qualified}" in run.steps_done:
                run.results[t.qualified] = common_pb2.TableResult(table=t.qualified, verified=True,
                                                                  source_rows=-1, target_rows=-1)
                continue
            units = split(exporter, t, parts_for(t, threshold, planned.get((t.schema, t.name))))
            todo = [u for u in units if u.id not in run.units_done]
            if todo and len(units) > 1:
                # A part may have committed without being recorded: empty the table, copy every part again.
                data.truncate(run.target, t.schema, t.name)  # keys pointing at it dropped; post-data remakes them
                todo = units
            self.todo_of[t.qualified], self.units_of[t.qualified] = todo, units
            self.pending[t.qualified] = len(todo)
            out.append(t)
        return out

    def _early_keys(self) -> tuple[list[tuple[Statement, Table, Table]], set[str]]:
        """Foreign keys between two tables of this attempt, validated in the data phase (beside other
        tables' copies and checks, not one at a time after them); the rest come with post-data. A
        table whose keys are all built by its index items is ready for keys to it once built and
        analyzed; any other (a small table, whose primary key its seal makes; a key in another
        tablespace) once sealed. Keys on such a table are left to post-data: its seal then waits for
        no key, and no two seals wait for each other. Also returns those tables, qualified."""
        in_run = {(t.schema, t.name): t for t in self.tables}
        built = {k for k in in_run if all(st.beside_reads or st.attach for st in self.per_table.get(k, []))}
        pairs = [(st, foreign_key_tables(st)) for st in self.post.rest]
        pairs = [(st, pair) for st, pair in pairs if pair and pair[0] in in_run and pair[1] in in_run]
        at_seal = {pair[1] for _, pair in pairs if pair[1] not in built}
        return ([(st, in_run[pair[0]], in_run[pair[1]]) for st, pair in pairs if pair[0] not in at_seal],
                {in_run[k].qualified for k in at_seal})

    # ---- the run ----

    def run_all(self) -> None:
        self.pool.start()
        for t in sorted(self.tables, key=lambda t: -t.bytes):
            if not self.todo_of[t.qualified]:
                self._copied_whole(t)
            for u in self.todo_of[t.qualified]:
                self.pool.copy(self.copy, u)
        self.pool.wait_copies()
        for unit in self.retry:  # copies a CHECK constraint refused while other tables were still coming
            self.pool.copy(self.copy, unit)
        self.pool.close()
        self.conns.close_all()
        self.run.spent = self.pool.spent
        self.run._log("workers' time: " + self.pool.time_spent())
        if self.pool.errors:
            raise _as_error(self.pool.errors[0])
        self.run._check_cancel()

    def _queue(self, items: list[Item]) -> None:
        work = {"check": self.check, "build": self.build, "analyze": self.analyze, "fk": self.validate_key,
                "seal": self.seal}
        for kind, arg in items:
            self.pool.finish(work[kind], arg)

    def _copied_whole(self, t: Table) -> None:
        """The table's last unit is in: hand it to the state machine."""
        run = self.run
        done = f"indexes:{t.qualified}" in run.steps_done
        builds = [] if done else self._builds(t)
        units = self.units_of[t.qualified]
        small = len(units) == 1 and t.bytes < PSQL_BYTES  # analyzed with others at the end, in one statement
        with self.lock:
            self.started[t.qualified] = time.monotonic()
            items = self.machine.copied(t.qualified, len(builds), analyzed=done or small,
                                        check_first=not (len(units) > 1 and all(u.order_by for u in units)))
        self._queue(items)

    def _builds(self, t: Table) -> list[Statement]:
        return [st for st in self.per_table.get((t.schema, t.name), []) if st.beside_reads]

    # ---- the items ----

    def copy(self, unit: Unit) -> None:
        t = unit.table
        try:
            stats = data.copy_unit(unit, self.conns, self.run.source, self.snapshot, on_bytes=self._on_bytes(unit),
                                   cancel=self.run.cancel, fresh=not self.run.resuming)
        except psycopg.errors.CheckViolation as err:
            self._defer(unit, err)
            return
        with self.lock:
            self.copied[unit.id] = (stats.rows, stats.digest, stats.binary)
            self.table_bytes[t.qualified] = self.table_bytes.get(t.qualified, 0) + stats.bytes
            self.table_seconds[t.qualified] = self.table_seconds.get(t.qualified, 0.0) + stats.seconds
            self.run.bytes += stats.bytes
            self.pending[t.qualified] -= 1
            last = self.pending[t.qualified] == 0
        copied = agents_pb2.TableCopied(unit=unit.id, table=t.qualified, rows=stats.rows, bytes=stats.bytes,
                                        seconds=stats.seconds, copy_format="binary" if stats.binary else "text",
                                        part=unit.part, parts=unit.parts)
        if self._joined(t):
            with self.lock:
                self.held[t.qualified] = agents_pb2.TableVerified(copied=copied)
        else:
            self.run.emit(agents_pb2.ExecutionEvent(table_copied=copied))
        if last:
            self._copied_whole(t)

    def _joined(self, t: Table) -> bool:
        """A table whose copy, proof and seal go out as one event: one unit, small."""
        return len(self.units_of[t.qualified]) == 1 and t.bytes < PSQL_BYTES

    def _defer(self, unit: Unit, err: psycopg.errors.CheckViolation) -> None:
        """A CHECK constraint may call a function that reads another table (pg_restore fails the
        same way when that table comes later): copied again once every other copy is done."""
        with self.lock:
            again = unit.id in self.deferred
            self.deferred.add(unit.id)
            self.progress.pop(unit.table.qualified, None)
        if again:
            raise err
        self.run._log(f"{unit.id}: {err.diag.message_primary}; copied again after the other tables (a CHECK "
                      "constraint may read a table not copied yet)", "WARNING")
        self.retry.append(unit)

    def _on_bytes(self, unit: Unit):
        t = unit.table
        now = time.monotonic()  # the first tick after PROGRESS_INTERVAL: a small table needs none
        state = self.progress.setdefault(t.qualified, [0, now, now])

        def on_bytes(n: int) -> None:
            with self.lock:
                state[0] += n
                now = time.monotonic()
                if now - state[2] < PROGRESS_INTERVAL:
                    return
                state[2] = now
                done_bytes = state[0]
            rate = done_bytes / max(now - state[1], 1e-6)
            total = max(t.bytes, done_bytes)
            self.run.emit(agents_pb2.ExecutionEvent(table_progress=agents_pb2.TableProgress(
                table=t.qualified, unit=unit.id, bytes=done_bytes, total_bytes=total,
                total_rows=t.row_estimate, rows=int(t.row_estimate * min(done_bytes / total, 0.99)),
                bytes_per_second=rate, rows_per_second=rate * t.row_estimate / total if total else 0.0,
                eta_seconds=max(total - done_bytes, 0) / rate if rate else 0.0)))
        return on_bytes

    def build(self, item: tuple[str, int]) -> None:
        name, i = item
        t = self.by_name[name]
        run_statements(self.run.target, self.post.preamble, [self._builds(t)[i]], resuming=self.run.resuming,
                       conn=self.conns.target())
        with self.lock:
            items = self.machine.built(name)
        self._queue(items)

    def analyze(self, name: str) -> None:
        """The table's statistics, expression indexes included, while its check may still read."""
        t = self.by_name[name]
        self.conns.target().execute(sql.SQL("ANALYZE {}").format(sql.Identifier(t.schema, t.name)))
        with self.lock:
            self.run.analyzed.add(name)
            items = self.machine.analyzed(name)
        self._queue(items)

    def check(self, name: str) -> None:
        """Rows and checksums of both sides; runs beside the index builds (it only reads)."""
        t = self.by_name[name]
        if name in self.run.verified:
            result = common_pb2.TableResult(table=name, verified=True, source_rows=-1, target_rows=-1)
            with self.lock:
                self.run.results[name] = result
                items = self.machine.checked(name)
            self._queue(items)
            return
        result = verify_by_stream(t, self.units_of[name], self.copied, self.conns.target(), self.run.target,
                                  (lock_timeout_sql(),), self.run.cancel)
        if result is None:  # split, copied in an earlier attempt, generated columns, or another row order
            result = verify_table_on(t, self.conns.source(), self.conns.target())
        with self.lock:
            result.bytes = self.table_bytes.get(name, 0)
            result.seconds += self.table_seconds.get(name, 0.0)
            self.run.results[name] = result
        with self.lock:
            held = self.held.get(name) if result.verified else self.held.pop(name, None)
            if held is not None and result.verified:
                held.result.CopyFrom(result)  # sent with the seal
        if held is not None and not result.verified and held.HasField("copied"):
            self.run.emit(agents_pb2.ExecutionEvent(table_copied=held.copied))
        if result.verified and held is None:
            self.run.emit(agents_pb2.ExecutionEvent(table_verified=agents_pb2.TableVerified(result=result)))
        elif not result.verified:
            self.run.emit(agents_pb2.ExecutionEvent(table_failed=agents_pb2.TableFailed(
                table=name, error=result.error, result=result)))
        with self.lock:
            items = self.machine.checked(name)
        self._queue(items)

    def validate_key(self, key: int) -> None:
        st, _, _ = self.early_fks[key]
        run_statements(self.run.target, self.post.preamble, split_validation(st), resuming=self.run.resuming,
                       conn=self.conns.target())
        with self.lock:
            self.run.early_done.add(id(st))
            items = self.machine.key_done(key)
        self._queue(items)

    def seal(self, name: str) -> None:
        """Keys attached to their indexes and the constraints that lock the table; the step recorded."""
        t = self.by_name[name]
        step = f"indexes:{name}"
        with self.lock:
            held = self.held.pop(name, None)
        if step in self.run.steps_done:
            if held is not None:
                self._send_held(held)
        else:
            statements = self.per_table.get((t.schema, t.name), [])
            run_statements(self.run.target, self.post.preamble, [st for st in statements if not st.beside_reads],
                           resuming=self.run.resuming, conn=self.conns.target())
            detail = f"{sum(not st.attach for st in statements)} indexes and keys"
            if held is None:
                self.run._step(step, detail, self.started[name])
            else:
                self.run.steps_done.add(step)
                held.sealed.CopyFrom(agents_pb2.StepCompleted(step=step, detail=detail,
                                                              seconds=time.monotonic() - self.started[name]))
                self._send_held(held)
        with self.lock:
            items = self.machine.sealed(name)  # keys to it that waited for its keys
        self._queue(items)

    def _send_held(self, held: agents_pb2.TableVerified) -> None:
        """A small table's copy, proof and seal in one event; without a proof of this attempt (the
        table proven in an earlier one) its copy and seal go as events of their own."""
        if held.HasField("result"):
            self.run.emit(agents_pb2.ExecutionEvent(table_verified=held))
            return
        if held.HasField("copied"):
            self.run.emit(agents_pb2.ExecutionEvent(table_copied=held.copied))
        if held.HasField("sealed"):
            self.run.emit(agents_pb2.ExecutionEvent(step_completed=held.sealed))


def _as_error(err: BaseException) -> BaseException:
    if isinstance(err, DBMigrateError):
        return err
    if isinstance(err, psycopg.Error):
        return (Unavailable if is_transient(err) else DatabaseError)(f"copy: {err}")
    return err
