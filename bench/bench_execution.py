"""Whole-database copy: DBMigrate's execution agent against pg_dump | pg_restore and pgcopydb clone.

The same source database (one large table, a few medium ones, 200 small ones, indexes, foreign
keys) is copied into a fresh empty database by each tool, with 2 jobs where the tool has jobs.
Wall time, throughput and the peak resident memory of the tool's whole process tree are reported;
each copy is checked (row counts) so a fast wrong answer cannot win. BENCH_SCALE scales the rows.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from psycopg import sql

ADMIN = os.environ.get("DBMIGRATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
JOBS = 2
SRC, DST = "dbm_bench_exec_src", "dbm_bench_exec_dst"
OUT = Path("bench-output")

SCHEMA = """
CREATE SCHEMA shop;
CREATE TABLE shop.accounts (id bigint PRIMARY KEY, name text NOT NULL, created timestamptz NOT NULL);
CREATE TABLE shop.events (id bigint PRIMARY KEY, account bigint NOT NULL REFERENCES shop.accounts (id),
                          kind smallint NOT NULL, amount numeric(12, 2), payload text, at timestamptz NOT NULL);
CREATE TABLE shop.items (id bigint PRIMARY KEY, account bigint REFERENCES shop.accounts (id), sku text, qty int,
                         price numeric(10, 2), tags text[]);
CREATE TABLE shop.notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text, meta jsonb);
"""


def url(db: str) -> str:
    return ADMIN.rsplit("/", 1)[0] + "/" + db


def recreate(db: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))


def build_source(scale: float = SCALE) -> dict:
    recreate(SRC)
    n_events, n_items, n_accounts = int(3_000_000 * scale), int(600_000 * scale), int(100_000 * scale)
    with psycopg.connect(url(SRC), autocommit=True) as c:
        c.execute(SCHEMA)
        c.execute("INSERT INTO shop.accounts SELECT g, 'account ' || g, '2024-01-01'::timestamptz + g * interval '1 min' "
                  "FROM generate_series(1, %s) g", (n_accounts,))
        c.execute("INSERT INTO shop.events SELECT g, 1 + g %% %s, (g %% 7)::smallint, g / 100.0, md5(g::text) || "
                  "repeat('p', 40), '2024-01-01'::timestamptz + g * interval '1 s' FROM generate_series(1, %s) g",
                  (n_accounts, n_events))
        c.execute("CREATE INDEX events_account ON shop.events (account)")
        c.execute("CREATE INDEX events_at ON shop.events (at)")
        c.execute("INSERT INTO shop.items SELECT g, 1 + g %% %s, 'sku-' || g, g %% 50, g %% 1000 / 10.0, "
                  "ARRAY['a', 'b' || g %% 10] FROM generate_series(1, %s) g", (n_accounts, n_items))
        c.execute("INSERT INTO shop.notes (body, meta) SELECT repeat('note ', 20) || g, jsonb_build_object('n', g) "
                  "FROM generate_series(1, %s) g", (int(200_000 * scale),))
        for i in range(200):
            c.execute(f"CREATE TABLE public.small_{i} (id int PRIMARY KEY, v text)")
            c.execute(f"INSERT INTO public.small_{i} SELECT g, 'v' || g FROM generate_series(1, 100) g")
        c.execute("VACUUM ANALYZE")
        size = c.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        counts = {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("shop.accounts", "shop.events", "shop.items", "shop.notes")}
    return {"bytes": size, "counts": counts}


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants (bytes), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        todo.extend(children.get(p, []))
    return total


def run_measured(name: str, cmd: str | list[str], shell: bool = False) -> dict:
    """Runs one tool into a fresh empty target; wall time and peak RSS of its whole process tree."""
    recreate(DST)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, shell=shell, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.1)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    seconds = time.monotonic() - t0
    th.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed ({proc.returncode}): {err[-2000:]}")
    return {"tool": name, "seconds": round(seconds, 2), "peak_rss_mb": round(peak[0] / 2**20, 1)}


def check(counts: dict) -> None:
    with psycopg.connect(url(DST)) as c:
        for t, n in counts.items():
            got = c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            assert got == n, f"{t}: {got} rows in the copy, {n} in the source"
        indexes = c.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'shop'").fetchone()[0]
        assert indexes >= 6, f"only {indexes} indexes in the copy"


DBMIGRATE = """
import json, sys, threading
from dbmigrate.v1 import agents_pb2, common_pb2
from services.common.pg import parse_url
from services.execution.server import prepare
from services.execution.runner import ExecutionRun
src, dst = parse_url(sys.argv[1]), parse_url(sys.argv[2])
opts = common_pb2.MigrationOptions(jobs=int(sys.argv[3]))
reply = prepare(agents_pb2.PrepareRequest(source=src, target=dst, options=opts))
req = agents_pb2.ExecuteRequest(workflow_id="bench", source=src, target=dst, options=opts, baseline=reply.baseline, attempt=1)
report = ExecutionRun(req, lambda ev: None, threading.Event()).run()
print(json.dumps({"verified": report.verified, "rows": report.rows, "bytes": report.bytes}))
"""


PIPE_ONE = ("psql -X -q -d {src} -c 'COPY {t} TO STDOUT (FORMAT binary)' | "
            "psql -X -q -d {dst} -c 'COPY {t} FROM STDIN (FORMAT binary)'")


def data_phase(source_bytes: int) -> dict:
    """The pump alone: every table copied 2 at a time, largest first, into a target with the schema
    and no indexes; a raw `psql | psql` pipe per table against the execution agent's own copy path."""
    from concurrent.futures import ThreadPoolExecutor

    from services.common.catalog import list_tables
    from services.common.pg import connect, parse_url
    from services.common import pgtools
    from services.common.pgdump import apply_script, dump_section
    from services.execution import data
    from services.execution.conns import WorkerConnections
    from services.execution.units import Unit

    recreate(DST)
    src, dst = parse_url(url(SRC)), parse_url(url(DST))
    apply_script(dst, dump_section(src, "pre-data", tools=pgtools.newest()))
    with connect(src, "source") as c:
        tables = sorted(list_tables(c), key=lambda t: -t.bytes)

    def truncate():
        with psycopg.connect(url(DST), autocommit=True) as c:
            for t in tables:
                c.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(t.schema, t.name)))

    def raw(t) -> None:
        name = sql.Identifier(t.schema, t.name).as_string(None)
        subprocess.run(PIPE_ONE.format(src=url(SRC), dst=url(DST), t=name.replace("'", "'\\''")), shell=True,
                       check=True, capture_output=True)

    t0 = time.monotonic()
    with ThreadPoolExecutor(JOBS) as pool:
        list(pool.map(raw, tables))
    raw_seconds = time.monotonic() - t0
    truncate()
    exporter = connect(src, "source")
    exporter.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    snapshot = exporter.execute("SELECT pg_export_snapshot()").fetchone()[0]
    conns = WorkerConnections(src, dst, snapshot)
    t0 = time.monotonic()
    with ThreadPoolExecutor(JOBS) as pool:
        list(pool.map(lambda t: data.copy_unit(Unit(t.qualified, t), conns, src, snapshot), tables))
    ours_seconds = time.monotonic() - t0
    conns.close_all()
    exporter.close()
    out = {"source_mb": round(source_bytes / 2**20), "raw_pipe_seconds": round(raw_seconds, 2), "dbmigrate_copy_seconds": round(ours_seconds, 2),
           "throughput_ratio": round(raw_seconds / ours_seconds, 2)}
    print(f"data phase alone ({len(tables)} tables, {JOBS} at a time): raw psql|psql pipe {raw_seconds:.2f} s, "
          f"dbmigrate's copy path {ours_seconds:.2f} s: throughput {out['throughput_ratio']:.2f}x the pipe "
          f"(goal >= 0.9x)", flush=True)
    return out


def runs(tmp: str) -> list[tuple[str, str | list[str], bool]]:
    out = [
        ("dbmigrate", [sys.executable, "-c", DBMIGRATE, url(SRC), url(DST), str(JOBS)], False),
        ("pg_dump | pg_restore", f"pg_dump -Fc -d {url(SRC)} | pg_restore --no-owner -d {url(DST)}", True),
        ("pg_dump -Fd -j2 + pg_restore -j2",
         f"rm -rf {tmp}/d && pg_dump -Fd -j {JOBS} -f {tmp}/d -d {url(SRC)} && "
         f"pg_restore --no-owner -j {JOBS} -d {url(DST)} {tmp}/d", True),
    ]
    if subprocess.run("command -v pgcopydb", shell=True, capture_output=True).returncode == 0:
        out.append(("pgcopydb clone", f"rm -rf {tmp}/p && pgcopydb clone --source {url(SRC)} --target {url(DST)} "
                                      f"--table-jobs {JOBS} --index-jobs {JOBS} --no-owner --dir {tmp}/p", True))
    return out


def main() -> None:
    OUT.mkdir(exist_ok=True)
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    results: dict = {"scale": SCALE, "rounds": rounds}
    with tempfile.TemporaryDirectory(prefix="dbm-bench-") as tmp:
        # Memory at two table sizes: a quarter-size source first, then the full one.
        small = build_source(SCALE / 4)
        r = run_measured("dbmigrate", runs(tmp)[0][1])
        check(small["counts"])
        results["memory_small"] = {"source_mb": round(small["bytes"] / 2**20), "peak_rss_mb": r["peak_rss_mb"]}
        source = build_source(SCALE)
        mb = source["bytes"] / 2**20
        print(f"source: {mb:.0f} MB on disk, rows {source['counts']}", flush=True)
        times: dict[str, list[float]] = {}
        rss: dict[str, list[float]] = {}
        tools = runs(tmp)
        for n in range(rounds):
            order = tools[n % len(tools):] + tools[:n % len(tools)]  # alternate who goes first
            for name, cmd, shell in order:
                r = run_measured(name, cmd, shell)
                check(source["counts"])
                times.setdefault(name, []).append(r["seconds"])
                rss.setdefault(name, []).append(r["peak_rss_mb"])
                print(f"round {n + 1}: {name:34s} {r['seconds']:7.2f} s  peak RSS {r['peak_rss_mb']:6.1f} MB", flush=True)
        medians = {name: statistics.median(v) for name, v in times.items()}
        results["source_mb"] = round(mb)
        results["tools"] = {name: {"median_seconds": round(medians[name], 2), "runs": v,
                                   "mb_per_second": round(mb / medians[name], 1), "peak_rss_mb": max(rss[name])}
                            for name, v in times.items()}
        ours = medians["dbmigrate"]
        print(f"medians of {rounds} rounds, {mb:.0f} MB:", flush=True)
        for name, m in medians.items():
            print(f"  {name:34s} {m:7.2f} s  {mb / m:6.1f} MB/s" + ("" if name == "dbmigrate" else
                  f"   dbmigrate = {ours / m:.2f}x its time"), flush=True)
        results["memory_full"] = {"source_mb": round(mb), "peak_rss_mb": max(rss["dbmigrate"])}
        print(f"dbmigrate peak RSS (process tree): {results['memory_small']['peak_rss_mb']} MB at "
              f"{results['memory_small']['source_mb']} MB of data, {results['memory_full']['peak_rss_mb']} MB at "
              f"{round(mb)} MB (goal < 300 MB, not growing with size)", flush=True)
        results["data_phase"] = data_phase(source["bytes"])
    (OUT / "execution.json").write_text(json.dumps(results, indent=2))
    with psycopg.connect(ADMIN, autocommit=True) as c:
        for db in (SRC, DST):
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


if __name__ == "__main__":
    main()
