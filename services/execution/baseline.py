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
    return dropped
