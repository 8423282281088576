"""What an online migration needs of the two servers, each gap a finding with its remedy.

An online migration keeps the source writable: the execution agent creates a publication of every
selected table on the source, then a logical replication slot (pgoutput) whose exported snapshot
the copy reads, and finally a subscription on the target that streams the source's changes from
that slot (services/execution/sync.py; ../shared/notes/ONLINE_NOTES.md has the verified facts).

The input is what inventory(..., online=True) reads: `replication` (one row per server), and the
lists `replication_tables`, `replication_slots`, `publications` and `subscriptions`. discover adds
to the source's `replication` row `connection_has_password` (the source connection gives one; the
subscription's connection string would carry it) and `connection_used_password` (the source asked
for it); no password itself ever enters the inventory or a message. findings.find calls `check` only when
options.online is set; an offline migration gets none of these codes.
"""
from __future__ import annotations

from dbmigrate.v1 import common_pb2
from services.common.catalog import quote_ident
from services.common.replication import is_ours
from services.common.text import human_bytes

INFO, LOW, MEDIUM, HIGH, BLOCKER = (common_pb2.INFO, common_pb2.LOW, common_pb2.MEDIUM, common_pb2.HIGH,
                                    common_pb2.BLOCKER)

# The codes this module produces (README, "Online migrations").
CODES = ("WAL_LEVEL_NOT_LOGICAL", "REPLICATION_SLOTS_EXHAUSTED", "WAL_SENDERS_EXHAUSTED",
         "REPLICATION_PRIVILEGE_MISSING", "PUBLICATION_NOT_PERMITTED", "NO_REPLICA_IDENTITY",
         "SEQUENCES_NOT_STREAMED", "LARGE_OBJECTS_NOT_STREAMED", "DDL_NOT_STREAMED", "LEFTOVER_SLOTS",
         "SLOT_WAL_UNLIMITED", "SUBSCRIPTION_NOT_PERMITTED", "REPLICATION_WORKERS_TOO_FEW",
         "SUBSCRIPTION_STORES_PASSWORD")

# Table kinds (inventory tables.sql) the execution agent puts into the publication: the ones that
# hold rows themselves (relkind 'r'), as services.common.catalog.list_tables lists them.
PUBLISHED_KINDS = ("table", "partition", "inheritance_child")
# Managed services' roles that give a member what the REPLICATION attribute gives (Amazon RDS and
# Aurora: the server is patched to honour it). Elsewhere REPLICATION is an attribute of the role
# itself and no membership passes it on.
REPLICATION_GRANTING_ROLES = {"rds_replication"}
_RESTART = "a postmaster setting: the server must be restarted, a reload is not enough"


def _q(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def _list(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def check(out, source_inv: dict, target_inv: dict, tables: list[dict]) -> None:
    """Adds the online findings to `out` (findings._Findings). `tables` are the selected source tables."""
    src = source_inv.get("replication")
    tgt = target_inv.get("replication")
    published = [t for t in tables if t.get("kind") in PUBLISHED_KINDS]
    if src:
        _wal_level(out, src)
        _capacity(out, src)
        _replication_privilege(out, src)
        _publication(out, src, source_inv, published)
        _replica_identity(out, source_inv, published)
        _leftover_slots(out, source_inv, target_inv)
        _slot_wal_limit(out, src)
    if tgt:
        _subscription(out, tgt, str(target_inv.get("server", {}).get("database") or ""), src or {})
        _workers(out, tgt)
    _not_streamed(out, source_inv)
    if src and src.get("connection_has_password"):
        out.add("SUBSCRIPTION_STORES_PASSWORD", INFO, "target pg_subscription",
                "the subscription's connection string to the source, with the source user's password, is kept in "
                "the target's catalog (pg_subscription.subconninfo, readable by superusers) until the cutover or a "
                "rollback drops the subscription",
                "nothing to do if that is acceptable; otherwise use a source user made for the migration (LOGIN "
                "REPLICATION, owner of the tables) and change its password or drop it after the cutover")


def _wal_level(out, src: dict) -> None:
    level = src.get("wal_level")
    if level and level != "logical":
        out.add("WAL_LEVEL_NOT_LOGICAL", BLOCKER, "source server",
                f"the source's wal_level is {level!r}: an online migration streams from a logical replication slot, "
                "and logical decoding needs wal_level = logical (\"logical decoding requires wal_level >= logical\")",
                "on the source: ALTER SYSTEM SET wal_level = logical; then restart the source server (wal_level is "
                f"{_RESTART}), and run discovery again; or migrate offline, without --online")


def _capacity(out, src: dict) -> None:
    for code, setting, used_key, what, free_how in (
            ("REPLICATION_SLOTS_EXHAUSTED", "max_replication_slots", "slots_in_use", "replication slots",
             "drop slots no longer used (SELECT slot_name, active FROM pg_replication_slots; then "
             "SELECT pg_drop_replication_slot('<name>'))"),
            ("WAL_SENDERS_EXHAUSTED", "max_wal_senders", "wal_senders_in_use", "WAL senders",
             "end replication connections no longer needed (pg_stat_replication)")):
        limit, used = src.get(setting), src.get(used_key) or 0
        if limit is None:
            continue
        free = int(limit) - int(used)
        if free < 1:
            out.add(code, BLOCKER, "source server",
                    f"the source allows {setting} = {limit} and {used} are in use ({max(free, 0)} free); an online "
                    f"migration needs one of its own (its {'slot' if 'SLOTS' in code else 'stream to the target'})",
                    f"{free_how}, or on the source ALTER SYSTEM SET {setting} = {max(int(limit), int(used)) + 1} "
                    f"or more and restart the server ({setting} is {_RESTART})")


def _replication_privilege(out, src: dict) -> None:
    roles = [str(r) for r in src.get("replication_roles") or []]
    if src.get("is_superuser") or src.get("has_replication") or REPLICATION_GRANTING_ROLES & set(roles):
        return
    user = str(src.get("current_user") or "")
    member = (f"; it is a member of {_list(roles)}, but the REPLICATION attribute does not pass on through "
              "membership in vanilla PostgreSQL" if roles else "")
    out.add("REPLICATION_PRIVILEGE_MISSING", BLOCKER, f"role {user}",
            f"the source user {user!r} is neither a superuser nor has the REPLICATION attribute{member}: it may not "
            "create the replication slot or open the replication connection (\"permission denied to start WAL "
            "sender\")",
            f"as a superuser on the source: ALTER ROLE {quote_ident(user)} REPLICATION; on a managed service, its "
            f"provider's way (Amazon RDS and Aurora: GRANT rds_replication TO {quote_ident(user)}, with "
            "rds.logical_replication = 1; Azure and Cloud SQL: ALTER ROLE ... REPLICATION as the admin user); or "
            "connect as a user that has it")


def _publication(out, src: dict, source_inv: dict, published: list[dict]) -> None:
    unlogged = [_q(t["schema"], t["name"]) for t in published if t.get("unlogged")]
    if unlogged:
        out.add("PUBLICATION_NOT_PERMITTED", BLOCKER, _list(unlogged),
                f"{len(unlogged)} selected tables are unlogged ({_list(unlogged)}): their changes are not written to "
                "WAL, so a publication may not hold them and creating the migration's publication fails (\"cannot add "
                "relation ... to publication\")",
                "ALTER TABLE ... SET LOGGED on the source, or leave them out with --exclude 'schema.table' (or "
                "migrate offline)")
    if src.get("is_superuser"):
        return
    user = str(src.get("current_user") or "")
    owned = {(r["schema"], r["name"]): r.get("owned") for r in source_inv.get("replication_tables", [])}
    not_owned = [t for t in published if owned.get((t["schema"], t["name"])) is False]
    no_create = src.get("can_create_in_database") is False
    if not not_owned and not no_create:
        return
    database = str(source_inv.get("server", {}).get("database") or "")
    owners = sorted({str(t.get("owner") or "?") for t in not_owned})
    problems, remedies = [], []
    if not_owned:
        names = [_q(t["schema"], t["name"]) for t in not_owned]
        problems.append(f"it does not own {len(names)} of the selected tables ({_list(names)}; owned by "
                        f"{_list(owners, 5)}), and a publication FOR TABLE needs ownership of each (\"must be owner "
                        "of table\")")
        remedies.append(f"make the user a member of the owners (GRANT {', '.join(quote_ident(o) for o in owners[:5])} "
                        f"TO {quote_ident(user)}), or connect as the owner or a superuser, or --exclude those tables")
    if no_create:
        problems.append(f"it lacks CREATE on database {database!r}, which CREATE PUBLICATION needs")
        remedies.append(f"GRANT CREATE ON DATABASE {quote_ident(database)} TO {quote_ident(user)}")
    out.add("PUBLICATION_NOT_PERMITTED", BLOCKER, f"role {user}",
            f"the source user {user!r} is not a superuser and may not create the migration's publication: "
            + "; ".join(problems),
            "; ".join(remedies))


def _replica_identity(out, source_inv: dict, published: list[dict]) -> None:
    identity = {(r["schema"], r["name"]): r for r in source_inv.get("replication_tables", [])}
    missing = []
    for t in published:
        r = identity.get((t["schema"], t["name"]))
        if r is None or t.get("unlogged") or r.get("identity_usable"):
            continue
        missing.append((t, r))
    if not missing:
        return
    names = [_q(t["schema"], t["name"]) for t, _ in missing]
    nothing = [n for n, (_, r) in zip(names, missing) if r.get("replica_identity") == "nothing"]
    candidates = [f"ALTER TABLE {n} REPLICA IDENTITY USING INDEX {quote_ident(r['identity_index_candidate'])}"
                  for n, (_, r) in zip(names, missing) if r.get("identity_index_candidate")]
    out.add("NO_REPLICA_IDENTITY", BLOCKER, _list(names),
            f"{len(names)} selected tables have neither a primary key nor a replica identity ({_list(names)})"
            + (f"; {_list(nothing)} are set to REPLICA IDENTITY NOTHING" if nothing else "")
            + ". Once they are in the migration's publication, the source's own UPDATE and DELETE on them fail "
              "(\"cannot update table ... because it does not have a replica identity and publishes updates\"): "
              "the application breaks at once; INSERTs still work",
            "before the migration starts, for each table: ALTER TABLE ... REPLICA IDENTITY USING INDEX <a unique "
            "index on NOT NULL columns>"
            + (f" ({'; '.join(candidates[:5])}{' ...' if len(candidates) > 5 else ''})" if candidates else "")
            + ", or add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL (the whole old row then goes into "
              "WAL, about +60% WAL for updates, and the target finds each changed row by a scan when it has no "
              "suitable index), or leave the table out with --exclude 'schema.table'")


def _not_streamed(out, source_inv: dict) -> None:
    sequences = len(source_inv.get("sequences", []))
    if sequences:
        out.add("SEQUENCES_NOT_STREAMED", INFO, "sequences",
                f"logical replication does not carry sequence values: the {sequences} sequences of the source are "
                "copied from the snapshot and set again from the source's values at the cutover, after the target "
                "has caught up",
                "nothing to do; until the cutover the target's sequences lag behind the source's")
    lo = source_inv.get("large_objects", {}) or {}
    if int(lo.get("count") or 0) > 0:
        out.add("LARGE_OBJECTS_NOT_STREAMED", HIGH, "large objects",
                f"the source holds {int(lo['count']):,} large objects ({human_bytes(lo.get('bytes', 0))}); they are "
                "copied from the snapshot, but logical replication does not carry large objects: one created, "
                "written or unlinked (lo_create, lo_put, lo_unlink) after the snapshot is not carried to the target",
                "make sure the application does not change large objects during the migration (the final "
                "verification compares them), move their data into bytea columns, or migrate offline")
    out.add("DDL_NOT_STREAMED", INFO, "schema changes",
            "logical replication carries rows, not schema changes: a DDL on the source while the target syncs "
            "(e.g. ALTER TABLE ... ADD COLUMN) stops the stream at the next change to that table, and CREATE TABLE "
            "never arrives",
            "avoid schema changes until the cutover; when one is needed, apply it on the target first, then on the "
            "source; the cutover refuses while the schemas differ")


def _leftover_slots(out, source_inv: dict, target_inv: dict) -> None:
    publications = {p["name"] for p in source_inv.get("publications", [])}
    subscriptions = {s.get("slot_name"): s for s in target_inv.get("subscriptions", [])}
    for slot in source_inv.get("replication_slots", []):
        name = str(slot.get("name") or "")
        if not is_ours(name):
            continue
        retained = slot.get("retained_wal_bytes")
        held = (f"it holds {human_bytes(int(retained))} of WAL on the source" if retained is not None
                else "it holds WAL on the source")
        status = f" (wal_status {slot['wal_status']})" if slot.get("wal_status") else ""
        sub = subscriptions.get(name)
        if slot.get("active"):
            out.add("LEFTOVER_SLOTS", INFO, f"replication slot {name}",
                    f"replication slot {name} (database {slot.get('database')}) of another DBMigrate migration is in "
                    f"use (pid {slot.get('active_pid')}); {held}{status}",
                    "nothing to do while that migration runs; if it was abandoned, roll it back (or drop its "
                    "subscription on its target), which drops the slot")
            continue
        drop = f"SELECT pg_drop_replication_slot({_literal(name)})"
        if sub is not None:
            remedy = (f"on the target: DROP SUBSCRIPTION {quote_ident(str(sub['name']))} (database "
                      f"{sub.get('database')}; it drops the slot on the source too), or on the source: {drop}")
        else:
            remedy = f"if no migration of yours still needs it, on the source: {drop}"
        if name in publications:
            remedy += f"; and its publication: DROP PUBLICATION {quote_ident(name)}"
        out.add("LEFTOVER_SLOTS", MEDIUM, f"replication slot {name}",
                f"replication slot {name} (database {slot.get('database')}) was left by an earlier DBMigrate "
                f"migration and nothing reads it: {held}{status}, more every minute, and keeps catalog rows from "
                "being vacuumed; it also takes one of the server's replication slots",
                remedy)


def _slot_wal_limit(out, src: dict) -> None:
    limit = src.get("max_slot_wal_keep_size_bytes")
    version = int(src.get("version_num") or 0)
    if limit is None and version and version < 130000:
        out.add("SLOT_WAL_UNLIMITED", MEDIUM, "source server",
                "PostgreSQL 12 keeps every WAL segment a replication slot still needs, without limit: a slot an "
                "interrupted migration leaves behind can fill the source's disk",
                "watch the slot's retained WAL during the migration (pg_wal_lsn_diff(pg_current_wal_lsn(), "
                "restart_lsn) in pg_replication_slots) and drop it if the migration is abandoned; PostgreSQL 13+ "
                "has max_slot_wal_keep_size")
    elif limit is not None and int(limit) < 0:
        out.add("SLOT_WAL_UNLIMITED", MEDIUM, "source server",
                "max_slot_wal_keep_size is -1 (unlimited) on the source: a replication slot keeps all the WAL its "
                "reader has not confirmed, so a slot an interrupted or abandoned migration leaves behind can fill "
                "the source's disk",
                "on the source: ALTER SYSTEM SET max_slot_wal_keep_size = '...' (e.g. '50GB', below the WAL disk's "
                "free space; a slot beyond it is invalidated instead); then SELECT pg_reload_conf() (a reload is "
                "enough, no restart)")


def _subscription(out, tgt: dict, database: str, src: dict) -> None:
    if tgt.get("is_superuser"):
        return
    user = str(tgt.get("current_user") or "")
    version = int(tgt.get("version_num") or 0)
    severity = BLOCKER
    if version and version < 160000:
        problem = (f"the target runs PostgreSQL {version // 10000}, where only a superuser may create a "
                   "subscription")
        remedy = "connect to the target as a superuser (or migrate to PostgreSQL 16+, where pg_create_subscription " \
                 "lets others)"
    elif not tgt.get("create_subscription_member"):
        problem = "it is neither a superuser nor a member of pg_create_subscription"
        remedy = (f"as a superuser on the target: GRANT pg_create_subscription TO {quote_ident(user)} (and CREATE "
                  "on the database), or connect as a superuser")
    elif tgt.get("can_create_in_database") is False:
        problem = "it is a member of pg_create_subscription but lacks CREATE on the target database"
        remedy = f"GRANT CREATE ON DATABASE {quote_ident(database or '<target database>')} TO {quote_ident(user)}"
    elif src and not src.get("connection_has_password"):
        problem = ("a subscription owned by a non-superuser must give a password in its connection to the source "
                   "(\"password is required\"), and the source connection has none")
        remedy = "give the source connection a password (a source user that authenticates with one), or connect " \
                 "to the target as a superuser"
    elif src and src.get("connection_used_password") is False:
        # Discovery connects from the agents' host, the subscription from the target's: pg_hba may differ.
        severity = HIGH
        problem = ("a subscription owned by a non-superuser must authenticate to the source with its password, and "
                   "the source did not ask discovery's connection for it (trust authentication?): the target's "
                   "connection would likely fail (\"password is required\")")
        remedy = ("make the source's pg_hba.conf ask the target host for a password (scram-sha-256), or connect to "
                  "the target as a superuser")
    else:
        return
    out.add("SUBSCRIPTION_NOT_PERMITTED", severity, f"role {user}",
            f"the target user {user!r} may not create the migration's subscription: {problem}", remedy)


def _workers(out, tgt: dict) -> None:
    limit = tgt.get("max_logical_replication_workers")
    if limit is None:
        return
    used = int(tgt.get("logical_workers_in_use") or 0)
    if int(limit) - used < 1:
        out.add("REPLICATION_WORKERS_TOO_FEW", BLOCKER, "target server",
                f"the target allows max_logical_replication_workers = {limit} and {used} are in use "
                f"(max_worker_processes = {tgt.get('max_worker_processes')}): the subscription's apply worker "
                "could not start, so no change would reach the target",
                f"on the target: ALTER SYSTEM SET max_logical_replication_workers = {max(4, used + 1)} (and "
                f"max_worker_processes high enough to hold them beside parallel workers); then restart the target "
                f"server ({_RESTART})")
