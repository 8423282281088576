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
import logging
import os
import threading
import time
from typing import Callable

import psycopg
from psycopg import sql

from dbmigrate.v1 import agents_pb2, common_pb2
from services.common.copy import PSQL_BYTES
from services.common.catalog import Table, left_out_relations, list_tables, select_tables, table_writes
from services.common.errors import Cancelled, DatabaseError, DBMigrateError, FailedPrecondition
from services.common.pg import connect, is_transient
from services.common import pgtools
from services.common.pgdump import (apply_schema, dump_flags, dump_section, durable, exclude_args, fit_script,
                                     known_settings, server_version_num, tolerant_pre_data)
from services.common.roles import create_roles, needed_roles, role_names, to_create
from services.common.dbsettings import copy_database_comment, copy_database_settings
from services.common.derived import rename_derived_keys
from services.execution.dbprivileges import copy_database_privileges, copy_type_function_privileges
from services.execution.tables import DataPhase
from services.execution.durable import DurableEvents
from services.execution.baseline import rollback
from services.execution.largeobjects import copy_large_objects
from services.execution.extdata import copy_extension_data
from services.execution.matviews import refresh_matviews
from services.execution.postdata import run_statements
from services.execution.schema import (parse_post_data, split_qualified, split_validation, unique_constraint_indexes,
                                      unique_via_index)
from services.execution.sequences import copy_sequences
from services.execution import sync
from services.execution.conns import lock_timeout_sql

log = logging.getLogger(__name__)

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
        self.published: set[str] = set()  # online: the tables the publication holds

    # ---- events ----

    def _step(self, step: str, detail: str = "", started: float | None = None) -> None:
        self.steps_done.add(step)
        self.emit(agents_pb2.ExecutionEvent(step_completed=agents_pb2.StepCompleted(
            step=step, detail=detail, seconds=time.monotonic() - started if started else 0.0)))

    def _begin(self, step: str) -> float:
        self.emit(agents_pb2.ExecutionEvent(step_started=agents_pb2.StepStarted(step=step)))
        return time.monotonic()

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

    def _online_start(self) -> tuple[psycopg.Connection | None, str]:
        """Online: the publication, then the slot whose snapshot the copy reads (the replication
        connection that exported it and the snapshot's name). A copy interrupted before its end
        starts again from a new slot: rows copied from the old snapshot would not meet the new stream."""
        wid = self.req.workflow_id
        with connect(self.source, "source", autocommit=True, application_name="dbmigrate-publish") as src:
            if "data" in self.steps_done:
                if not sync.slot_exists(src, wid):
                    raise FailedPrecondition(f"online: the replication slot {sync.slot_name(wid)} of this migration "
                                             "is gone from the source, so the writes since the copy cannot be "
                                             "streamed; roll back and start a new migration")
                return None, ""
            if self.resuming:
                self.steps_done = {s for s in self.steps_done if s == "roles"}
                self.units_done, self.verified = set(), set()
                # An attempt that got as far as subscribing (its events lost) must not stream into the new copy.
                with connect(self.target, "target", autocommit=True, application_name="dbmigrate-publish") as dst:
                    if sync.drop_subscription(dst, wid):
                        self._log("dropped the subscription of an interrupted attempt")
            tables = list_tables(src, list(self.opts.include), list(self.opts.exclude))
            sync.publish(src, wid, tables)  # before the slot: a change between the two would never be sent
            self.published = {t.qualified for t in tables}
            if sync.drop_slot(src, wid):
                self._log("dropped the replication slot of an interrupted attempt; the copy starts again from a "
                          "new slot's snapshot")
            version = server_version_num(src)
        rep, snapshot, point = sync.create_slot(self.source, wid, version, note=lambda m: self._log(m, "WARNING"))
        self._log(f"online: replication slot {sync.slot_name(wid)} created at {point}; the copy reads its snapshot")
        return rep, snapshot

    def _run(self) -> common_pb2.ExecutionReport:
        rep, slot_snapshot = self._online_start() if self.opts.online else (None, "")
        exporter = connect(self.source, "source", application_name="dbmigrate-snapshot")
        # pg_dump of pre-data, started as soon as the snapshot exists when no table is left out (it then
        # needs no list of tables): it reads the source's catalog while this session reads it too.
        early = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pre-data-dump")
        try:
            exporter.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            if rep is not None:  # the slot's snapshot, exported again from here (it lives while this transaction does)
                try:
                    exporter.execute(f"SET TRANSACTION SNAPSHOT '{slot_snapshot}'")
                finally:
                    rep.close()
            snapshot = exporter.execute("SELECT pg_export_snapshot()").fetchone()[0]
            with connect(self.target, "target", autocommit=True, application_name="dbmigrate-execution") as dst:
                target_version = dst.info.server_version
            self.tools = pgtools.for_source(server_version_num(exporter), target_version)
            pre_dump = None
            if rep is None and not self.opts.include and not self.opts.exclude and "pre-data" not in self.steps_done:
                pre_dump = early.submit(dump_section, self.source, "pre-data", tools=self.tools, snapshot=snapshot,
                                        extra_args=[], **dump_flags(self.opts))
            self.source_writes = table_writes(exporter)  # what changes after this is the source's drift
            all_tables = list_tables(exporter)
            tables = select_tables(all_tables, list(self.opts.include), list(self.opts.exclude))
            unpublished = sorted({t.qualified for t in tables} - self.published) if rep is not None else []
            if unpublished:  # created between the publication and the slot: they would not be streamed
                raise DatabaseError(f"online: {len(unpublished)} tables appeared on the source while the replication "
                                    f"slot was made ({', '.join(unpublished[:5])}); starting again", retryable=True)
            excluded = exclude_args(all_tables + left_out_relations(exporter, list(self.opts.include),
                                                                  list(self.opts.exclude)), tables)
            self._log(f"snapshot {snapshot}: {len(tables)} tables, {self.jobs} jobs, attempt {self.req.attempt or 1}, "
                      f"{self.tools}")
            if self.opts.create_roles and "roles" not in self.steps_done:
                self._roles(exporter)
            # pg_dump of post-data runs while pre-data is applied: both are needed before the copies.
            # It starts once the pre-data dump has ended: each pg_dump holds the whole catalog (23 MB
            # with 2,000 tables), and the dump of pre-data takes a tenth of the time its apply takes.
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="post-data-dump") as pool:
                def dump_post() -> concurrent.futures.Future:
                    return pool.submit(dump_section, self.source, "post-data", tools=self.tools, snapshot=snapshot,
                                       extra_args=excluded, **dump_flags(self.opts))
                if "pre-data" not in self.steps_done:
                    post_script = self._pre_data(snapshot, tables, excluded, dump_post, pre_dump)
                else:
                    post_script = dump_post()
                post = parse_post_data(post_script.result())
                post.preamble = fit_script(post.preamble, known_settings(self.target))
                unique_via_index(post, unique_constraint_indexes(exporter),
                                 large={(t.schema, t.name) for t in tables if t.bytes >= PSQL_BYTES})
            self._check_cancel()
            if "extension-data" not in self.steps_done:  # before the keys that may point at those rows
                t0 = self._begin("extension-data")
                self._step("extension-data", copy_extension_data(exporter, self.target), t0)
            t_data = self._begin("data")
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
                t0 = self._begin("post-data")
                copied = {(t.schema, t.name) for t in tables}
                early_elsewhere = [st for key, sts in post.per_table.items() if split_qualified(key) not in copied
                                   for st in sts]
                rest = [st for st in post.rest if id(st) not in self.early_done]
                if self.resuming:
                    # A key the data phase of an earlier attempt added NOT VALID, then stopped before
                    # validating (its referenced table sealed, so not in this attempt's data phase):
                    # ADD counts as done, VALIDATE finishes it.
                    rest = [part for st in rest for part in split_validation(st)]
                n = run_statements(self.target, post.preamble, early_elsewhere + rest, resuming=self.resuming)
                with connect(self.target, "target", autocommit=True, application_name="dbmigrate-post-data") as dst:
                    renamed, refused = rename_derived_keys(exporter, dst)
                self._step("post-data", f"{n} constraints, foreign keys, triggers, policies and more"
                                        + (f" ({len(self.early_done)} foreign keys earlier, with the copies)"
                                           if self.early_done else "")
                                        + (f"; {renamed} foreign keys of partitions named as on the source"
                                           if renamed else "")
                                        + (f"; NOT RENAMED: {'; '.join(refused[:5])}" if refused else ""), t0)
            with connect(self.target, "target", autocommit=True, application_name="dbmigrate-finish") as dst:
                if "sequences" not in self.steps_done:
                    t0 = self._begin("sequences")
                    self.sequences = copy_sequences(exporter, dst)
                    self._step("sequences", f"{len(self.sequences)} sequences set", t0)
                if "matviews" not in self.steps_done:
                    t0 = self._begin("matviews")
                    self._step("matviews", f"{refresh_matviews(exporter, dst)} materialized views refreshed", t0)
                if "large-objects" not in self.steps_done:
                    t0 = self._begin("large-objects")
                    n = copy_large_objects(exporter, lambda: connect(self.target, "target"), **dump_flags(self.opts))
                    self._step("large-objects", f"{n} large objects copied", t0)
                if "database-privileges" not in self.steps_done and not self.opts.no_privileges:
                    t0 = self._begin("database-privileges")
                    done = [copy_database_privileges(exporter, dst), copy_type_function_privileges(exporter, dst)]
                    self._step("database-privileges", "; ".join(d for d in done if d), t0)
                if "database-settings" not in self.steps_done:
                    t0 = self._begin("database-settings")
                    done = [copy_database_settings(exporter, dst), copy_database_comment(exporter, dst)]
                    self._step("database-settings", "; ".join(d for d in done if d), t0)
                if "analyze" not in self.steps_done:
                    t0 = self._begin("analyze")
                    rest = [t for t in tables if t.qualified not in self.analyzed]
                    self._analyze(rest)
                    self._step("analyze", f"{len(tables)} tables analyzed ({len(tables) - len(rest)} by the copy "
                                          "workers as each table was done)", t0)
                self.target_writes = table_writes(dst)  # a write after this shows as a change
                if self.opts.online and "subscribe" not in self.steps_done:
                    t0 = self._begin("subscribe")
                    self.changes_at_sync = sync.target_changes(dst)
                    made = sync.subscribe(dst, self.source, self.req.workflow_id)
                    self._step("subscribe", f"subscription {sync.subscription_name(self.req.workflow_id)} "
                                            + ("created: the source's writes since the snapshot stream to the target"
                                               if made else "already there"), t0)
        finally:
            early.shutdown(wait=True)  # a pre-data dump left running (an error before its use) ends first
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
            steps_done=sorted(self.steps_done), sequences=getattr(self, "sequences", {}),
            target_changes_at_sync=getattr(self, "changes_at_sync", 0),
            summary=f"{len(tables)} tables, {rows:,} rows copied and verified (count + checksum per table) "
                    f"in {seconds:.1f}s this attempt")
        for counts, field in writes:
            for name in sorted(names & set(counts)):
                i, u, d = counts[name]
                getattr(report, field).add(table=name, inserted=i, updated=u, deleted=d)
        return report

    def _analyze(self, tables: list[Table]) -> None:
        """ANALYZE on `jobs` sessions at once (each on the cores the copy used), ANALYZE_BATCH tables per
        statement: outside a transaction block each table is analyzed and committed on its own."""
        shards = [tables[k::self.jobs] for k in range(self.jobs) if tables[k::self.jobs]]

        def work(shard: list[Table]) -> None:
            with connect(self.target, "target", autocommit=True, application_name="dbmigrate-analyze") as c:
                # Each table's statistics commit on their own: without waiting for each WAL flush (2,000
                # small tables: 2,000 flushes), and one durable commit at the end covers them all.
                c.execute("SET synchronous_commit = off")
                for i in range(0, len(shard), ANALYZE_BATCH):  # one ANALYZE statement for many tables
                    self._check_cancel()
                    c.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(
                        sql.Identifier(t.schema, t.name) for t in shard[i:i + ANALYZE_BATCH])))
                durable(c)

        with concurrent.futures.ThreadPoolExecutor(max(1, len(shards)), thread_name_prefix="analyze") as pool:
            for future in [pool.submit(work, shard) for shard in shards]:
                future.result()

    def _pre_data(self, snapshot: str, tables: list[Table], excluded: list[str],
                  after_dump: Callable[[], concurrent.futures.Future],
                  dumped: concurrent.futures.Future | None = None) -> concurrent.futures.Future:
        """Applies pre-data (pg_dump's script, or the one `dumped` gives, started earlier); returns what
        `after_dump`, called once pg_dump of pre-data has ended, returned."""
        t0 = self._begin("pre-data")
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
        t_dump = time.monotonic()
        script = dumped.result() if dumped is not None else \
            dump_section(self.source, "pre-data", tools=self.tools, snapshot=snapshot, extra_args=excluded,
                         **dump_flags(self.opts))
        t_apply = time.monotonic()
        started = after_dump()
        apply_schema(self.target, tolerant_pre_data(script), "pre-data schema (pg_dump --section=pre-data)")
        self._step("pre-data", "tables, types, functions and views created from pg_dump --section=pre-data "
                               f"(target prepared {t_dump - t0:.2f} s, dump {t_apply - t_dump:.2f} s, "
                               f"applied in {time.monotonic() - t_apply:.2f} s)", t0)
        return started

    def _roles(self, exporter: psycopg.Connection) -> None:
        """--create-roles: the roles the database needs that the target lacks, before any object names them."""
        t0 = self._begin("roles")
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
        DataPhase(self, exporter, snapshot, tables, post).run_all()
