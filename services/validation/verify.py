"""Whole-database Verify: schema objects compared one by one, table data compared down to the row.

Each side is read inside one REPEATABLE READ, read-only transaction, so every figure of a side comes
from a single snapshot; the source and target queries run at the same time (one thread per side), so
verify costs about one scan of the larger side.

Data, table by table (the tables both sides have, include/exclude applied):
  1. count + order-independent checksum (services.common.checksum) on both sides;
  2. where they differ and the table has a primary key, the key range is split into buckets, each
     side answers count + checksum per bucket in one GROUP BY query, and buckets that differ are split
     again until they hold at most LEAF_ROWS rows; then (key, md5(row)) is fetched from both sides and
     diffed in Python. A bucket empty on one side is counted without fetching its rows.
     Integer keys are bucketed arithmetically; other keys (text, uuid, composite ...) by boundaries
     read from the source in key order and `width_bucket`;
  3. a table without a primary key is compared as a multiset of row hashes.
"""
from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import psycopg
from psycopg import sql

from dbmigrate.v1 import agents_pb2, common_pb2
from services.common.catalog import (Table, left_out_relations, list_tables, quote_ident, select_tables, stream_rows,
                                     table_names, table_writes)
from services.common.checksum import Checksum, row_expression, row_hash, table_checksum
from services.common.derived import rename_derived_keys
from services.common.errors import DatabaseError, DBMigrateError, InvalidInput
from services.common import pgtools
from services.common.logs import redact
from services.common.pg import check_connection, connect, describe, is_transient
from services.common.pgdump import apply_schema, dump_flags, dump_section, exclude_args, tolerant_pre_data
from services.validation import objects
from services.validation.objects import shorten, read_definitions
from services.validation.scratch import RENDER_PREFIX, scratch_database, scratch_name

_SQL = Path(__file__).parent / "sql"

DEFAULT_MAX_ROWS = 100
LEAF_ROWS = 1000          # a differing bucket this small is fetched and diffed row by row
MIN_BUCKETS = 16
MAX_BUCKETS = 8192        # buckets per GROUP BY query
RANGES_PER_FETCH = 64     # leaf ranges OR'ed into one fetch query
MAX_DEPTH = 24
_INT_TYPES = {"smallint", "integer", "bigint"}


def _sql(name: str) -> str:
    return (_SQL / name).read_text()


# ---------------------------------------------------------------------------------------------
# One side: a connection inside its snapshot transaction.

class Side:
    def __init__(self, conn_pb: common_pb2.Connection, role: str, *, export: bool = False):
        self.role = role
        self.where = f"{role} database {describe(conn_pb)}"
        self.conn = connect(conn_pb, role, autocommit=True, application_name=f"dbmigrate-verify-{role}")
        self.major = self.conn.info.server_version // 10000
        self.snapshot = ""
        with self.guard():
            # Names inside definitions are rendered schema-qualified, the same way on both sides.
            self.conn.execute("SET search_path = pg_catalog")
            self.conn.autocommit = False
            self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self.conn.read_only = True
            if export:  # pg_dump renders the schema in the very snapshot this side reads
                self.snapshot = self.conn.execute("SELECT pg_export_snapshot()").fetchone()[0]

    @contextmanager
    def guard(self):
        try:
            yield
        except DBMigrateError:
            raise
        except psycopg.Error as err:
            text = redact(str(err)).strip().splitlines()
            raise DatabaseError(f"{self.where}: {text[0] if text else type(err).__name__}",
                                retryable=is_transient(err)) from None

    def rows(self, query, params=None) -> list[tuple]:
        with self.guard():
            return self.conn.execute(query, params).fetchall()

    def each(self, query, params=None) -> Iterator[tuple]:
        """rows(), streamed (stream_rows): a catalog of 2,000 tables gives 18,000 compared objects a
        side, where the caller keeps a few fields of each."""
        with self.guard():
            yield from stream_rows(self.conn, query, params)

    def close(self) -> None:
        try:
            self.conn.rollback()
        except psycopg.Error:
            pass
        self.conn.close()


class Pair:
    """The two sides and a two-thread pool that runs a source call and a target call at once."""

    def __init__(self, src: Side, dst: Side):
        self.src, self.dst = src, dst
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify")

    def both(self, fsrc: Callable[[Side], object], fdst: Callable[[Side], object] | None = None):
        fdst = fdst or fsrc
        a = self.pool.submit(fsrc, self.src)
        b = self.pool.submit(fdst, self.dst)
        errors = [f.exception() for f in (a, b)]  # waits for both before a connection is closed
        for err in errors:
            if err is not None:
                raise err
        return a.result(), b.result()


def _open_pair(req: agents_pb2.VerifyRequest) -> Pair:
    with ThreadPoolExecutor(max_workers=2) as pool:
        fs = pool.submit(Side, req.source, "source", export=True)
        ft = pool.submit(Side, req.target, "target")
        err_s, err_t = fs.exception(), ft.exception()
    if err_s or err_t:
        for f, e in ((fs, err_s), (ft, err_t)):
            if e is None:
                f.result().close()
        raise err_s or err_t
    return Pair(fs.result(), ft.result())


# ---------------------------------------------------------------------------------------------
# Schema objects (services.validation.objects): compared directly on one major version, through a
# rendering of the source's schema on the target server across versions.

def render_source(req: agents_pb2.VerifyRequest | agents_pb2.ValidateRequest, src: Side, include,
                  exclude, target_version_num: int) -> tuple[dict | None, str]:
    """The source's schema as the target server holds it: pg_dump of the source (the migration's
    tools and options, in src's snapshot) applied to a scratch database there, read back. (None,
    error) when the target server cannot hold it."""
    opts = req.options
    tools = pgtools.for_source(src.conn.info.server_version, target_version_num)  # the migration's own
    with src.guard():
        every = list_tables(src.conn)
        excluded = exclude_args(every + left_out_relations(src.conn, include, exclude),
                                select_tables(every, include, exclude))
    pre, post = (dump_section(req.source, section, tools=tools, snapshot=src.snapshot, extra_args=excluded,
                              **dump_flags(opts)) for section in ("pre-data", "post-data"))
    name = scratch_name(req.workflow_id, RENDER_PREFIX)
    with scratch_database(req.target, name, "comparing schemas across major versions") as scratch:
        try:
            apply_schema(scratch, tolerant_pre_data(pre), "source's schema, rendered for the comparison")
            apply_schema(scratch, post, "source's indexes and constraints, rendered for the comparison")
            with connect(scratch, "target", autocommit=True, application_name="dbmigrate-validation") as made, \
                    src.guard():
                rename_derived_keys(src.conn, made)  # as the migration does (services/common/derived.py)
        except DatabaseError as err:
            if err.retryable:
                raise
            return None, err.message
        side = Side(scratch, "rendering")
        try:
            return read_definitions(side, include, exclude, opts), ""
        finally:
            side.close()


def render_before_load(req: agents_pb2.ValidateRequest) -> common_pb2.RenderedSchema | None:
    """Validation's rendering of the source's schema on the target server (RenderedSchema), across
    major versions: taken while the target is still empty, so that the scratch database's DROP
    DATABASE, which forces a checkpoint, finds little to write (after the load of pgbench -s 40 into
    PostgreSQL 18 it took 1.3 s against 0.02 s). None when the schema cannot be rendered: the final
    verification renders it then, and names why."""
    include, exclude = list(req.options.include), list(req.options.exclude)
    src = Side(req.source, "source", export=True)
    try:
        source_digest = objects.digest(read_definitions(src, include, exclude, req.options))
        rendered, _ = render_source(req, src, include, exclude, req.discovery.target.version_num)
    finally:
        src.close()
    if rendered is None:
        return None
    return common_pb2.RenderedSchema(source_digest=source_digest, rendered_digest=objects.digest(rendered),
                                     target_version_num=req.discovery.target.version_num, objects=len(rendered))


def _rendered_before(req: agents_pb2.VerifyRequest, pair: Pair, sdefs: dict, ddefs: dict) -> bool:
    """The target holds exactly the rendering validation took, of the schema the source has now, on
    this target server: that rendering stands for one taken now."""
    r = req.rendered
    return bool(r.rendered_digest) and r.target_version_num == pair.dst.conn.info.server_version \
        and r.source_digest == objects.digest(sdefs) and r.rendered_digest == objects.digest(ddefs)


def _database_privileges(values: list[common_pb2.ObjectDiff]) -> tuple[list, list]:
    """The target database was made by its operator: grants it has beyond the source's (other than
    to PUBLIC) are theirs, a note; anything the source has and the target lacks is a difference."""
    diffs, notes = [], []
    for d in values:
        if d.kind == "privileges" and d.name == "database" and d.detail.startswith("widened: ") \
                and "PUBLIC:" not in d.detail:
            notes.append(common_pb2.ObjectDiff(kind=d.kind, name=d.name, difference="target_only",
                                               detail=d.detail.replace("widened: ", "granted on the target only: ")))
        else:
            diffs.append(d)
    return diffs, notes


def reused_proofs(req: agents_pb2.VerifyRequest, pair: Pair,
                  names: list[str]) -> tuple[dict[str, common_pb2.TableDiff], list[common_pb2.ObjectDiff]]:
    """The final verification of a migration: its execution proved each table (count and checksum of
    the target against the source's snapshot). A proven table nothing has written to since (the
    target's write counters as the execution left them) is not read again; its proof stands. Tables
    the source changed after the snapshot are notes: the target holds the snapshot it promised."""
    p = req.proven
    if not p.tables:
        return {}, []
    source_now, target_now = pair.both(lambda side: _writes(side))
    # One pass over each list of the proofs, keeping names only: a dict of each list's entries
    # took about 150 bytes a table (20,000 tables: 9 MB for the three).
    wanted = set(names)
    unwritten = {w.table for w in p.target_writes
                 if w.table in wanted and target_now.get(w.table) == (w.inserted, w.updated, w.deleted)}
    out = {}
    for r in p.tables:
        if r.verified and r.source_rows >= 0 and r.table in unwritten:  # else compared again
            out[r.table] = common_pb2.TableDiff(
                table=r.table, source_rows=r.source_rows, target_rows=r.target_rows,
                source_checksum=r.source_checksum, target_checksum=r.target_checksum,
                equal=r.source_checksum == r.target_checksum,
                note="proven by the migration in its snapshot (count and checksum); not written to since")
    moved = {}
    for w in p.source_writes:
        now = source_now.get(w.table)
        if w.table in wanted and now is not None and now != (w.inserted, w.updated, w.deleted):
            changed = sum(b - a for a, b in zip((w.inserted, w.updated, w.deleted), now))
            moved[w.table] = common_pb2.ObjectDiff(
                kind="table", name=w.table, difference="source_changed",
                detail=f"{changed:,} rows inserted, updated or deleted in the source after the migration's snapshot "
                       "(the target holds the snapshot; an online migration carries such writes)")
    return out, [moved[name] for name in names if name in moved]


def sequences_moved_on(req: agents_pb2.VerifyRequest, diffs: list[common_pb2.ObjectDiff],
                       target_values: dict) -> tuple[list, list]:
    """The final verification of a migration: a sequence the target holds at the snapshot's value
    while the source went on is the source's drift (a note), not a difference."""
    snap = req.proven.sequences
    if not snap:
        return diffs, []
    kept, notes = [], []
    for d in diffs:
        value = target_values.get(("sequence_value", d.name), "")
        at_snapshot = d.name in snap and value.split(" (")[0] == f"last_value {snap[d.name]}"
        if d.kind == "sequence" and d.difference == "changed" and at_snapshot:
            notes.append(common_pb2.ObjectDiff(
                kind="sequence", name=d.name, difference="source_changed",
                detail=f"advanced in the source after the migration's snapshot ({d.detail}); the target holds the "
                       "snapshot's value (an online migration carries such writes)"))
        else:
            kept.append(d)
    return kept, notes


def _tables(side: Side, include, exclude, only: set[tuple[str, str]]) -> list[Table]:
    with side.guard():
        return list_tables(side.conn, include, exclude, only=only)


def _writes(side: Side) -> dict[str, tuple[int, int, int]]:
    with side.guard():
        return table_writes(side.conn)


def compare_schemas(req: agents_pb2.VerifyRequest, pair: Pair, src: tuple[dict, dict], dst: tuple[dict, dict],
                    include, exclude) -> tuple[list, list, str]:
    """(differences, notes, method) of the schema objects and values of both sides."""
    (sdefs, svals), (ddefs, dvals) = src, dst
    values, value_notes = objects.compare(svals, dvals)
    values, notes = _database_privileges(values)
    notes += value_notes
    if pair.src.major == pair.dst.major:
        # Summed (objects.Summed) when both sides summed the same: no difference among the definitions.
        diffs, ext_notes = ([], []) if isinstance(sdefs, objects.Summed) else objects.compare(sdefs, ddefs)
        return diffs + values, ext_notes + notes, "direct"
    method = f"rendered: the source's PostgreSQL {pair.src.major} schema as PostgreSQL {pair.dst.major} holds it"
    if _rendered_before(req, pair, sdefs, ddefs):
        rendered, error = ddefs, ""
        method += " (rendered before the data was loaded; the source's schema is the one rendered)"
    else:
        rendered, error = render_source(req, pair.src, include, exclude, pair.dst.conn.info.server_version)
    if rendered is None:
        return [common_pb2.ObjectDiff(kind="schema", name="(the whole schema)", difference="cannot_render",
                                      detail=f"the source's schema cannot be created on the target server: {error}")
                ] + values, notes, method
    diffs, _ = objects.compare(rendered, ddefs)
    diffs += objects.carried(sdefs, rendered, ddefs, pair.src.major)
    noted = ("extension", "child_column_order")  # compared as the source has them: they become notes
    _, ext_notes = objects.compare({k: v for k, v in sdefs.items() if k[0] in noted},
                                   {k: v for k, v in ddefs.items() if k[0] in noted})
    return diffs + values, ext_notes + notes, method


# ---------------------------------------------------------------------------------------------
# Data: the table as both sides see it, and key ranges.

@dataclass
class TableSpec:
    schema: str
    name: str
    qualified: str
    columns: list[str]
    pk: tuple[str, ...]
    pk_types: tuple[str, ...]
    int_key: bool
    note: str = ""
    types: dict = field(default_factory=dict)   # column -> type, for the checksum's text forms

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.name)

    def row_text(self) -> sql.Composable:
        return row_expression(self.columns)

    def row_hash(self) -> sql.Composable:
        return row_hash(self.typed)  # the same as the execution agent's per-table checksum

    @property
    def typed(self) -> list[tuple[str, str]]:
        return [(c, self.types.get(c, "")) for c in self.columns]

    def key_expr(self) -> sql.Composable:
        cols = [sql.SQL("t.{}").format(sql.Identifier(c)) for c in self.pk]
        return cols[0] if len(cols) == 1 else sql.SQL("ROW({})").format(sql.SQL(", ").join(cols))

    def key_text(self) -> sql.Composable:
        return sql.SQL(", ").join(sql.SQL("t.{}::text").format(sql.Identifier(c)) for c in self.pk)

    def key_value(self, value) -> sql.Composable:
        """A key as SQL: an int (integer key), or a tuple of text forms cast to the key's types."""
        if isinstance(value, int):
            return sql.Literal(value)
        vals = [sql.SQL("{}::{}").format(sql.Literal(v), sql.SQL(t)) for v, t in zip(value, self.pk_types)]
        return vals[0] if len(vals) == 1 else sql.SQL("ROW({})").format(sql.SQL(", ").join(vals))

    def key_json(self, texts: tuple[str, ...]) -> str:
        obj = {}
        for col, typ, v in zip(self.pk, self.pk_types, texts):
            obj[col] = int(v) if typ in _INT_TYPES and v is not None else v
        return json.dumps(obj, ensure_ascii=False)


@dataclass(frozen=True)
class Range:
    lo: object = None   # inclusive; None = unbounded
    hi: object = None   # exclusive; None = unbounded

    def condition(self, t: TableSpec) -> sql.Composable:
        parts = []
        if self.lo is not None:
            parts.append(sql.SQL("{} >= {}").format(t.key_expr(), t.key_value(self.lo)))
        if self.hi is not None:
            parts.append(sql.SQL("{} < {}").format(t.key_expr(), t.key_value(self.hi)))
        return sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")


def _spec(src: Table, dst: Table) -> TableSpec:
    dst_cols = set(dst.all_columns)
    columns = [c for c in src.all_columns if c in dst_cols]
    note = ""
    if len(columns) != len(src.all_columns) or len(columns) != len(dst.all_columns):
        note = f"compared the {len(columns)} columns both sides have"
    types = {c.name: c.type for c in src.columns}
    pk = tuple(src.primary_key) if src.primary_key and all(c in dst_cols for c in src.primary_key) else ()
    int_key = len(pk) == 1 and src.int_key == pk[0] and types[pk[0]] in _INT_TYPES
    return TableSpec(src.schema, src.name, src.qualified, columns, pk, tuple(types[c] for c in pk), int_key, note,
                     types)


@dataclass
class RowResult:
    missing: int = 0
    extra: int = 0
    changed: int = 0
    rows: list[common_pb2.RowDiff] = field(default_factory=list)
    changed_keys: list[tuple[str, ...]] = field(default_factory=list)

    def add(self, kind: str, key: str, detail: str, cap: int) -> None:
        if len(self.rows) < cap:
            self.rows.append(common_pb2.RowDiff(kind=kind, key=key, detail=detail))


def _buckets_for(n: int) -> int:
    return max(MIN_BUCKETS, min(MAX_BUCKETS, math.ceil(2 * n / LEAF_ROWS)))


def _sum_rows(result) -> dict[int, tuple[int, int]]:
    return {int(b): (int(c), int(s)) for b, c, s in result}


def minmax_query(t: TableSpec, rng: Range = Range()) -> sql.Composed:
    return sql.SQL("SELECT min({k}), max({k}) FROM ONLY {tbl} AS t WHERE {c}").format(
        k=t.key_expr(), tbl=t.ident, c=rng.condition(t))


@dataclass(frozen=True)
class IntPlan:
    """Buckets of an integer key: [lo + i*width, lo + (i+1)*width) for i in 0.., up to hi (exclusive)."""
    lo: int
    hi: int
    width: int

    @classmethod
    def of(cls, a: tuple, b: tuple, n: int | None = None) -> "IntPlan | None":
        """From (min, max) of each side; n rows expected (default: as many as the key span)."""
        mins = [x[0] for x in (a, b) if x[0] is not None]
        if not mins:
            return None
        lo, hi = min(mins), max(x[1] for x in (a, b) if x[1] is not None) + 1
        n = hi - lo if n is None else n
        return cls(lo, hi, max(1, math.ceil((hi - lo) / _buckets_for(n))))

    def query(self, t: TableSpec) -> sql.Composed:
        """One GROUP BY query: (bucket, count, checksum) of the rows in [lo, hi)."""
        k, lo, w = t.key_expr(), sql.Literal(self.lo), sql.Literal(self.width)
        if self.hi - self.lo < 2 ** 62:
            bucket = sql.SQL("({k}::bigint - {lo}) / {w}").format(k=k, lo=lo, w=w)
        else:  # a span that would overflow bigint arithmetic
            bucket = sql.SQL("div({k}::numeric - {lo}, {w})::bigint").format(k=k, lo=lo, w=w)
        return sql.SQL("SELECT {b} AS b, count(*), coalesce(sum({h}), 0) FROM ONLY {tbl} AS t "
                       "WHERE {c} GROUP BY 1").format(b=bucket, h=t.row_hash(), tbl=t.ident,
                                                     c=Range(self.lo, self.hi).condition(t))

    def parts(self, s: dict, d: dict) -> list:
        lo, w = self.lo, self.width
        return [(Range(lo + i * w, min(lo + (i + 1) * w, self.hi)), s.get(i, (0, 0)), d.get(i, (0, 0)))
                for i in sorted(set(s) | set(d))]


class KeyedDiff:
    """Narrows a differing table with a primary key down to its missing, extra and changed rows."""

    def __init__(self, pair: Pair, t: TableSpec, cap: int):
        self.pair, self.t, self.cap = pair, t, cap
        self.res = RowResult()
        self.leaves: list[Range] = []

    def run(self, src_rows: int, dst_rows: int, first_level: list | None = None) -> RowResult:
        """first_level: the top-level buckets when the checksum pass already computed them."""
        work = [(Range(), src_rows, dst_rows, 0)]
        while work:
            nxt = []
            for rng, sc, dc, depth in work:
                parts = first_level if depth == 0 and first_level is not None else self.split(rng, sc, dc)
                if parts is None:
                    self.leaves.append(rng)
                    continue
                for sub, s, d in parts:
                    if s == d:
                        continue  # equal count and sum
                    (scount, _), (dcount, _) = s, d
                    if dcount == 0:
                        self.one_sided(sub, scount, "missing")
                    elif scount == 0:
                        self.one_sided(sub, dcount, "extra")
                    elif max(scount, dcount) <= LEAF_ROWS or depth >= MAX_DEPTH or sub == rng:
                        self.leaves.append(sub)
                    else:
                        nxt.append((sub, scount, dcount, depth + 1))
            work = nxt
        for i in range(0, len(self.leaves), RANGES_PER_FETCH):
            self.fetch_leaves(self.leaves[i:i + RANGES_PER_FETCH])
        self.describe_changed()
        return self.res

    # -- one level of buckets -------------------------------------------------------------
    def split(self, rng: Range, sc: int, dc: int):
        """[(sub range, (src count, src sum), (dst count, dst sum))] for the buckets of `rng`;
        None when it cannot be split (then it is fetched whole)."""
        if self.t.int_key:
            return self.split_int(rng, max(sc, dc))
        return self.split_bounds(rng, max(sc, dc), sc, dc)


    def split_int(self, rng: Range, n: int):
        q = minmax_query(self.t, rng)
        a, b = self.pair.both(lambda side: side.rows(q)[0])
        plan = IntPlan.of(a, b, n)
        if plan is None:
            return []
        q = plan.query(self.t)
        s, d = (_sum_rows(r) for r in self.pair.both(lambda side: side.rows(q)))
        return plan.parts(s, d)

    def split_bounds(self, rng: Range, n: int, sc: int, dc: int):
        """Boundaries: every step-th key of the fuller side in key order; buckets by width_bucket."""
        t = self.t
        cond = rng.condition(t)
        step = max(1, math.ceil(n / _buckets_for(n)))
        names = [sql.Identifier(f"k{i}") for i in range(len(t.pk))]
        inner = sql.SQL(", ").join(sql.SQL("t.{}::text AS {}").format(sql.Identifier(c), nm)
                                   for c, nm in zip(t.pk, names))
        order = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in t.pk)
        q = sql.SQL("SELECT {outer} FROM (SELECT {inner}, row_number() OVER (ORDER BY {order}) AS rn "
                    "FROM ONLY {tbl} AS t WHERE {c}) s WHERE rn % {step} = 0").format(
            outer=sql.SQL(", ").join(names), inner=inner, order=order, tbl=t.ident, c=cond,
            step=sql.Literal(step))
        side = self.pair.src if sc >= dc else self.pair.dst
        bounds = [tuple(r) for r in side.rows(q)]
        if not bounds:
            return None
        arr = sql.SQL("ARRAY[{}]").format(sql.SQL(", ").join(t.key_value(b) for b in bounds))
        q = sql.SQL("SELECT width_bucket({k}, {arr}) AS b, count(*), coalesce(sum({h}), 0) "
                    "FROM ONLY {tbl} AS t WHERE {c} GROUP BY 1").format(
            k=t.key_expr(), arr=arr, h=t.row_hash(), tbl=t.ident, c=cond)
        s, d = (_sum_rows(r) for r in self.pair.both(lambda sd: sd.rows(q)))
        out = []
        for i in sorted(set(s) | set(d)):
            sub = Range(bounds[i - 1] if i > 0 else rng.lo, bounds[i] if i < len(bounds) else rng.hi)
            out.append((sub, s.get(i, (0, 0)), d.get(i, (0, 0))))
        return out

    # -- rows -------------------------------------------------------------------------------
    def one_sided(self, rng: Range, count: int, kind: str) -> None:
        """A bucket only one side has rows in: counted as a whole, keys fetched only to fill the report."""
        t = self.t
        if kind == "missing":
            self.res.missing += count
        else:
            self.res.extra += count
        room = self.cap - len(self.res.rows)
        if room <= 0:
            return
        order = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in t.pk)
        q = sql.SQL("SELECT {kt} FROM ONLY {tbl} AS t WHERE {c} ORDER BY {o} LIMIT {n}").format(
            kt=t.key_text(), tbl=t.ident, c=rng.condition(t), o=order, n=sql.Literal(room))
        side = self.pair.src if kind == "missing" else self.pair.dst
        detail = "in source, not in target" if kind == "missing" else "in target, not in source"
        for r in side.rows(q):
            self.res.add(kind, t.key_json(tuple(r)), detail, self.cap)

    def fetch_leaves(self, ranges: list[Range]) -> None:
        t = self.t
        cond = sql.SQL(" OR ").join(sql.SQL("({})").format(r.condition(t)) for r in ranges)
        order = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in t.pk)
        q = sql.SQL("SELECT {kt}, md5({row}) FROM ONLY {tbl} AS t WHERE {c} ORDER BY {o}").format(
            kt=t.key_text(), row=t.row_text(), tbl=t.ident, c=cond, o=order)
        a, b = self.pair.both(lambda side: side.rows(q))
        nk = len(t.pk)
        src = {tuple(r[:nk]): r[nk] for r in a}
        dst = {tuple(r[:nk]): r[nk] for r in b}
        for key, digest in src.items():
            if key not in dst:
                self.res.missing += 1
                self.res.add("missing", t.key_json(key), "in source, not in target", self.cap)
            elif dst[key] != digest:
                self.res.changed += 1
                if len(self.res.rows) < self.cap:
                    self.res.changed_keys.append(key)
                self.res.add("changed", t.key_json(key), "row differs", self.cap)
        for key in dst:
            if key not in src:
                self.res.extra += 1
                self.res.add("extra", t.key_json(key), "in target, not in source", self.cap)

    def describe_changed(self) -> None:
        """Names the columns that differ in the reported changed rows."""
        t = self.t
        keys = self.res.changed_keys
        if not keys:
            return
        q = sql.SQL("SELECT {kt}, row_to_json(t)::text FROM ONLY {tbl} AS t WHERE {k} IN ({vals})").format(
            kt=t.key_text(), tbl=t.ident, k=t.key_expr(), vals=sql.SQL(", ").join(t.key_value(k) for k in keys))
        a, b = self.pair.both(lambda side: side.rows(q))
        nk = len(t.pk)
        src = {tuple(r[:nk]): _loads(r[nk]) for r in a}
        dst = {tuple(r[:nk]): _loads(r[nk]) for r in b}
        by_key = {d.key: d for d in self.res.rows if d.kind == "changed"}
        for key in keys:
            if key not in src or key not in dst:
                continue
            cols = [c for c in t.columns if src[key].get(c) != dst[key].get(c)]
            shown = ", ".join(f"{c} (source {_value(src[key].get(c))}, target {_value(dst[key].get(c))})"
                              for c in cols[:5])
            more = f" and {len(cols) - 5} more" if len(cols) > 5 else ""
            d = by_key.get(t.key_json(key))
            if d is not None and cols:
                d.detail = f"changed columns: {shown}{more}"


class _Number(str):
    """A JSON number kept as PostgreSQL wrote it (625.00 stays 625.00)."""


def _loads(text: str) -> dict:
    return json.loads(text, parse_float=_Number, parse_int=_Number)


def _value(v) -> str:
    return shorten(str(v) if isinstance(v, _Number) else json.dumps(v, ensure_ascii=False), 60)


def multiset_diff(pair: Pair, t: TableSpec, sc: int, dc: int, cap: int) -> RowResult:
    """A table without a primary key: rows compared as a multiset of md5(row text)."""
    res = RowResult()
    h = t.row_hash()
    n = max(sc, dc)
    where: sql.Composable = sql.SQL("TRUE")
    if n > 5 * LEAF_ROWS:
        mask = (1 << max(4, math.ceil(math.log2(_buckets_for(n))))) - 1
        bucket = sql.SQL("({} & {})").format(h, sql.Literal(mask))
        q = sql.SQL("SELECT {b} AS b, count(*), coalesce(sum({h}), 0) FROM ONLY {tbl} AS t GROUP BY 1").format(
            b=bucket, h=h, tbl=t.ident)
        s, d = (_sum_rows(r) for r in pair.both(lambda side: side.rows(q)))
        differ = [b for b in set(s) | set(d) if s.get(b) != d.get(b)]
        if not differ:
            return res
        where = sql.SQL("{} = ANY (ARRAY[{}]::bigint[])").format(
            bucket, sql.SQL(", ").join(sql.Literal(b) for b in sorted(differ)))
    q = sql.SQL("SELECT md5({row}), count(*), min(row_to_json(t)::text) FROM ONLY {tbl} AS t "
                "WHERE {w} GROUP BY 1 ORDER BY 3").format(row=t.row_text(), tbl=t.ident, w=where)
    a, b = pair.both(lambda side: side.rows(q))
    src = {r[0]: (int(r[1]), r[2]) for r in a}
    dst = {r[0]: (int(r[1]), r[2]) for r in b}
    for digest, (count, text) in src.items():
        other = dst.get(digest, (0, None))[0]
        if count > other:
            res.missing += count - other
            res.add("missing", shorten(text, 1000),
                    f"{count - other} of {count} such source rows not in target", cap)
    for digest, (count, text) in dst.items():
        other = src.get(digest, (0, None))[0]
        if count > other:
            res.extra += count - other
            res.add("extra", shorten(text, 1000), f"{count - other} of {count} such target rows not in source", cap)
    return res


# ---------------------------------------------------------------------------------------------
# The whole database.

def _check(req: agents_pb2.VerifyRequest) -> None:
    for role in ("source", "target"):
        if not req.HasField(role):
            raise InvalidInput(f"{role} connection is missing")
        check_connection(getattr(req, role), role)
    if req.max_rows_reported < 0:
        raise InvalidInput("max_rows_reported must be 0 (default 100) or more")


def compare_table(pair: Pair, t: TableSpec, a: Checksum, b: Checksum, cap: int,
                  first_level: list | None = None) -> common_pb2.TableDiff:
    out = common_pb2.TableDiff(table=t.qualified, source_rows=a.rows, target_rows=b.rows,
                               source_checksum=a.hex, target_checksum=b.hex, equal=a == b, note=t.note)
    if a == b:
        return out
    if t.pk:
        ks = KeyedDiff(pair, t, cap)
        res = ks.run(a.rows, b.rows, first_level)
    else:
        res = multiset_diff(pair, t, a.rows, b.rows, cap)
        out.note = "; ".join(x for x in (out.note, "no primary key: multiset comparison") if x)
    out.rows.extend(res.rows)
    out.missing_total, out.extra_total, out.changed_total = res.missing, res.extra, res.changed
    if not (res.missing or res.extra or res.changed):
        out.note = "; ".join(x for x in (out.note, "checksums differ but no differing row was found") if x)
    return out


def _plural(n: int, word: str) -> str:
    if word.endswith("privileges"):  # a kind named in the plural ("5 privileges changed")
        return f"{n:,} {word[:-1] if n == 1 else word}"
    if n == 1:
        return f"1 {word}"
    return f"{n:,} " + (word[:-1] + "ies" if word.endswith("y") else word + ("es" if word.endswith("s") else "s"))


def summarize(objects: list[common_pb2.ObjectDiff], tables: list[common_pb2.TableDiff],
              objects_compared: int, notes: list[common_pb2.ObjectDiff] = ()) -> str:
    noted = ""
    if notes:
        noted = " Notes: " + "; ".join(f"{n.kind.replace('_', ' ')} {n.name}: {n.detail}" for n in notes[:5]) + (
            f"; and {len(notes) - 5} more" if len(notes) > 5 else "") + "."
    if not objects and all(t.equal for t in tables):
        rows = sum(t.source_rows for t in tables)
        return (f"Databases are equal: {_plural(len(tables), 'table')}, {_plural(rows, 'row')}, "
                f"{_plural(objects_compared, 'object')} compared.{noted}")
    parts = []
    differing = [t for t in tables if not t.equal]
    if differing:
        shown = []
        for t in differing[:5]:
            bits = [f"{n:,} {w}" for n, w in ((t.missing_total, "missing"), (t.extra_total, "extra"),
                                               (t.changed_total, "changed")) if n]
            shown.append(f"{t.table}: {', '.join(bits) or 'checksum differs'}")
        more = f", and {len(differing) - 5} more" if len(differing) > 5 else ""
        parts.append(f"{len(differing)} {'table differs' if len(differing) == 1 else 'tables differ'} "
                     f"({'; '.join(shown)}{more})")
    counts: dict[tuple[str, str], int] = {}
    for o in objects:
        counts[(o.kind, o.difference)] = counts.get((o.kind, o.difference), 0) + 1
    words = {"missing_in_target": "missing in target", "extra_in_target": "extra in target", "changed": "changed",
             "cannot_render": "cannot be created on the target"}
    for (kind, diff), n in sorted(counts.items()):
        parts.append(f"{_plural(n, kind.replace('_', ' '))} {words.get(diff, diff)}")
    return "Differences: " + ", ".join(parts) + "." + noted


def verify(req: agents_pb2.VerifyRequest) -> common_pb2.VerifyReport:
    """Compares source and target: schema objects, then every table's rows (see the module doc)."""
    t0 = time.monotonic()
    _check(req)
    cap = req.max_rows_reported or DEFAULT_MAX_ROWS
    include, exclude = list(req.options.include), list(req.options.exclude)
    pair = _open_pair(req)
    try:
        # On one major version both sides' definitions are first summed, not kept (objects.Summed):
        # only sides that differ are read again, whole, to name the differences.
        same = pair.src.major == pair.dst.major
        read = objects.sum_definitions if same else objects.read_definitions

        def catalog(side: Side):
            defs = read(side, include, exclude, req.options)
            values = objects.read_values(side, include, exclude, req.options)
            with side.guard():
                return (defs, values), table_names(side.conn, include, exclude)

        (sobj, snames), (dobj, dnames) = pair.both(catalog)
        if same and sobj[0] != dobj[0]:
            sdefs, ddefs = pair.both(lambda side: objects.read_definitions(side, include, exclude, req.options))
            sobj, dobj = (sdefs, sobj[1]), (ddefs, dobj[1])
        diffs, notes, method = compare_schemas(req, pair, sobj, dobj, include, exclude)
        diffs, advanced = sequences_moved_on(req, diffs, dobj[1])
        notes += advanced
        both = sorted(set(snames) & set(dnames))
        proven, drift = reused_proofs(req, pair, [f"{quote_ident(a)}.{quote_ident(b)}" for a, b in both])
        notes += drift
        # The tables the migration did not prove, or that were written to since: read whole, compared below.
        rest = {(a, b) for a, b in both if f"{quote_ident(a)}.{quote_ident(b)}" not in proven}
        stabs, dtabs = pair.both(lambda side: _tables(side, include, exclude, rest)) if rest else ([], [])
        by_name = {(x.schema, x.name): x for x in dtabs}
        specs = sorted((_spec(x, by_name[(x.schema, x.name)]) for x in stabs if (x.schema, x.name) in by_name),
                       key=lambda s: (s.schema, s.name))

        # Integer keys: the checksum pass computes the first level of key buckets at the same cost,
        # so a differing table is already narrowed when the pass ends. Both sides agree on the
        # buckets from min/max (index lookups) first.
        keyed = [s for s in specs if s.int_key]
        smm, dmm = pair.both(lambda side: [side.rows(minmax_query(s))[0] for s in keyed])
        plans = {id(s): IntPlan.of(a, b) for s, a, b in zip(keyed, smm, dmm)}

        def checksums(side: Side) -> list[tuple[Checksum, dict | None]]:
            out = []
            with side.guard():
                for s in specs:
                    plan = plans.get(id(s))
                    if plan is None:
                        out.append((table_checksum(side.conn, s.schema, s.name, s.typed), None))
                    else:
                        buckets = _sum_rows(side.rows(plan.query(s)))
                        out.append((Checksum(sum(c for c, _ in buckets.values()),
                                             sum(x for _, x in buckets.values())), buckets))
            return out

        src_sums, dst_sums = pair.both(checksums)
        tables = []
        for s, (a, abk), (b, bbk) in zip(specs, src_sums, dst_sums):
            plan = plans.get(id(s))
            first = plan.parts(abk, bbk) if plan is not None and a != b else None
            tables.append(compare_table(pair, s, a, b, cap, first))
    finally:
        pair.pool.shutdown(wait=True)
        pair.src.close()
        pair.dst.close()
    tables = sorted(tables + list(proven.values()), key=lambda t: t.table)
    report = common_pb2.VerifyReport(equal=not diffs and all(t.equal for t in tables), method=method)
    report.objects.extend(diffs)
    report.notes.extend(notes)
    report.tables.extend(tables)
    defs = sobj[0].rows if isinstance(sobj[0], objects.Summed) else len(set(sobj[0]) | set(dobj[0]))
    compared = defs + len(set(sobj[1]) | set(dobj[1]))
    report.summary = summarize(diffs, tables, compared, notes)
    report.seconds = time.monotonic() - t0
    return report
