"""pg_dump and psql, the canonical tools, run with the password in the environment, never on the command line."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import psycopg
from psycopg import conninfo as _conninfo

from dbmigrate.v1 import common_pb2
from services.common.catalog import Table
from services.common.errors import DatabaseError, FailedPrecondition
from services.common.logs import redact, register_secret
from services.common.pg import PINNED_SETTINGS, describe

_TRANSIENT = ("could not connect", "connection refused", "server closed the connection", "terminating connection",
              "the database system is", "could not receive data", "no connection to the server",
              "too many clients", "canceling statement due to lock timeout", "deadlock detected",
              "could not serialize")


def tool_env(conn: common_pb2.Connection) -> dict[str, str]:
    """Environment for pg_dump/psql: password and pinned session settings, outside argv and logs."""
    register_secret(conn.password)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if conn.password:
        env["PGPASSWORD"] = conn.password
    env["PGOPTIONS"] = " ".join(f"-c {k.replace(' ', '')}={v.replace(' ', '')}" for k, v in PINNED_SETTINGS.items()
                                if k not in ("client_encoding",))
    env["PGCLIENTENCODING"] = "UTF8"
    env["PGCONNECT_TIMEOUT"] = conn.params.get("connect_timeout", "10")
    return env


def tool_dsn(conn: common_pb2.Connection, application_name: str = "dbmigrate") -> str:
    """A conninfo string without the password (that goes through PGPASSWORD)."""
    kwargs = {k: v for k, v in conn.params.items()}
    kwargs.setdefault("application_name", application_name)
    if conn.sslmode:
        kwargs["sslmode"] = conn.sslmode
    return _conninfo.make_conninfo(host=conn.host, port=conn.port, dbname=conn.dbname, user=conn.user, **kwargs)


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FailedPrecondition(f"{name} is not installed; install the PostgreSQL client tools (make setup does it)")
    return path


def pg_dump_version() -> tuple[int, int, str]:
    """(major, minor, full text) of the pg_dump on PATH."""
    text = subprocess.run([_binary("pg_dump"), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    m = re.search(r"(\d+)(?:\.(\d+))?", text)
    if not m:
        raise FailedPrecondition(f"cannot read the pg_dump version from {text!r}")
    return int(m.group(1)), int(m.group(2) or 0), text


def check_pg_dump(source_version_num: int) -> str:
    """Fails when pg_dump is older than the source server's major version (it could not dump it right)."""
    major, minor, text = pg_dump_version()
    source_major = source_version_num // 10000
    if major < source_major:
        raise FailedPrecondition(f"pg_dump {major}.{minor} is older than the source server {source_major}; install "
                                 f"postgresql-client-{source_major} (pg_dump must be at least the source's version)")
    return text


def _fail(what: str, conn: common_pb2.Connection, stderr: str) -> DatabaseError:
    lines = [ln for ln in redact(stderr).strip().splitlines() if ln.strip()]
    detail = " | ".join(lines[-3:]) if lines else "no message"
    transient = any(s in stderr.lower() for s in _TRANSIENT)
    return DatabaseError(f"{what} on {describe(conn)} failed: {detail}", retryable=transient)


def dump_section(conn: common_pb2.Connection, section: str, *, snapshot: str | None = None,
                 extra_args: list[str] | tuple[str, ...] = ()) -> str:
    """The schema script of one section (pre-data or post-data), owners and privileges left out.

    Owners and GRANTs are left out because the target rarely has the same roles; objects belong to
    the target user (discovery reports the roles that are missing).
    """
    if section not in ("pre-data", "post-data"):
        raise ValueError(section)
    args = [_binary("pg_dump"), "--section", section, "--no-owner", "--no-acl", "--no-subscriptions",
            "--no-publications", "-d", tool_dsn(conn, "dbmigrate-pg_dump")]
    if snapshot:
        args += ["--snapshot", snapshot]
    args += list(extra_args)  # e.g. --exclude-table patterns from the migration's filters
    r = subprocess.run(args, capture_output=True, text=True, env=tool_env(conn))
    if r.returncode != 0:
        raise _fail(f"pg_dump --section={section}", conn, r.stderr)
    return r.stdout


def apply_script(conn: common_pb2.Connection, script: str, what: str = "schema script") -> None:
    """Runs a pg_dump script with psql in one transaction: all of it or nothing."""
    args = [_binary("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d",
            tool_dsn(conn, "dbmigrate-psql"), "-f", "-"]
    r = subprocess.run(args, input=script, capture_output=True, text=True, env=tool_env(conn))
    if r.returncode != 0:
        raise _fail(f"applying the {what}", conn, r.stderr)


def server_version_num(c: psycopg.Connection) -> int:
    return int(c.execute("SHOW server_version_num").fetchone()[0])


def exclude_args(all_tables: list[Table], kept: list[Table]) -> list[str]:
    """pg_dump arguments that leave out the tables the include/exclude patterns removed (exact names)."""
    keep = {(t.schema, t.name) for t in kept}
    return [f'--exclude-table="{t.schema.replace(chr(34), chr(34) * 2)}"."{t.name.replace(chr(34), chr(34) * 2)}"'
            for t in all_tables if (t.schema, t.name) not in keep]
