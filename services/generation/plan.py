"""The migration plan: ordered steps, table order and grouping, jobs, parts, time and disk estimates."""
from __future__ import annotations

import heapq
import os

from dbmigrate.v1 import common_pb2
from services.common.catalog import parts_for_size, split_threshold

STEPS = [
    ("pre-data", "Create schemas, types, functions, tables and views on the target from pg_dump --section=pre-data, "
                 "taken in the migration's exported snapshot."),
    ("extension-data", "Copy the rows users added to extensions' configuration tables (PostGIS's spatial_ref_sys, "
                       "pg_cron's jobs) as pg_dump does, and prove them by count and checksum."),
    ("data", "Copy every table (largest first, {jobs} at a time, large tables in parts) with COPY streamed from the "
             "source snapshot into the target; each table or part is emptied and filled in one transaction."),
    ("indexes", "Build each table's indexes and primary key as soon as its data is in, then verify its rows "
                "(count and checksum on both sides)."),
    ("post-data", "Add the remaining constraints, foreign keys, triggers, policies and comments; triggers are "
                  "created after the load so they never fire on copied rows."),
    ("sequences", "Set every sequence (serial and identity included) to the source's value."),
    ("matviews", "Populate the materialized views."),
    ("large-objects", "Copy the large objects."),
    ("database-settings", "Set the source database's own settings (ALTER DATABASE ... SET, ALTER ROLE ... IN "
                          "DATABASE ... SET) on the target database; pg_dump writes them only with --create."),
    ("analyze", "ANALYZE the target so the planner has statistics."),
    ("verify", "Compare the whole databases, objects and data, down to the rows that differ."),
]
# Online: the copy reads a replication slot's snapshot, then the source's changes stream until cutover.
ONLINE_STEPS = [
    ("publish", "Publish the migrated tables and create a logical replication slot on the source; the whole copy "
                "reads the snapshot the slot exports, so the copy and the change stream meet exactly."),
    *STEPS[:-1],
    ("subscribe", "Subscribe the target to the slot (no initial copy): the source's writes since the snapshot "
                  "stream to the target (SYNCING; lag, changes applied and problems in the status)."),
    ("cutover", "On `dbmigrate cutover` (once the application's writes are stopped): wait until the target applied "
                "the source's last change, set the sequences, compare the whole databases, refuse if a write "
                "arrived meanwhile, then drop the subscription, the slot and the publication."),
]

# Assumed when the validation measured nothing (an empty sample); stated in the report.
FALLBACK_BYTES_PER_SECOND = 50 * 1024 * 1024
INDEX_OVERHEAD = 0.35   # index builds and per-table checks, as a share of the copy time
DISK_HEADROOM = 1.2     # WAL, index builds' sort space


def effective_jobs(options: common_pb2.MigrationOptions) -> int:
    return max(1, options.jobs or os.cpu_count() or 2)


def build_plan(discovery: common_pb2.DiscoveryReport, validation: common_pb2.ValidationReport,
               options: common_pb2.MigrationOptions) -> tuple[common_pb2.MigrationPlan, list[str]]:
    """The plan and the notes that explain its estimates."""
    jobs = effective_jobs(options)
    threshold = split_threshold(options.split_threshold_bytes, jobs)
    notes: list[str] = []
    tables = sorted(discovery.tables, key=lambda t: (-t.bytes, t.schema, t.name))
    # Greedy grouping: each unit goes to the least-loaded worker; a group is what one job copies.
    loads = [(0, g) for g in range(1, jobs + 1)]
    heapq.heapify(loads)
    planned = []
    for order, t in enumerate(tables, start=1):
        parts = parts_for_size(t.bytes, threshold) if t.kind != "partitioned" else 1
        load, group = heapq.heappop(loads)
        heapq.heappush(loads, (load + t.bytes // max(1, parts), group))
        planned.append(common_pb2.PlannedTable(schema=t.schema, name=t.name, bytes=t.bytes,
                                               rows=max(0, t.row_estimate), parts=parts, order=order, group=group))
    total_bytes = sum(t.bytes for t in tables)
    bps = validation.bytes_per_second
    if bps <= 0:
        bps = FALLBACK_BYTES_PER_SECOND
        notes.append(f"no throughput was measured; the estimate assumes {bps / 2**20:.0f} MB/s per job")
    else:
        notes.append(f"estimate from the throughput measured on the sample: {bps / 2**20:.1f} MB/s per job")
    # The longest single unit bounds the copy from below; total/jobs bounds it otherwise.
    longest = max((p.bytes / max(1, p.parts) for p in planned), default=0)
    copy_seconds = max(total_bytes / (bps * jobs), longest / bps)
    estimated = copy_seconds * (1 + INDEX_OVERHEAD) + 2.0 + 0.02 * len(tables)
    source_size = discovery.source.size_bytes or total_bytes
    disk = int(max(total_bytes, source_size) * DISK_HEADROOM)
    chosen = ONLINE_STEPS if options.online else STEPS[:-1] if options.skip_final_verify else STEPS
    steps = [common_pb2.PlanStep(order=i, name=name, description=text.format(jobs=jobs))
             for i, (name, text) in enumerate(chosen, start=1)]
    plan = common_pb2.MigrationPlan(steps=steps, tables=planned, jobs=jobs, estimated_seconds=round(estimated, 1),
                                    target_disk_bytes=disk)
    split_tables = [p for p in planned if p.parts > 1]
    if split_tables:
        notes.append(f"{len(split_tables)} table(s) over {threshold / 2**20:.0f} MB copied in parts: "
                     + ", ".join(f"{p.schema}.{p.name} ({p.parts} parts)" for p in split_tables[:5]))
    return plan, notes
