"""Discovery: inspect the source and the target, and report what a migration between them meets.

Synchronous on purpose (the gRPC server runs it in a thread). Leaves summary, advisor and
advisor_note empty: the server fills them with the advisor.
"""
from __future__ import annotations

import concurrent.futures
import logging
import time

import psycopg
from google.protobuf import struct_pb2
from psycopg import sql

from dbmigrate.v1 import agents_pb2, common_pb2
from services.common.catalog import matches
from services.common.errors import DatabaseError, DBMigrateError, InvalidInput
from services.common.pg import check_connection, connect, describe, is_transient
from services.common import extconfig, pgtools
from services.discovery.findings import find
from services.discovery.inventory import LIST_KINDS, ONLINE_KINDS, inventory

log = logging.getLogger("dbmigrate.discovery")

APPLICATION_NAME = "dbmigrate-discovery"
# Per kind, at most this many entries go into the report's details (the findings use them all):
# the report travels in an event, and 2,000 tables' columns cost more to encode than to read.
DETAILS_LIMIT = 500
# Counting the rows of a conflicting target table: a bound so a huge table cannot hang discovery.
COUNT_TIMEOUT = "120s"


def _pg_dump(source_version_num: int, target_version_num: int) -> tuple[int, int, str] | None:
    """(major, minor, text) of the pg_dump the migration would use for this source and target; the newest
    installed when none is new enough (PG_DUMP_TOO_OLD says so); None when none is installed (PG_DUMP_MISSING)."""
    try:
        tools = pgtools.for_source(source_version_num, target_version_num)
    except DBMigrateError:
        if not pgtools.installed():
            return None
        tools = pgtools.newest()
    return tools.major, tools.minor, f"{tools.text} ({tools.bin_dir})"


def server_info(inv: dict) -> common_pb2.ServerInfo:
    s = inv["server"]
    ext = inv.get("extensions", [])
    return common_pb2.ServerInfo(
        version=str(s.get("version") or ""), version_num=int(s.get("version_num") or 0),
        encoding=s.get("encoding") or "", collation=s.get("collation") or "", ctype=s.get("ctype") or "",
        collation_provider=s.get("collation_provider") or "", size_bytes=int(s.get("size_bytes") or 0),
        max_connections=int(s.get("max_connections") or 0), wal_level=s.get("wal_level") or "",
        timezone=s.get("timezone") or "",
        extensions_installed=[e["name"] for e in ext if e.get("installed")],
        extensions_available=[e["name"] for e in ext if e.get("available")])


def count_target_rows(dst: psycopg.Connection, source_tables: list[dict], target_inv: dict) -> dict:
    """Exact rows of every target table that has the name of a selected source table.

    Rows of the table itself (ONLY): a partitioned table holds none, its partitions are counted
    on their own. Foreign tables are not counted (that would read the remote server).
    """
    existing = {(t["schema"], t["name"]): t["kind"] for t in target_inv.get("tables", [])}
    # Views, sequences and other relations with the name of a source table conflict as well.
    for v in target_inv.get("views", []):
        existing.setdefault((v["schema"], v["name"]), v["kind"])
    out: dict[tuple[str, str], int] = {}
    wanted = [(t["schema"], t["name"]) for t in source_tables if (t["schema"], t["name"]) in existing]
    if not wanted:
        return out
    try:
        with dst.transaction():
            dst.execute(f"SET LOCAL statement_timeout = '{COUNT_TIMEOUT}'")
            dst.execute("SET LOCAL lock_timeout = '10s'")
            for key in wanted:
                if existing[key] not in ("table", "partition", "inheritance_child", "partitioned"):
                    out[key] = 0
                    continue
                q = sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(*key))
                out[key] = int(dst.execute(q).fetchone()[0])
    except psycopg.Error as err:
        msg = (str(err).strip().splitlines() or ["no message"])[0]
        raise DatabaseError(f"counting the rows of the target's existing tables failed: {msg}",
                            retryable=is_transient(err)) from None
    return out


CONFIG_ROWS_READ = 100_000  # rows of one configuration table compared; a table with more is left out


def target_own_config_rows(src: psycopg.Connection, dst: psycopg.Connection) -> list[dict]:
    """Rows of extensions' configuration tables that the target already has and the source has not,
    among those the extension's condition selects (schema, name, extension, rows). The migration
    replaces those rows with the source's (services.execution.extdata: the source's condition on both
    sides, as here), so these would be lost: an extension created on the target before, with a
    pg_cron job or an SRID of the target's own. Rows are compared by the checksum's row hashes
    (extconfig); a table either side cannot read, whose columns differ or that holds more than
    CONFIG_ROWS_READ such rows is left out."""
    out: list[dict] = []
    theirs = {(r[0], r[1]) for r in dst.execute(extconfig.CONFIG_SQL).fetchall() if r[2] == "r"}
    for schema, name, kind, extension, condition in src.execute(extconfig.CONFIG_SQL).fetchall():
        if kind != "r" or (schema, name) not in theirs:
            continue
        ident = sql.Identifier(schema, name)
        hashes: list[list[int]] = []
        try:
            with src.transaction(), dst.transaction():
                cols = extconfig.columns(src, ident)
                if cols != extconfig.columns(dst, ident):
                    continue  # another version of the extension: the copy names it
                rows = extconfig.row_hashes_sql(ident, cols, extconfig.condition(condition), CONFIG_ROWS_READ + 1)
                for conn in (src, dst):
                    conn.execute("SET LOCAL row_security = off")  # a policy fails the read, not hides rows
                    hashes.append([h for (h,) in conn.execute(rows)])
        except psycopg.Error:
            continue  # unreadable on a side: left out (the source's is EXTENSION_CONFIG_UNREADABLE)
        if max(len(h) for h in hashes) > CONFIG_ROWS_READ:
            log.info("%s: more than %d configuration rows, not compared", ident.as_string(dst), CONFIG_ROWS_READ)
            continue
        own = set(hashes[1]) - set(hashes[0])
        if own:
            out.append({"schema": schema, "name": name, "extension": extension, "rows": len(own)})
    return out


def _bounded(inv: dict) -> dict:
    """The inventory with every list capped at DETAILS_LIMIT entries; 'truncated' says what was cut."""
    out = dict(inv)
    truncated = {}
    for kind in LIST_KINDS + ONLINE_KINDS:
        items = inv.get(kind, [])
        if len(items) > DETAILS_LIMIT:
            out[kind] = items[:DETAILS_LIMIT]
            truncated[kind] = {"total": len(items), "kept": DETAILS_LIMIT}
    if truncated:
        out["truncated"] = truncated
        out["truncated_note"] = (f"lists longer than {DETAILS_LIMIT} entries are cut to the first {DETAILS_LIMIT}; "
                                 "counts has the totals")
    return out


def _exact(value):
    """Struct numbers are doubles: integers beyond 2**53 (sequence values, byte counts) go as text."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and abs(value) > 2 ** 53:
        return str(value)
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    return value


def details_struct(source_inv: dict, target_inv: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(_exact({"source": _bounded(source_inv), "target": _bounded(target_inv),
                     "details_limit": DETAILS_LIMIT}))
    return s


EXACT_COUNT_TABLES = 200            # never-analyzed tables counted exactly, at most this many ...
EXACT_COUNT_BYTES = 64 * 1024 * 1024  # ... and only when small; the rest keep their estimate of 0


def count_unanalyzed(src, tables: list[dict]) -> None:
    """Tables never analyzed have no row estimate (reltuples = -1): count the small ones exactly so
    the report and the plan show real figures; NO_STATISTICS still tells the operator to ANALYZE."""
    todo = [t for t in tables if t.get("never_analyzed") and t.get("kind") in ("table", "partition",
                                                                               "inheritance_child")
            and int(t.get("bytes") or 0) <= EXACT_COUNT_BYTES][:EXACT_COUNT_TABLES]
    if todo:
        src.execute("SET lock_timeout = '5s'")  # a table locked by someone else keeps its estimate
    for t in todo:
        try:
            t["row_estimate"] = src.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(
                sql.Identifier(t["schema"], t["name"]))).fetchone()[0]
        except psycopg.Error:  # a table we may not read: keep the estimate, the copy will say more
            src.rollback()


def discover(req: agents_pb2.DiscoverRequest) -> common_pb2.DiscoveryReport:
    if not req.HasField("source") or not req.HasField("target"):
        raise InvalidInput("discovery needs both a source and a target connection")
    check_connection(req.source, "source")
    check_connection(req.target, "target")
    opts = req.options
    t0 = time.monotonic()

    def read_source() -> dict:
        with connect(req.source, "source", application_name=APPLICATION_NAME) as src:
            inv = inventory(src, online=opts.online)
            if opts.online:
                # Facts about the password, never the password: the subscription's connection string to
                # the source carries it, and a non-superuser's subscription must authenticate with it.
                inv["replication"]["connection_has_password"] = bool(req.source.password)
                inv["replication"]["connection_used_password"] = bool(src.pgconn.used_password)
            count_unanalyzed(src, inv["tables"])
            return inv

    # Both sides at once: the source's write-traffic window passes while the target is read.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="discover-source") as pool:
        source_future = pool.submit(read_source)
        with connect(req.target, "target", application_name=APPLICATION_NAME) as dst:
            # the target's write traffic is not reported
            target_inv = inventory(dst, sample_seconds=0, online=opts.online)
            source_inv = source_future.result()
            selected = [t for t in source_inv["tables"]
                        if matches(t["schema"], t["name"], list(opts.include), list(opts.exclude))]
            target_rows = count_target_rows(dst, selected, target_inv)
            if target_inv.get("extension_config") and source_inv.get("extension_config"):
                with connect(req.source, "source", application_name=APPLICATION_NAME) as src:
                    target_inv["extension_config_own_rows"] = target_own_config_rows(src, dst)
    dump = _pg_dump(int(source_inv["server"].get("version_num") or 0), int(target_inv["server"].get("version_num") or 0))

    report = common_pb2.DiscoveryReport(source=server_info(source_inv), target=server_info(target_inv),
                                        pg_dump_version=dump[2] if dump else "")
    for t in selected:
        report.tables.append(common_pb2.TableInfo(
            schema=t["schema"], name=t["name"], row_estimate=int(t.get("row_estimate") or 0),
            bytes=int(t.get("bytes") or 0), has_primary_key=bool(t.get("has_primary_key")),
            unlogged=bool(t.get("unlogged")), kind=t["kind"], owner=t.get("owner") or "",
            target_rows=target_rows.get((t["schema"], t["name"]), -1)))
    report.findings.extend(find(source_inv, target_inv, opts, dump, target_rows))
    report.details.CopyFrom(details_struct(source_inv, target_inv))
    log.info("discovery of %s -> %s: %d tables, %d findings in %.1fs", describe(req.source), describe(req.target),
             len(report.tables), len(report.findings), time.monotonic() - t0)
    return report
