"""The database's own privileges (CONNECT, CREATE, TEMPORARY) carried to the target database.

pg_dump writes them only with --create, which a migration into an existing database cannot use, so
they are read from the source's pg_database.datacl and granted here. The target database keeps its
owner; a privilege PUBLIC has on the target but not on the source is revoked (nothing widened);
other grants the target already had stay (they are the target operator's). Only an owner of the
target database or a superuser may change its privileges: anyone else gets them named, not set.
"""
from __future__ import annotations

import psycopg
from psycopg import sql

_ACL = """SELECT CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, a.is_grantable
            FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
           WHERE d.datname = current_database() AND a.grantee <> d.datdba"""


def database_grants(c: psycopg.Connection) -> set[tuple[str, str, bool]]:
    """(grantee, privilege, grantable) of the current database, the owner left out; '' is PUBLIC."""
    return {(g, p, bool(x)) for g, p, x in c.execute(_ACL)}


def copy_database_privileges(source: psycopg.Connection, target: psycopg.Connection) -> str:
    """Makes the target database's privileges those of the source; returns what it did, for the step."""
    want = database_grants(source)
    have = database_grants(target)
    grant = sorted(want - have)
    revoke = sorted((g, p, x) for g, p, x in have - want if g == "" and (g, p, not x) not in want)
    if not grant and not revoke:
        return "the target database already has the source's privileges"
    allowed = target.execute("SELECT rolsuper OR pg_has_role(d.datdba, 'MEMBER') FROM pg_roles r, pg_database d "
                             "WHERE r.rolname = current_user AND d.datname = current_database()").fetchone()[0]
    shown = ", ".join(f"{p} to {g or 'PUBLIC'}" for g, p, _ in grant[:10])
    if not allowed:
        return (f"NOT SET: the target user owns neither the target database nor is a superuser, so these database "
                f"privileges of the source were not granted: {shown or 'none'}; "
                f"revokes from PUBLIC not made: {', '.join(p for _, p, _ in revoke) or 'none'}")
    db = sql.Identifier(target.info.dbname)
    for grantee, privilege, grantable in grant:
        to = sql.SQL("PUBLIC") if grantee == "" else sql.Identifier(grantee)
        target.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
            sql.SQL(privilege), db, to, sql.SQL(" WITH GRANT OPTION" if grantable else "")))
    for _, privilege, _ in revoke:
        target.execute(sql.SQL("REVOKE {} ON DATABASE {} FROM PUBLIC").format(sql.SQL(privilege), db))
    parts = [f"granted {shown}" + (" and more" if len(grant) > 10 else "")] if grant else []
    if revoke:
        parts.append("revoked from PUBLIC " + ", ".join(p for _, p, _ in revoke))
    return "database privileges: " + "; ".join(parts)
