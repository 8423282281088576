"""The database's own privileges (CONNECT, CREATE, TEMPORARY) carried to the target database, and
the privileges of the functions a type makes for itself, which pg_dump leaves out.

pg_dump writes them only with --create, which a migration into an existing database cannot use, so
they are read from the source's pg_database.datacl and granted here. The target database keeps its
owner; a privilege PUBLIC has on the target but not on the source is revoked (nothing widened);
other grants the target already had stay (they are the target operator's). Only an owner of the
target database or a superuser may change its privileges: anyone else gets them named, not set.
"""
from __future__ import annotations

import psycopg
from psycopg import sql

from services.common.pg import catalog_search_path, is_transient

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


# The functions CREATE TYPE makes for a range type (its constructors, those of its multirange): part
# of the type, so pg_dump writes neither them nor their privileges, and the target's get the defaults
# when the type is created (before the default privileges that shaped the source's are restored).
_TYPE_FUNCTIONS = """SELECT p.oid::regprocedure::text, pg_get_userbyid(p.proowner),
       array(SELECT ARRAY[CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee) END,
                          a.privilege_type, a.is_grantable::text]
               FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
              WHERE a.grantee <> p.proowner ORDER BY a.grantee, a.privilege_type)
  FROM pg_proc p
 WHERE EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                           AND d.refclassid = 'pg_type'::regclass AND d.deptype = 'i')
   AND p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)"""


def copy_type_function_privileges(source: psycopg.Connection, target: psycopg.Connection) -> str:
    """Gives the functions a type made for itself on the target the source's privileges (see
    _TYPE_FUNCTIONS); returns what it did, for the step ('' when nothing)."""
    with catalog_search_path(source):
        want = {sig: grants for sig, _, grants in source.execute(_TYPE_FUNCTIONS)}
    with catalog_search_path(target):
        return _set_type_function_privileges(target, want)


def _set_type_function_privileges(target: psycopg.Connection, want: dict[str, list]) -> str:
    changed, refused = [], []
    for sig, _, grants in target.execute(_TYPE_FUNCTIONS).fetchall():
        if sig not in want or want[sig] == grants:
            continue
        function = sql.SQL(f"FUNCTION {sig}")  # regprocedure's text: a quoted, qualified signature
        try:
            with target.transaction():
                for grantee, privilege, _ in grants:
                    target.execute(sql.SQL("REVOKE {} ON {} FROM {}").format(
                        sql.SQL(privilege), function, sql.SQL("PUBLIC") if grantee == "" else sql.Identifier(grantee)))
                for grantee, privilege, grantable in want[sig]:
                    target.execute(sql.SQL("GRANT {} ON {} TO {}{}").format(
                        sql.SQL(privilege), function, sql.SQL("PUBLIC") if grantee == "" else sql.Identifier(grantee),
                        sql.SQL(" WITH GRANT OPTION" if grantable == "true" else "")))
            changed.append(sig)
        except psycopg.Error as err:  # not its owner: named (the final verification names it too)
            if is_transient(err):  # the target went away: the step is retried
                raise
            refused.append(f"{sig}: {err.diag.message_primary or err}")
    parts = [f"privileges of {len(changed)} functions made by their types ({', '.join(changed[:5])}"
             f"{' and more' if len(changed) > 5 else ''}) set as on the source"] if changed else []
    if refused:
        parts.append("NOT SET on functions made by their types: " + "; ".join(refused[:5]))
    return "; ".join(parts)
