"""The catalog of one database: one set-based query per kind of object, each a readable file in sql/.

Everything is read in one REPEATABLE READ, READ ONLY transaction, so the lists agree with each
other. Write traffic is sampled twice (at the start and at the end, at least SAMPLE_SECONDS apart)
to tell a database that is being written to from one that was written to some time ago.
"""
from __future__ import annotations

import datetime
import decimal
import time
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from services.common.config import settings
from services.common.errors import DatabaseError
from services.common.roles import needed_rows
from services.common.pg import is_transient
from services.common.replication import PREFIX

_SQL = Path(__file__).parent / "sql"

# kind -> query file; each returns one row per object.
LIST_KINDS = ("extensions", "schemas", "tables", "columns", "primary_keys", "foreign_keys", "indexes",
              "constraints", "sequences", "views", "functions", "triggers", "owners", "roles", "roles_needed",
              "collations", "languages", "tablespaces", "narrowed_privileges", "special_columns",
              "database_settings", "setting_names", "extension_config")

# An online migration's (logical replication's) needs, read only when the migration is online:
# `replication` (one row: wal_level, slots and WAL senders free, the user's right to replicate,
# publish and subscribe, apply workers) and these lists. The slots and subscriptions are only the
# ones DBMigrate names (services.common.replication.PREFIX); publications are all of this database's.
ONLINE_KINDS = ("replication_tables", "replication_slots", "publications", "subscriptions")
_PREFIXED = {"replication_slots", "publications", "subscriptions"}


# The shortest window between discovery's two write-traffic samples. 0 by default: the sample test
# migration takes another reading when it ends (services.common.traffic), so the window is the time
# both phases take anyway instead of a wait.
# (DBMIGRATE_DISCOVERY_SAMPLE_SECONDS, in services.common.config.settings; tests set SAMPLE_SECONDS.)
SAMPLE_SECONDS: float | None = None


def _sql(name: str) -> str:
    return (_SQL / f"{name}.sql").read_text()


def _plain(value):
    """A JSON-able form of what psycopg returns."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time, datetime.timedelta)):
        return str(value)
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    return str(value)


# A catalog column newer than some servers is read through to_jsonb of the whole row, which every
# version answers; from the version that has the column, the column itself. to_jsonb costs per row:
# of 2,000 tables' 6,000 columns, attcompression took 0.58 s that way and 0.02 s directly, attgenerated
# 0.32 s and 0.12 s (and a function's row carries its whole body).
_DIRECT = {
    "special_columns": [(140000, "coalesce(to_jsonb(a) ->> 'attcompression', '')", "a.attcompression::text")],
    "columns": [(120000, "coalesce(to_jsonb(a) ->> 'attgenerated', '')", "a.attgenerated::text")],
    "functions": [(110000, "coalesce(to_jsonb(p) ->> 'prokind', 'f')", "p.prokind::text")],
    "triggers": [(130000, "(to_jsonb(t) ->> 'tgparentid')::oid", "t.tgparentid")],
}


def _rows(cur: psycopg.Cursor, name: str, version_num: int = 0) -> list[dict]:
    if name == "roles_needed":  # a query plus a look at regrole values (services/common/roles.py)
        return [{k: _plain(v) for k, v in row.items()} for row in needed_rows(cur.connection)]
    query = _sql(name)
    for since, portable, direct in _DIRECT.get(name, ()):
        assert portable in query, f"{name}.sql no longer reads {portable}"
        if version_num >= since:
            query = query.replace(portable, direct)
    cur.execute(query, {"prefix": PREFIX} if name in _PREFIXED else None)
    return [{k: _plain(v) for k, v in row.items()} for row in cur.fetchall()]


def _features(cur: psycopg.Cursor) -> dict:
    """What the server was built with, where a build may lack it: libxml (the xml type accepts no
    value without it) and lz4 (column compression). ICU is in server.sql."""
    cur.execute("SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
    row = cur.fetchone()
    out = {"lz4": bool(row and list(row.values())[0])}
    cur.execute("SAVEPOINT dbmigrate_probe")
    try:
        cur.execute("SELECT '<probe/>'::xml")
        out["xml"] = True
    except psycopg.errors.FeatureNotSupported:
        out["xml"] = False
    cur.execute("ROLLBACK TO SAVEPOINT dbmigrate_probe")
    return out


def _activity(cur: psycopg.Cursor) -> dict:
    # The statistics views are cached for the whole transaction: drop the cache to read them anew.
    cur.execute("SELECT pg_stat_clear_snapshot()")
    return _rows(cur, "activity")[0]


def inventory(conn: psycopg.Connection, *, sample_seconds: float | None = None, online: bool = False) -> dict:
    """The catalog of the database conn is connected to, as plain JSON-able dicts and lists.

    Keys: server (one dict), large_objects (one dict), activity (two samples and their
    difference), counts (objects per kind), and one list per kind in LIST_KINDS.
    sample_seconds: the shortest window between the two activity samples (default SAMPLE_SECONDS;
    0 for a database whose write traffic does not matter, e.g. the target).
    online: also read what logical replication needs (`replication` and the ONLINE_KINDS lists),
    for services.discovery.online; an offline migration does not read them.
    """
    window = sample_seconds if sample_seconds is not None else SAMPLE_SECONDS if SAMPLE_SECONDS is not None \
        else settings().discovery_sample_seconds
    where = f"database {conn.info.dbname!r} on {conn.info.host}:{conn.info.port}"
    was = (conn.isolation_level, conn.read_only)
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    t0 = time.monotonic()
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"SET LOCAL lock_timeout = '{settings().discovery_lock_timeout}'")
            # Catalog queries over tens of thousands of tables look expensive to the planner, and JIT
            # compiling them costs more than it saves (2.2 s instead of 0.8 s for 20,000 tables).
            cur.execute("SET LOCAL jit = off")
            first = _activity(cur)
            inv: dict = {"server": _rows(cur, "server")[0]}
            version_num = int(inv["server"].get("version_num") or 0)
            for kind in LIST_KINDS:
                inv[kind] = _rows(cur, kind, version_num)
            inv["large_objects"] = _rows(cur, "large_objects")[0]
            inv["features"] = _features(cur)
            if online:
                inv["replication"] = _rows(cur, "replication")[0]
                for kind in ONLINE_KINDS:
                    inv[kind] = _rows(cur, kind)
            wait = window - (time.monotonic() - t0)
            if wait > 0:
                time.sleep(wait)
            last = _activity(cur)
    except psycopg.Error as err:
        msg = (str(err).strip().splitlines() or ["no message"])[0]
        if getattr(err, "sqlstate", None) == "55P03":
            msg += " (another session holds a lock on a table: an ALTER, TRUNCATE or VACUUM FULL may be running)"
        raise DatabaseError(f"reading the catalog of {where} failed: {msg}", retryable=is_transient(err)) from None
    finally:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            conn.isolation_level, conn.read_only = was
    seconds = round(time.monotonic() - t0, 3)
    inv["activity"] = {
        "first": first,
        "last": last,
        "window_seconds": seconds,
        "tuples_changed_delta": max(0, (last["tuples_changed"] or 0) - (first["tuples_changed"] or 0)),
        "active_sessions": max(first["active_sessions"], last["active_sessions"]),
        "writing_sessions": max(first["writing_sessions"], last["writing_sessions"]),
        "connections": last["connections"],
        "prepared_xacts": last["prepared_xacts"],
        "replication_slots": last["replication_slots"],
        "publications": last["publications"],
    }
    inv["counts"] = {kind: len(inv[kind]) for kind in LIST_KINDS}
    inv["counts"]["large_objects"] = inv["large_objects"]["count"]
    for kind in ONLINE_KINDS:
        if kind in inv:
            inv["counts"][kind] = len(inv[kind])
    inv["inventory_seconds"] = seconds
    return inv
