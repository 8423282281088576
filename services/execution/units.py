"""Units of copy work: whole tables, or parts of a large table by integer key range or by ctid range."""
from __future__ import annotations

import math
from dataclasses import dataclass

import psycopg
from psycopg import sql

from services.common.catalog import MAX_PARTS, Table, parts_for_size


@dataclass(frozen=True)
class Unit:
    id: str                      # stable across calls: "schema.table" or "schema.table#2/4"
    table: Table
    part: int = 1
    parts: int = 1
    where: sql.Composable | None = None
    order_by: str | None = None  # parts by key range stream in key order, so they can be proven by stream

    @property
    def whole(self) -> bool:
        return self.parts == 1


def unit_id(table: Table, part: int, parts: int) -> str:
    return table.qualified if parts == 1 else f"{table.qualified}#{part}/{parts}"


def parts_for(table: Table, threshold: int, planned: int | None) -> int:
    """How many parts a table is copied in: the plan's number when it has one, else by size."""
    if planned and planned > 0:
        return min(planned, MAX_PARTS)
    return parts_for_size(table.bytes, threshold)


def split(source: psycopg.Connection, table: Table, parts: int) -> list[Unit]:
    """The units of one table; `source` is inside the migration's snapshot."""
    if parts <= 1:
        return [Unit(unit_id(table, 1, 1), table)]
    if table.int_key:
        key = sql.Identifier(table.int_key)
        lo, hi = source.execute(sql.SQL("SELECT min({k}), max({k}) FROM ONLY {t}").format(
            k=key, t=sql.Identifier(table.schema, table.name))).fetchone()
        if lo is None:
            return [Unit(unit_id(table, 1, 1), table)]
        step = max(1, math.ceil((hi - lo + 1) / parts))
        units = []
        for i in range(parts):
            start = lo + i * step
            if i == parts - 1:
                where = sql.SQL("{k} >= {a}").format(k=key, a=sql.Literal(start))
            elif i == 0:
                where = sql.SQL("{k} < {b}").format(k=key, b=sql.Literal(start + step))
            else:
                where = sql.SQL("{k} >= {a} AND {k} < {b}").format(k=key, a=sql.Literal(start),
                                                                   b=sql.Literal(start + step))
            units.append(Unit(unit_id(table, i + 1, parts), table, i + 1, parts, where, table.int_key))
        return units
    pages = source.execute("SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int",
                           (f"{sql.Identifier(table.schema, table.name).as_string(source)}",)).fetchone()[0]
    step = max(1, math.ceil(pages / parts))
    units = []
    for i in range(parts):
        lo = sql.Literal(f"({i * step},0)")
        hi = sql.Literal(f"({(i + 1) * step},0)")
        if i == 0:
            where = sql.SQL("ctid < {}::tid").format(hi)
        elif i == parts - 1:  # open-ended: rows on pages beyond the size read above still land here
            where = sql.SQL("ctid >= {}::tid").format(lo)
        else:
            where = sql.SQL("ctid >= {}::tid AND ctid < {}::tid").format(lo, hi)
        units.append(Unit(unit_id(table, i + 1, parts), table, i + 1, parts, where))
    return units
