"""Discovery figure: discover() on a source with 20,000 tables (each with a primary key, three columns
and an index) against an empty target. BENCH_SCALE (default 1) scales the table count; the
databases are named dbm_bench_disc_* and dropped afterwards. Results are printed and written to
bench-output/discovery.json.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psycopg
from psycopg import sql

from dbmigrate.v1 import agents_pb2, common_pb2
from services.common.pg import parse_url
from services.discovery.discover import discover

ADMIN_URL = os.environ.get("DBMIGRATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
OUT = Path(os.environ.get("DBMIGRATE_BENCH_OUT", "bench-output")) / "discovery.json"
TABLES = max(1, int(20_000 * SCALE))
# Tables per transaction: each takes a few locks (table, toast, two indexes), and one transaction
# may hold about max_locks_per_transaction * max_connections of them.
BATCH = 500
SOURCE = f"dbm_bench_disc_src_{os.getpid()}"
TARGET = f"dbm_bench_disc_dst_{os.getpid()}"


def _url(name: str) -> str:
    return f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        c.execute(statement)


def _create(name: str) -> None:
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    _admin(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))


def _drop(name: str) -> None:
    try:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except psycopg.Error as err:
        print(f"could not drop {name}: {err}")


def build_source(n: int) -> float:
    """n tables in schemas of 1,000, BATCH tables per transaction; returns the seconds it took."""
    t0 = time.perf_counter()
    with psycopg.connect(_url(SOURCE), autocommit=True) as c:
        for s in range((n + 999) // 1000):
            c.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(f"s{s:02d}")))
        for start in range(0, n, BATCH):
            c.execute(f"""
                DO $$ BEGIN
                  FOR k IN {start}..{min(n, start + BATCH) - 1} LOOP
                    EXECUTE format('CREATE TABLE s%s.t%s (id bigint PRIMARY KEY, name text NOT NULL, '
                                   'created timestamptz DEFAULT now())', lpad((k / 1000)::text, 2, '0'), k);
                    EXECUTE format('CREATE INDEX t%s_name ON s%s.t%s (name)', k, lpad((k / 1000)::text, 2, '0'), k);
                  END LOOP;
                END $$""")
        c.execute("ANALYZE")
    return time.perf_counter() - t0


def main() -> None:
    results: dict = {"scale": SCALE, "tables": TABLES}
    try:
        _create(SOURCE)
        _create(TARGET)
        results["build_seconds"] = round(build_source(TABLES), 1)
        print(f"built a source with {TABLES:,} tables in {results['build_seconds']}s")
        req = agents_pb2.DiscoverRequest(workflow_id="bench", source=parse_url(_url(SOURCE)),
                                         target=parse_url(_url(TARGET)),
                                         options=common_pb2.MigrationOptions(jobs=4))
        times = []
        report = None
        for _ in range(2):
            t0 = time.perf_counter()
            report = discover(req)
            times.append(time.perf_counter() - t0)
        assert report is not None and len(report.tables) == TABLES, len(report.tables)
        results.update({
            "discover_seconds_first": round(times[0], 2),
            "discover_seconds_best": round(min(times), 2),
            "findings": len(report.findings),
            "report_bytes": report.ByteSize(),
            "details_truncated": "truncated" in report.details.fields["source"].struct_value.fields,
        })
        print(f"discover() on {TABLES:,} tables ({TABLES * 2:,} indexes, {TABLES * 3:,} columns) against an "
              f"empty target: first {times[0]:.2f}s, best {min(times):.2f}s (the source's write-traffic "
              f"samples are at least 1 s apart); report {report.ByteSize() / 1e6:.1f} MB, {len(report.findings)} findings")
    finally:
        _drop(SOURCE)
        _drop(TARGET)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
