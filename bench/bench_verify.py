"""Verify figures: whole-database compare of two equal ~500 MB databases (against pgcopydb's
`compare data` when an installed pgcopydb has it), and the time to locate 10 changed rows in a
4-million-row table. BENCH_SCALE (default 1) scales the sizes; databases are named dbm_bench_* and
dropped afterwards. Results are printed and written to bench-output/verify.json.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from dbmigrate.v1 import agents_pb2
from services.common.checksum import table_checksum
from services.common.pg import connect, parse_url
from services.validation.verify import verify

ADMIN_URL = os.environ.get("DBMIGRATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
OUT = Path(os.environ.get("DBMIGRATE_BENCH_OUT", "bench-output")) / "verify.json"
ROOT = Path(__file__).resolve().parent.parent


def _url(name: str) -> str:
    return f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        c.execute(statement)


def _create(name: str, template: str = "template0") -> None:
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    _admin(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))


def _drop(name: str) -> None:
    try:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except psycopg.Error as err:
        print(f"could not drop {name}: {err}")


def _run(name: str, *statements: str) -> None:
    with psycopg.connect(_url(name), autocommit=True) as c:
        for s in statements:
            c.execute(s)


def _size(name: str) -> int:
    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        return c.execute("SELECT pg_database_size(%s)", (name,)).fetchone()[0]


def _request(src: str, dst: str) -> agents_pb2.VerifyRequest:
    return agents_pb2.VerifyRequest(workflow_id="bench", source=parse_url(_url(src)), target=parse_url(_url(dst)))


def find_pgcopydb() -> tuple[str | None, str]:
    """(path, why not) of a pgcopydb that has `compare data`."""
    candidates = [str(ROOT / ".venv" / "bin" / "pgcopydb"), shutil.which("pgcopydb") or "", "/usr/bin/pgcopydb"]
    for path in dict.fromkeys(c for c in candidates if c and os.access(c, os.X_OK)):
        probe = subprocess.run([path, "compare", "data", "--help"], capture_output=True, text=True, timeout=30)
        text = probe.stdout + probe.stderr
        if "unknown command" in text or probe.returncode not in (0, 1):
            version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
            v = next((ln.split("version", 1)[1].split()[0] for ln in (version.stdout + version.stderr).splitlines()
                      if "pgcopydb version" in ln), "?")
            return None, f"{path} is version {v}, which has no `compare data` command (added in 0.13)"
        return path, ""
    return None, "pgcopydb is not installed (scripts/install-tools.sh --bench installs it)"


def time_pgcopydb(path: str, src: str, dst: str) -> float:
    with tempfile.TemporaryDirectory() as work:
        t0 = time.perf_counter()
        done = subprocess.run([path, "compare", "data", "--source", _url(src), "--target", _url(dst),
                               "--dir", work], capture_output=True, text=True, timeout=3600)
        elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"pgcopydb compare data failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed


def one_side_scan(name: str) -> float:
    """Reference: the same count + checksum of every table on one side alone, one connection."""
    from services.common.catalog import list_tables
    with connect(parse_url(_url(name)), "source") as c:
        tables = list_tables(c)
        t0 = time.perf_counter()
        for t in tables:
            table_checksum(c, t.schema, t.name, t.all_columns)
        return time.perf_counter() - t0


def bench_equal(results: dict) -> None:
    src, dst = "dbm_bench_verify_src", "dbm_bench_verify_dst"
    rows = max(1000, int(1_700_000 * SCALE))
    try:
        _create(src)
        t0 = time.perf_counter()
        _run(src,
             "CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, amount numeric(12,2), "
             "placed timestamptz, status text)",
             f"INSERT INTO orders SELECT g, g % 50000, (g % 100000) / 100.0, "
             f"'2020-01-01 00:00+00'::timestamptz + g * interval '1 minute', "
             f"(ARRAY['new','paid','shipped','returned'])[1 + g % 4] FROM generate_series(1, {rows}) g",
             "CREATE TABLE events (id bigint PRIMARY KEY, kind text, payload text, at timestamptz)",
             f"INSERT INTO events SELECT g, 'kind' || (g % 20), md5(g::text) || md5((g * 7)::text), "
             f"'2021-06-01 00:00+00'::timestamptz + g * interval '1 second' FROM generate_series(1, {rows}) g",
             "CREATE TABLE readings (sensor int, value float8, note text)",  # no primary key
             f"INSERT INTO readings SELECT g % 1000, g / 3.0, 'r' || g FROM generate_series(1, {rows}) g",
             "VACUUM (FREEZE, ANALYZE)")
        _create(dst, template=src)
        size = _size(src)
        print(f"built two equal databases of {size / 1e6:,.0f} MB each ({3 * rows:,} rows) "
              f"in {time.perf_counter() - t0:.1f}s")
        times, report = [], None
        for _ in range(2):
            t0 = time.perf_counter()
            report = verify(_request(src, dst))
            times.append(time.perf_counter() - t0)
        assert report.equal, report.summary
        ours = min(times)
        single = one_side_scan(src)
        print(f"verify (equal databases): best {ours:.2f}s of {len(times)} runs; {report.summary}")
        print(f"  reference: one side's checksums alone, one connection: {single:.2f}s")
        entry = {"database_mb": round(size / 1e6), "rows": 3 * rows, "verify_seconds": round(ours, 3),
                 "verify_runs": [round(t, 3) for t in times], "one_side_scan_seconds": round(single, 3)}
        path, why = find_pgcopydb()
        if path:
            theirs = time_pgcopydb(path, src, dst)
            entry.update(pgcopydb_seconds=round(theirs, 3), ratio=round(ours / theirs, 3))
            print(f"pgcopydb compare data: {theirs:.2f}s; ours / pgcopydb = {ours / theirs:.2f}x (goal <= 1.0x)")
        else:
            entry.update(pgcopydb_seconds=None, pgcopydb_unavailable=why)
            print(f"pgcopydb compare data: unavailable: {why}")
        results["equal_databases"] = entry
    finally:
        _drop(dst)
        _drop(src)


def bench_locate(results: dict) -> None:
    src, dst = "dbm_bench_locate_src", "dbm_bench_locate_dst"
    rows = max(10_000, int(4_000_000 * SCALE))
    try:
        _create(src)
        t0 = time.perf_counter()
        _run(src, "CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int, price float8)",
             f"INSERT INTO items SELECT g, 'item ' || g, g % 100, g / 7.0 FROM generate_series(1, {rows}) g",
             "VACUUM (FREEZE, ANALYZE)")
        _create(dst, template=src)
        changed = sorted({1 + (i * 7_919_333) % rows for i in range(10)})
        _run(dst, f"UPDATE items SET qty = qty + 1 WHERE id IN ({', '.join(map(str, changed))})")
        print(f"built a {rows:,}-row table pair with {len(changed)} changed rows in {time.perf_counter() - t0:.1f}s")
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            report = verify(_request(src, dst))
            times.append(time.perf_counter() - t0)
            (t,) = report.tables
            found = sorted(json.loads(r.key)["id"] for r in t.rows)
            assert found == changed and t.changed_total == len(changed), (found, changed)
        print(f"locate {len(changed)} changed rows in {rows:,}: best {min(times):.2f}s of {len(times)} runs "
              f"(goal < 5 s); all {len(changed)} keys found exactly")
        results["locate_changed_rows"] = {"rows": rows, "changed": len(changed), "seconds": round(min(times), 3),
                                          "runs": [round(t, 3) for t in times], "found_exactly": True}
    finally:
        _drop(dst)
        _drop(src)


def main() -> None:
    results: dict = {"scale": SCALE}
    bench_equal(results)
    bench_locate(results)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
