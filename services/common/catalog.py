"""The tables a migration copies, with columns, keys and sizes, read in two set-based queries."""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NamedTuple

if TYPE_CHECKING:  # only annotations: the generation agent plans from catalogs without a driver loaded
    import psycopg

_SQL = Path(__file__).parent / "sql"


# Tables larger than this are copied in parts, with 4 jobs or more. Parts cannot be loaded with COPY
# FREEZE (every row's hint bits are written again by the first scan), and are proven through the
# key's index after the key is built, not by one sequential read beside the build; they win only
# where the cores a whole table's COPY leaves idle can run more streams. One stream keeps two cores
# busy (the source's COPY TO and the target's COPY FROM), so on 2 cores (measured here, through the
# stack): pgbench -s 200 (a 2.5 GB table) 41.4 s in 3 parts, 30.9 s whole; bench_execution (697 MB)
# a 430 MB table 9.4-9.6 s whole, 9.8-10.4 s in two.
DEFAULT_SPLIT_BYTES = 1024 * 1024 * 1024
# With fewer jobs a table is split only when it is so large that a crash in its copy should not cost
# all of it again (a part is the unit a resumed migration keeps).
FEW_JOBS_SPLIT_BYTES = 32 * 1024 * 1024 * 1024
MAX_PARTS = 16


def split_threshold(chosen: int, jobs: int) -> int:
    """The split threshold: the migration's own (split_threshold_bytes) when it chose one, else by jobs."""
    if chosen > 0:
        return chosen
    return DEFAULT_SPLIT_BYTES if jobs >= 4 else FEW_JOBS_SPLIT_BYTES


def parts_for_size(nbytes: int, threshold: int = DEFAULT_SPLIT_BYTES) -> int:
    """How many parts a table of `nbytes` is copied in (the plan and the execution agree on it)."""
    if threshold <= 0 or nbytes <= threshold:
        return 1
    return min(MAX_PARTS, max(2, -(-nbytes // threshold)))


def _sql(name: str) -> str:
    return (_SQL / name).read_text()


# Slotted: an agent holds every table of the database with its columns (a 20,000-table database has
# 60,000 columns or more), and an instance without __dict__ takes about a third of the memory.
@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    generated: bool
    identity: bool
    not_null: bool
    binary_ok: bool


@dataclass(frozen=True, slots=True)
class Table:
    schema: str
    name: str
    oid: int
    unlogged: bool
    is_partition: bool
    is_inheritance_child: bool
    bytes: int
    row_estimate: int
    owner: str
    primary_key: tuple[str, ...]
    int_key: str | None
    columns: tuple[Column, ...]
    # schema.table as a person reads it (quoted only where PostgreSQL would need it), made once: the
    # execution keys a dozen maps by it, and made at each use it was 100,000 strings for 20,000 tables.
    qualified: str = field(default="", init=False, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "qualified", f"{quote_ident(self.schema)}.{quote_ident(self.name)}")

    @property
    def copy_columns(self) -> list[str]:
        """Columns COPY moves: generated columns are computed by the target, not copied."""
        return [c.name for c in self.columns if not c.generated]

    @property
    def all_columns(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def typed_columns(self) -> list[tuple[str, str]]:
        """(name, type) of every column, for checksums that need a type's output text (services.common.checksum)."""
        return [(c.name, c.type) for c in self.columns]

    @property
    def binary_ok(self) -> bool:
        return all(c.binary_ok for c in self.columns if not c.generated)


def quote_ident(name: str) -> str:
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


# A quoted name that would need no quotes but for being a keyword (not part of a longer quoted name).
_NEEDLESSLY_QUOTED = re.compile(r'(?<!")"([a-z_][a-z0-9_$]*)"(?!")')


def version_stable(text: str) -> str:
    """`text` (names as a server's quote_ident or regprocedure wrote them) with every quoted name that
    needs its quotes only as a keyword written bare: which words are keywords changes between major
    versions (json is one from PostgreSQL 16 on, so 15 writes json and 18 "json"), and a name read on
    two servers must compare equal. For comparison keys, not for SQL."""
    return _NEEDLESSLY_QUOTED.sub(r"\1", text) if '"' in text else text


_RESERVED = {"all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "both", "case", "cast",
             "check", "collate", "column", "constraint", "create", "current_catalog", "current_date",
             "current_role", "current_time", "current_timestamp", "current_user", "default", "deferrable", "desc",
             "distinct", "do", "else", "end", "except", "false", "fetch", "for", "foreign", "from", "grant",
             "group", "having", "in", "initially", "intersect", "into", "lateral", "leading", "limit",
             "localtime", "localtimestamp", "not", "null", "offset", "on", "only", "or", "order", "placing",
             "primary", "references", "returning", "select", "session_user", "some", "symmetric", "table",
             "then", "to", "trailing", "true", "union", "unique", "user", "using", "variadic", "when", "where",
             "window", "with", "user"}


def matches(schema: str, table: str, include: list[str] | tuple[str, ...], exclude: list[str] | tuple[str, ...]) -> bool:
    """Glob patterns on "schema.table" (a pattern without a dot matches the schema, e.g. "sales" or "sales.*")."""
    full = f"{schema}.{table}"

    def hit(p: str) -> bool:
        return fnmatch.fnmatchcase(full, p) if "." in p else fnmatch.fnmatchcase(schema, p)

    if include and not any(hit(p) for p in include):
        return False
    return not any(hit(p) for p in exclude)


STREAM_ROWS = 1000  # rows libpq holds at once for a catalog read taken row by row (stream_rows)


def stream_rows(conn: psycopg.Connection, query, params=None) -> Iterator[tuple]:
    """The rows of `query`, STREAM_ROWS at a time from libpq (its chunked mode, libpq 17 and newer:
    psycopg's binary package brings one), not the whole result at once; with an older libpq the
    whole result, row by row."""
    from psycopg import pq  # loaded already: there is a connection
    if pq.version() >= 170000:
        yield from conn.cursor().stream(query, params, size=STREAM_ROWS)
    else:
        yield from conn.execute(query, params)


def list_tables(conn: psycopg.Connection, include=(), exclude=(),
                only: set[tuple[str, str]] | None = None) -> list[Table]:
    """Tables that hold rows, largest first, filtered by include/exclude patterns (and to the
    (schema, name) pairs in `only`, when given)."""
    rows = conn.execute(_sql("tables.sql")).fetchall()
    rows = [r for r in rows if matches(r[0], r[1], include, exclude) and (only is None or (r[0], r[1]) in only)]
    cols: dict[int, list[Column]] = {}
    once: dict[str, str] = {}  # the same column names, types, schemas and owners recur: each is kept once
    if rows:
        # Streamed: not every column of the database at once (60,000 rows and more with 20,000 tables).
        for oid, name, typ, gen, ident, nn, binok in stream_rows(conn, _sql("columns.sql"),
                                                                 {"oids": [r[2] for r in rows]}):
            cols.setdefault(oid, []).append(Column(once.setdefault(name, name), once.setdefault(typ, typ),
                                                   gen, ident, nn, binok))
    return [Table(schema=once.setdefault(r[0], r[0]), name=r[1], oid=r[2], unlogged=r[4], is_partition=r[5],
                  is_inheritance_child=r[6], bytes=r[7], row_estimate=r[8], owner=once.setdefault(r[9], r[9]),
                  primary_key=tuple(r[10] or ()), int_key=r[11], columns=tuple(cols.get(r[2], ()))) for r in rows]


def table_names(conn: psycopg.Connection, include=(), exclude=()) -> list[tuple[str, str]]:
    """(schema, name) of the tables list_tables gives, without what it reads of each (sizes, keys,
    columns): 2,000 tables 0.2-0.3 s a read for list_tables."""
    query = _sql("tables.sql")
    start = query.index("\n  FROM pg_class c")  # tables.sql's own FROM and WHERE: one definition of a table
    rows = conn.execute("SELECT n.nspname, c.relname" + query[start:query.index("\n ORDER BY", start)])
    return [(schema, name) for schema, name in rows if matches(schema, name, include, exclude)]


class Named(NamedTuple):
    schema: str
    name: str


# Every partitioned table with everything under it (itself included), at any depth.
_PARTITION_TREES = """WITH RECURSIVE tree(root, rel) AS (
    SELECT c.oid, c.oid FROM pg_class c WHERE c.relkind = 'p'
    UNION ALL
    SELECT t.root, i.inhrelid FROM tree t JOIN pg_inherits i ON i.inhparent = t.rel)
SELECT rn.nspname, r.relname, ln.nspname, l.relname, l.relkind::text
  FROM tree
  JOIN pg_class r ON r.oid = tree.root JOIN pg_namespace rn ON rn.oid = r.relnamespace
  JOIN pg_class l ON l.oid = tree.rel JOIN pg_namespace ln ON ln.oid = l.relnamespace"""


def left_out_parents(conn: psycopg.Connection, include=(), exclude=()) -> list[Named]:
    """The partitioned tables to leave out with the tables the patterns leave out (list_tables gives
    only tables that hold rows): those the patterns do not select and none of whose partitions they
    select. pg_dump would create them, empty; a partition that is kept needs its parent."""
    if not include and not exclude:
        return []
    below: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for root_schema, root, schema, name, kind in conn.execute(_PARTITION_TREES):
        under = below.setdefault((root_schema, root), [])
        if kind != "p":
            under.append((schema, name))
    return [Named(s, n) for (s, n), under in sorted(below.items())
            if not matches(s, n, include, exclude) and not any(matches(a, b, include, exclude) for a, b in under)]


# Views, materialized views and foreign tables (no extension's): the relations besides tables that
# --include/--exclude patterns select, as pg_dump's --table/--exclude-table do.
_OTHER_RELATIONS = """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')"""


def left_out_relations(conn: psycopg.Connection, include=(), exclude=()) -> list[Named]:
    """Besides the tables list_tables gives, what pg_dump must leave out for the patterns: the
    partitioned tables left_out_parents names, and the views, materialized views and foreign tables
    the patterns do not select (an excluded view was created all the same, and a view reading an
    excluded table could not be left out at all)."""
    if not include and not exclude:
        return []
    return left_out_parents(conn, include, exclude) + [
        Named(s, n) for s, n in conn.execute(_OTHER_RELATIONS) if not matches(s, n, include, exclude)]


def select_tables(tables: list[Table], include=(), exclude=()) -> list[Table]:
    """The tables of list_tables(conn) that list_tables(conn, include, exclude) would give, without
    reading the catalog again (2,000 tables: 0.2-0.3 s a read)."""
    if not include and not exclude:
        return list(tables)
    return [t for t in tables if matches(t.schema, t.name, include, exclude)]


_WRITES = """SELECT quote_ident(schemaname) || '.' || quote_ident(relname), n_tup_ins, n_tup_upd, n_tup_del
               FROM pg_stat_user_tables"""


def table_writes(conn: psycopg.Connection) -> dict[str, tuple[int, int, int]]:
    """table -> (rows inserted, updated, deleted) so far (pg_stat_user_tables): a later read that
    differs says the table was written to in between. The counters are the server's statistics,
    published by each session at its transactions' ends (at most a second late)."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return {name: (int(i), int(u), int(d)) for name, i, u, d in conn.execute(_WRITES)}
