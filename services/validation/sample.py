"""Validate: a sample of every table test-migrated into a scratch database on the target, proven exact.

The scratch database (dbmigrate_scratch_<workflow>) lives on the target server, gets the real
pre-data schema from pg_dump in the migration's snapshot, and receives each table's sample through
the same COPY path the execution agent uses (binary where every column type allows it, text
otherwise). It is dropped at the end whatever happens, and dropped first when an interrupted
validation of the same workflow left it behind. Nothing else on the target is touched.
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import re
import threading
import time
from pathlib import Path

import psycopg
from psycopg import sql

from dbmigrate.v1 import agents_pb2, common_pb2
from services.common.catalog import Named, Table, left_out_relations, list_tables, select_tables, version_stable
from services.common.checksum import Checksum, row_expression, row_hash
from services.common.copy import PSQL_BYTES, copy_direct, copy_in_sql, copy_into, copy_out_sql, read_digest
from services.common.errors import Cancelled, DBMigrateError, DatabaseError
from services.common.logs import redact
from services.common.pg import connect, is_transient
from services.common import pgtools
from services.common.pgdump import (DependencyLoop, apply_schema, dump_flags, dump_section, exclude_args, refused_objects,
                                    server_version_num, tolerant_pre_data)
from services.common.roles import needed_roles, role_names, to_create
from services.validation.scratch import create_scratch, drop_scratch, scratch_name
from services.validation.verify import render_before_load
from services.common.sessions import WorkerConnections, source_in_snapshot
from services.common.traffic import reading, write_traffic

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_ROWS = 10_000
_COLUMN_ORDER = """SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),
                         string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                   WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                     AND n.nspname NOT LIKE 'pg\\_%'
                   GROUP BY 1"""


def sample_where(table: Table, sample_rows: int) -> tuple[sql.Composable | None, bool]:
    """The sample: the whole table when small, else the rows of its first pages (a ctid range,
    stable inside the snapshot, unlike LIMIT under synchronized scans)."""
    pages = max(1, table.bytes // 8192)
    # reltuples is -1 before the first ANALYZE: assume narrow rows then (more pages = whole sample).
    estimate = table.row_estimate if table.row_estimate >= 0 else pages * 50
    if estimate <= sample_rows:
        return None, True
    rows_per_page = max(1.0, estimate / pages)
    first_pages = max(1, int(sample_rows / rows_per_page))
    return sql.SQL("ctid < {}::tid").format(sql.Literal(f"({first_pages},0)")), False


def _majors_differ(discovery: common_pb2.DiscoveryReport) -> bool:
    a, b = discovery.source.version_num // 10000, discovery.target.version_num // 10000
    return bool(a and b) and a != b


FINGERPRINT_BATCH = 100
# The sample test migration samples every table up to MAX_SAMPLED_TABLES; beyond, one table per set
# of column types (the largest; up to MAX_SHAPES), then the largest others up to MAX_SAMPLED_TABLES
# in all: it costs what it tells, not a copy of every small table (the migration itself proves every
# table). Each sampled table costs its CREATE TABLE, copy and compare in the scratch database: 200
# tables of one shape took 1.7 s of a 2,000-table validation, and 197 of the mixed bench's 200
# samples were small tables of one shape.
MAX_SAMPLED_TABLES = 50
MAX_SHAPES = 200
_LIBRARY_ERROR = re.compile(r"incompatible library|could not (?:access|load) (?:file|library)")
_LIBRARY_REMEDY = ("a C function names a library file the target server cannot load (another major version's, or "
                   "absent there): install the library built for the target's version, and on the source re-create "
                   "the function with CREATE OR REPLACE FUNCTION ... AS '$libdir/NAME' instead of an absolute path, "
                   "or drop it if nothing uses it")
REFUSED_LISTED = 20  # objects the target refuses, named one finding each (the summary counts them all)


def choose_sample(tables: list[Table]) -> tuple[list[Table], list[tuple[Table, Table]]]:
    """(tables to sample, [(table not sampled, the sampled one with its column types)])."""
    if len(tables) <= MAX_SAMPLED_TABLES:
        return list(tables), []
    by_shape: dict[tuple, Table] = {}
    for t in sorted(tables, key=lambda t: -t.bytes):
        by_shape.setdefault(tuple((c.type, c.generated, c.identity, c.binary_ok) for c in t.columns), t)
    chosen = {t.qualified: t for t in list(by_shape.values())[:MAX_SHAPES]}
    for t in sorted(tables, key=lambda t: -t.bytes):
        if len(chosen) >= MAX_SAMPLED_TABLES:
            break
        chosen.setdefault(t.qualified, t)
    covered = [(t, by_shape[tuple((c.type, c.generated, c.identity, c.binary_ok) for c in t.columns)])
               for t in tables if t.qualified not in chosen]
    return list(chosen.values()), covered


def fingerprint_query(k: int, table: Table, where: sql.Composable | None, rows_digest: bool = True) -> sql.Composed:
    """(k, rows, checksum, digest of every row) of a table's sample: the checksum the migration proves
    tables with, and an md5 over the sorted md5s of the rows' text (the multiset of rows; '' without
    `rows_digest`: it costs four times the checksum, and the digest of the sample's COPY stream,
    taken by the copy itself, says the same where the stream holds every column)."""
    digest = sql.SQL("md5(coalesce(string_agg(md5({row}), '' ORDER BY md5({row})), ''))").format(
        row=row_expression(table.all_columns)) if rows_digest else sql.SQL("''")
    q = sql.SQL("SELECT {k}, count(*), coalesce(sum({h}), 0), {digest} FROM ONLY {t} AS t").format(
        k=sql.Literal(k), h=row_hash(table.typed_columns), digest=digest, t=sql.Identifier(table.schema, table.name))
    return sql.SQL("({})").format(sql.SQL("{} WHERE {}").format(q, where) if where is not None else q)


def row_hashes(conn: psycopg.Connection, schema: str, name: str, columns: list[str],
               where: sql.Composable | None) -> list[str]:
    q = sql.SQL("SELECT md5({row}) FROM ONLY {t} AS t").format(row=row_expression(columns),
                                                                t=sql.Identifier(schema, name))
    if where is not None:
        q = sql.SQL("{} WHERE {}").format(q, where)
    return sorted(r[0] for r in conn.execute(q))


class Sampler:
    def __init__(self, req: agents_pb2.ValidateRequest, cancel: threading.Event | None = None):
        self.req = req
        self.cancel = cancel or threading.Event()
        self.opts = req.options
        self.sample_rows = req.options.sample_rows or DEFAULT_SAMPLE_ROWS
        self.jobs = max(1, min(4, req.options.jobs or os.cpu_count() or 2))
        self.scratch = common_pb2.Connection()
        self.scratch.CopyFrom(req.target)
        self.scratch.dbname = scratch_name(req.workflow_id)

    def run(self) -> common_pb2.ValidationReport:
        t_start = time.monotonic()
        blockers = [f for f in self.req.discovery.findings if f.severity == common_pb2.BLOCKER]
        if blockers:
            # The sample would only meet what discovery already named (a downgrade, a missing
            # extension, a non-empty target), with the server's own error instead of the remedy.
            names = ", ".join(sorted({f.code for f in blockers}))
            return common_pb2.ValidationReport(passed=False, skipped=True, summary=(
                f"The sample test migration was not run: discovery found {len(blockers)} blocking "
                f"finding{'s' if len(blockers) > 1 else ''} ({names}) that the migration must not go past."))
        with connect(self.req.target, "target", autocommit=True, application_name="dbmigrate-validation") as admin, \
                concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="scratch") as pool:
            # Across major versions the final verification compares the target with the source's schema
            # as the target server makes it: rendered now, beside the sample, while the target is empty.
            render = pool.submit(self._render) if _majors_differ(self.req.discovery) else None
            drop_scratch(admin, self.scratch.dbname)  # left by an interrupted run of the same workflow
            # CREATE DATABASE (0.4 s in the 2,000-table bench) on a session of its own, while the source's
            # catalog is read.
            made = pool.submit(self._create_scratch)
            try:
                report = self._in_snapshot(admin, made)
            finally:
                concurrent.futures.wait([made])
                drop_scratch(admin, self.scratch.dbname)
            rendered = render.result() if render is not None else None
        if rendered is not None:
            report.rendered.CopyFrom(rendered)
        report.scratch_database = f"database {self.scratch.dbname} on the target server (dropped)"
        traffic = self._write_traffic()
        if traffic is not None:
            report.findings.append(traffic)
        log.info("validation of %d tables in %.1fs: %s", len(report.tables), time.monotonic() - t_start,
                 "passed" if report.passed else "FAILED")
        return report

    def _render(self) -> common_pb2.RenderedSchema | None:
        """The source's schema rendered on the target server for the final verification (a
        rendering of its own, apart from the sample, which creates only the sampled tables); None
        when it cannot be taken now (the final verification renders it then)."""
        try:
            return render_before_load(self.req)
        except Exception as err:  # never the sample's failure: the final verification renders again
            log.warning("the source's schema was not rendered on the target before the migration (the final "
                        "verification renders it): %s",
                        (redact(str(err)).strip().splitlines() or [type(err).__name__])[0])
            return None

    def _refused(self, script: str) -> list[tuple[str, str, str]]:
        """Every object of `script` the target refuses (apply_schema stopped at the first), tried on the
        scratch database made empty again; [] when that cannot be told."""
        try:
            with connect(self.req.target, "target", autocommit=True, application_name="dbmigrate-validation") as admin:
                drop_scratch(admin, self.scratch.dbname)
                create_scratch(admin, self.scratch.dbname, "the sample test migration")
            return refused_objects(self.scratch, script)
        except DBMigrateError as err:
            if err.retryable:
                raise
            log.warning("the objects the target refuses could not be listed: %s", err)
            return []

    def _create_scratch(self) -> None:
        with connect(self.req.target, "target", autocommit=True, application_name="dbmigrate-validation") as c:
            create_scratch(c, self.scratch.dbname, "the sample test migration")

    def _in_snapshot(self, admin: psycopg.Connection, made: concurrent.futures.Future) -> common_pb2.ValidationReport:
        exporter = connect(self.req.source, "source", application_name="dbmigrate-validation")
        try:
            exporter.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            snapshot = exporter.execute("SELECT pg_export_snapshot()").fetchone()[0]
            self.tools = pgtools.for_source(server_version_num(exporter), admin.info.server_version)
            self.flags = dump_flags(self.opts)
            self.roles_to_create = {r.name for r in to_create(needed_roles(exporter), role_names(admin), self.opts)}
            if self.roles_to_create:
                # --create-roles makes them only once approved: the sample's schema goes without
                # owners and privileges (the migration carries them).
                self.flags = {"owners": False, "privileges": False}
            all_tables = list_tables(exporter)
            include, exclude = list(self.opts.include), list(self.opts.exclude)
            tables = select_tables(all_tables, include, exclude)
            return self._validate(snapshot, all_tables, tables, made, left_out_relations(exporter, include, exclude))
        finally:
            exporter.close()

    def _validate(self, snapshot: str, all_tables: list[Table], tables: list[Table],
                  made: concurrent.futures.Future, left_out: list[Named]) -> common_pb2.ValidationReport:
        """The sample; `made` is the scratch database's creation, which pg_dump's run goes beside (at
        2,000 tables the dump of 200 took 1.1-1.3 s and CREATE DATABASE 0.4-0.5 s)."""
        findings: list[common_pb2.Finding] = []
        chosen, covered = choose_sample(tables)
        schema_tables = self._schema_tables(snapshot, tables, chosen)
        try:
            script = dump_section(self.req.source, "pre-data", tools=self.tools, snapshot=snapshot,
                                  extra_args=exclude_args(all_tables + left_out, schema_tables), **self.flags)
        except DependencyLoop as err:
            findings.append(common_pb2.Finding(
                code="DEPENDENCY_LOOP", severity=common_pb2.BLOCKER, object=", ".join(err.items) or "schema",
                message=err.message,
                remedy="break the loop on the source (for example drop one function's DEFAULT that calls the other, "
                       "then set it again on the target after the migration), and start a new migration"))
            return common_pb2.ValidationReport(passed=False, findings=findings, summary=(
                "The sample test migration failed before any data was copied: " + err.message))
        made.result()
        try:
            apply_schema(self.scratch, tolerant_pre_data(script), "pre-data schema (pg_dump --section=pre-data)")
        except DatabaseError as err:
            if err.retryable:  # the target went away for a moment: the coordinator calls again
                raise
            refused = self._refused(tolerant_pre_data(script))
            remedy = "install what the error names on the target (extension, collation, tablespace, library) and retry"
            if not refused:
                findings.append(common_pb2.Finding(
                    code="SCHEMA_APPLY_FAILED", severity=common_pb2.BLOCKER, object="pre-data schema",
                    message=f"the source's schema could not be created on the target server: {err.message}",
                    remedy=remedy))
                return common_pb2.ValidationReport(passed=False, findings=findings, summary=(
                    "The sample test migration failed before any data was copied: the schema could not be "
                    f"created on the target server ({err.message})."))
            for typ, name, error in refused[:REFUSED_LISTED]:
                findings.append(common_pb2.Finding(
                    code="SCHEMA_APPLY_FAILED", severity=common_pb2.BLOCKER, object=f"{typ} {name}",
                    message=f"the target server refuses {typ.lower()} {name} of the source's schema: {error}",
                    remedy=_LIBRARY_REMEDY if _LIBRARY_ERROR.search(error) else remedy))
            more = f"; {len(refused) - REFUSED_LISTED} more not listed" if len(refused) > REFUSED_LISTED else ""
            return common_pb2.ValidationReport(passed=False, findings=findings, summary=(
                "The sample test migration failed before any data was copied: the target server refuses "
                f"{len(refused)} object{'s' if len(refused) != 1 else ''} of the source's schema (first {refused[0][0].lower()} {refused[0][1]}: "
                f"{refused[0][2]}){more}."))
        findings += self._column_order(snapshot)
        results: list[common_pb2.TableValidation] = []
        self.check_failed: set[str] = set()
        self.where: dict[str, tuple] = {}
        self.streams: dict[str, tuple[int, str, bool]] = {}  # table -> rows, digest and format of its sample's COPY
        self.conns = WorkerConnections(self.req.source, self.scratch, snapshot, ["SET synchronous_commit = off"],
                                       "dbmigrate-validation")
        try:
            with concurrent.futures.ThreadPoolExecutor(self.jobs, thread_name_prefix="validate") as pool:
                for r in pool.map(lambda t: self._table(t, snapshot), sorted(chosen, key=lambda t: -t.bytes)):
                    results.append(r)
            # A CHECK constraint may call a function that reads another table: those copies again, once
            # every other sample is in (the migration does the same).
            again = {t.qualified: t for t in tables if t.qualified in self.check_failed}
            results = [self._table(again[r.table], snapshot) if r.table in again else r for r in results]
        finally:
            self.conns.close_all()
        self._compare(tables, results, snapshot)
        results += [common_pb2.TableValidation(table=t.qualified, passed=True, copy_format="binary" if t.binary_ok
                                               else "text", reason=f"not sampled: its column types are those of "
                                                                   f"{rep.qualified}, which was")
                    for t, rep in covered]
        results.sort(key=lambda r: r.table)
        failed = [r for r in results if not r.passed]
        for r in failed:
            findings.append(common_pb2.Finding(
                code="SAMPLE_MISMATCH" if "differ" in r.reason else "SAMPLE_COPY_FAILED", severity=common_pb2.BLOCKER,
                object=r.table, message=r.reason,
                remedy="the full migration would fail or be wrong on this table: fix the cause first"))
        rows = sum(r.rows_sampled for r in results)
        nbytes = sum(r.bytes for r in results)
        # Per-table start-up dominates tiny samples; measure on the larger ones when there are enough.
        sized = [r for r in results if r.bytes >= 256 * 1024 and r.bytes_per_second > 0]
        basis = sized if sum(r.bytes for r in sized) >= 1024 * 1024 else [r for r in results if r.bytes_per_second > 0]
        busy = sum(r.bytes / r.bytes_per_second for r in basis)
        rows, nbytes = sum(r.rows_sampled for r in basis), sum(r.bytes for r in basis)
        bps = nbytes / busy if busy > 0 else 0.0
        rps = rows / busy if busy > 0 else 0.0
        formats = {f: sum(1 for r in results if r.copy_format == f) for f in ("binary", "text")}
        sampled = len(results) - len(covered)
        if failed:
            summary = (f"The sample test migration FAILED on {len(failed)} of {sampled} tables: "
                       + "; ".join(f"{r.table}: {r.reason}" for r in failed[:5]))
        else:
            summary = (f"The sample test migration was exact: {sampled} tables"
                       + (f" (standing for all {len(results):,}: the others have the column types of one of them)"
                          if covered else "") + ", "
                       f"{sum(r.rows_sampled for r in results):,} rows sampled "
                       f"({sum(r.bytes for r in results) / 2**20:.1f} MB; {formats['binary']} binary, {formats['text']} text COPY), counts, "
                       f"checksums and a digest of every sample equal. Measured {rps:,.0f} rows/s, "
                       f"{bps / 2**20:.1f} MB/s per job.")
        return common_pb2.ValidationReport(passed=not failed, tables=results, rows_per_second=rps, bytes_per_second=bps,
                                           findings=findings, summary=summary)

    def _write_traffic(self) -> common_pb2.Finding | None:
        """The second reading of the source's write counters (discovery took the first): the window
        is the time discovery and this sample took. Nothing when discovery already named it."""
        if any(f.code == "WRITE_TRAFFIC" for f in self.req.discovery.findings):
            return None
        try:
            first = self.req.discovery.details["source"]["activity"]["first"]
            changed_then, at_then = int(first["tuples_changed"]), float(first["sampled_epoch"])
        except (KeyError, ValueError, TypeError):
            return None  # a discovery report from before the reading had its time
        with connect(self.req.source, "source", autocommit=True, application_name="dbmigrate-validation") as c:
            changed, writers, at = reading(c)
        return write_traffic(max(0, changed - changed_then), max(0.0, at - at_then), writers,
                             online=self.req.options.online)

    def _schema_tables(self, snapshot: str, tables: list[Table], chosen: list[Table]) -> list[Table]:
        """The tables whose schema the scratch database gets. All of them when every table is sampled;
        else the sampled ones and every table something else depends on (views, foreign keys, row
        types, inheritance): creating a table costs a few fsyncs (its TOAST index), and 2,000 of them
        4-9 s, so the sample's schema scales with the sample. The migration creates them all."""
        if len(chosen) == len(tables):
            return tables
        with source_in_snapshot(self.req.source, snapshot, "dbmigrate-validation") as src:
            needed = {r[0] for r in src.execute((Path(__file__).parent / "sql" / "dependents.sql").read_text(),
                                                {"oids": [t.oid for t in tables]})}
        keep = {t.qualified for t in chosen}
        return [t for t in tables if t.qualified in keep or t.oid in needed]

    def _column_order(self, snapshot: str) -> list[common_pb2.Finding]:
        """Tables whose columns the restored schema has in another order than the source: pg_dump
        recreates an inheritance child with its parents' columns first (CREATE TABLE ... INHERITS),
        so a column added to a parent after the child was made moves."""
        with source_in_snapshot(self.req.source, snapshot, "dbmigrate-validation") as src, \
                connect(self.scratch, "target", application_name="dbmigrate-validation") as dst:
            # the servers' quote_ident: compared with the names a version counts as keywords bare
            source, scratch = ({version_stable(t): version_stable(cols) for t, cols in c.execute(_COLUMN_ORDER)}
                               for c in (src, dst))
        out = []
        for table, order in sorted(source.items()):
            there = scratch.get(table)
            if there is not None and there != order:
                out.append(common_pb2.Finding(
                    code="COLUMN_ORDER_CHANGES", severity=common_pb2.HIGH, object=table,
                    message=f"the target gets the columns of {table} in another order (pg_dump recreates an "
                            f"inheritance child with its parents' columns first): source ({order}), target "
                            f"({there}). The data is copied by column name; SELECT * and INSERT without a "
                            "column list see the new order",
                    remedy="accept the new order (the final verification notes it), or recreate the table on the "
                           "source with its columns in the order above before migrating"))
        return out

    def _table(self, table: Table, snapshot: str) -> common_pb2.TableValidation:
        """Copies one table's sample into the scratch database (compared afterwards, all at once)."""
        if self.cancel.is_set():
            raise Cancelled("the validation was cancelled")
        binary = table.binary_ok
        where, whole = sample_where(table, self.sample_rows)
        self.where[table.qualified] = (where, whole)
        out = common_pb2.TableValidation(table=table.qualified, copy_format="binary" if binary else "text")
        for attempt in range(3):
            try:
                return self._copy(table, snapshot, binary, where, whole, attempt > 0, out)
            except psycopg.Error as err:
                self.conns.reset()
                if is_transient(err) and attempt < 2:
                    time.sleep(0.5 * 2 ** attempt)
                    continue
                if binary and not isinstance(err, psycopg.errors.IntegrityError):
                    # The target refused a value's binary form; the migration copies such a table as text.
                    binary = False
                    out.copy_format = "text"
                    continue
                if isinstance(err, psycopg.errors.CheckViolation):
                    self.check_failed.add(table.qualified)
                missing = re.search(r'role "((?:[^"]|"")+)" does not exist', str(err))
                if missing and missing.group(1).replace('""', '"') in self.roles_to_create:
                    # A regrole value names a role --create-roles makes once approved: not sampled.
                    out.passed, out.rows_sampled = True, 0
                    out.reason = (f"not sampled: its values name role {missing.group(1)}, which --create-roles "
                                  "creates when the migration runs")
                    return out
                out.passed, out.reason = False, f"copy failed: {str(err).strip().splitlines()[0]}"
                return out
            except DBMigrateError as err:
                self.conns.reset()
                if err.retryable and attempt < 2:
                    time.sleep(0.5 * 2 ** attempt)
                    continue
                out.passed, out.reason = False, f"copy failed: {err.message}"
                return out
        return out

    def _copy(self, table, snapshot, binary, where, whole, again, out) -> common_pb2.TableValidation:
        """One COPY on the worker's own sessions: in-process unless the table is copied whole and is
        large (then through psql, like the migration). The scratch commits without waiting for its
        WAL to be flushed: it is dropped at the end whatever happens."""
        dst = self.conns.target()
        copy_out = copy_out_sql(table, binary=binary, where=where)
        copy_in = copy_in_sql(table.schema, table.name, table.copy_columns, binary=binary)
        with dst.transaction():
            if again:
                dst.execute(sql.SQL("TRUNCATE ONLY {}").format(sql.Identifier(table.schema, table.name)))
            if whole and table.bytes >= PSQL_BYTES:
                stats = copy_into(dst, self.req.source, snapshot, copy_out, copy_in)
            else:
                stats = copy_direct(self.conns.source(), dst, copy_out, copy_in)
        out.rows_sampled, out.bytes = stats.rows, stats.bytes
        self.streams[table.qualified] = (stats.rows, stats.digest, binary)
        secs = max(stats.seconds, 1e-6)
        out.rows_per_second, out.bytes_per_second = stats.rows / secs, stats.bytes / secs
        out.passed = True  # until the comparison says otherwise
        out.reason = "whole table" if whole else f"first {stats.rows:,} rows (ctid range)"
        return out

    def _compare(self, tables: list[Table], results: list[common_pb2.TableValidation], snapshot: str) -> None:
        """Source sample and copy compared, every copied table at once: count and checksum on each
        side, FINGERPRINT_BATCH tables a query, both sides at once, and the digest of the copy's COPY
        read back against the digest the copy took of the source's stream (equal streams carry equal
        rows). A table whose stream does not hold every column (generated ones), or whose copy read
        back another stream, is compared by a digest of every sampled row on each side instead."""
        by_name = {t.qualified: t for t in tables}
        todo = [r for r in results if r.passed and r.rows_sampled >= 0 and not r.reason.startswith("not sampled")]
        streamed = {r.table for r in todo if r.table in self.streams
                    and not any(c.generated for c in by_name[r.table].columns)}
        src, dst, read_back = self._fingerprints(snapshot, [by_name[r.table] for r in todo], streamed)
        again = [r.table for r in todo if r.table in streamed and src[r.table] == dst[r.table]
                 and read_back.get(r.table) != self.streams[r.table][:2]]
        if again:  # another row order, say: the multiset of rows decides
            s2, d2, _ = self._fingerprints(snapshot, [by_name[name] for name in again], set())
            src.update(s2)
            dst.update(d2)
        for r in todo:
            a, b = src[r.table], dst[r.table]
            if a == b:
                continue
            t = by_name[r.table]
            with source_in_snapshot(self.req.source, snapshot, "dbmigrate-validation") as s, \
                    connect(self.scratch, "target", application_name="dbmigrate-validation") as d:
                differing = len(set(row_hashes(s, t.schema, t.name, t.all_columns, self.where[t.qualified][0]))
                                ^ set(row_hashes(d, t.schema, t.name, t.all_columns, None)))
            r.passed = False
            r.reason = (f"sample differs after the copy: source {a[0]} rows {Checksum(a[0], a[1]).hex}, "
                        f"copy {b[0]} rows {Checksum(b[0], b[1]).hex}; {differing} sampled rows differ")

    def _fingerprints(self, snapshot: str, tables: list[Table], streamed: set[str]):
        """({table: (rows, checksum, rows digest)} of the source's samples and of their copies, and
        {table: (rows, digest)} of the copies' COPY streams read back, for the tables in `streamed`
        (whose rows digest is left out)."""
        read_back: dict[str, tuple[int, str]] = {}

        def side(source: bool) -> dict[str, tuple]:
            conn = source_in_snapshot(self.req.source, snapshot, "dbmigrate-validation") if source else \
                connect(self.scratch, "target", application_name="dbmigrate-validation")
            with conn:
                out = {}
                for i in range(0, len(tables), FINGERPRINT_BATCH):
                    batch = tables[i:i + FINGERPRINT_BATCH]
                    q = sql.SQL(" UNION ALL ").join(
                        fingerprint_query(k, t, self.where[t.qualified][0] if source else None,
                                          rows_digest=t.qualified not in streamed)
                        for k, t in enumerate(batch))
                    for k, rows, total, rows_digest in conn.execute(q):
                        out[batch[k].qualified] = (int(rows), int(total), rows_digest)
                if not source:
                    for t in tables:
                        if t.qualified in streamed:
                            read_back[t.qualified] = read_digest(
                                conn, copy_out_sql(t, binary=self.streams[t.qualified][2]), cancel=self.cancel)
                return out

        with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="compare") as pool:
            src_f, dst_f = pool.submit(side, True), pool.submit(side, False)
            return src_f.result(), dst_f.result(), read_back


def validate(req: agents_pb2.ValidateRequest, cancel: threading.Event | None = None) -> common_pb2.ValidationReport:
    if req.beside_discovery:
        req = _with_own_readings(req)
    return Sampler(req, cancel).run()


def _with_own_readings(req: agents_pb2.ValidateRequest) -> agents_pb2.ValidateRequest:
    """A sample run beside discovery (ValidateRequest.beside_discovery) reads what it takes of the
    discovery report itself: both servers' versions (whether to render the source's schema on the
    target) and the first reading of the source's write counters (the window then spans this sample)."""
    out = agents_pb2.ValidateRequest()
    out.CopyFrom(req)
    with connect(req.source, "source", autocommit=True, application_name="dbmigrate-validation") as src:
        changed, _, at = reading(src)
        out.discovery.source.version_num = src.info.server_version
    with connect(req.target, "target", autocommit=True, application_name="dbmigrate-validation") as dst:
        out.discovery.target.version_num = dst.info.server_version
    activity = out.discovery.details.get_or_create_struct("source").get_or_create_struct("activity")
    activity.get_or_create_struct("first").update({"tuples_changed": changed, "sampled_epoch": at})
    return out
