"""What a user runs: `dbmigrate migrate --approve` through the running stack against the peers.

The stack is started as `make run` starts it (every service, shipped defaults, every verification
on), on ports of its own. On each database shape the same source is migrated into a fresh empty
target by DBMigrate's CLI, by `pgcopydb clone --table-jobs 2 --index-jobs 2` and by
`pg_dump -Fc | pg_restore`, in alternating order, each after a CHECKPOINT on both servers (settle),
BENCH_ROUNDS times (default 3); the medians and every round are printed and written to
bench-output/migrate.json, with DBMigrate's per-phase breakdown of one run of each shape (from the
migration itself: `dbmigrate report ID --json`) and the peak memory of the whole stack (every
service, the psql processes it starts and the CLI) as the sum of their PSS at one moment (shared
pages counted once), with the summed RSS beside it.

Shapes (BENCH_SHAPES picks some, comma separated): pgbench40 (pgbench -s 40 with foreign keys),
mixed (one 1.5M-row table with two indexes, six 200,000-row tables with foreign keys to it, 300
small tables), small2000 (2,000 tables of 50 rows), pgbench200 (pgbench40 at 5x), small20000
(20,000 tables, one round: reported, pgcopydb left out), cross18 (pgbench40 from the local
PostgreSQL 15 to a PostgreSQL 18 server on another port).
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from scripts.pgcluster import Cluster
from services.common.launcher import ServiceProcess

ADMIN = os.environ.get("DBMIGRATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SHAPES = [s for s in os.environ.get("BENCH_SHAPES", "pgbench40,mixed,small2000,pgbench200,small20000,cross18")
          .split(",") if s]
OUT = Path("bench-output")
DBMIGRATE = Path(sys.executable).parent / "dbmigrate"
SRC, DST = "dbm_bench_src", "dbm_bench_dst"
GOAL = 0.85
MEMORY_GOAL_MB = 300  # the stack's peak PSS


def url(admin: str, db: str) -> str:
    return admin.rsplit("/", 1)[0] + "/" + db


def recreate(admin: str, db: str) -> None:
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(db)))


def settle(admins: set[str]) -> None:
    """A CHECKPOINT on each server before a timed run, so that no tool pays for the writes of what ran
    before it. Without it, the pages a source build or the previous tool left dirty were written by
    whichever checkpoint came next: the one a DROP DATABASE forces (DBMigrate's scratch database, a
    tool's target recreated) or a timed one, inside some tool's time. At 20,000 tables, right after
    the source was built, the sample's DROP DATABASE waited 4-5 s on it."""
    for admin in admins:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute("CHECKPOINT")


# ---- sources -------------------------------------------------------------------------------

def build_pgbench(scale: int) -> None:
    recreate(ADMIN, SRC)
    subprocess.run(["pgbench", "-i", "-q", "-s", str(scale), "--foreign-keys", "-d", url(ADMIN, SRC)], check=True,
                   capture_output=True)


def build_mixed() -> None:
    recreate(ADMIN, SRC)
    with psycopg.connect(url(ADMIN, SRC), autocommit=True) as c:
        c.execute("""
            CREATE TABLE big (id bigint PRIMARY KEY, account int NOT NULL, at timestamptz NOT NULL, amount numeric(12, 2),
                              note text);
            INSERT INTO big SELECT g, g % 50000, '2024-01-01'::timestamptz + g * interval '1 s', g / 100.0,
                                   md5(g::text) || repeat('x', 60) FROM generate_series(1, 1500000) g;
            CREATE INDEX big_account ON big (account);
            CREATE INDEX big_at ON big (at);""")
        for k in range(1, 7):
            c.execute(f"""
                CREATE TABLE mid_{k} (id bigint PRIMARY KEY, big_id bigint NOT NULL REFERENCES big (id), qty int,
                                      price numeric(10, 2), label text);
                INSERT INTO mid_{k} SELECT g, 1 + (g * 7) % 1500000, g % 100, g / 3.0, 'label ' || g
                  FROM generate_series(1, 200000) g;""")
        c.execute("""DO $$ BEGIN FOR k IN 1..300 LOOP
            EXECUTE format('CREATE TABLE small_%s (id int PRIMARY KEY, v text, n int)', k);
            EXECUTE format('INSERT INTO small_%s SELECT g, md5(g::text), g FROM generate_series(1, 200) g', k);
            END LOOP; END $$""")
        c.execute("ANALYZE")


def build_small(tables: int) -> None:
    recreate(ADMIN, SRC)
    with psycopg.connect(url(ADMIN, SRC), autocommit=True) as c:
        for start in range(1, tables + 1, 500):
            c.execute(f"""DO $$ BEGIN FOR k IN {start}..{min(tables, start + 499)} LOOP
                EXECUTE format('CREATE TABLE t_%s (id int PRIMARY KEY, v text, n int)', k);
                EXECUTE format('INSERT INTO t_%s SELECT g, md5(g::text), g FROM generate_series(1, 50) g', k);
                END LOOP; END $$""")
        c.execute("ANALYZE")


def source_facts() -> dict:
    with psycopg.connect(url(ADMIN, SRC), autocommit=True) as c:
        size = c.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        tables = c.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE c.relkind = 'r' AND n.nspname = 'public'").fetchone()[0]
    return {"mb": round(size / 2**20), "tables": tables, "rows": count_rows(url(ADMIN, SRC))}


def count_rows(database_url: str) -> int:
    """Every row of the tables in schema public, counted (statistics lag behind a fresh load)."""
    with psycopg.connect(database_url, autocommit=True) as c:
        tables = c.execute("SELECT quote_ident(relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE c.relkind = 'r' AND n.nspname = 'public'").fetchall()
        total = 0
        for i in range(0, len(tables), 500):
            q = " UNION ALL ".join(f"SELECT count(*) FROM public.{t}" for (t,) in tables[i:i + 500])
            total += sum(r[0] for r in c.execute(q).fetchall())
        return total


# ---- the stack -------------------------------------------------------------------------------

class BenchStack:
    """Every service as `make run` starts them (shipped defaults), on free ports, in a temp dir."""

    def __init__(self, home: Path):
        self.home = home
        self.env = {"DBMIGRATE_DATA_DIR": str(home)}
        for name in ("discovery", "validation", "generation", "execution", "coordinator", "web"):
            self.env[f"DBMIGRATE_{name.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"
        self.procs = [ServiceProcess(name, self.env[f"DBMIGRATE_{name.upper()}_ADDR"], dict(self.env),
                                     str(home / f"{name}.log"))
                      for name in ("discovery", "validation", "generation", "execution", "coordinator", "web")]

    def start(self) -> "BenchStack":
        for p in self.procs:
            p.start(wait=False)
        for p in self.procs:
            p.wait_ready(90)
        return self

    def pids(self) -> list[int]:
        """The services, then the processes they are forked from (services.common.launcher: the fork
        server, whose memory they share, and multiprocessing's resource tracker)."""
        helpers = [c.pid for c in psutil.Process().children() if "multiprocessing" in " ".join(c.cmdline())]
        return [p.proc.pid for p in self.procs if p.alive] + helpers

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()

    @property
    def coordinator(self) -> str:
        return self.env["DBMIGRATE_COORDINATOR_ADDR"]


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_memory(pids: list[int], by: dict[str, int] | None = None) -> tuple[int, int]:
    """Resident memory of every process tree in `pids`: (RSS, PSS). RSS counts a page shared by
    several processes (the Python interpreter's and the libraries' code, about 26 MB per service
    here) once in each of them; PSS (proportional set size, from /proc/PID/smaps_rollup) divides it
    among them, so the sum of PSS is the memory the processes take together. `by` gets each tree's
    PSS by its name. A process in two trees counts once, in the first (the fork server's tree holds
    the services)."""
    rss = pss = 0
    seen: set[int] = set()
    for pid in pids:
        try:
            p = psutil.Process(pid)
            tree = 0
            for q in [p, *p.children(recursive=True)]:
                if q.pid in seen:
                    continue
                seen.add(q.pid)
                try:
                    m = q.memory_full_info()
                    rss += m.rss
                    tree += getattr(m, "pss", m.rss)  # PSS where the kernel reports it (Linux)
                except psutil.Error:
                    pass
            pss += tree
            if by is not None:
                cmd = p.cmdline()
                line = " ".join(cmd)
                name = cmd[cmd.index("-m") + 1] if "-m" in cmd else "fork server" if "forkserver" in line \
                    else "resource tracker" if "resource_tracker" in line else "dbmigrate CLI" if "dbmigrate" in line \
                    else os.path.basename(cmd[0]) if cmd else str(pid)
                by[name] = max(by.get(name, 0), tree)
        except psutil.Error:
            pass
    return rss, pss


PEAKS_BY_PROCESS: dict[str, int] = {}  # the last measured run's peak PSS per process tree


def measured(cmd, *, shell: bool = False, pids=None, env=None) -> tuple[float, tuple[int, int], str]:
    """Wall seconds, the peak memory (RSS, PSS) of the command's tree (or of `pids`' trees, the
    stack, with the command's), stdout. Each peak is the largest sum over every process at one moment."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, shell=shell, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = [0, 0]
    PEAKS_BY_PROCESS.clear()

    def sample():
        while proc.poll() is None:
            rss, pss = tree_memory((pids() if pids else []) + [proc.pid], PEAKS_BY_PROCESS)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(0.2)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    seconds = time.monotonic() - t0
    th.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd if isinstance(cmd, str) else ' '.join(map(str, cmd))} failed "
                           f"({proc.returncode}): {(err or out)[-3000:]}")
    return seconds, (peak[0], peak[1]), out


# ---- the tools ----------------------------------------------------------------------------------

def tools(stack: BenchStack, target_admin: str, tmp: str, with_pgcopydb: bool):
    env = {**os.environ, "DBMIGRATE_COORDINATOR": stack.coordinator}
    src, dst = url(ADMIN, SRC), url(target_admin, DST)
    pg_dump = shutil.which("pg_dump")
    restore_bin = shutil.which("pg_restore")  # the OS's, as pg_dump (Debian's wrapper picks the version)
    out = [("dbmigrate", lambda: measured([str(DBMIGRATE), "--json", "migrate", "--source", src, "--target", dst,
                                           "--approve"], pids=stack.pids, env=env)),
           ("pg_dump | pg_restore", lambda: measured(f"{pg_dump} -Fc -d '{src}' | {restore_bin} -d '{dst}'",
                                                     shell=True))]
    if with_pgcopydb and shutil.which("pgcopydb"):
        out.append(("pgcopydb clone", lambda: measured(
            f"rm -rf {tmp}/p && pgcopydb clone --source '{src}' --target '{dst}' --table-jobs 2 --index-jobs 2 "
            f"--dir {tmp}/p", shell=True)))
    return out


def breakdown(stack: BenchStack, out: str) -> dict:
    """The migration's own per-phase timings (the coordinator's `timings`)."""
    try:
        m = json.loads(out)
    except ValueError:
        return {}
    return {t["phase"]: round(t["seconds"], 2) for t in m.get("timings", [])}


def run_shape(name: str, stack: BenchStack, tmp: str, rounds: int) -> dict:
    build = {"pgbench40": lambda: build_pgbench(40), "pgbench200": lambda: build_pgbench(200),
             "cross18": lambda: build_pgbench(40), "mixed": build_mixed, "small2000": lambda: build_small(2000),
             "small20000": lambda: build_small(20000)}[name]
    global ADMIN
    default_admin, own = ADMIN, None
    if name == "small20000":
        # pg_dump locks every table it dumps: 20,000 tables need a larger lock table than the local
        # server's (64 x 100 slots; discovery refuses it with LOCKS_TOO_FEW, and pg_dump fails there too).
        # A PostgreSQL 15 server of the bench's own, with max_locks_per_transaction 1024, holds both sides.
        own = Cluster(Path(tmp) / "pg15", free_port(), bin_dir=Path("/usr/lib/postgresql/15/bin"),
                      settings={"max_locks_per_transaction": "1024", "max_connections": "200"}).start()
        ADMIN = own.dsn()
    try:
        return _run_shape(name, build, stack, tmp, rounds)
    finally:
        ADMIN = default_admin
        if own is not None:
            own.remove()


def _run_shape(name: str, build, stack: BenchStack, tmp: str, rounds: int) -> dict:
    t0 = time.monotonic()
    build()
    facts = source_facts()
    print(f"source {name}: {facts['mb']} MB, {facts['tables']} tables, {facts['rows']:,} rows "
          f"(built in {time.monotonic() - t0:.0f} s)", flush=True)
    target_admin = ADMIN
    cluster = None
    if name == "cross18":
        cluster = Cluster(Path(tmp) / "pg18", 55428, settings={"max_connections": "200"}).start()
        target_admin = cluster.dsn()
    if name == "small20000":
        rounds = 1
    runs = tools(stack, target_admin, tmp, with_pgcopydb=name != "small20000")
    times: dict[str, list[float]] = {}
    peaks: dict[str, list[float]] = {}   # PSS
    rss_peaks: dict[str, list[float]] = {}
    phases = {}
    by_process: dict[str, int] = {}
    try:
        for n in range(rounds):
            for tool, run in runs[n % len(runs):] + runs[:n % len(runs)]:
                recreate(target_admin, DST)
                settle({ADMIN, target_admin})
                seconds, (rss, peak), out = run()
                rows = count_rows(url(target_admin, DST))
                if rows != facts["rows"] and facts["rows"]:
                    raise RuntimeError(f"{tool} left {rows:,} rows in the target, the source has {facts['rows']:,}")
                times.setdefault(tool, []).append(round(seconds, 2))
                peaks.setdefault(tool, []).append(round(peak / 2**20, 1))
                rss_peaks.setdefault(tool, []).append(round(rss / 2**20, 1))
                if tool == "dbmigrate":
                    by_process = {k: max(by_process.get(k, 0), v) for k, v in PEAKS_BY_PROCESS.items()}
                if tool == "dbmigrate" and not phases:
                    phases = breakdown(stack, out)
                print(f"  round {n + 1}: {tool:22s} {seconds:8.2f} s   peak memory {peak / 2**20:7.1f} MB "
                      f"(PSS; RSS summed {rss / 2**20:7.1f} MB)", flush=True)
    finally:
        if cluster is not None:
            cluster.remove()
    med = {tool: statistics.median(v) for tool, v in times.items()}
    peers = {t: m for t, m in med.items() if t != "dbmigrate"}
    fastest = min(peers, key=peers.get) if peers else None
    ratio = med["dbmigrate"] / peers[fastest] if fastest else None
    print("  medians: " + ", ".join(f"{t} {m:.2f} s" for t, m in med.items())
          + (f"; dbmigrate = {ratio:.2f}x the faster peer ({fastest}); goal <= {GOAL}x" if ratio else ""), flush=True)
    print("  dbmigrate peak memory (PSS) by process tree: " + ", ".join(f"{k} {v / 2**20:.0f} MB" for k, v in
                                                             sorted(by_process.items(), key=lambda kv: -kv[1])),
          flush=True)
    if phases:
        print("  breakdown of one dbmigrate run: " + ", ".join(f"{p} {s:.2f} s" for p, s in phases.items()), flush=True)
    return {"source": facts, "rounds": times, "medians": {t: round(m, 2) for t, m in med.items()},
            "peak_pss_mb": {t: max(v) for t, v in peaks.items()}, "peak_rss_mb": {t: max(v) for t, v in rss_peaks.items()},
            "memory_goal_met": max(peaks.get("dbmigrate", [0])) < MEMORY_GOAL_MB, "faster_peer": fastest,
            "ratio": round(ratio, 3) if ratio else None, "goal_met": ratio is not None and ratio <= GOAL,
            "breakdown": phases, "dbmigrate_peak_pss_mb_by_process": {k: round(v / 2**20, 1)
                                                                       for k, v in by_process.items()}}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    results: dict = {"rounds": ROUNDS, "shapes": {}}
    with tempfile.TemporaryDirectory(prefix="dbm-bench-migrate-") as tmp:
        os.chmod(tmp, 0o755)  # the servers of the bench's own run as the postgres OS user, below it
        (Path(tmp) / "stack").mkdir()
        stack = BenchStack(Path(tmp) / "stack").start()
        try:
            for shape in SHAPES:
                print(f"\n-- {shape}", flush=True)
                results["shapes"][shape] = run_shape(shape, stack, tmp, ROUNDS)
                (OUT / "migrate.json").write_text(json.dumps(results, indent=2))
        finally:
            stack.stop()
    with psycopg.connect(ADMIN, autocommit=True) as c:
        for db in (SRC, DST):
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
    print("\nsummary (median wall time, DBMigrate against the faster of pgcopydb clone and pg_dump | pg_restore):")
    for shape, r in results["shapes"].items():
        print(f"  {shape:12s} dbmigrate {r['medians'].get('dbmigrate')} s, {r['faster_peer']} "
              f"{r['medians'].get(r['faster_peer'])} s: {r['ratio']}x {'(goal met)' if r['goal_met'] else '(goal NOT met)'}"
              f", dbmigrate peak memory {r['peak_pss_mb'].get('dbmigrate')} MB (PSS; goal < {MEMORY_GOAL_MB} MB"
              f"{': met' if r['memory_goal_met'] else ': NOT met'}; RSS summed {r['peak_rss_mb'].get('dbmigrate')} MB)")


if __name__ == "__main__":
    main()
