"""Online migrations: PostgreSQL's own logical replication carries the source's writes to the target.

Order (../shared/notes/ONLINE_NOTES.md): the publication first (a row written between a slot and its
publication is never sent), then a pgoutput slot whose exported snapshot the whole copy reads, so
the copied rows and the change stream meet with nothing missing and nothing twice; after the copy
and post-data (keys exist before UPDATE and DELETE arrive), a subscription on the target that uses
that slot without copying. Cutover waits until the slot's confirmed position passes the source's
WAL position, then sets the sequences (logical replication does not carry them). Every function
here is idempotent: a retried step finds what the attempt before it made.
"""
from __future__ import annotations

import collections
import logging
import threading
import time

import psycopg
from psycopg import conninfo as _conninfo
from psycopg import sql

from dbmigrate.v1 import common_pb2
from services.common.catalog import Table
from services.common.config import settings
from services.common.errors import DatabaseError, FailedPrecondition
from services.common.logs import register_secret
from services.common.pg import connect, conninfo, translate_connect_error
from services.common.replication import publication_name, slot_name, subscription_name
from services.execution.sequences import copy_sequences

log = logging.getLogger(__name__)

SLOT_WAIT_SECONDS = 300.0   # CREATE_REPLICATION_SLOT waits for every open write transaction on the source


# ---- source: publication and slot ----

def publish(src: psycopg.Connection, wid: str, tables: list[Table]) -> None:
    """The publication of exactly the migrated tables (made again with the same tables if it exists)."""
    name = sql.Identifier(publication_name(wid))
    listed = sql.SQL(", ").join(sql.Identifier(t.schema, t.name) for t in tables)
    exists = src.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", [publication_name(wid)]).fetchone()
    try:
        if exists:
            src.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(name, listed) if tables
                        else sql.SQL("DROP PUBLICATION {}; CREATE PUBLICATION {}").format(name, name))
        else:
            src.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(name, listed) if tables
                        else sql.SQL("CREATE PUBLICATION {}").format(name))
    except psycopg.errors.InsufficientPrivilege as err:
        raise FailedPrecondition(f"online: the source user may not publish the tables ({err.diag.message_primary}); "
                                 "a publication FOR TABLE needs ownership of every table (or superuser) and CREATE "
                                 "on the database") from None


def drop_slot(src: psycopg.Connection, wid: str) -> bool:
    """Drops this migration's slot if it exists, ending the session that holds it first."""
    name = slot_name(wid)
    row = src.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", [name]).fetchone()
    if row is None:
        return False
    if row[0]:
        src.execute("SELECT pg_terminate_backend(%s)", [row[0]])
        for _ in range(50):
            if not src.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", [name]).fetchone()[0]:
                break
            time.sleep(0.1)
    src.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", [name])
    return True


def slot_exists(src: psycopg.Connection, wid: str) -> bool:
    return src.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [slot_name(wid)]).fetchone() \
        is not None


def _blockers(src_conn: common_pb2.Connection) -> str:
    """The sessions whose open write transactions hold up slot creation."""
    with connect(src_conn, "source", autocommit=True, application_name="dbmigrate-slot-wait") as c:
        rows = c.execute("SELECT pid, usename, application_name, now() - xact_start FROM pg_stat_activity "
                         "WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() ORDER BY xact_start "
                         "LIMIT 5").fetchall()
    return "; ".join(f"pid {p} ({u}, {a or 'no application name'}, open for {age})" for p, u, a, age in rows)


def create_slot(src_conn: common_pb2.Connection, wid: str, version_num: int,
                note=lambda message: None) -> tuple[psycopg.Connection, str, str]:
    """(replication connection, exported snapshot, consistent point). The snapshot stays importable
    while the connection stays open and idle: import it, then close the connection."""
    info = conninfo(src_conn, "dbmigrate-slot")
    try:
        rep = psycopg.connect(info, replication="database", autocommit=True, prepare_threshold=None)
    except psycopg.Error as err:
        raise translate_connect_error(err, src_conn, "source") from None
    command = (f"CREATE_REPLICATION_SLOT {slot_name(wid)} LOGICAL pgoutput (SNAPSHOT 'export')"
               if version_num >= 150000 else f"CREATE_REPLICATION_SLOT {slot_name(wid)} LOGICAL pgoutput EXPORT_SNAPSHOT")
    done = threading.Event()

    def watch() -> None:  # slot creation waits for open write transactions: say which, then give up
        started = time.monotonic()
        while not done.wait(10.0):
            waited = time.monotonic() - started
            try:
                who = _blockers(src_conn)
            except Exception:  # noqa: BLE001 - only a hint
                who = ""
            if waited >= SLOT_WAIT_SECONDS:
                note(f"gave up creating the replication slot after {waited:.0f}s; open transactions: {who}")
                rep.cancel_safe()
                return
            note(f"creating the replication slot waits for open write transactions on the source: {who or 'none seen'}")

    watcher = threading.Thread(target=watch, name="slot-wait", daemon=True)
    watcher.start()
    try:
        _, point, snapshot, _ = rep.execute(command).fetchone()
    except psycopg.errors.QueryCanceled:
        rep.close()
        raise FailedPrecondition(f"online: the replication slot could not be created within {SLOT_WAIT_SECONDS:.0f}s "
                                 "because write transactions on the source stayed open; end them and retry") from None
    except psycopg.errors.InsufficientPrivilege as err:
        rep.close()
        raise FailedPrecondition(f"online: {err.diag.message_primary}; the source user needs the REPLICATION "
                                 "attribute (ALTER ROLE ... REPLICATION)") from None
    except psycopg.Error as err:
        rep.close()
        raise DatabaseError(f"online: creating the replication slot failed: {err.diag.message_primary or err}") from None
    finally:
        done.set()
    return rep, snapshot, point


# ---- target: subscription ----

def source_conninfo(src_conn: common_pb2.Connection, wid: str) -> str:
    """How the target server reaches the source (stored in its pg_subscription until release)."""
    kwargs = {k: v for k, v in src_conn.params.items() if k not in ("application_name", "connect_timeout")}
    if src_conn.password:
        register_secret(src_conn.password)
        kwargs["password"] = src_conn.password
    if src_conn.sslmode:
        kwargs["sslmode"] = src_conn.sslmode
    return _conninfo.make_conninfo(host=src_conn.host, port=src_conn.port, dbname=src_conn.dbname,
                                   user=src_conn.user, application_name=subscription_name(wid), **kwargs)


def subscribe(dst: psycopg.Connection, src_conn: common_pb2.Connection, wid: str) -> bool:
    """Creates the subscription on the slot (no initial copy); False if it already exists. `dst` autocommit."""
    name = subscription_name(wid)
    row = dst.execute("SELECT subenabled FROM pg_subscription WHERE subname = %s", [name]).fetchone()
    if row is not None:
        if not row[0]:
            dst.execute(sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(sql.Identifier(name)))
        return False
    try:
        dst.execute(sql.SQL(
            "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (create_slot = false, slot_name = {}, "
            "copy_data = false, enabled = true)").format(
            sql.Identifier(name), sql.Literal(source_conninfo(src_conn, wid)),
            sql.Identifier(publication_name(wid)), sql.Literal(slot_name(wid))))
    except psycopg.errors.InsufficientPrivilege as err:
        raise FailedPrecondition(f"online: the target user may not create a subscription ({err.diag.message_primary}); "
                                 "it must be superuser or (PostgreSQL 16+) a member of pg_create_subscription") from None
    except psycopg.Error as err:
        raise DatabaseError(f"online: creating the subscription on the target failed: "
                            f"{err.diag.message_primary or type(err).__name__}; the target server must reach the "
                            f"source at {src_conn.host}:{src_conn.port}", retryable=False) from None
    return True


# ---- status ----

def target_changes(dst: psycopg.Connection) -> int:
    """Rows inserted, updated and deleted in the target's tables so far (statistics)."""
    dst.execute("SELECT pg_stat_clear_snapshot()")
    return int(dst.execute("SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint "
                           "FROM pg_stat_user_tables").fetchone()[0])


class Monitor:
    """Samples of each stream, kept between calls: the apply rate and the lag in seconds come from them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._history: dict[str, collections.deque] = {}
        self._last: dict[str, tuple[float, int, int]] = {}  # wid -> (time, changes, apply errors)
        self._calls: dict[str, int] = {}

    def status(self, wid: str, src_conn: common_pb2.Connection, dst_conn: common_pb2.Connection,
               changes_at_start: int) -> common_pb2.SyncStatus:
        out = common_pb2.SyncStatus(sampled_at=time.time())
        with connect(src_conn, "source", autocommit=True, application_name="dbmigrate-sync") as src:
            row = src.execute(
                "SELECT pg_current_wal_lsn()::text, confirmed_flush_lsn::text, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, "
                "pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint, "
                + ("wal_status" if src.info.server_version >= 130000 else "NULL::text") +  # wal_status: 13+
                ", active FROM pg_replication_slots WHERE slot_name = %s", [slot_name(wid)]).fetchone()
            if row is None:
                out.problems.append(f"the replication slot {slot_name(wid)} is gone from the source: the stream "
                                    "cannot go on; roll back and start a new migration")
                out.wal_status = "lost"
                return out
            current, confirmed, lag, retained, cur_abs, conf_abs, wal_status, active = row
            out.source_lsn, out.confirmed_lsn = current, confirmed or ""
            out.lag_bytes, out.retained_wal_bytes, out.wal_status = max(int(lag or 0), 0), int(retained or 0), \
                wal_status or ""
            replay = src.execute("SELECT EXTRACT(epoch FROM replay_lag)::float8 FROM pg_stat_replication "
                                 "WHERE application_name = %s", [subscription_name(wid)]).fetchone()
            calls = self._calls.get(wid, 0)
            self._calls[wid] = calls + 1
            source_columns = _columns(src, publication_name(wid), source=True) if calls % 10 == 0 else None
        with connect(dst_conn, "target", autocommit=True, application_name="dbmigrate-sync") as dst:
            sub = dst.execute("SELECT oid FROM pg_subscription WHERE subname = %s",
                              [subscription_name(wid)]).fetchone()
            if sub is None:
                out.problems.append(f"the subscription {subscription_name(wid)} is gone from the target")
            else:
                out.streaming = bool(dst.execute(
                    "SELECT count(*) FROM pg_stat_subscription WHERE subid = %s AND pid IS NOT NULL",
                    [sub[0]]).fetchone()[0])
                stats = dst.execute("SELECT * FROM pg_stat_subscription_stats WHERE subid = %s", [sub[0]]) \
                    if dst.info.server_version >= 150000 else None
                if stats is not None:
                    names = [d.name for d in stats.description]
                    values = stats.fetchone() or [0] * len(names)
                    got = dict(zip(names, values))
                    out.apply_errors = int(got.get("apply_error_count") or 0)
                    out.conflicts = sum(int(v or 0) for k, v in got.items() if k.startswith("confl_"))
            changes = target_changes(dst)
            target_columns = _columns(dst, sorted(source_columns), source=False) if source_columns else None
        out.changes_applied = max(int(changes) - changes_at_start, 0)
        now = time.monotonic()
        with self._lock:
            hist = self._history.setdefault(wid, collections.deque(maxlen=3600))
            hist.append((now, int(cur_abs)))
            last = self._last.get(wid)
            if last is not None and now > last[0]:
                out.apply_rate = max(out.changes_applied - last[1], 0) / (now - last[0])
            previous_errors = last[2] if last else out.apply_errors
            self._last[wid] = (now, out.changes_applied, out.apply_errors)
        if out.lag_bytes > 0:
            if replay and replay[0] is not None and out.streaming and out.apply_errors == previous_errors:
                out.lag_seconds = float(replay[0])
            else:  # the oldest source position not yet applied, from the samples
                applied = [t for t, lsn in hist if lsn <= int(conf_abs or 0)]
                out.lag_seconds = now - (max(applied) if applied else hist[0][0])
        if out.apply_errors > previous_errors:
            out.problems.append(f"the target's apply worker failed {out.apply_errors - previous_errors} more time(s) "
                                "(total {0}); a schema change (DDL) on the source stops the stream: apply the same "
                                "change to the target and the stream goes on by itself".format(out.apply_errors))
        if wal_status == "lost":
            out.problems.append(f"the slot {slot_name(wid)} was invalidated (the source removed WAL it needed, see "
                                "max_slot_wal_keep_size): the stream cannot go on; roll back and start again")
        elif wal_status == "unreserved":
            out.problems.append(f"the slot {slot_name(wid)} is about to lose WAL it needs (wal_status unreserved, "
                                f"{out.retained_wal_bytes:,} bytes held); the target must catch up now")
        if source_columns is not None and target_columns is not None:
            out.problems.extend(schema_drift(source_columns, target_columns))
        return out

    def forget(self, wid: str) -> None:
        with self._lock:
            self._history.pop(wid, None)
            self._last.pop(wid, None)
            self._calls.pop(wid, None)


def _columns(conn: psycopg.Connection, which, source: bool) -> dict[str, str]:
    """table -> its columns (name and type) for the published tables."""
    if source:
        rows = conn.execute(
            "SELECT format('%%I.%%I', n.nspname, c.relname), string_agg(format('%%I %%s', a.attname, "
            "format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum) "
            "FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid "
            "JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE p.pubname = %s GROUP BY 1", [which]).fetchall()
    else:
        rows = conn.execute(
            "SELECT format('%%I.%%I', n.nspname, c.relname), string_agg(format('%%I %%s', a.attname, "
            "format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE format('%%I.%%I', n.nspname, c.relname) = ANY(%s) GROUP BY 1", [list(which)]).fetchall()
    return dict(rows)


def schema_drift(source: dict[str, str], target: dict[str, str]) -> list[str]:
    """Columns the source's published tables have that the target's lack: DDL on the source."""
    out = []
    for table, cols in sorted(source.items()):
        have = set(target.get(table, "").split(", ")) if table in target else set()
        missing = [c for c in cols.split(", ") if c not in have]
        if table not in target:
            out.append(f"DDL on the source: table {table} is missing on the target; create it there")
        elif missing:
            out.append(f"DDL on the source: {table} has columns the target lacks ({', '.join(missing)}); run the "
                       "same ALTER TABLE on the target (target first, then the source, for later changes); the "
                       "stream then goes on by itself. Cutover refuses while the schemas differ")
    return out


# ---- cutover ----

def applied_lsn(dst: psycopg.Connection, wid: str) -> str:
    """The end of the last source commit the target applied (its replication origin)."""
    row = dst.execute("SELECT s.remote_lsn::text FROM pg_replication_origin_status s JOIN pg_subscription sub "
                      "ON s.external_id = 'pg_' || sub.oid WHERE sub.subname = %s",
                      [subscription_name(wid)]).fetchone()
    return row[0] if row and row[0] else "0/0"


def _cutover_mark(src: psycopg.Connection, wid: str) -> str:
    """A position after every commit made so far, that the stream passes at once.

    A tiny transactional logical message: pgoutput sends nothing of it (subscriptions do not ask for
    messages), but skipping its transaction moves the slot past it right away. The source's flush
    position alone may end inside a record the WAL writer wrote half of, which the stream passes only
    at the subscriber's next status report (10 s, wal_receiver_status_interval)."""
    try:
        return src.execute("SELECT pg_logical_emit_message(true, 'dbmigrate', %s)::text",
                           [f"cutover {wid}"]).fetchone()[0]
    except psycopg.errors.InsufficientPrivilege:
        return src.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]


def catch_up(src_conn: common_pb2.Connection, dst_conn: common_pb2.Connection, wid: str,
             timeout: float = 0.0) -> tuple[str, str, dict[str, int], float]:
    """Waits until the target confirmed the source's WAL up to now, then sets the sequences:
    (that position, the last applied commit, the sequences set, seconds waited)."""
    timeout = timeout or settings().cutover_wait_seconds
    t0 = time.monotonic()
    with connect(src_conn, "source", autocommit=True, application_name="dbmigrate-cutover") as src, \
            connect(dst_conn, "target", autocommit=True, application_name="dbmigrate-cutover") as dst:
        if dst.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", [subscription_name(wid)]).fetchone() is None:
            raise FailedPrecondition(f"online: the subscription {subscription_name(wid)} is gone from the target")
        target = _cutover_mark(src, wid)
        while True:
            row = src.execute("SELECT confirmed_flush_lsn::text, pg_wal_lsn_diff(%s::pg_lsn, confirmed_flush_lsn)"
                              "::bigint FROM pg_replication_slots WHERE slot_name = %s",
                              [target, slot_name(wid)]).fetchone()
            if row is None:
                raise FailedPrecondition(f"online: the replication slot {slot_name(wid)} is gone from the source")
            if row[0] and row[1] <= 0:
                break
            if time.monotonic() - t0 > timeout:
                raise FailedPrecondition(
                    f"cutover: the target did not catch up within {timeout:.0f}s ({int(row[1] or 0):,} bytes of WAL "
                    "still to apply); if the status shows apply errors, a schema change on the source stops the "
                    "stream. Fix it and run cutover again")
            time.sleep(0.1)
        waited = time.monotonic() - t0
        applied = applied_lsn(dst, wid)
        sequences = copy_sequences(src, dst)
    log.info("catch-up of %s: the target confirmed %s after %.2fs; %d sequences set in %.2fs", wid, target, waited,
             len(sequences), time.monotonic() - t0 - waited)
    return target, applied, sequences, time.monotonic() - t0


# ---- release ----

def drop_subscription(dst: psycopg.Connection, wid: str) -> bool:
    """Drops this migration's subscription if it exists (`dst` autocommit). Disabled and detached from
    its slot first: the slot is dropped from the source side, whether the target reaches it or not."""
    name = subscription_name(wid)
    if not dst.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", [name]).fetchone():
        return False
    ident = sql.Identifier(name)
    dst.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
    dst.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
    dst.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
    return True


def release(src_conn: common_pb2.Connection, dst_conn: common_pb2.Connection, wid: str) -> str:
    """Drops the subscription (target), the slot and the publication (source), whichever exist."""
    done = []
    with connect(dst_conn, "target", autocommit=True, application_name="dbmigrate-release") as dst:
        if drop_subscription(dst, wid):
            done.append(f"subscription {subscription_name(wid)} dropped on the target")
    with connect(src_conn, "source", autocommit=True, application_name="dbmigrate-release") as src:
        if drop_slot(src, wid):
            done.append(f"slot {slot_name(wid)} dropped on the source")
        if src.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", [publication_name(wid)]).fetchone():
            src.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(publication_name(wid))))
            done.append(f"publication {publication_name(wid)} dropped on the source")
    return "; ".join(done) or "no subscription, slot or publication of this migration was left"
