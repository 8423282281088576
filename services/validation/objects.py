"""Schema objects compared across two databases, also when their servers are of different major versions.

Objects are read with sql/objects.sql (definitions as the server prints them, owners, privileges,
policies, default privileges) and values with sql/sequences.sql and sql/large_objects.sql.

On one major version the source's and the target's definitions are compared directly. Across major
versions the newer server prints the same schema differently (NOT NULL constraints in pg_constraint
from 18 on, views without table qualification from 16 on, ...), so text from two versions is not
compared: the source's schema is rendered on the target server instead, with the same pg_dump and
options the migration uses, into a scratch database, and the target is compared with that rendering
on the same server. A second check makes sure the rendering itself carried everything the source has
(its objects, owners and privileges, which do not depend on how a version prints them). Values
(sequences, large objects, the database's own privileges) are compared directly, as they do not
depend on the version either. What an upgrade changes on purpose (an extension at the target's newer
default version) becomes a note, not a difference.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from psycopg import sql

from dbmigrate.v1 import common_pb2
from services.common import dbsettings, extconfig
from services.common.catalog import matches, quote_ident, version_stable
from services.common.checksum import Checksum, stream_hash

_SQL = Path(__file__).parent / "sql"

# Kinds whose name is relation.name inside a schema.
_OWNED = {"column", "index", "constraint", "derived_constraint", "not_null", "trigger", "policy"}
# Kinds whose name is written out whole by the query.
_NAMED = {"function", "extension", "owner", "privileges", "default_privileges"}
# Kinds a --no-owner / --no-privileges migration does not carry.
OWNER_KINDS = {"owner"}
PRIVILEGE_KINDS = {"privileges", "default_privileges"}
# Privileges added by a newer major version: a rendering on it grants them where the source's
# "ALL" did not have them (MAINTAIN is new in 17).
NEW_PRIVILEGES = {17: ("MAINTAIN",)}


def _sql(name: str) -> str:
    return (_SQL / name).read_text()


def _skip(kind: str, options) -> bool:
    return bool((options.no_owner and kind in OWNER_KINDS) or (options.no_privileges and kind in PRIVILEGE_KINDS))


_COLUMN_LISTS = ("column_order", "child_column_order")  # quote_ident's names, compared across versions


def _definitions(side, include, exclude, options) -> Iterator[tuple[str, str, str]]:
    """(kind, display name, definition) of every compared schema object of one side, as read."""
    for kind, schema, rel, name, definition in side.each(_sql("objects.sql")):
        if rel is not None and not matches(schema, rel, include, exclude):
            continue
        if _skip(kind, options):
            continue
        if kind in _OWNED:
            display = f"{quote_ident(schema)}.{quote_ident(rel)}.{quote_ident(name)}"
        elif kind in _NAMED:
            display = version_stable(name)  # written by the server (quote_ident, regprocedure)
        else:
            display = f"{quote_ident(schema)}.{quote_ident(name)}"
        if kind in _COLUMN_LISTS:
            definition = version_stable(definition or "")
        yield kind, display, definition or ""


def read_definitions(side, include, exclude, options) -> dict[tuple[str, str], str]:
    """{(kind, display name): definition} for every compared schema object of one side.

    A database of 2,000 tables has 18,000 such objects a side, nine kinds and few distinct
    definitions among its columns, owners and privileges: each distinct string is kept once."""
    out: dict[tuple[str, str], str] = {}
    once: dict[str, str] = {}
    for kind, display, definition in _definitions(side, include, exclude, options):
        out[(once.setdefault(kind, kind), display)] = once.setdefault(definition, definition)
    return out


@dataclass(frozen=True)
class Summed:
    """Every compared schema object of one side, summed without keeping any: how many rows, and the
    sum of each row's XXH3-128 (kind, name, definition) modulo 2^128, which does not depend on the
    order the server returns them in. Equal sums stand for equal objects (odds of 2^-128 against
    two different sets agreeing by chance); unequal ones send the caller to read_definitions."""
    rows: int
    sum: int


def sum_definitions(side, include, exclude, options) -> Summed:
    """read_definitions' objects as a Summed: one side of 20,000 tables (180,000 objects) held as a
    map took about 60 MB; two equal sides need none of it."""
    rows = total = 0
    for kind, display, definition in _definitions(side, include, exclude, options):
        h = stream_hash()
        for part in (kind, display, definition):
            h.update(part.encode())
            h.update(b"\0")
        total += h.intdigest()
        rows += 1
    return Summed(rows, total % (1 << 128))


def read_values(side, include, exclude, options) -> dict[tuple[str, str], str]:
    """Values that do not depend on the server's version: sequences' positions, large objects'
    content, owners and privileges, and the database's own privileges."""
    out: dict[tuple[str, str], str] = {}
    seqs = [(s, n) for s, n in side.rows(_sql("sequences.sql")) if matches(s, n, include, exclude)]
    for i in range(0, len(seqs), 500):
        parts = [sql.SQL("SELECT {}, {}, last_value, is_called FROM {}").format(
            sql.Literal(s), sql.Literal(n), sql.Identifier(s, n)) for s, n in seqs[i:i + 500]]
        for s, n, last_value, is_called in side.rows(sql.SQL(" UNION ALL ").join(parts)):
            out[("sequence_value", f"{quote_ident(s)}.{quote_ident(n)}")] = (
                f"last_value {last_value}" + ("" if is_called else " (is_called false)"))
    for schema, name, kind, _, condition in side.rows(extconfig.CONFIG_SQL):
        # What of extensions' configuration tables and sequences is the database's own (as pg_dump
        # carries it): the rows the extension's condition selects, a sequence's position.
        ident, shown = sql.Identifier(schema, name), f"{quote_ident(schema)}.{quote_ident(name)}"
        if kind == "S":
            for last_value, is_called in side.rows(sql.SQL("SELECT last_value, is_called FROM {}").format(ident)):
                out[("sequence_value", shown)] = f"last_value {last_value}" + ("" if is_called else " (is_called false)")
            continue
        cols = [c for (c,) in side.rows(extconfig.COLUMNS_SQL, (shown,))]
        for count, total in side.rows(extconfig.checksum_sql(ident, cols, extconfig.condition(condition))):
            out[("extension_data", shown)] = Checksum(int(count), int(total)).hex  # rows:checksum
    for oid, digest, owner, acl in side.rows(_sql("large_objects.sql")):
        out[("large_object", str(oid))] = f"md5 {digest}"
        if not options.no_owner:
            out[("owner", f"large object {oid}")] = owner
        if not options.no_privileges:
            out[("privileges", f"large object {oid}")] = acl
    if not options.no_privileges:
        for (acl,) in side.rows(_sql("database.sql")):
            out[("privileges", "database")] = acl
    for (comment,) in side.rows(dbsettings.COMMENT_SQL):  # COMMENT ON DATABASE, carried as pg_dump --create does
        if comment is not None:
            out[("database_comment", "database")] = comment
    for role, item in side.rows(dbsettings.SETTINGS_SQL):  # ALTER DATABASE ... SET and the like
        name, _, value = item.partition("=")
        out[("database_setting", dbsettings.shown(role, name))] = value
    return out


def shorten(text: str, n: int = 200) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _detail(kind: str, a: str, b: str) -> str:
    if kind == "function":
        return "function body differs"
    if kind == "large_object":  # "md5 <content>[ comment <md5 of the comment>]"
        return "comment differs" if a.partition(" comment ")[0] == b.partition(" comment ")[0] else "content differs"
    if kind in ("privileges", "default_privileges"):
        sa, sb = set(a.split(", ")), set(b.split(", "))
        parts = [f"lost: {', '.join(sorted(sa - sb))}" if sa - sb else "",
                 f"widened: {', '.join(sorted(sb - sa))}" if sb - sa else ""]
        return "; ".join(p for p in parts if p)
    return f"source: {shorten(a)}; target: {shorten(b)}"


# "table public.t" (the name of an owner or privileges row) -> the kind of the object it belongs to.
_BELONGS = {"table": "table", "view": "view", "materialized view": "materialized_view", "sequence": "sequence",
            "schema": "schema", "function": "function", "procedure": "function", "large object": "large_object",
            "column": "column"}


def _object_of(name: str) -> tuple[str, str] | None:
    for prefix, kind in _BELONGS.items():
        if name.startswith(prefix + " "):
            return kind, name[len(prefix) + 1:]
    return None


def _one_sided(diffs: list[common_pb2.ObjectDiff]) -> list[common_pb2.ObjectDiff]:
    """Without the owner, privileges and column order rows of objects that are missing or extra as a whole."""
    gone = {(d.kind, d.name) for d in diffs if d.difference in ("missing_in_target", "extra_in_target")}
    return [d for d in diffs if not (d.difference != "changed" and (
        (d.kind in ("owner", "privileges") and _object_of(d.name) in gone)
        or (d.kind in ("column_order", "child_column_order") and ("table", d.name) in gone)))]


def digest(defs: dict[tuple[str, str], str]) -> str:
    """One digest of a {(kind, name): definition} map (XXH3-128 over its sorted entries): two maps
    with equal digests are equal, with odds of 2^-128 against."""
    h = stream_hash()
    for (kind, name), definition in sorted(defs.items()):
        for part in (kind, name, definition):
            h.update(part.encode())
            h.update(b"\0")
    return h.hexdigest()


def compare(src: dict, dst: dict) -> tuple[list[common_pb2.ObjectDiff], list[common_pb2.ObjectDiff]]:
    """(differences, notes) between two {(kind, name): definition} maps. An extension at another
    version in the same schema is a note: CREATE EXTENSION installs the target's default version."""
    out, notes = [], []
    for key in sorted(set(src) | set(dst)):
        kind, name = key
        if key not in dst:
            out.append(common_pb2.ObjectDiff(kind=kind, name=name, difference="missing_in_target",
                                             detail=shorten(src[key])))
        elif key not in src:
            if kind in ("database_setting", "database_comment"):  # the target database's own, kept (its operator's)
                notes.append(common_pb2.ObjectDiff(kind=kind, name=name, difference="target_only",
                                                   detail=f"set on the target database only: {shorten(dst[key])}"))
                continue
            out.append(common_pb2.ObjectDiff(kind=kind, name=name, difference="extra_in_target",
                                             detail=shorten(dst[key])))
        elif src[key] != dst[key]:
            a, b = src[key], dst[key]
            if kind == "extension" and a.partition(" in schema ")[2] == b.partition(" in schema ")[2]:
                notes.append(common_pb2.ObjectDiff(kind=kind, name=name, difference="upgraded",
                                                   detail=f"{a.partition(' in ')[0]} in the source, "
                                                          f"{b.partition(' in ')[0]} on the target (its default)"))
                continue
            if kind == "child_column_order" and sorted(a.split(", ")) == sorted(b.split(", ")):
                # pg_dump recreates an inheritance child with its parents' columns first: the sample
                # test migration names such a table before approval (COLUMN_ORDER_CHANGES).
                notes.append(common_pb2.ObjectDiff(kind=kind, name=name, difference="reordered",
                                                   detail=f"columns in the source: {a}; on the target: {b}"))
                continue
            if kind == "sequence_value":  # a sequence's position: reported as the sequence changed
                out.append(common_pb2.ObjectDiff(kind="sequence", name=name, difference="changed",
                                                 detail=f"value: source {a}, target {b}"))
                continue
            out.append(common_pb2.ObjectDiff(kind=kind, name=name, difference="changed", detail=_detail(kind, a, b)))
    return _one_sided(out), notes


# Kinds whose definition text depends on the server's version (compared on the same server only);
# of these the carried check compares that the object exists. NOT NULL constraints are catalog rows
# only from 18 on (a column's not-null is in its own definition).
_PRINTED = {"column", "index", "constraint", "trigger", "view", "materialized_view", "sequence", "function"}


def _portable(kind: str, text: str, source_major: int) -> str:
    if kind in ("privileges", "default_privileges"):
        newer = {p for major, ps in NEW_PRIVILEGES.items() if source_major < major for p in ps}
        entries = [e for e in text.split(", ") if e.split(":", 1)[-1].rstrip("*") not in newer]
        return ", ".join(entries)
    if kind == "policy":
        return text.split(" using (")[0]  # command and roles; the expressions are printed by each version
    if kind == "extension":
        return text.partition(" in schema ")[2]
    return text


def carried(source: dict, rendered: dict, target: dict, source_major: int) -> list[common_pb2.ObjectDiff]:
    """What the rendering of the source's schema lost or changed, in terms that do not depend on the
    version: every object is there, with its owner, privileges and policy roles. Something the
    rendering lost is lost on the target too (it was made by the same dump), unless the target has it."""
    out = []
    for key in sorted(set(source) | set(rendered)):
        kind, name = key
        if kind in ("not_null", "derived_constraint", "child_column_order"):
            continue  # rows each version makes its own way for the same schema; a child's order is a note
        if key not in rendered:
            if key not in target:
                out.append(common_pb2.ObjectDiff(kind=kind, name=name, difference="missing_in_target",
                                                 detail="the source's schema dump does not carry it: "
                                                        + shorten(source[key])))
        elif key not in source:
            continue  # made by the newer server itself for the same schema; compared with the target
        elif kind not in _PRINTED and _portable(kind, source[key], source_major) != _portable(kind, rendered[key],
                                                                                               source_major):
            out.append(common_pb2.ObjectDiff(kind=kind, name=name, difference="changed",
                                             detail="carried differently by the schema dump: "
                                                    + _detail(kind, _portable(kind, source[key], source_major),
                                                              _portable(kind, rendered[key], source_major))))
    return out
