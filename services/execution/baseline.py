"""The target's inventory before the migration (the baseline) and the rollback that returns to it."""
from __future__ import annotations

from pathlib import Path

import psycopg
from google.protobuf import struct_pb2
from psycopg import sql

from dbmigrate.v1 import common_pb2

_INVENTORY = (Path(__file__).parent / "sql" / "inventory.sql").read_text()


def inventory(c: psycopg.Connection) -> dict[str, set[str]]:
    """kind -> names; kinds: schema, relation:<relkind>, type:<typtype>, function:<prokind>, extension, large_object."""
    out: dict[str, set[str]] = {}
    for kind, name in c.execute(_INVENTORY):
        out.setdefault(kind, set()).add(name)
    return out


def to_baseline(inv: dict[str, set[str]]) -> common_pb2.TargetBaseline:
    b = common_pb2.TargetBaseline(
        schemas=sorted(inv.get("schema", ())),
        relations=sorted(n for k, v in inv.items() if k.startswith("relation:") for n in v),
        types=sorted(n for k, v in inv.items() if k.startswith("type:") for n in v),
        functions=sorted(n for k, v in inv.items() if k.startswith("function:") for n in v),
        extensions=sorted(inv.get("extension", ())),
        large_objects=sorted(int(x) for x in inv.get("large_object", ())),
    )
    b.empty = not (b.relations or b.types or b.functions or b.large_objects or set(b.schemas) - {"public"})
    details = struct_pb2.Struct()
    details.update({k: sorted(v) for k, v in inv.items()})
    b.details.CopyFrom(details)
    return b


_DROP = {
    "relation:r": "DROP TABLE IF EXISTS {} CASCADE", "relation:p": "DROP TABLE IF EXISTS {} CASCADE",
    "relation:v": "DROP VIEW IF EXISTS {} CASCADE", "relation:m": "DROP MATERIALIZED VIEW IF EXISTS {} CASCADE",
    "relation:S": "DROP SEQUENCE IF EXISTS {} CASCADE", "relation:f": "DROP FOREIGN TABLE IF EXISTS {} CASCADE",
    "type:d": "DROP DOMAIN IF EXISTS {} CASCADE",
    "function:f": "DROP FUNCTION IF EXISTS {} CASCADE", "function:p": "DROP PROCEDURE IF EXISTS {} CASCADE",
    "function:a": "DROP AGGREGATE IF EXISTS {} CASCADE", "function:w": "DROP FUNCTION IF EXISTS {} CASCADE",
}


def rollback(c: psycopg.Connection, baseline: common_pb2.TargetBaseline) -> list[str]:
    """Drops what is in the target now and was not in the baseline, in one transaction; returns what it dropped.

    Names in the inventory are already quoted (quote_ident / regprocedure), so they go in as SQL text.
    Idempotent: a second run finds nothing new and drops nothing.
    """
    before = {"schema": set(baseline.schemas), "extension": set(baseline.extensions),
              "large_object": {str(x) for x in baseline.large_objects}}
    known_rel, known_type, known_fn = set(baseline.relations), set(baseline.types), set(baseline.functions)
    dropped: list[str] = []
    with c.transaction():
        now = inventory(c)
        new_schemas = now.get("schema", set()) - before["schema"]
        for schema in sorted(new_schemas):
            c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            dropped.append(f"schema {schema}")
        for ext in sorted(now.get("extension", set()) - before["extension"]):
            c.execute(sql.SQL("DROP EXTENSION IF EXISTS {} CASCADE").format(sql.Identifier(ext)))
            dropped.append(f"extension {ext}")
        now = inventory(c)  # cascades above removed more
        order = ["relation:m", "relation:v", "relation:f", "relation:p", "relation:r", "relation:S"]
        for kind in order:
            for name in sorted(now.get(kind, set()) - known_rel):
                c.execute(sql.SQL(_DROP[kind].format(name)))
                dropped.append(f"{kind.split(':')[0]} {name}")
        for kind in sorted(k for k in now if k.startswith("function:")):
            for name in sorted(inventory(c).get(kind, set()) - known_fn):
                c.execute(sql.SQL(_DROP.get(kind, "DROP ROUTINE IF EXISTS {} CASCADE").format(name)))
                dropped.append(f"function {name}")
        for kind in sorted(k for k in inventory(c) if k.startswith("type:")):
            for name in sorted(inventory(c).get(kind, set()) - known_type):
                stmt = _DROP.get(kind, "DROP TYPE IF EXISTS {} CASCADE")
                c.execute(sql.SQL(stmt.format(name)))
                dropped.append(f"type {name}")
        for oid in sorted(inventory(c).get("large_object", set()) - before["large_object"], key=int):
            c.execute("SELECT lo_unlink(%s::oid)", (int(oid),))
            dropped.append(f"large object {oid}")
        known = {k: set(v) for k, v in baseline.details.items()} if baseline.HasField("details") else {}
        now = inventory(c)
        for kind, statement in _DROP_OTHER.items():
            if kind in _LISTED_SINCE_INVENTORY_ROW and "inventory" not in known:
                continue
            for name in sorted(now.get(kind, set()) - known.get(kind, set())):
                c.execute(sql.SQL(statement.format(name)))
                dropped.append(f"{kind.replace('_', ' ')} {name}")
        if "default_acl" in known or "database_privilege" in known:  # baselines from before had neither
            dropped += _restore_default_privileges(c, known.get("default_acl", set()), now.get("default_acl", set()))
            dropped += _restore_database_privileges(c, known.get("database_privilege", set()))
            dropped += _restore_database_settings(c, known.get("database_setting", set()),
                                                  now.get("database_setting", set()))
        if "database comment" in known.get("inventory", set()) \
                and known.get("database_comment", set()) != now.get("database_comment", set()):
            # a baseline that says it lists the comment (an older one does not say what it was)
            from services.common.dbsettings import comment_statement
            was = next(iter(known.get("database_comment", set())), None)
            c.execute(comment_statement(c.info.dbname, was))
            dropped.append("the database's comment, as before")
    return dropped


# Objects outside the dropped schemas, or in schemas the target had before (public).
_DROP_OTHER = {
    "event_trigger": "DROP EVENT TRIGGER IF EXISTS {}",
    "foreign_server": "DROP SERVER IF EXISTS {} CASCADE",
    "operator": "DROP OPERATOR IF EXISTS {} CASCADE",
    "collation": "DROP COLLATION IF EXISTS {} CASCADE",
    "text_search_configuration": "DROP TEXT SEARCH CONFIGURATION IF EXISTS {} CASCADE",
    "text_search_dictionary": "DROP TEXT SEARCH DICTIONARY IF EXISTS {} CASCADE",
    # kinds a baseline lists only from the inventory with an 'inventory' row on (an older baseline
    # does not say what the target had of them: nothing of theirs is dropped)
    "access_method": "DROP ACCESS METHOD IF EXISTS {} CASCADE",
    "shell_type": "DROP TYPE IF EXISTS {} CASCADE",
    "operator_family": "DROP OPERATOR FAMILY IF EXISTS {} CASCADE",
    "transform": "DROP TRANSFORM IF EXISTS FOR {} CASCADE",
    "foreign_data_wrapper": "DROP FOREIGN DATA WRAPPER IF EXISTS {} CASCADE",
}
_LISTED_SINCE_INVENTORY_ROW = {"access_method", "shell_type", "operator_family", "transform", "foreign_data_wrapper"}
_DEFAULT_KINDS = {"r": ("TABLES", "r"), "S": ("SEQUENCES", "s"), "f": ("FUNCTIONS", "f"), "T": ("TYPES", "T"),
                  "n": ("SCHEMAS", "n")}
_EXPLODE = """SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                     a.privilege_type, a.is_grantable FROM aclexplode({}) a"""


def _restore_default_privileges(c: psycopg.Connection, before: set[str], now: set[str]) -> list[str]:
    """ALTER DEFAULT PRIVILEGES back to what the target had: an entry the migration made goes back to
    PostgreSQL's default (nothing in a schema; the owner's own elsewhere), a changed one to before."""
    def entries(items: set[str]) -> dict[tuple[str, str, str], str]:
        out = {}
        for item in items:
            role, schema, objtype, acl = item.split("|", 3)
            out[(role, schema, objtype)] = acl
        return out

    was, have, done = entries(before), entries(now), []
    for (role, schema, objtype), acl in sorted(have.items()):
        if was.get((role, schema, objtype)) == acl or objtype not in _DEFAULT_KINDS:
            continue
        word, code = _DEFAULT_KINDS[objtype]
        current = set(c.execute(sql.SQL(_EXPLODE.format("%s::aclitem[]")), (acl,)).fetchall())
        if (role, schema, objtype) in was:
            wanted = set(c.execute(sql.SQL(_EXPLODE.format("%s::aclitem[]")), (was[(role, schema, objtype)],)))
        elif schema:
            wanted = set()
        else:
            wanted = set(c.execute(sql.SQL(_EXPLODE.format("acldefault(%s, %s::regrole)")), (code, role)))
        where = sql.SQL("FOR ROLE {}{}").format(sql.SQL(role), sql.SQL(f" IN SCHEMA {schema}" if schema else ""))
        for grantee, privilege, _ in sorted(current - wanted):
            c.execute(sql.SQL("ALTER DEFAULT PRIVILEGES {} REVOKE {} ON {} FROM {}").format(
                where, sql.SQL(privilege), sql.SQL(word), sql.SQL(grantee)))
        for grantee, privilege, grantable in sorted(wanted - current):
            c.execute(sql.SQL("ALTER DEFAULT PRIVILEGES {} GRANT {} ON {} TO {}{}").format(
                where, sql.SQL(privilege), sql.SQL(word), sql.SQL(grantee),
                sql.SQL(" WITH GRANT OPTION" if grantable else "")))
        done.append(f"default privileges for role {role}" + (f" in schema {schema}" if schema else "") + f" on {word.lower()}")
    return done


def _restore_database_privileges(c: psycopg.Connection, before: set[str]) -> list[str]:
    """The target database's own privileges back to what they were."""
    from services.execution.dbprivileges import database_grants
    was = {(g, p, x == "true") for g, p, x in (item.split("|") for item in before)}
    now = database_grants(c)
    db = sql.Identifier(c.info.dbname)
    for grantee, privilege, _ in sorted(now - was):
        c.execute(sql.SQL("REVOKE {} ON DATABASE {} FROM {}").format(
            sql.SQL(privilege), db, sql.SQL("PUBLIC") if grantee == "" else sql.Identifier(grantee)))
    for grantee, privilege, grantable in sorted(was - now):
        c.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
            sql.SQL(privilege), db, sql.SQL("PUBLIC") if grantee == "" else sql.Identifier(grantee),
            sql.SQL(" WITH GRANT OPTION" if grantable else "")))
    return ["the database's own privileges, as before"] if now != was else []


def _restore_database_settings(c: psycopg.Connection, before: set[str], now: set[str]) -> list[str]:
    """The target database's own settings back to what they were: one the migration set is reset,
    one it changed set again to the value before."""
    from services.common.dbsettings import reset_statement, set_statement, shown

    def entries(items: set[str]) -> dict[tuple[str, str], str]:
        out = {}
        for item in items:
            role, _, setting = item.partition("|")
            name, _, value = setting.partition("=")
            out[(role, name)] = value
        return out

    was, have, done = entries(before), entries(now), []
    for (role, name), value in sorted(have.items()):
        if (role, name) not in was:
            c.execute(reset_statement(c.info.dbname, role, name))
            done.append(f"database setting {shown(role, name)} reset")
        elif was[(role, name)] != value:
            c.execute(set_statement(c.info.dbname, role, name, was[(role, name)]))
            done.append(f"database setting {shown(role, name)} set back")
    return done
