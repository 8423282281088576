"""PostgreSQL session helpers: URLs to Connection messages, connecting with clear errors, pinned settings."""
from __future__ import annotations

import re
from contextlib import contextmanager
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import conninfo as _conninfo

from dbmigrate.v1 import common_pb2
from services.common.errors import DatabaseError, InvalidInput, Unavailable
from services.common.logs import redact, register_secret

# Session settings that make a row's text form the same on both sides (checksums, COPY text).
PINNED_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "client_encoding": "UTF8",
    "standard_conforming_strings": "on",
    # A server-wide statement or idle timeout meant for applications must not cut a migration's long COPY.
    "statement_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
}

_KNOWN_KEYS = {"host", "hostaddr", "port", "dbname", "user", "password", "sslmode"}
_SSLMODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


def parse_url(url: str, what: str = "connection URL") -> common_pb2.Connection:
    """Parses a libpq URL (postgresql://user:password@host:port/dbname?sslmode=...) into a Connection."""
    if not url or not url.strip():
        raise InvalidInput(f"{what} is empty; give postgresql://user@host:port/dbname")
    url = url.strip()
    if not re.match(r"^postgres(ql)?://", url):
        raise InvalidInput(f"{what} must start with postgresql:// (postgresql://user:password@host:port/dbname)")
    try:
        secret = urlsplit(url).password or ""
    except ValueError:
        secret = ""
    try:
        parts = _conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as err:
        reason = redact(str(err)).strip()
        if len(secret) >= 1:
            reason = reason.replace(secret, "***")
        # libpq quotes the part of the URL it could not read, which may be a password typed in the wrong
        # place ("postgresql://host/db?s3cret"): the message names the problem, not that text.
        reason = re.sub(r'"[^"\n]*"', lambda m: m.group(0) if len(m.group(0)) <= 3 else '"…"', reason)
        raise InvalidInput(f"{what} is malformed: {reason}") from None
    conn = common_pb2.Connection(
        host=str(parts.get("host") or "localhost"),
        dbname=str(parts.get("dbname") or parts.get("user") or ""),
        user=str(parts.get("user") or ""),
        password=str(parts.get("password") or ""),
        sslmode=str(parts.get("sslmode") or ""),
    )
    port = parts.get("port") or "5432"
    try:
        conn.port = int(port)
    except ValueError:
        # Not echoed: in postgresql://user:PASSWORD with no @host after it, libpq reads the password as the port.
        raise InvalidInput(f"{what}: the port is not a number; the form is postgresql://user:password@host:port/dbname "
                           "(a password needs @host after it)") from None
    for key, value in parts.items():
        if key not in _KNOWN_KEYS and value is not None:
            conn.params[key] = str(value)
    check_connection(conn, what)
    return conn


def check_connection(conn: common_pb2.Connection, what: str = "connection") -> None:
    """Validates a Connection message; raises InvalidInput that says what to fix."""
    if not conn.host:
        raise InvalidInput(f"{what}: host is missing")
    if not (0 < conn.port < 65536):
        raise InvalidInput(f"{what}: port {conn.port} is out of range (1-65535)")
    if not conn.dbname:
        raise InvalidInput(f"{what}: database name is missing (postgresql://user@host:port/DBNAME)")
    if not conn.user:
        raise InvalidInput(f"{what}: user is missing (postgresql://USER@host:port/dbname)")
    if conn.sslmode and conn.sslmode not in _SSLMODES:
        raise InvalidInput(f"{what}: sslmode {conn.sslmode!r} is not one of {', '.join(sorted(_SSLMODES))}")


def redacted(conn: common_pb2.Connection, secret_ref: str = "") -> common_pb2.Connection:
    """A copy without the password, fit for events, reports and logs."""
    out = common_pb2.Connection()
    out.CopyFrom(conn)
    out.password = ""
    if secret_ref:
        out.secret_ref = secret_ref
    return out


def display_url(conn: common_pb2.Connection) -> str:
    """postgresql://user@host:port/dbname?sslmode=..., without the password."""
    url = f"postgresql://{quote(conn.user, safe='')}@{conn.host}:{conn.port}/{quote(conn.dbname, safe='')}"
    query = []
    if conn.sslmode:
        query.append(f"sslmode={conn.sslmode}")
    query += [f"{k}={v}" for k, v in sorted(conn.params.items())]
    return url + ("?" + "&".join(query) if query else "")


def describe(conn: common_pb2.Connection) -> str:
    return f"{conn.user}@{conn.host}:{conn.port}/{conn.dbname}"


def conninfo(conn: common_pb2.Connection, application_name: str = "dbmigrate") -> str:
    register_secret(conn.password)
    kwargs = dict(conn.params)
    kwargs.setdefault("connect_timeout", "10")
    kwargs.setdefault("application_name", application_name)
    if conn.password:
        kwargs["password"] = conn.password
    if conn.sslmode:
        kwargs["sslmode"] = conn.sslmode
    return _conninfo.make_conninfo(host=conn.host, port=conn.port, dbname=conn.dbname, user=conn.user, **kwargs)


def translate_connect_error(err: psycopg.Error, conn: common_pb2.Connection, role: str) -> Exception:
    """Says what failed and what to fix, without the password."""
    text = redact(str(err)).strip()
    where = f"{role} database {describe(conn)}"
    low = text.lower()
    if "password authentication failed" in low or "no password supplied" in low or "authentication failed" in low:
        return InvalidInput(f"{where}: authentication failed for user {conn.user!r}; check the user and password")
    if "does not exist" in low and "database" in low:
        return InvalidInput(f"{where}: database {conn.dbname!r} does not exist on {conn.host}:{conn.port}; create it or fix the name")
    if "role" in low and "does not exist" in low:
        return InvalidInput(f"{where}: role {conn.user!r} does not exist on {conn.host}:{conn.port}")
    if any(s in low for s in ("connection refused", "could not translate host", "timeout expired",
                              "no route to host", "name or service not known", "network is unreachable",
                              "server closed the connection", "could not connect", "the database system is")):
        first = text.splitlines()[-1] if text else "no answer"
        return Unavailable(f"{where}: cannot reach the server ({first}); check host, port and that PostgreSQL is running")
    if "ssl" in low:
        return InvalidInput(f"{where}: SSL problem: {text.splitlines()[-1]}; check sslmode")
    return DatabaseError(f"{where}: {text.splitlines()[-1] if text else 'connection failed'}", retryable=True)


def connect(conn: common_pb2.Connection, role: str, *, autocommit: bool = False,
            application_name: str = "dbmigrate", pinned: bool = True) -> psycopg.Connection:
    """A blocking connection with pinned session settings; connect errors become package errors."""
    try:
        c = psycopg.connect(conninfo(conn, application_name), autocommit=autocommit)
    except psycopg.Error as err:
        raise translate_connect_error(err, conn, role) from None
    if pinned:
        pin_session(c)
    return c


async def aconnect(conn: common_pb2.Connection, role: str, *, autocommit: bool = False,
                   application_name: str = "dbmigrate", pinned: bool = True) -> psycopg.AsyncConnection:
    try:
        c = await psycopg.AsyncConnection.connect(conninfo(conn, application_name), autocommit=autocommit)
    except psycopg.Error as err:
        raise translate_connect_error(err, conn, role) from None
    if pinned:
        await apin_session(c)
    return c


def _pin_sql() -> str:
    return "; ".join(f"SET {k} = '{v}'" for k, v in PINNED_SETTINGS.items())


def pin_session(c: psycopg.Connection) -> None:
    """Fixes the settings that change a value's text form. Runs outside any snapshot transaction."""
    was = c.autocommit
    c.autocommit = True
    c.execute(_pin_sql())
    c.autocommit = was


async def apin_session(c: psycopg.AsyncConnection) -> None:
    was = c.autocommit
    await c.set_autocommit(True)
    await c.execute(_pin_sql())
    await c.set_autocommit(was)


TRANSIENT_SQLSTATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available
    "57014",  # query_canceled (statement_timeout)
    "57P01", "57P02", "57P03",  # admin shutdown, crash shutdown, cannot connect now
    "53300",  # too_many_connections
    "08000", "08003", "08006", "08001", "08004",  # connection exceptions
}


@contextmanager
def catalog_search_path(c: psycopg.Connection):
    """search_path = pg_catalog on `c` meanwhile: every name regclass, regprocedure and the pg_get_*
    functions write is schema-qualified, the same on both servers whatever the sessions' settings.
    The session's own comes back after (an aborted transaction takes it back on its rollback)."""
    old = c.execute("SELECT current_setting('search_path')").fetchone()[0]
    c.execute("SELECT set_config('search_path', 'pg_catalog', false)")
    try:
        yield
    finally:
        if c.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            c.execute("SELECT set_config('search_path', %s, false)", (old,))


def is_transient(err: BaseException) -> bool:
    """True for errors a retry may cure: lost connections, lock timeouts, serialization failures."""
    if isinstance(err, (psycopg.OperationalError, psycopg.InterfaceError)) and not getattr(err, "sqlstate", None):
        return True
    return getattr(err, "sqlstate", None) in TRANSIENT_SQLSTATES
