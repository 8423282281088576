"""Roles a database depends on (owners, grantees, default privileges, policies) and creating them on a target.

Roles are cluster-wide, so a database copied to another server needs the target to have them.
Discovery names the missing ones; with --create-roles the execution agent makes them: with their
attributes and their memberships in one another, NOLOGIN and without a password unless the source
lets DBMigrate read the password hashes (pg_authid, superuser only), in which case a login role keeps
its login and its hash. The hashes go from one server to the other inside the agent and nowhere else.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

_NEEDED_SQL = (Path(__file__).parent / "sql" / "roles_needed.sql").read_text()


@dataclass(frozen=True)
class Role:
    name: str
    reasons: tuple[str, ...]          # owner, grantee, default_privileges, policy, user_mapping, regrole_value,
                                      # database_setting
    objects_owned: int
    superuser: bool
    inherit: bool
    createrole: bool
    createdb: bool
    login: bool
    replication: bool
    bypassrls: bool
    connection_limit: int
    valid_until: str | None
    member_of: tuple[tuple[str, bool], ...]  # (role, admin option), among the needed roles

    def relevant(self, options) -> tuple[str, ...]:
        """The reasons that still need the role under the migration's options: --no-owner drops the
        owners, --no-privileges the grants and default privileges; policies and user mappings name
        roles whatever the options."""
        out = []
        for why in self.reasons:
            if why == "owner" and options.no_owner:
                continue
            if why in ("grantee", "default_privileges") and options.no_privileges:
                continue
            out.append(why)
        return tuple(out)


def from_row(row: dict) -> Role:
    member_of = row.get("member_of") or []
    if isinstance(member_of, str):
        member_of = json.loads(member_of)
    return Role(name=row["name"], reasons=tuple(row.get("reasons") or ()), objects_owned=int(row.get("objects_owned") or 0),
                superuser=bool(row.get("superuser")), inherit=bool(row.get("inherit", True)),
                createrole=bool(row.get("createrole")), createdb=bool(row.get("createdb")),
                login=bool(row.get("login")), replication=bool(row.get("replication")),
                bypassrls=bool(row.get("bypassrls")), connection_limit=int(row.get("connection_limit") or -1),
                valid_until=row.get("valid_until"), member_of=tuple((str(r), bool(a)) for r, a in member_of))


_REGROLE_COLUMNS = """SELECT n.nspname, c.relname, a.attname FROM pg_attribute a
                        JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE a.atttypid = 'regrole'::regtype AND a.attnum > 0 AND NOT a.attisdropped
                         AND c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"""
_ROLE_ATTRIBUTES = """SELECT r.rolname AS name, ARRAY['regrole_value'] AS reasons, 0 AS objects_owned,
                             r.rolsuper AS superuser, r.rolinherit AS inherit, r.rolcreaterole AS createrole,
                             r.rolcreatedb AS createdb, r.rolcanlogin AS login, r.rolreplication AS replication,
                             r.rolbypassrls AS bypassrls, r.rolconnlimit AS connection_limit,
                             r.rolvaliduntil::text AS valid_until, '[]'::json AS member_of
                        FROM pg_roles r WHERE r.rolname = ANY(%s) AND r.rolname NOT LIKE 'pg\\_%%'"""


def needed_rows(conn: psycopg.Connection) -> list[dict]:
    """needed_roles as rows (discovery reports them as they are)."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(_NEEDED_SQL)
        rows = cur.fetchall()
        # A regrole value is stored as the role's OID and copied as its name: the role must exist.
        known = {r["name"] for r in rows}
        values: set[str] = set()
        for schema, table, column in conn.execute(_REGROLE_COLUMNS).fetchall():
            q = sql.SQL("SELECT DISTINCT {c}::text FROM ONLY {t} WHERE {c} IS NOT NULL AND {c} <> 0 LIMIT 1000").format(
                c=sql.Identifier(column), t=sql.Identifier(schema, table))
            values |= {v for (v,) in conn.execute(q)}
        extra = sorted(v.strip('"') for v in values if v.strip('"') not in known)
        if extra:
            cur.execute(_ROLE_ATTRIBUTES, (extra,))
            rows += cur.fetchall()
    return rows


def needed_roles(conn: psycopg.Connection) -> list[Role]:
    """The roles the database `conn` is connected to depends on."""
    return [from_row(r) for r in needed_rows(conn)]


def role_names(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")}


def to_create(needed: list[Role], target_roles: set[str], options) -> list[Role]:
    """The needed roles the target lacks and --create-roles will make."""
    if not options.create_roles:
        return []
    return [r for r in needed if r.name not in target_roles and r.relevant(options)]


def password_hashes(source: psycopg.Connection, names: list[str]) -> dict[str, str] | None:
    """rolname -> password hash of the roles that have one; None when the source user may not read
    them (pg_authid is readable by superusers only)."""
    try:
        with source.transaction():
            rows = source.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
                                  (names,)).fetchall()
    except psycopg.errors.InsufficientPrivilege:
        return None
    return {name: pw for name, pw in rows if pw}


@dataclass
class CreatedRoles:
    created: list[str]
    with_password: list[str]       # login roles that kept their login and password hash
    made_nologin: list[str]        # login roles created NOLOGIN (no hash could be read)
    attributes_dropped: list[str]  # "role: SUPERUSER" the target user may not give


def create_roles(source: psycopg.Connection, target: psycopg.Connection, roles: list[Role]) -> CreatedRoles:
    """Creates `roles` on the target (autocommit connection) with their attributes, then their
    memberships in one another; a role that exists by then (an earlier attempt) is left as it is."""
    out = CreatedRoles([], [], [], [])
    if not roles:
        return out
    hashes = password_hashes(source, [r.name for r in roles])
    is_super = target.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
    existing = role_names(target)
    for r in roles:
        if r.name in existing:
            continue
        attrs = ["INHERIT" if r.inherit else "NOINHERIT", "CREATEDB" if r.createdb else "NOCREATEDB",
                 "CREATEROLE" if r.createrole else "NOCREATEROLE"]
        for flag, on in (("SUPERUSER", r.superuser), ("REPLICATION", r.replication), ("BYPASSRLS", r.bypassrls)):
            if on and is_super:
                attrs.append(flag)
            elif on:
                out.attributes_dropped.append(f"{r.name}: {flag}")
        parts = [sql.SQL("CREATE ROLE {}").format(sql.Identifier(r.name)), sql.SQL(" ".join(attrs))]
        secret = (hashes or {}).get(r.name)
        if r.login and secret:
            parts.append(sql.SQL("LOGIN PASSWORD {}").format(sql.Literal(secret)))
            out.with_password.append(r.name)
        else:
            parts.append(sql.SQL("NOLOGIN"))
            if r.login:
                out.made_nologin.append(r.name)
        if r.connection_limit >= 0:
            parts.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(r.connection_limit)))
        if r.valid_until and r.valid_until != "infinity":
            parts.append(sql.SQL("VALID UNTIL {}").format(sql.Literal(r.valid_until)))
        try:
            target.execute(sql.SQL(" ").join(parts))
        except psycopg.errors.DuplicateObject:
            continue  # made meanwhile (another migration to the same server)
        out.created.append(r.name)
        if not is_super:
            # A role made by a CREATEROLE user: that user must be a member to hand it objects.
            target.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(r.name)))
    made = set(out.created)
    for r in roles:
        for group, admin in r.member_of:
            if r.name in made or group in made:
                target.execute(sql.SQL("GRANT {} TO {}{}").format(sql.Identifier(group), sql.Identifier(r.name),
                                                                 sql.SQL(" WITH ADMIN OPTION" if admin else "")))
    log.info("created %d roles on the target (%d with their password hash, %d NOLOGIN)", len(out.created),
             len(out.with_password), len(out.made_nologin))
    return out


def drop_created(target: psycopg.Connection, names: list[str], baseline_roles: set[str]) -> list[str]:
    """Rollback: drops the roles of `names` that were not on the target before the migration."""
    dropped = []
    for name in names:
        if name in baseline_roles:
            continue
        if target.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None:
            continue
        try:
            with target.transaction():
                # The role did not exist before the migration: what it owns or was granted here is the
                # migration's too (default privileges, grants the rollback's drops did not reach).
                target.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                target.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
            dropped.append(f"role {name}")
        except psycopg.errors.DependentObjectsStillExist as err:
            log.warning("role %s was created by the migration but is still used elsewhere; kept: %s", name,
                        err.diag.message_primary)
    return dropped
