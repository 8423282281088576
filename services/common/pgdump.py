"""pg_dump and psql, the canonical tools, run with the password in the environment, never on the command line."""
from __future__ import annotations

import concurrent.futures
import os
import queue
import re
import subprocess

import psycopg
from psycopg import conninfo as _conninfo

from dbmigrate.v1 import common_pb2
from services.common.catalog import Table
from services.common.errors import DatabaseError
from services.common.logs import redact, register_secret
from services.common.pg import PINNED_SETTINGS, connect, describe, is_transient
from services.common.pgtools import ClientTools, psql

_TRANSIENT = ("could not connect", "connection refused", "server closed the connection", "terminating connection",
              "the database system is", "could not receive data", "no connection to the server",
              "too many clients", "canceling statement due to lock timeout", "deadlock detected",
              "could not serialize")


def tool_env(conn: common_pb2.Connection) -> dict[str, str]:
    """Environment for pg_dump/psql: password and pinned session settings, outside argv and logs."""
    register_secret(conn.password)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if conn.password:
        env["PGPASSWORD"] = conn.password
    env["PGOPTIONS"] = " ".join(f"-c {k.replace(' ', '')}={v.replace(' ', '')}" for k, v in PINNED_SETTINGS.items()
                                if k not in ("client_encoding",))
    env["PGCLIENTENCODING"] = "UTF8"
    env["PGCONNECT_TIMEOUT"] = conn.params.get("connect_timeout", "10")
    return env


def tool_dsn(conn: common_pb2.Connection, application_name: str = "dbmigrate") -> str:
    """A conninfo string without the password (that goes through PGPASSWORD)."""
    kwargs = {k: v for k, v in conn.params.items()}
    kwargs.setdefault("application_name", application_name)
    if conn.sslmode:
        kwargs["sslmode"] = conn.sslmode
    return _conninfo.make_conninfo(host=conn.host, port=conn.port, dbname=conn.dbname, user=conn.user, **kwargs)


def _fail(what: str, conn: common_pb2.Connection, stderr: str) -> DatabaseError:
    lines = [ln for ln in redact(stderr).strip().splitlines() if ln.strip()]
    detail = " | ".join(lines[-3:]) if lines else "no message"
    transient = any(s in stderr.lower() for s in _TRANSIENT)
    return DatabaseError(f"{what} on {describe(conn)} failed: {detail}", retryable=transient)


def dump_section(conn: common_pb2.Connection, section: str, *, tools: ClientTools, snapshot: str | None = None,
                 extra_args: list[str] | tuple[str, ...] = (), owners: bool = True, privileges: bool = True) -> str:
    """The schema script of one section (pre-data or post-data) from `tools`' pg_dump.

    Owners (ALTER ... OWNER TO) and privileges (GRANT/REVOKE, default privileges) are kept unless
    the migration chose --no-owner / --no-privileges; the roles must then exist on the target
    (discovery names the missing ones, --create-roles makes them).
    """
    if section not in ("pre-data", "post-data"):
        raise ValueError(section)
    args = [tools.pg_dump, "--section", section, "--no-subscriptions", "--no-publications",
            "-d", tool_dsn(conn, "dbmigrate-pg_dump")]
    if not owners:
        args.append("--no-owner")
    if not privileges:
        args.append("--no-acl")
    if snapshot:
        args += ["--snapshot", snapshot]
    args += list(extra_args)  # e.g. --exclude-table patterns from the migration's filters
    r = subprocess.run(args, capture_output=True, text=True, env=tool_env(conn))
    if r.returncode != 0:
        raise _fail(f"pg_dump --section={section}", conn, r.stderr)
    if "could not resolve dependency loop" in r.stderr:
        # pg_dump still writes the script, in an order that cannot be replayed.
        items = [i.strip() for i in re.findall(r"detail: ([A-Z ]+ \S+(?: [^(\n]*?)?)\s+\(ID", r.stderr)]
        raise DependencyLoop(
            f"pg_dump cannot order these objects of the source, which depend on each other in a loop: "
            f"{', '.join(items) or redact(r.stderr.strip())[:300]}", items=items)
    return r.stdout


class DependencyLoop(DatabaseError):
    """pg_dump found objects that depend on each other in a cycle (two functions whose defaults call
    each other, say): no order of statements creates them."""

    def __init__(self, message: str, items: list[str]):
        super().__init__(message)
        self.items = items


def dump_flags(options) -> dict[str, bool]:
    """dump_section's owners/privileges for a migration's options."""
    return {"owners": not options.no_owner, "privileges": not options.no_privileges}


def known_settings(conn: common_pb2.Connection) -> frozenset[str]:
    """Names of the run-time settings the server knows (lower case)."""
    with connect(conn, "target", autocommit=True, application_name="dbmigrate-psql") as c:
        return frozenset(r[0].lower() for r in c.execute("SELECT name FROM pg_settings"))


_SET_LINE = re.compile(r"^SET (?P<name>[A-Za-z_][A-Za-z0-9_.]*) (?:=|TO) [^\n]*;\n?", re.M)
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_ATTR_OPTIONS = re.compile(rf"^(?P<head>ALTER (?:FOREIGN )?TABLE ONLY {_IDENT}\.{_IDENT} ALTER COLUMN {_IDENT} SET )"
                           r"\((?P<opts>[^()\n]*)\);\n?", re.M)
# The attribute options heap columns have (PostgreSQL 9.0 to 18); a server with others (a patched
# build stamps its own) gets them dumped by a newer pg_dump, and no other server accepts them.
ATTRIBUTE_OPTIONS = {"n_distinct", "n_distinct_inherited"}


def fit_script(script: str, settings: frozenset[str]) -> str:
    """A pg_dump script made to replay on a server that knows `settings`: a SET of a parameter it
    lacks is left out (pg_dump 18 writes SET transaction_timeout, which PostgreSQL 16 and older
    refuse), and so are column options no server but the source's knows."""
    # Only pg_dump's own SETs, at the head of the script: a function body below may hold SET lines too.
    first = script.find("\n--\n-- Name: ")
    head, body = (script, "") if first < 0 else (script[:first], script[first:])
    script = _SET_LINE.sub(lambda m: m.group(0) if m.group("name").lower() in settings else "", head) + body

    def options(m: re.Match) -> str:
        kept = [o for o in m.group("opts").split(",") if o.split("=", 1)[0].strip().lower() in ATTRIBUTE_OPTIONS]
        return f"{m.group('head')}({', '.join(o.strip() for o in kept)});\n" if kept else ""

    return _ATTR_OPTIONS.sub(options, script)


_HEADER = re.compile(r"^--\n-- (?:Data for )?Name: (?P<name>.*?); Type: (?P<type>[A-Z ]+?); Schema: (?P<schema>[^;]*);"
                     r"[^\n]*\n--\n", re.M)
# psql meta-commands pg_dump writes (the 2025 dump/restore fix), which only psql understands.
_META = re.compile(r"^\\(?:un)?restrict \S+$")


# The settings pg_dump SETs once for the objects after it, each where it changes.
_SESSION_SET = re.compile(r"^SET (default_tablespace|default_table_access_method|default_with_oids) = [^\n]*;$", re.M)


def blocks(script: str) -> tuple[str, list[tuple[str, str, str]]]:
    """(preamble, [(type, name, sql), ...]) from a pg_dump plain script, in dump order.

    pg_dump writes the SET of default_tablespace or default_table_access_method that an object
    needs before that object's header comment, so after the previous object's statement: such SETs
    start the block of the object they precede (which is where a block run on a session of its own
    needs them)."""
    heads = list(_HEADER.finditer(script))
    preamble = script[: heads[0].start()] if heads else script
    out = []
    carried: list[str] = []
    for i, h in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(script)
        body = script[h.end(): end]
        lines = [ln for ln in body.splitlines() if not _META.match(ln)]
        ahead: list[str] = []  # the next object's SETs
        while lines and (not lines[-1].strip() or lines[-1].startswith("--") or _SESSION_SET.fullmatch(lines[-1])):
            line = lines.pop()  # blank lines, the script's closing comment, the next object's SETs
            if _SESSION_SET.fullmatch(line):
                ahead.insert(0, line)
        body = "\n".join(carried + lines).strip()
        carried = ahead
        if body:
            out.append((h.group("type"), h.group("name"), body))
    return preamble, out


def session_set_lines(text: str) -> list[str]:
    """Every SET of default_tablespace and the like in `text`, in order."""
    return [m.group(0) for m in _SESSION_SET.finditer(text)]


def session_sets(body: str) -> tuple[list[str], str]:
    """A block's leading SETs of default_tablespace and the like (see blocks), and the rest of it."""
    lines = body.splitlines()
    sets = []
    while lines and (_SESSION_SET.fullmatch(lines[0]) or not lines[0].strip()):
        line = lines.pop(0)
        if line.strip():
            sets.append(line)
    return sets, "\n".join(lines).strip()


def preamble_settings(preamble: str) -> str:
    """The SET lines pg_dump puts first (search_path, check_function_bodies, ...), without psql meta-commands."""
    return "\n".join(ln for ln in preamble.splitlines()
                     if ln.startswith(("SET ", "SELECT pg_catalog.set_config")))


# A pre-data script with more objects than this is applied by several sessions at once.
PARALLEL_OBJECTS = 200
SCHEMA_SESSIONS = 4


def durable(c: psycopg.Connection) -> None:
    """Waits until every transaction committed before this call (on any session, with
    synchronous_commit off) is on disk: a transaction with an xid commits synchronously, which
    flushes the WAL up to its commit record, and so every earlier commit record."""
    c.execute("SET synchronous_commit = on")
    with c.transaction():
        c.execute("SELECT txid_current()")


# What an object of a run says when it needs another object of the same run that is not made yet.
_NEEDS_ANOTHER = {"42704", "42P01", "3F000", "42883"}


def _independent(typ: str, body: str) -> bool:
    """Whether an object can be made beside the others of its run: a plain table (not an inheritance
    child or a partition made with its parent), an index, a primary key or unique constraint (a
    foreign key needs the key it references, so it waits for the run before it)."""
    if typ == "TABLE":
        return "\nINHERITS (" not in body and " PARTITION OF " not in body
    return typ in ("INDEX", "CONSTRAINT")


def apply_schema(conn: common_pb2.Connection, script: str, what: str = "schema script",
                 sessions: int = SCHEMA_SESSIONS) -> None:
    """Runs a pg_dump pre-data (or whole schema) script; a large one by several sessions at once.

    Creating a table is dominated by waits, not work: each index build (a table's TOAST index among
    them) fsyncs its files, 4 ms here, so 2,000 small tables take 8-9 s in one session. The CREATE
    TABLE statements of plain tables (not inheritance children) need nothing but what comes before
    them, so every run of them goes to SCHEMA_SESSIONS sessions, and the next object of another kind
    waits for the run to end; everything else runs in order in the first session. The SETs pg_dump
    writes once for the statements after them (default_tablespace, the table access method) go
    with each statement. A small script runs through psql in one transaction (apply_script).
    Not all or nothing when parallel: a failure leaves part of the schema, which the caller drops
    (the scratch database) or rolls back to its baseline (the target).
    """
    script = fit_script(script, known_settings(conn))
    preamble, items = blocks(script)
    if len(items) < PARALLEL_OBJECTS or sessions <= 1:
        apply_script(conn, script, what, fitted=True)
        return
    # Each object commits without waiting for its WAL to reach the disk; one durable commit at the end
    # (it flushes the WAL of every commit before it) makes the whole schema durable before this returns.
    head = preamble_settings(preamble) + "\nSET synchronous_commit = off;"
    conns = [connect(conn, "target", autocommit=True, application_name="dbmigrate-schema") for _ in range(sessions)]
    try:
        for c in conns:
            c.execute(head)
        _ParallelApply(conn, conns, what).apply(items)
        durable(conns[0])
    finally:
        for c in conns:
            c.close()


TABLES_PER_COMMIT = 500  # a table holds 3 locks until commit (itself, its TOAST table and index)
TABLES_PER_STATEMENT = 25  # tables sent in one round trip (a round trip and a hand-off each cost more than a small table)


def _idle(c: psycopg.Connection) -> bool:
    return c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


class _ParallelApply:
    """apply_schema's runs: plain tables on every session, everything else in order on the first."""

    def __init__(self, conn: common_pb2.Connection, conns: list[psycopg.Connection], what: str):
        self.conn, self.conns, self.what = conn, conns, what
        self.free: queue.Queue = queue.Queue()
        for c in conns[1:]:
            self.free.put(c)
        self.running: list[concurrent.futures.Future] = []
        self.later: list[tuple[str, str, str]] = []
        self.in_tx: dict[int, int] = {}  # session -> tables created in its open transaction

    def apply(self, items) -> None:
        current: dict[str, str] = {}
        tables: list[tuple[str, str, str]] = []
        with concurrent.futures.ThreadPoolExecutor(len(self.conns) - 1, thread_name_prefix="schema") as pool:
            for typ, name, body in items:
                for m in _SESSION_SET.finditer(body):
                    current[m.group(1)] = m.group(0)
                if _independent(typ, body):
                    if not self.running and not tables and not _idle(self.conns[0]):
                        self.conns[0].execute("COMMIT")  # what the run needs (its schemas, types) is seen by all
                    prefix = "\n".join(current.values())
                    item = (typ, name, f"{prefix}\n{body}" if prefix else body)
                    if typ == "TABLE":  # a chunk of tables per round trip
                        tables.append(item)
                        if len(tables) >= TABLES_PER_STATEMENT:
                            self.running.append(pool.submit(self.on_pool, tables))
                            tables = []
                    else:
                        self.running.append(pool.submit(self.on_pool, [item]))
                    continue
                if tables:
                    self.running.append(pool.submit(self.on_pool, tables))
                    tables = []
                if self.running:
                    self.barrier()
                # pg_dump SETs the table access method and tablespace once, where they change: the
                # first session may not have run the ones a table sent elsewhere consumed (a
                # materialized view after it needs them too)
                prefix = "\n".join(current.values())
                self.run(self.conns[0], typ, name, f"{prefix}\n{body}" if prefix else body)
            if tables:
                self.running.append(pool.submit(self.on_pool, tables))
            self.barrier()

    def _error(self, typ: str, name: str, err: psycopg.Error) -> DatabaseError:
        return DatabaseError(f"applying the {self.what} on {describe(self.conn)} failed at {typ.lower()} {name}: "
                             f"{redact(err.diag.message_primary or str(err))}", retryable=is_transient(err))

    def run(self, c: psycopg.Connection, typ: str, name: str, body: str) -> None:
        try:
            if _idle(c):
                c.execute("BEGIN")
            c.execute(body)
        except psycopg.Error as err:
            raise self._error(typ, name, err) from None

    def on_pool(self, items: list[tuple[str, str, str]]) -> None:
        """Tables of the run (up to TABLES_PER_STATEMENT, sent as one statement), or one index or key.
        A table that needs another of the same run (a column of another table's row type, say) is
        made again after the run, in order; when a chunk fails, its tables are made one by one, so
        the one that fails is named."""
        c = self.free.get()
        try:
            # Tables of a run share one transaction per session (a commit each cost more than the
            # table); an index or key commits at once, since it locks a table the session's other
            # keys may need too.
            typ = items[0][0]
            if not _idle(c) and (typ != "TABLE" or self.in_tx.get(id(c), 0) + len(items) > TABLES_PER_COMMIT):
                c.execute("COMMIT")  # also bounds the locks one transaction holds (the shared lock table)
                self.in_tx[id(c)] = 0
            self.in_tx[id(c)] = self.in_tx.get(id(c), 0) + len(items)
            if _idle(c):
                c.execute("BEGIN")
            if len(items) > 1:
                c.execute("SAVEPOINT dbmigrate_chunk")
                try:
                    c.execute("\n".join(body for _, _, body in items))
                    return
                except psycopg.Error:
                    c.execute("ROLLBACK TO SAVEPOINT dbmigrate_chunk")
            for typ, name, body in items:
                self._one(c, typ, name, body)
        finally:
            self.free.put(c)

    def _one(self, c: psycopg.Connection, typ: str, name: str, body: str) -> None:
        c.execute("SAVEPOINT dbmigrate_object")
        try:
            c.execute(body)
        except psycopg.Error as err:
            if err.sqlstate not in _NEEDS_ANOTHER:
                raise self._error(typ, name, err) from None
            c.execute("ROLLBACK TO SAVEPOINT dbmigrate_object")
            self.later.append((typ, name, body))
        if typ != "TABLE":
            c.execute("COMMIT")

    def barrier(self) -> None:
        """The end of a run: every session's transaction commits before the next object."""
        for f in self.running:
            f.result()
        self.running.clear()
        for c in self.conns:
            if not _idle(c):
                c.execute("COMMIT")
        while self.later:
            self.run(self.conns[0], *self.later.pop(0))


def apply_script(conn: common_pb2.Connection, script: str, what: str = "schema script", *, fitted: bool = False) -> None:
    """Runs a pg_dump script with psql in one transaction: all of it or nothing."""
    if not fitted:
        script = fit_script(script, known_settings(conn))
    args = [psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d",
            tool_dsn(conn, "dbmigrate-psql"), "-f", "-"]
    r = subprocess.run(args, input=script, capture_output=True, text=True, env=tool_env(conn))
    if r.returncode != 0:
        raise _fail(f"applying the {what}", conn, r.stderr)


def refused_objects(conn: common_pb2.Connection, script: str) -> list[tuple[str, str, str]]:
    """Every object of a pre-data script the server refuses, as (type, name, the server's error), in
    script order: the script applied object by object in one transaction, each object under a
    savepoint, then rolled back, so nothing of it stays. An object that needs a refused one is refused
    too, with an error that names what it lacks. Run it on an empty database (apply_schema stops at the
    first refusal: this names them all at once)."""
    preamble, items = blocks(fit_script(script, known_settings(conn)))
    refused = []
    with connect(conn, "target", application_name="dbmigrate-schema") as c:
        head = preamble_settings(preamble)
        if head:
            c.execute(head)
        release = ""
        for typ, name, body in items:
            try:
                # One round trip an object: the last savepoint released, a new one, the object.
                c.execute(f"{release}SAVEPOINT dbmigrate_object;\n{body}")
            except psycopg.Error as err:
                if is_transient(err):
                    raise DatabaseError(f"listing the objects the target refuses: {redact(str(err))}",
                                        retryable=True) from None
                c.execute("ROLLBACK TO SAVEPOINT dbmigrate_object")
                refused.append((typ, name, redact(err.diag.message_primary or str(err)).strip()))
            release = "RELEASE SAVEPOINT dbmigrate_object;\n"  # it stands after either
        c.rollback()
    return refused


def server_version_num(c: psycopg.Connection) -> int:
    return int(c.execute("SHOW server_version_num").fetchone()[0])


EXCLUDED_PER_PATTERN = 500  # table names one --exclude-table pattern carries (one argument stays < 128 KB)
TREE_RATIO = 0.55           # names go grouped when their tree of prefixes is at most this part of their length


def exclude_args(all_tables: list[Table], kept: list[Table]) -> list[str]:
    """pg_dump arguments that leave out the tables the include/exclude patterns removed (exact names).

    pg_dump looks each pattern up with a query of its own. A pattern of one name finds its table
    through the index on pg_class's names: 0.4 ms a name here, whatever the names (1,800 patterns cost
    0.4 s more than the whole dump of 2,000 tables; 19,800 names 8 s). A pattern of many names is
    matched against every table of the database instead, at a cost that grows with how little its
    names share: as a tree of their common prefixes, "s".("t_"("1"("0"|)|"2")), names like t_N are
    cheap (1,950 of 2,000 tables left out: pg_dump 0.21 s, against 0.89 s with the names as plain
    alternatives and 0.46 s for no exclusion at all; 19,950 of 20,000 2.24 s), names that share little
    are not (500 random names: 353 us a table, plain alternatives 239 us; 20,000 such tables would cost
    pg_dump minutes). So a schema's names go as trees only where the tree is at most TREE_RATIO of
    their length (t_N 0.43-0.50, names under three prefixes 0.63, random names 0.99), else one pattern
    a name. Inside double quotes every character of a pattern is literal; outside, `(`, `|` and `)`
    keep their meaning."""
    keep = {(t.schema, t.name) for t in kept}
    by_schema: dict[str, list[str]] = {}
    for t in all_tables:
        if (t.schema, t.name) not in keep:
            by_schema.setdefault(t.schema, []).append(t.name)
    out = []
    for schema, names in by_schema.items():
        names = sorted(set(names))
        trees = [_prefix_tree(names[i:i + EXCLUDED_PER_PATTERN]) for i in range(0, len(names), EXCLUDED_PER_PATTERN)]
        if sum(map(len, trees)) <= TREE_RATIO * sum(len(_quoted(n)) + 1 for n in names):
            out += [f"--exclude-table={_quoted(schema)}.({tree})" for tree in trees]
        else:
            out += [f"--exclude-table={_quoted(schema)}.{_quoted(n)}" for n in names]
    return out


def _prefix_tree(names: list[str]) -> str:
    """A pattern that matches exactly `names` (one of them may be empty): each group of names with
    the same first character as their longest common prefix, then the pattern of what follows it."""
    groups: dict[str, list[str]] = {}
    for name in names:
        if name:
            groups.setdefault(name[0], []).append(name)
    alternatives = []
    for group in groups.values():
        k = 1
        while all(len(g) > k for g in group) and len({g[k] for g in group}) == 1:
            k += 1
        prefix, rest = group[0][:k], [g[k:] for g in group]
        alternatives.append(_quoted(prefix) if rest == [""] else f"{_quoted(prefix)}({_prefix_tree(rest)})")
    if "" in names:
        alternatives.append("")  # the prefix alone is one of the names
    return "|".join(alternatives)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def tolerant_pre_data(script: str) -> str:
    """Pre-data that also applies over schemas that already exist (the target's empty `public`, say)."""
    return re.sub(r"^CREATE SCHEMA (?!IF NOT EXISTS)", "CREATE SCHEMA IF NOT EXISTS ", script, flags=re.M)
