"""One Execute call: snapshot, pre-data, parallel copies with per-table indexes and checks, post-data, the rest.

Order (pgcopydb's): pre-data schema -> data, largest tables first, `jobs` at a time; as each table
is in, `jobs` finishing workers build its indexes (keys as unique indexes, attached after), check
its rows and ANALYZE it while the other tables still copy, and validate each foreign key between two
copied tables once both are indexed -> the rest of post-data (triggers, policies, ...) -> sequences
-> materialized views -> large objects -> ANALYZE of what is left. Triggers are created after the
load, so they never fire during it. Everything already recorded as done in the request is skipped;
everything else is idempotent, so a second call after a crash continues where the first stopped.
"""
from __future__ import annotations

import concurrent.futures
import itertools
import logging
import os
import queue
import threading
import time
from typing import Callable

import psycopg
from psycopg import sql

from dbmigrate.v1 import agents_pb2, common_pb2
from services.common.copy import PSQL_BYTES
from services.common.catalog import DEFAULT_SPLIT_BYTES, Table, list_tables, table_writes
from services.common.errors import Cancelled, DatabaseError, DBMigrateError, FailedPrecondition, Unavailable
from services.common.pg import connect, is_transient
from services.common import pgtools
from services.common.pgdump import (apply_schema, dump_flags, dump_section, exclude_args, fit_script, known_settings,
                                     server_version_num, tolerant_pre_data)
from services.common.roles import create_roles, needed_roles, role_names, to_create
from services.execution.dbprivileges import copy_database_privileges
from services.execution import data
from services.execution.durable import DurableEvents
from services.execution.baseline import rollback
from services.execution.largeobjects import copy_large_objects
from services.execution.matviews import refresh_matviews
from services.execution.postdata import run_statements
from services.execution.schema import (Statement, foreign_key_tables, parse_post_data, split_qualified,
                                       unique_constraint_indexes, unique_via_index)
from services.execution.sequences import copy_sequences
from services.execution.conns import lock_timeout_sql, worker_connections
from services.execution.units import Unit, parts_for, split
from services.execution.verify import verify_by_stream, verify_table_on

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0  # seconds between progress events of one table
ANALYZE_BATCH = 100      # tables one ANALYZE statement takes


class ExecutionRun:
    def __init__(self, req: agents_pb2.ExecuteRequest, emit: Callable[[agents_pb2.ExecutionEvent], None],
                 cancel: threading.Event):
        self.req = req
        self.emit = emit
        self.cancel = cancel
        self.source, self.target, self.opts = req.source, req.target, req.options
        self.steps_done = set(req.done.steps_done)
        self.units_done = set(req.done.units_done)
        self.verified = set(req.done.tables_verified)
        self.jobs = max(1, req.options.jobs or os.cpu_count() or 2)
        self.lock = threading.Lock()
        self.results: dict[str, common_pb2.TableResult] = {}
        self.rows = self.bytes = 0
        self.errors: list[BaseException] = []
        self.analyzed: set[str] = set()
        self.early_done: set[int] = set()  # post-data statements (ids) run during the data phase
        self.t0 = time.monotonic()
        self.resuming = req.attempt > 1 or bool(self.steps_done or self.units_done)
        self.target_writes: dict[str, tuple[int, int, int]] = {}
        self.spent: dict[str, list] = {}  # finishing item -> [count, seconds]

    # ---- events ----

    def _step(self, step: str, detail: str = "", started: float | None = None) -> None:
        self.steps_done.add(step)
        self.emit(agents_pb2.ExecutionEvent(step_completed=agents_pb2.StepCompleted(
            step=step, detail=detail, seconds=time.monotonic() - started if started else 0.0)))

    def _log(self, message: str, level: str = "INFO") -> None:
        log.info(message)
        self.emit(agents_pb2.ExecutionEvent(log=agents_pb2.LogLine(level=level, message=message, service="execution")))

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("the migration was cancelled")

    # ---- the run ----

    def run(self) -> common_pb2.ExecutionReport:
        try:
            return self._run()
        except DBMigrateError:
            raise
        except psycopg.Error as err:
            raise DatabaseError(f"execution: {err}", retryable=is_transient(err)) from None

    def _run(self) -> common_pb2.ExecutionReport:
        exporter = connect(self.source, "source", application_name="dbmigrate-snapshot")
        try:
            exporter.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            snapshot = exporter.execute("SELECT pg_export_snapshot()").fetchone()[0]
            self.tools = pgtools.for_source(server_version_num(exporter))
            self.source_writes = table_writes(exporter)  # what changes after this is the source's drift
            all_tables = list_tables(exporter)
            tables = list_tables(exporter, list(self.opts.include), list(self.opts.exclude))
            excluded = exclude_args(all_tables, tables)
            self._log(f"snapshot {snapshot}: {len(tables)} tables, {self.jobs} jobs, attempt {self.req.attempt or 1}, "
                      f"{self.tools}")
            if self.opts.create_roles and "roles" not in self.steps_done:
                self._roles(exporter)
            # pg_dump of post-data runs while pre-data is applied: both are needed before the copies.
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="post-data-dump") as pool:
                post_script = pool.submit(dump_section, self.source, "post-data", tools=self.tools, snapshot=snapshot,
                                          extra_args=excluded, **dump_flags(self.opts))
                if "pre-data" not in self.steps_done:
                    self._pre_data(snapshot, tables, excluded)
                post = parse_post_data(post_script.result())
                post.preamble = fit_script(post.preamble, known_settings(self.target))
                unique_via_index(post, unique_constraint_indexes(exporter),
                                 large={(t.schema, t.name) for t in tables if t.bytes >= PSQL_BYTES})
            self._check_cancel()
            t_data = time.monotonic()
            events = DurableEvents(self.target, self.emit)
            self.emit = events.emit
            try:
                self._data(exporter, snapshot, tables, post)
            finally:
                events.close()
                self.emit = events._emit
            self._check_cancel()
            self._step("data", f"{len(tables)} tables copied, indexed and verified by {self.jobs} copy and "
                               f"{self.jobs} finishing workers", t_data)
            if "post-data" not in self.steps_done:
                t0 = time.monotonic()
                copied = {(t.schema, t.name) for t in tables}
                early_elsewhere = [st for key, sts in post.per_table.items() if split_qualified(key) not in copied
                                   for st in sts]
                rest = [st for st in post.rest if id(st) not in self.early_done]
                n = run_statements(self.target, post.preamble, early_elsewhere + rest, resuming=self.resuming)
                self._step("post-data", f"{n} constraints, foreign keys, triggers, policies and more"
                                        + (f" ({len(self.early_done)} foreign keys earlier, with the copies)"
                                           if self.early_done else ""), t0)
            with connect(self.target, "target", autocommit=True, application_name="dbmigrate-finish") as dst:
                if "sequences" not in self.steps_done:
                    t0 = time.monotonic()
                    self._step("sequences", f"{copy_sequences(exporter, dst)} sequences set", t0)
                if "matviews" not in self.steps_done:
                    t0 = time.monotonic()
                    self._step("matviews", f"{refresh_matviews(exporter, dst)} materialized views refreshed", t0)
                if "large-objects" not in self.steps_done:
                    t0 = time.monotonic()
                    n = copy_large_objects(exporter, lambda: connect(self.target, "target"), **dump_flags(self.opts))
                    self._step("large-objects", f"{n} large objects copied", t0)
                if "database-privileges" not in self.steps_done and not self.opts.no_privileges:
                    t0 = time.monotonic()
                    self._step("database-privileges", copy_database_privileges(exporter, dst), t0)
                if "analyze" not in self.steps_done:
                    t0 = time.monotonic()
                    rest = [t for t in tables if t.qualified not in self.analyzed]
                    for i in range(0, len(rest), ANALYZE_BATCH):  # one ANALYZE statement for many tables
                        self._check_cancel()
                        dst.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(
                            sql.Identifier(t.schema, t.name) for t in rest[i:i + ANALYZE_BATCH])))
                    self._step("analyze", f"{len(tables)} tables analyzed ({len(tables) - len(rest)} by the copy "
                                          "workers as each table was done)", t0)
                self.target_writes = table_writes(dst)  # a write after this shows as a change
        finally:
            try:
                exporter.rollback()
            finally:
                exporter.close()
        failed = [r for r in self.results.values() if not r.verified]
        if failed:
            raise FailedPrecondition("verification failed for " + "; ".join(f"{r.table}: {r.error}" for r in failed[:5]))
        return self._report(tables)

    def _report(self, tables: list[Table]) -> common_pb2.ExecutionReport:
        results = [self.results[t.qualified] for t in tables if t.qualified in self.results]
        rows = sum(r.target_rows for r in results)
        seconds = time.monotonic() - self.t0
        names = {t.qualified for t in tables}
        writes = [(self.target_writes, "target_writes"), (getattr(self, "source_writes", {}), "source_writes")]
        report = common_pb2.ExecutionReport(
            tables=results, rows=rows, bytes=self.bytes, seconds=seconds, verified=True,
            steps_done=sorted(self.steps_done),
            summary=f"{len(tables)} tables, {rows:,} rows copied and verified (count + checksum per table) "
                    f"in {seconds:.1f}s this attempt")
        for counts, field in writes:
            for name in sorted(names & set(counts)):
                i, u, d = counts[name]
                getattr(report, field).add(table=name, inserted=i, updated=u, deleted=d)
        return report

    def _pre_data(self, snapshot: str, tables: list[Table], excluded: list[str]) -> None:
        t0 = time.monotonic()
        baseline = self.req.baseline
        with connect(self.target, "target", autocommit=True) as dst:
            dst.execute(lock_timeout_sql())
            # A crash may have left part of an earlier attempt: return to the baseline first.
            dropped = rollback(dst, baseline)
            if dropped:
                self._log(f"removed {len(dropped)} objects left by an interrupted attempt before applying the schema")
            if self.opts.on_target_not_empty == common_pb2.REPLACE:
                for t in tables:
                    dst.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(t.schema, t.name)))
        script = dump_section(self.source, "pre-data", tools=self.tools, snapshot=snapshot, extra_args=excluded,
                              **dump_flags(self.opts))
        apply_schema(self.target, tolerant_pre_data(script), "pre-data schema (pg_dump --section=pre-data)")
        self._step("pre-data", "tables, types, functions and views created from pg_dump --section=pre-data", t0)

    def _roles(self, exporter: psycopg.Connection) -> None:
        """--create-roles: the roles the database needs that the target lacks, before any object names them."""
        t0 = time.monotonic()
        with connect(self.target, "target", autocommit=True, application_name="dbmigrate-roles") as dst:
            todo = to_create(needed_roles(exporter), role_names(dst), self.opts)
            made = create_roles(exporter, dst, todo)
        detail = f"{len(made.created)} roles created" + (f": {', '.join(made.created[:20])}" if made.created else "")
        if made.with_password:
            detail += f"; {len(made.with_password)} with LOGIN and their password hash from the source"
        if made.made_nologin:
            detail += (f"; {len(made.made_nologin)} login roles created NOLOGIN without a password (the source user "
                       f"may not read password hashes): {', '.join(made.made_nologin[:20])}")
        if made.attributes_dropped:
            detail += f"; attributes the target user may not give: {', '.join(made.attributes_dropped[:20])}"
        self._step("roles", detail, t0)

    # ---- data ----

    def _data(self, exporter: psycopg.Connection, snapshot: str, tables: list[Table], post) -> None:
        per_table = {split_qualified(k): v for k, v in post.per_table.items()}
        planned = {(p.schema, p.name): p.parts for p in self.req.plan.tables}
        threshold = self.opts.split_threshold_bytes or DEFAULT_SPLIT_BYTES
        copying: queue.PriorityQueue = queue.PriorityQueue()
        finishing: queue.PriorityQueue = queue.PriorityQueue()
        order = itertools.count()
        pending: dict[str, int] = {}
        todo_of: dict[str, list[Unit]] = {}
        units_of: dict[str, list[Unit]] = {}
        copied: dict[str, tuple[int, str, bool]] = {}  # unit id -> rows, digest and format of its COPY stream
        table_bytes: dict[str, int] = {}
        table_seconds: dict[str, float] = {}  # copy time of the table's units, the check's added
        for t in tables:
            if t.qualified in self.verified and f"indexes:{t.qualified}" in self.steps_done:
                self.results[t.qualified] = common_pb2.TableResult(table=t.qualified, verified=True,
                                                                   source_rows=-1, target_rows=-1)
                continue
            units = split(exporter, t, parts_for(t, threshold, planned.get((t.schema, t.name))))
            todo = [u for u in units if u.id not in self.units_done]
            if todo and len(units) > 1:
                # A part may have committed without being recorded: empty the table, copy every part again.
                data.truncate(self.target, t.schema, t.name)  # keys pointing at it dropped; post-data remakes them
                todo = units
            todo_of[t.qualified] = todo
            units_of[t.qualified] = units
            pending[t.qualified] = len(todo)
        progress: dict[str, list] = {}
        deferred: set[str] = set()
        retry: list[Unit] = []
        conns = worker_connections(self.source, self.target, snapshot, post.preamble)

        # After a table's last unit: each index build and the check are finishing items of their own
        # (index builds take a SHARE lock, the check only reads, so they run side by side); ANALYZE
        # once the builds are done (still beside the check); then the table is sealed: keys attached
        # to their indexes and the constraints that need an exclusive lock (so none waits behind a
        # long check), the step recorded.
        class Finishing:
            def __init__(self, builds: int, check_queued: bool, analyzed: bool, fks: int):
                self.builds, self.check_queued, self.analyze_queued = builds, check_queued, analyzed
                self.checked, self.analyzed, self.sealing = False, analyzed, False
                self.fks = fks  # early foreign keys on or to the table still to run
                self.started = time.monotonic()

        fin: dict[str, Finishing] = {}

        # Foreign keys between two tables of this attempt are validated as soon as both tables'
        # indexes and statistics are in (beside the last table's check, instead of after it): one at
        # a time (two keys on one table would wait for each other's lock), and before either table
        # is sealed (its exclusive lock would wait for the validation). The rest come with post-data.
        # Only to a table whose keys are all built by its index items: a key left whole (a partition's,
        # one in another tablespace) is made when the table is sealed, and a foreign key needs it first.
        by_key = {(t.schema, t.name): t for t in tables if t.qualified in pending
                  and all(st.beside_reads or st.attach for st in per_table.get((t.schema, t.name), []))}
        early_fks: list[tuple[Statement, Table, Table]] = []
        for st in post.rest:
            pair = foreign_key_tables(st)
            if pair and pair[0] in by_key and pair[1] in by_key:
                early_fks.append((st, by_key[pair[0]], by_key[pair[1]]))
        fks_of: dict[str, list[tuple[Statement, Table, Table]]] = {}
        for fk in early_fks:
            for name in {fk[1].qualified, fk[2].qualified}:
                fks_of.setdefault(name, []).append(fk)
        fk_queued: set[int] = set()
        fk_waiting: list[tuple[Statement, Table, Table]] = []
        fk_running = [False]

        def fk_ready(t: Table) -> bool:
            f = fin.get(t.qualified)
            return f is not None and f.builds == 0 and f.analyzed

        def run_fk(fk: tuple[Statement, Table, Table]) -> None:
            st, t, r = fk
            run_statements(self.target, post.preamble, [st], resuming=self.resuming, conn=conns.target())
            with self.lock:
                self.early_done.add(id(st))
                for name in {t.qualified, r.qualified}:
                    fin[name].fks -= 1
                nxt = fk_waiting.pop(0) if fk_waiting else None
                fk_running[0] = nxt is not None
            if nxt is not None:
                finishing.put((0, next(order), run_fk, nxt))
            advance(t)
            advance(r)

        def advance(t: Table) -> None:
            """Queues what the table's finished items allow next."""
            items = []
            with self.lock:
                f = fin[t.qualified]
                if f.builds == 0:
                    if not f.check_queued:  # key-ordered parts: read along the key's index, now built
                        f.check_queued = True
                        items.append((check, t))
                    if not f.analyze_queued:
                        f.analyze_queued = True
                        items.append((analyze, t))
                    for fk in fks_of.get(t.qualified, []):
                        if id(fk[0]) not in fk_queued and fk_ready(fk[1]) and fk_ready(fk[2]):
                            fk_queued.add(id(fk[0]))
                            if fk_running[0]:
                                fk_waiting.append(fk)
                            else:
                                fk_running[0] = True
                                items.append((run_fk, fk))
                    if f.checked and f.analyzed and f.fks == 0 and not f.sealing:
                        f.sealing = True
                        items.append((seal, t))
            for fn, arg in items:
                finishing.put((0, next(order), fn, arg))

        def small(t: Table) -> bool:
            """A table copied whole and small: analyzed with others in one statement at the end (not
            one by one among the index builds), and its keys made whole (nothing to build beside)."""
            return len(units_of[t.qualified]) == 1 and t.bytes < PSQL_BYTES

        def build(item: tuple[Table, Statement]) -> None:
            t, st = item
            run_statements(self.target, post.preamble, [st], resuming=self.resuming, conn=conns.target())
            with self.lock:
                fin[t.qualified].builds -= 1
            advance(t)

        def analyze(t: Table) -> None:
            """The table's statistics, expression indexes included, while its check may still read."""
            conns.target().execute(sql.SQL("ANALYZE {}").format(sql.Identifier(t.schema, t.name)))
            with self.lock:
                self.analyzed.add(t.qualified)
                fin[t.qualified].analyzed = True
            advance(t)

        def check(t: Table) -> None:
            """Rows and checksums of both sides; runs beside the index builds (it only reads)."""
            if t.qualified in self.verified:
                with self.lock:
                    self.results[t.qualified] = common_pb2.TableResult(table=t.qualified, verified=True,
                                                                       source_rows=-1, target_rows=-1)
                with self.lock:
                    fin[t.qualified].checked = True
                advance(t)
                return
            result = verify_by_stream(t, units_of[t.qualified], copied, conns.target(), self.target,
                                      (lock_timeout_sql(),), self.cancel)
            if result is None:  # split, copied in an earlier attempt, generated columns, or another row order
                result = verify_table_on(t, conns.source(), conns.target())
            checked(t, result)

        def checked(t: Table, result: common_pb2.TableResult) -> None:
            with self.lock:
                result.bytes = table_bytes.get(t.qualified, 0)
                result.seconds += table_seconds.get(t.qualified, 0.0)
                self.results[t.qualified] = result
            if result.verified:
                self.emit(agents_pb2.ExecutionEvent(table_verified=agents_pb2.TableVerified(result=result)))
            else:
                self.emit(agents_pb2.ExecutionEvent(table_failed=agents_pb2.TableFailed(
                    table=t.qualified, error=result.error, retryable=False, result=result)))
            with self.lock:
                fin[t.qualified].checked = True
            advance(t)

        def seal(t: Table) -> None:
            """Keys attached to their indexes and the constraints that lock the table; the step recorded."""
            step = f"indexes:{t.qualified}"
            if step not in self.steps_done:
                statements = per_table.get((t.schema, t.name), [])
                run_statements(self.target, post.preamble, [st for st in statements if not st.beside_reads],
                               resuming=self.resuming, conn=conns.target())
                self._step(step, f"{sum(not st.attach for st in statements)} indexes and keys",
                           fin[t.qualified].started)

        def finish(t: Table) -> None:
            done = f"indexes:{t.qualified}" in self.steps_done
            builds = [] if done else [st for st in per_table.get((t.schema, t.name), []) if st.beside_reads]
            units = units_of[t.qualified]
            check_first = not (len(units) > 1 and all(u.order_by for u in units))
            with self.lock:
                fin[t.qualified] = Finishing(len(builds), check_first, analyzed=done or small(t),
                                             fks=len(fks_of.get(t.qualified, [])))
            if check_first:  # the longest item: first, so the builds share the other workers around it
                finishing.put((0, next(order), check, t))
            for st in builds:
                finishing.put((0, next(order), build, (t, st)))
            advance(t)

        def copy(unit: Unit) -> None:
            t = unit.table
            state = progress.setdefault(t.qualified, [0, time.monotonic(), 0.0])  # bytes, started, last emit

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
                self.emit(agents_pb2.ExecutionEvent(table_progress=agents_pb2.TableProgress(
                    table=t.qualified, unit=unit.id, bytes=done_bytes, total_bytes=total,
                    total_rows=t.row_estimate, rows=int(t.row_estimate * min(done_bytes / total, 0.99)),
                    bytes_per_second=rate, rows_per_second=rate * t.row_estimate / total if total else 0.0,
                    eta_seconds=max(total - done_bytes, 0) / rate if rate else 0.0)))

            try:
                stats = data.copy_unit(unit, conns, self.source, snapshot, on_bytes=on_bytes, cancel=self.cancel,
                                       fresh=not self.resuming)
            except psycopg.errors.CheckViolation as err:
                # A CHECK constraint may call a function that reads another table (pg_restore fails the
                # same way when that table comes later): copied again once every other copy is done.
                with self.lock:
                    again = unit.id in deferred
                    deferred.add(unit.id)
                    progress.pop(t.qualified, None)
                if again:
                    raise
                self._log(f"{unit.id}: {err.diag.message_primary}; copied again after the other tables (a CHECK "
                          "constraint may read a table not copied yet)", "WARNING")
                retry.append(unit)
                return
            with self.lock:
                copied[unit.id] = (stats.rows, stats.digest, stats.binary)
                table_bytes[t.qualified] = table_bytes.get(t.qualified, 0) + stats.bytes
                table_seconds[t.qualified] = table_seconds.get(t.qualified, 0.0) + stats.seconds
                self.bytes += stats.bytes
                pending[t.qualified] -= 1
                last = pending[t.qualified] == 0
            self.emit(agents_pb2.ExecutionEvent(table_copied=agents_pb2.TableCopied(
                unit=unit.id, table=t.qualified, rows=stats.rows, bytes=stats.bytes, seconds=stats.seconds,
                copy_format="binary" if stats.binary else "text", part=unit.part, parts=unit.parts)))
            if last:
                finish(t)

        for t in sorted((t for t in tables if t.qualified in pending), key=lambda t: -t.bytes):
            if not todo_of[t.qualified]:
                finish(t)
            for u in todo_of[t.qualified]:
                copying.put((1, next(order), copy, u))

        def worker(*queues: queue.PriorityQueue) -> None:
            """Runs the items of each queue in turn, until that queue's stop item."""
            for work in queues:
                while True:
                    _, _, fn, arg = work.get()
                    try:
                        if fn is None:
                            break
                        if not self.cancel.is_set():
                            t0 = time.monotonic()
                            fn(arg)
                            with self.lock:  # where the workers' time went, for the log
                                spent = self.spent.setdefault(fn.__name__, [0, 0.0])
                                spent[0] += 1
                                spent[1] += time.monotonic() - t0
                    except BaseException as err:  # first error stops the others; re-raised below
                        conns.reset()
                        with self.lock:
                            self.errors.append(err)
                        self.cancel.set()
                    finally:
                        work.task_done()

        # `jobs` workers copy; as many more build each copied table's indexes and check its rows, so the
        # copies go on while a table that is in gets its indexes (pgcopydb's --table-jobs/--index-jobs).
        # Once every copy is done the copy workers turn to finishing too (on the same connections):
        # the last table's builds and check then run side by side instead of one after another.
        threads = [threading.Thread(target=worker, args=(copying, finishing), name=f"copy-{i}", daemon=True)
                   for i in range(self.jobs)]
        threads += [threading.Thread(target=worker, args=(finishing,), name=f"finish-{i}", daemon=True)
                    for i in range(self.jobs)]
        for th in threads:
            th.start()
        copying.join()
        for unit in retry:  # copies a CHECK constraint refused while other tables were still coming
            copying.put((1, next(order), copy, unit))
        copying.join()  # every copy done, so every finishing item is queued
        for _ in range(self.jobs):
            copying.put((9, next(order), None, None))
        finishing.join()
        for _ in threads:
            finishing.put((9, next(order), None, None))
        for th in threads:
            th.join()
        conns.close_all()
        self._log("workers' time: " + ", ".join(f"{n} {name} {secs:.1f} s" for name, (n, secs) in
                                                sorted(self.spent.items(), key=lambda kv: -kv[1][1])))
        if self.errors:
            err = self.errors[0]
            if isinstance(err, DBMigrateError):
                raise err
            if isinstance(err, psycopg.Error):
                raise (Unavailable if is_transient(err) else DatabaseError)(f"copy: {err}") from None
            raise err
        self._check_cancel()
