"""Schema from pg_dump: pre-data applied whole; post-data split into statements, per table where it can."""
from __future__ import annotations

import re
from pathlib import Path
from dataclasses import dataclass, field

from services.common.pg import catalog_search_path
from services.common.pgdump import blocks, preamble_settings, session_set_lines, session_sets

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_QNAME = rf"{_IDENT}\.{_IDENT}"
_ON_TABLE = re.compile(rf"\bON\s+(?:ONLY\s+)?(?P<t>{_QNAME})\s+USING\b", re.S)
_ALTER_TABLE = re.compile(rf"^ALTER\s+TABLE\s+(?:ONLY\s+)?(?P<t>{_QNAME})\s", re.S)

# Statements that make a table fast to use and can be built as soon as its data is in.
EARLY_TYPES = {"INDEX", "CONSTRAINT"}


@dataclass
class Statement:
    type: str
    name: str
    sql: str
    table: str | None = None   # schema.table as pg_dump quotes it, for per-table statements
    attach: bool = False       # ADD CONSTRAINT ... USING INDEX: after the table's index builds and check
    # pg_dump's SETs in force where the statement stands in the dump (default_tablespace: the index of
    # `CREATE INDEX` or of `ADD PRIMARY KEY` goes there), run before it on whichever session runs it.
    settings: str = ""

    @property
    def beside_reads(self) -> bool:
        """An index build (a SHARE lock): runs while the table is read. Any ALTER TABLE takes an
        exclusive lock and waits for the table's check, so it runs after it."""
        return self.type == "INDEX"


@dataclass
class PostData:
    per_table: dict[str, list[Statement]] = field(default_factory=dict)  # indexes, PK/unique, per table
    rest: list[Statement] = field(default_factory=list)                   # FKs, triggers, policies, ... in dump order
    preamble: str = ""


def _unquote(ident: str) -> str:
    return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident


def split_qualified(qname: str) -> tuple[str, str]:
    m = re.fullmatch(rf"({_IDENT})\.({_IDENT})", qname)
    if not m:
        raise ValueError(qname)
    return _unquote(m.group(1)), _unquote(m.group(2))


def parse_post_data(script: str) -> PostData:
    preamble, items = blocks(script)
    post = PostData(preamble=preamble_settings(preamble))
    # Every statement carries the whole state (the preamble's SETs as pg_dump changes them): a
    # worker's session may have run another statement's SETs before.
    current = {line.split()[1]: line for line in session_set_lines(preamble)}
    for typ, name, body in items:
        sets, body = session_sets(body)
        for line in sets:
            current[line.split()[1]] = line
        if not body:
            continue
        table = None
        if typ == "INDEX":
            m = _ON_TABLE.search(body)
            table = m.group("t") if m else None
            if table and re.search(r"\bON\s+ONLY\b", body):
                table = None  # an index on a partitioned parent: built after the partitions, then attached
        elif typ == "CONSTRAINT":
            m = _ALTER_TABLE.search(body)
            table = m.group("t") if m else None
        stmt = Statement(typ, name, body, table, settings="\n".join(current.values()))
        if typ in EARLY_TYPES and table:
            post.per_table.setdefault(table, []).append(stmt)
        else:
            post.rest.append(stmt)
    return post


_UNIQUE = re.compile(rf"^ALTER\s+TABLE\s+(?:ONLY\s+)?(?P<t>{_QNAME})\s+ADD\s+CONSTRAINT\s+(?P<c>{_IDENT})\s+"
                     r"(?:PRIMARY\s+KEY|UNIQUE)\b", re.S)


_FOREIGN_KEY = re.compile(rf"^ALTER\s+TABLE\s+ONLY\s+(?P<t>{_QNAME})\s+ADD\s+CONSTRAINT\s+(?P<c>{_IDENT})\s+FOREIGN\s+KEY\s*"
                          rf"\(\s*{_IDENT}(?:\s*,\s*{_IDENT})*\s*\)\s*REFERENCES\s+(?P<r>{_QNAME})", re.S)


def foreign_key_tables(st: Statement) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """(referencing, referenced) tables of a foreign key between plain tables (ALTER TABLE ONLY);
    None for anything else (a partitioned table's key, which pg_dump writes without ONLY)."""
    m = _FOREIGN_KEY.match(st.sql) if st.type == "FK CONSTRAINT" else None
    return (split_qualified(m.group("t")), split_qualified(m.group("r"))) if m else None


def split_validation(st: Statement) -> list[Statement]:
    """A foreign key between plain tables as two statements: ADD CONSTRAINT ... NOT VALID (a moment's
    lock, no scan) and VALIDATE CONSTRAINT, which scans under locks that let other keys to the same
    table be validated at once (SHARE UPDATE EXCLUSIVE on the referencing table, ROW SHARE on the
    referenced one); ADD CONSTRAINT alone holds SHARE ROW EXCLUSIVE on both for the whole scan. The
    end is the same validated key. A key the source holds NOT VALID stays one statement, as it is."""
    m = _FOREIGN_KEY.match(st.sql) if st.type == "FK CONSTRAINT" else None
    body = st.sql.strip()
    if not m or not body.endswith(";") or re.search(r"\bNOT\s+VALID\s*;$", body):
        return [st]
    return [Statement(st.type, st.name, body[:-1].rstrip() + " NOT VALID;", st.table, settings=st.settings),
            Statement(st.type, st.name, f"ALTER TABLE ONLY {m.group('t')} VALIDATE CONSTRAINT {m.group('c')};",
                      st.table, settings=st.settings)]


_UNIQUE_SQL = (Path(__file__).parent / "sql" / "unique_constraints.sql").read_text()


def unique_constraint_indexes(conn) -> dict[tuple[str, str, str], tuple[str, bool, bool, bool]]:
    """unique_via_index's `indexes`, read on `conn` (the source, inside the snapshot)."""
    with catalog_search_path(conn):
        rows = conn.execute(_UNIQUE_SQL).fetchall()
    return {(schema, table, name): (indexdef, primary, deferrable, deferred)
            for schema, table, name, indexdef, primary, deferrable, deferred in rows}


def unique_via_index(post: PostData, indexes: dict[tuple[str, str, str], tuple[str, bool, bool, bool]],
                     large: set[tuple[str, str]] | None = None) -> int:
    """Splits each PRIMARY KEY / UNIQUE constraint found in `indexes` into CREATE UNIQUE INDEX (an
    index build like any other: a SHARE lock, so it runs beside the table's other builds and its
    check) and ADD CONSTRAINT ... USING INDEX (attach=True: a moment's exclusive lock once the
    builds are done). pg_dump's single ALTER TABLE builds the index under an exclusive lock that
    stops every other build and read of the table meanwhile (pgcopydb splits them the same way).

    `indexes`: (schema, table, constraint) -> (CREATE UNIQUE INDEX ..., primary key?, deferrable?,
    initially deferred?), read from the source (sql/unique_constraints.sql). Only the keys of the
    tables in `large` (all when None): a small table's key builds in a moment, and one statement
    costs less than two. Returns how many it split.
    """
    n = 0
    for key, statements in post.per_table.items():
        out: list[Statement] = []
        for st in statements:
            m = _UNIQUE.match(st.sql) if st.type == "CONSTRAINT" else None
            found = None
            if m:
                schema, table = split_qualified(m.group("t"))
                if large is None or (schema, table) in large:
                    found = indexes.get((schema, table, _unquote(m.group("c"))))
            if found is None:
                out.append(st)
                continue
            indexdef, primary, deferrable, deferred = found
            kind = "PRIMARY KEY" if primary else "UNIQUE"
            timing = " DEFERRABLE INITIALLY DEFERRED" if deferred else " DEFERRABLE" if deferrable else ""
            # The index where pg_dump's default_tablespace puts the constraint's (pg_get_indexdef
            # leaves its tablespace out); the constraint then keeps it.
            out.append(Statement("INDEX", st.name, indexdef + ";", st.table, settings=st.settings))
            out.append(Statement("CONSTRAINT", st.name, f"ALTER TABLE ONLY {m.group('t')} ADD CONSTRAINT "
                                                        f"{m.group('c')} {kind} USING INDEX {m.group('c')}{timing};",
                                 st.table, attach=True, settings=st.settings))
            n += 1
        post.per_table[key] = out
    return n
