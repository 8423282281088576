"""Compatibility findings from the two inventories: stable codes, a severity, and what to do.

Every finding names the object it is about and a remedy an operator can act on. Per-table
findings are capped (PER_CODE_LIMIT) and the rest summed up in one more finding of the same
code, so a database with thousands of tables still gives a readable report.
"""
from __future__ import annotations

import os
from typing import Iterable

from dbmigrate.v1 import common_pb2
from services.common.catalog import matches, quote_ident, split_threshold
from services.common.roles import from_row
from services.common.text import human_bytes
from services.common.traffic import write_traffic
from services.discovery import online as _online

INFO, LOW, MEDIUM, HIGH, BLOCKER = (common_pb2.INFO, common_pb2.LOW, common_pb2.MEDIUM, common_pb2.HIGH,
                                    common_pb2.BLOCKER)

GB = 1024 ** 3
LARGE_TABLE_BYTES = 10 * GB
PER_CODE_LIMIT = 200
# Extensions every database has: nothing to report about them.
_BUILTIN_EXTENSIONS = {"plpgsql"}
# Extensions a non-superuser may create (trusted in PostgreSQL 13+ contrib).
_TRUSTED_EXTENSIONS = {"btree_gin", "btree_gist", "citext", "cube", "dict_int", "fuzzystrmatch", "hstore",
                       "intarray", "isn", "lo", "ltree", "pgcrypto", "pg_trgm", "seg", "tablefunc", "tcn",
                       "tsm_system_rows", "tsm_system_time", "unaccent", "uuid-ossp", "plpgsql"}


def qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def major(version_num: int) -> float:
    """15 for 150004; 9.6 for 90624 (before 10 the major had two parts)."""
    version_num = int(version_num or 0)
    return version_num // 10000 if version_num >= 100000 else (version_num // 100) / 100


def _fmt_major(m: float) -> str:
    return str(int(m)) if float(m).is_integer() else f"{m:.1f}"


def _list(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class _Findings:
    def __init__(self) -> None:
        self.items: list[common_pb2.Finding] = []
        self._per_code: dict[str, int] = {}
        self._over: dict[str, tuple[int, list[str], int, str, str]] = {}

    def add(self, code: str, severity: int, obj: str, message: str, remedy: str, *, capped: bool = False) -> None:
        if capped:
            n = self._per_code.get(code, 0)
            self._per_code[code] = n + 1
            if n >= PER_CODE_LIMIT:
                count, names, sev, _, rem = self._over.get(code, (0, [], severity, "", remedy))
                names.append(obj)
                self._over[code] = (count + 1, names, max(sev, severity), "", rem)
                return
        self.items.append(common_pb2.Finding(code=code, severity=severity, object=obj, message=message,
                                             remedy=remedy))

    def done(self) -> list[common_pb2.Finding]:
        for code, (count, names, sev, _, remedy) in self._over.items():
            self.items.append(common_pb2.Finding(
                code=code, severity=sev, object=f"{count} more tables",
                message=f"{count} more tables have the same finding ({_list(names, 5)}); "
                        f"only the first {PER_CODE_LIMIT} are listed one by one",
                remedy=remedy))
        self.items.sort(key=lambda f: -f.severity)  # stable: same severity keeps its order
        return self.items


def _selected(inv: dict, options) -> list[dict]:
    include = list(options.include) if options is not None else []
    exclude = list(options.exclude) if options is not None else []
    return [t for t in inv.get("tables", []) if matches(t["schema"], t["name"], include, exclude)]


def _jobs(options) -> int:
    return (options.jobs if options is not None and options.jobs > 0 else 0) or os.cpu_count() or 1


def find(source_inv: dict, target_inv: dict, options, pg_dump_version: tuple | None,
         target_rows: dict) -> list[common_pb2.Finding]:
    """Findings, most severe first.

    target_rows maps (schema, name) of source tables that also exist in the target to the rows the
    target table holds now. pg_dump_version is (major, minor, text) of the pg_dump on PATH, or
    None when it is not installed.
    """
    out = _Findings()
    src, tgt = source_inv.get("server", {}), target_inv.get("server", {})
    tables = _selected(source_inv, options)
    names = {(t["schema"], t["name"]) for t in tables}
    replace = options is not None and options.on_target_not_empty == common_pb2.REPLACE

    _same_database(out, src, tgt)
    _versions(out, src, tgt, pg_dump_version)
    _target_state(out, tgt)
    _extensions(out, source_inv, target_inv)
    _encoding(out, src, tgt, source_inv, names)
    _selection(out, source_inv, tables, options)
    _target_tables(out, tables, target_rows, replace, target_inv)
    _tables(out, tables, src, options)
    _roles(out, source_inv, target_inv, options)
    _choices(out, source_inv, options)
    _database_privileges(out, src, tgt, options)
    _database_settings(out, source_inv, target_inv)
    _requirements(out, source_inv, target_inv, names)
    _objects(out, source_inv, names, options)
    _config_replaced(out, target_inv)
    online = options is not None and options.online
    _traffic(out, source_inv, online)
    _connections(out, source_inv, target_inv, options)
    _locks(out, source_inv, target_inv)
    _settings(out, src, tgt, tables)
    if online:
        _online.check(out, source_inv, target_inv, tables)
    return out.done()


def _same_database(out: _Findings, src: dict, tgt: dict) -> None:
    if (src.get("started_at") and src.get("started_at") == tgt.get("started_at")
            and src.get("database_oid") == tgt.get("database_oid") and src.get("database") == tgt.get("database")):
        out.add("SAME_DATABASE", BLOCKER, f"database {src.get('database')}",
                "the source and the target are the same database on the same server",
                "give a different target database (create an empty one: CREATE DATABASE ... TEMPLATE template0)")


def _versions(out: _Findings, src: dict, tgt: dict, pg_dump_version) -> None:
    smaj, tmaj = major(src.get("version_num", 0)), major(tgt.get("version_num", 0))
    if tmaj and smaj and tmaj < smaj:
        out.add("TARGET_VERSION_OLDER", BLOCKER, "target server",
                f"the target runs PostgreSQL {tgt.get('version')} (major {_fmt_major(tmaj)}), older than the "
                f"source's {src.get('version')} (major {_fmt_major(smaj)}): a downgrade, which PostgreSQL's dump and "
                "restore do not support (the newer server's schema uses syntax, settings and features the older "
                "one does not have)",
                f"migrate to a server of major version {_fmt_major(smaj)} or newer")
    elif tmaj and smaj and tmaj > smaj:
        out.add("MAJOR_VERSION_UPGRADE", INFO, "target server",
                f"the migration upgrades PostgreSQL {_fmt_major(smaj)} to {_fmt_major(tmaj)}",
                "read the release notes of the versions in between for incompatibilities your application "
                "may hit, and run ANALYZE after the migration (statistics are not carried over)")
    if pg_dump_version is None:
        out.add("PG_DUMP_MISSING", BLOCKER, "pg_dump",
                "pg_dump is not installed where the agents run; the schema is copied with it",
                f"install the PostgreSQL client tools (postgresql-client-{_fmt_major(max(smaj, tmaj) or 15)})")
    elif smaj and pg_dump_version[0] < smaj:
        out.add("PG_DUMP_TOO_OLD", BLOCKER, "pg_dump",
                f"pg_dump {pg_dump_version[0]}.{pg_dump_version[1]} is older than the source server "
                f"({_fmt_major(smaj)}) and cannot dump it correctly",
                f"install postgresql-client-{_fmt_major(smaj)} or newer where the agents run")


def _target_state(out: _Findings, tgt: dict) -> None:
    if tgt.get("in_recovery"):
        out.add("TARGET_READ_ONLY", BLOCKER, "target server",
                "the target server is a standby (in recovery) and cannot be written to",
                "give the primary server as the target")
    elif str(tgt.get("default_transaction_read_only", "off")).lower() == "on":
        out.add("TARGET_READ_ONLY", BLOCKER, "target database",
                "default_transaction_read_only is on for the target: every write would fail",
                "ALTER DATABASE ... SET default_transaction_read_only = off on the target, or use another user")
    if tgt and not tgt.get("is_superuser") and not tgt.get("can_create_schema"):
        out.add("TARGET_PRIVILEGES", HIGH, f"role {tgt.get('current_user')}",
                f"the target user {tgt.get('current_user')!r} may not create schemas in database "
                f"{tgt.get('database')!r}; creating the source's schema will fail",
                f"GRANT CREATE ON DATABASE {quote_ident(str(tgt.get('database')))} TO "
                f"{quote_ident(str(tgt.get('current_user')))}; or make that user the database owner")


def _extensions(out: _Findings, source_inv: dict, target_inv: dict) -> None:
    tgt_ext = {e["name"]: e for e in target_inv.get("extensions", [])}
    tgt = target_inv.get("server", {})
    for e in source_inv.get("extensions", []):
        if not e.get("installed") or e["name"] in _BUILTIN_EXTENSIONS:
            continue
        name, have = e["name"], tgt_ext.get(e["name"])
        if have is None or not (have.get("available") or have.get("installed")):
            out.add("EXTENSION_MISSING", BLOCKER, f"extension {name}",
                    f"the source uses extension {name} {e.get('installed_version') or ''}".rstrip()
                    + " and the target server does not have it available (not in pg_available_extensions); "
                      "objects that depend on it cannot be created",
                    f"install the package that provides {name} on the target server (for contrib: "
                    f"postgresql-contrib; otherwise the extension's own package), then run discovery again")
        elif not have.get("installed"):
            # Same code as the blocker, a lower severity: the target can have it, it just has not yet.
            sev = INFO
            remedy = "nothing to do: the pre-data step runs CREATE EXTENSION on the target"
            if not tgt.get("is_superuser") and name not in _TRUSTED_EXTENSIONS:
                sev = MEDIUM
                remedy = (f"{name} is not a trusted extension and the target user is not a superuser: have a "
                          f"superuser run CREATE EXTENSION {quote_ident(name)} in the target database first")
            out.add("EXTENSION_MISSING", sev, f"extension {name}",
                    f"extension {name} is installed in the source and available on the target "
                    f"(default version {have.get('default_version')}), but not yet installed there", remedy)
        elif have.get("installed_version") and e.get("installed_version") \
                and have["installed_version"] != e["installed_version"]:
            out.add("EXTENSION_VERSION_DIFFERS", LOW, f"extension {name}",
                    f"extension {name} is at version {e['installed_version']} in the source and "
                    f"{have['installed_version']} in the target",
                    f"check that the version difference is harmless, or ALTER EXTENSION {quote_ident(name)} "
                    "UPDATE on the older side")


def _encoding(out: _Findings, src: dict, tgt: dict, source_inv: dict, names: set) -> None:
    if src.get("encoding") and tgt.get("encoding") and src["encoding"] != tgt["encoding"]:
        # UTF8 holds every character of every other encoding; any other target may not.
        if src["encoding"] == "SQL_ASCII":
            sev, extra = HIGH, (" SQL_ASCII stores bytes unchecked: text that is not valid in the target encoding "
                                "makes the copy fail.")
        elif tgt["encoding"] == "UTF8":
            sev, extra = MEDIUM, " Every character converts to UTF8; the bytes of text values change."
        else:
            sev, extra = BLOCKER, (f" {tgt['encoding']} cannot hold every character {src['encoding']} can: such "
                                   "text would fail to copy or be lost.")
        out.add("ENCODING_MISMATCH", sev, "target database",
                f"the source database is encoded {src['encoding']}, the target {tgt['encoding']}.{extra}",
                f"create the target database with ENCODING '{src['encoding']}' TEMPLATE template0 (and the "
                "source's LC_COLLATE/LC_CTYPE), or a UTF8 one")
    if (src.get("collation"), src.get("ctype")) != (tgt.get("collation"), tgt.get("ctype")) and tgt:
        out.add("COLLATION_MISMATCH", MEDIUM, "target database",
                f"the source sorts text with LC_COLLATE={src.get('collation')}, LC_CTYPE={src.get('ctype')}; "
                f"the target with LC_COLLATE={tgt.get('collation')}, LC_CTYPE={tgt.get('ctype')}: ORDER BY "
                "on text, range queries and text comparisons may give different results",
                f"create the target database with LC_COLLATE '{src.get('collation')}' LC_CTYPE "
                f"'{src.get('ctype')}' TEMPLATE template0, or check that the application accepts the new order")
    sp, tp = src.get("collation_provider"), tgt.get("collation_provider")
    if sp and tp and (sp != tp or (sp == "icu" and src.get("icu_locale") != tgt.get("icu_locale"))):
        text_indexes = [i for i in source_inv.get("indexes", [])
                        if i.get("uses_collation") and (i["schema"], i["table"]) in names]
        out.add("COLLATION_PROVIDER_CHANGED", HIGH, "target database",
                f"the source uses the {sp} collation provider"
                + (f" ({src.get('icu_locale')})" if src.get("icu_locale") else "")
                + f", the target {tp}" + (f" ({tgt.get('icu_locale')})" if tgt.get("icu_locale") else "")
                + f": text sorts differently, and {len(text_indexes)} indexes on text columns "
                  "(unique constraints among them) order their keys by the new rules",
                "create the target database with the source's provider (CREATE DATABASE ... LOCALE_PROVIDER "
                f"{sp}), or after the migration REINDEX the indexes on text columns and check unique "
                "constraints and ORDER BY results")


def _selection(out: _Findings, source_inv: dict, tables: list[dict], options) -> None:
    all_tables = source_inv.get("tables", [])
    filtered = options is not None and (list(options.include) or list(options.exclude))
    if filtered and all_tables and not tables:
        out.add("NO_TABLES_SELECTED", HIGH, "options.include/exclude",
                f"the include/exclude patterns select none of the source's {len(all_tables)} tables",
                "fix the patterns: they are globs on \"schema.table\" (e.g. \"sales.*\", \"public.order?\")")
    elif filtered and len(tables) < len(all_tables):
        out.add("TABLES_EXCLUDED", INFO, "options.include/exclude",
                f"{len(all_tables) - len(tables)} of the source's {len(all_tables)} tables are left out by the "
                "include/exclude patterns",
                "check the list of tables in the report is the one you mean to migrate")
    if filtered:
        chosen = {(t["schema"], t["name"]) for t in tables}
        parents = {t["schema"] + "." + t["name"]: t for t in source_inv.get("tables", [])}
        for fk in source_inv.get("foreign_keys", []):
            here = (fk["schema"], fk["table"]) in chosen
            there = (fk["ref_schema"], fk["ref_table"]) in chosen
            if here and not there:
                out.add("FOREIGN_KEY_TO_EXCLUDED_TABLE", HIGH, qualified(fk["schema"], fk["table"]),
                        f"foreign key {fk['name']} of {qualified(fk['schema'], fk['table'])} references "
                        f"{qualified(fk['ref_schema'], fk['ref_table'])}, which the patterns leave out: the key "
                        "cannot be created (or its rows cannot be checked) on the target",
                        f"include {fk['ref_schema']}.{fk['ref_table']}, or exclude "
                        f"{fk['schema']}.{fk['table']} too", capped=True)
        _views_left_out(out, source_inv, chosen, options)
        for t in tables:
            parent = parents.get(t.get("parent") or "")
            if t["kind"] == "partition" and parent and (parent["schema"], parent["name"]) not in chosen:
                out.add("PARTITION_WITHOUT_PARENT", MEDIUM, qualified(t["schema"], t["name"]),
                        f"partition {qualified(t['schema'], t['name'])} is selected but its partitioned table "
                        f"{t['parent']} is not",
                        f"include {t['parent']} as well, or exclude its partitions", capped=True)


def _views_left_out(out: _Findings, source_inv: dict, chosen: set, options) -> None:
    """The patterns select views, materialized views and foreign tables as they select tables (as
    pg_dump's --table and --exclude-table do): those they leave out are named, and so is a view they
    keep that reads a relation they leave out (its CREATE would fail on the target), with what it
    reads, through views that fail for the same reason."""
    include, exclude = list(options.include), list(options.exclude)
    views = source_inv.get("views", [])
    left = {(v["schema"], v["name"]) for v in views if not matches(v["schema"], v["name"], include, exclude)}
    if left:
        shown = [qualified(*k) for k in sorted(left)]
        out.add("VIEWS_EXCLUDED", INFO, _list(shown),
                f"{len(left)} views and materialized views are left out by the include/exclude patterns "
                f"({_list(shown)})", "check these are the views you mean to leave out")
    missing = {(t["schema"], t["name"]) for t in source_inv.get("tables", [])} - chosen | left
    kept = [v for v in views if (v["schema"], v["name"]) not in left]
    failing: dict[tuple[str, str], list[str]] = {}
    while True:  # a view reading a view that fails fails too
        more = {(v["schema"], v["name"]): [qualified(*r) for r in v.get("reads") or [] if tuple(r) in missing]
                for v in kept if (v["schema"], v["name"]) not in failing}
        more = {k: reads for k, reads in more.items() if reads}
        if not more:
            break
        failing.update(more)
        missing |= set(more)
    for (schema, name), reads in sorted(failing.items()):
        out.add("VIEW_READS_EXCLUDED", HIGH, qualified(schema, name),
                f"view {qualified(schema, name)} reads {', '.join(reads)}, which the patterns leave out: it "
                "cannot be created on the target",
                f"exclude {schema}.{name} too (--exclude '{schema}.{name}'), or include {', '.join(reads)}",
                capped=True)
    for f in source_inv.get("functions", []):
        needs = [qualified(*r) for r in f.get("reads") or [] if tuple(r) in missing]
        if needs:
            what = f"{f['kind']} {qualified(f['schema'], f['name'])}({f['arguments']})"
            out.add("FUNCTION_READS_EXCLUDED", HIGH, what,
                    f"{what} needs {', '.join(needs)} (its SQL-standard body reads it, or its row type is an "
                    "argument or the result), which the patterns leave out: it cannot be created on the "
                    "target (the patterns select relations; every function is migrated)",
                    f"include {', '.join(needs)}, or drop or change {what} on the source", capped=True)


def _target_tables(out: _Findings, tables: list[dict], target_rows: dict, replace: bool, target_inv: dict) -> None:
    for t in tables:
        key = (t["schema"], t["name"])
        if key not in target_rows:
            continue
        rows = target_rows[key]
        name = qualified(*key)
        if rows > 0:
            if replace:
                out.add("TARGET_NOT_EMPTY", MEDIUM, name,
                        f"the target table {name} holds {rows:,} rows; with on_target_not_empty=REPLACE it will "
                        "be dropped and recreated, and those rows will be lost",
                        "back up the target table first if its rows matter", capped=True)
            else:
                out.add("TARGET_NOT_EMPTY", BLOCKER, name,
                        f"the target already has a table {name} holding {rows:,} rows",
                        "migrate into an empty database, drop or rename the target table, or create the "
                        "migration with --replace-target (on_target_not_empty=REPLACE) to empty and refill it",
                        capped=True)
        else:
            out.add("TARGET_TABLE_EXISTS", MEDIUM if replace else BLOCKER, name,
                    f"the target already has an (empty) table {name}"
                    + ("; with on_target_not_empty=REPLACE it will be dropped and recreated" if replace
                       else "; the migration refuses to write into existing tables"),
                    "nothing to do" if replace else
                    "drop it on the target, migrate into an empty database, or create the migration with "
                    "--replace-target (on_target_not_empty=REPLACE)", capped=True)


def _tables(out: _Findings, tables: list[dict], src: dict, options) -> None:
    threshold = split_threshold(options.split_threshold_bytes if options is not None else 0, _jobs(options))
    unlogged, foreign, rls, no_stats = [], [], [], []
    for t in tables:
        name = qualified(t["schema"], t["name"])
        holds_rows = t["kind"] in ("table", "partition", "inheritance_child")
        if holds_rows and not t.get("has_primary_key"):
            out.add("NO_PRIMARY_KEY", LOW, name,
                    f"{name} has no primary key: verification can compare row counts and a checksum of the "
                    "whole table, but cannot say which rows differ, and it is slower",
                    f"add a primary key to {name} before migrating if the table has a unique, not-null column "
                    "set (ALTER TABLE ... ADD PRIMARY KEY (...)); otherwise nothing to do", capped=True)
        if t.get("unlogged"):
            unlogged.append(name)
        if t["kind"] == "foreign":
            foreign.append(f"{name} (server {t.get('foreign_server')})")
        if t.get("rls_enabled"):
            rls.append(name)
        if holds_rows and t.get("never_analyzed") and t.get("bytes", 0) > 100 * 1024 * 1024:
            no_stats.append(name)
        size = t.get("bytes", 0)
        if holds_rows and size > LARGE_TABLE_BYTES:
            out.add("LARGE_TABLE", MEDIUM, name,
                    f"{name} is {human_bytes(size)} (about {t.get('row_estimate', 0):,} rows): it is copied "
                    + ("in parts in parallel" if size > threshold else
                       f"whole by one COPY stream (parts from {human_bytes(threshold)} with these jobs)")
                    + ", and dominates the migration time and the target's disk and WAL",
                    "make sure the target has the disk space (table, indexes and WAL) and plan the time the "
                    "validation report estimates", capped=True)
        elif holds_rows and size > threshold:
            out.add("LARGE_TABLE", INFO, name,
                    f"{name} is {human_bytes(size)}: it is copied in parts (split threshold "
                    f"{human_bytes(threshold)})", "nothing to do", capped=True)
    if unlogged:
        out.add("UNLOGGED_TABLES", INFO, _list(unlogged),
                f"{len(unlogged)} unlogged tables ({_list(unlogged)}) stay unlogged on the target: they are "
                "not crash-safe (emptied after a crash) and not replicated to standbys",
                "nothing to do if that is intended; otherwise ALTER TABLE ... SET LOGGED on the target")
    if foreign:
        out.add("FOREIGN_TABLES", MEDIUM, _list(foreign),
                f"{len(foreign)} foreign tables ({_list(foreign)}): only their definitions are copied, not "
                "the remote data; they need the foreign server and user mappings on the target",
                "create the foreign server and user mappings on the target (with the passwords, which are not "
                "copied) and check the remote server accepts connections from the target host")
    if rls:
        bypass = src.get("is_superuser") or src.get("bypass_rls")
        out.add("ROW_LEVEL_SECURITY", INFO if bypass else HIGH, _list(rls),
                f"{len(rls)} tables have row level security enabled ({_list(rls)}); the policies are copied"
                + ("" if bypass else f", but the source user {src.get('current_user')!r} is neither superuser "
                   "nor BYPASSRLS, so the copy could see only part of the rows"),
                "nothing to do" if bypass else
                f"connect to the source as a superuser or a role WITH BYPASSRLS (ALTER ROLE "
                f"{quote_ident(str(src.get('current_user')))} BYPASSRLS)")
    if no_stats:
        out.add("NO_STATISTICS", INFO, _list(no_stats),
                f"{len(no_stats)} large tables were never analyzed ({_list(no_stats)}): row estimates are 0 "
                "and the plan's time estimate is less accurate",
                "run ANALYZE on the source before planning, for better estimates")


def _roles(out: _Findings, source_inv: dict, target_inv: dict, options) -> None:
    """The roles the database needs (owners, grantees, default privileges, policies) and the target lacks."""
    if not target_inv.get("roles") and not target_inv.get("server"):
        return  # no target inventory to compare against
    target_roles = {r["name"]: r for r in target_inv.get("roles", [])}
    tgt = target_inv.get("server", {})
    super_target = bool(tgt.get("is_superuser"))
    create = options is not None and options.create_roles
    needed = [from_row(r) for r in source_inv.get("roles_needed", [])]
    missing = [(r, r.relevant(options or common_pb2.MigrationOptions())) for r in needed if r.name not in target_roles]
    missing = [(r, why) for r, why in missing if why]
    words = {"owner": "owns {n} objects", "grantee": "is granted privileges", "policy": "is named in policies",
             "default_privileges": "sets or receives default privileges", "user_mapping": "has a user mapping",
             "regrole_value": "is stored in regrole columns",
             "database_setting": "has settings of its own in the database (ALTER ROLE ... IN DATABASE ... SET)"}
    for r, why in missing:
        does = ", ".join(words[w].format(n=r.objects_owned) for w in why if w in words)
        if create:
            continue
        policy = bool({"policy", "user_mapping", "regrole_value", "database_setting"} & set(why))
        out.add("ROLE_MISSING", BLOCKER, f"role {r.name}",
                f"role {r.name!r} {does} in the source database but does not exist on the target server; its "
                "owners, privileges" + (" and policies" if policy else "") + " cannot arrive",
                f"create it on the target (CREATE ROLE {quote_ident(r.name)} NOLOGIN; plus its memberships), or create "
                "the migration with --create-roles (DBMigrate creates the missing roles), or with --no-owner / "
                "--no-privileges to leave owners / privileges out"
                + (" (policies, user mappings, regrole values and database settings name it whatever the options: it "
                   "must exist)"
                   if policy else ""), capped=True)
    if create and missing:
        names = [r.name for r, _ in missing]
        if not super_target and not tgt.get("can_create_role"):
            out.add("CREATE_ROLES_NOT_PERMITTED", BLOCKER, f"role {tgt.get('current_user')}",
                    f"--create-roles must create {len(names)} roles ({_list(names)}), but the target user "
                    f"{tgt.get('current_user')!r} is neither a superuser nor has CREATEROLE",
                    "migrate as a superuser or a role WITH CREATEROLE on the target, or create the roles there first")
        src = source_inv.get("server", {})
        logins = [r.name for r, _ in missing if r.login]
        hashes = bool(src.get("is_superuser"))
        message = f"--create-roles will create {len(names)} roles on the target: {_list(names)}."
        if logins:
            message += (f" Login roles ({_list(logins)}) keep LOGIN and their password hash (the source user may read "
                        "pg_authid)" if hashes else
                        f" Login roles ({_list(logins)}) are created NOLOGIN without a password: the source user may "
                        "not read password hashes (pg_authid)")
        out.add("ROLES_TO_CREATE", INFO if hashes or not logins else MEDIUM, _list(names), message,
                "nothing to do" if hashes or not logins else
                "after the migration give the login roles LOGIN and a password (ALTER ROLE ... LOGIN PASSWORD ...)")
        special = [f"{r.name} ({', '.join(a for a, on in (('SUPERUSER', r.superuser), ('REPLICATION', r.replication), ('BYPASSRLS', r.bypassrls)) if on)})"
                   for r, _ in missing if (r.superuser or r.replication or r.bypassrls)]
        if special and not super_target:
            out.add("ROLE_ATTRIBUTES_DROPPED", HIGH, _list(special),
                    f"{len(special)} roles to create have attributes only a superuser may give ({_list(special)}); the "
                    "target user is not a superuser, so they are created without them",
                    "create those roles on the target as a superuser before migrating, or accept the narrower roles")
    # Owners the target user cannot hand objects to (it must be a member of the role).
    if not super_target and (options is None or not options.no_owner):
        stuck = [r.name for r in needed if "owner" in r.reasons and r.name in target_roles
                 and not target_roles[r.name].get("current_user_is_member")]
        if stuck:
            out.add("OWNER_NOT_SETTABLE", BLOCKER, _list(stuck),
                    f"the target user {tgt.get('current_user')!r} is not a superuser nor a member of {_list(stuck)}, "
                    "so it cannot make them the owners of the objects they own in the source",
                    "migrate as a superuser, GRANT those roles to the target user, or create the migration with "
                    "--no-owner (objects then belong to the target user)")


def _not_owner(tgt: dict) -> str:
    """Why the target user cannot set what belongs to the target database (its privileges, settings,
    comment): `can_set_database_privileges` is false."""
    return f"the target user {tgt.get('current_user')!r} neither owns the target database nor is a superuser"


def _database_privileges(out: _Findings, src: dict, tgt: dict, options) -> None:
    if (options is None or not options.no_privileges) and src.get("database_privileges_set") \
            and tgt and tgt.get("can_set_database_privileges") is False:
        out.add("DATABASE_PRIVILEGES_NOT_SET", MEDIUM, f"database {tgt.get('database')}",
                f"the source database has privileges of its own (CONNECT, CREATE, TEMPORARY grants) and "
                f"{_not_owner(tgt)}, so they cannot be set there; the execution report names them",
                "migrate as the target database's owner or a superuser, or set them on the target afterwards "
                "(GRANT ... ON DATABASE)")


def _choices(out: _Findings, source_inv: dict, options) -> None:
    """--no-owner / --no-privileges: explicit choices, recorded as findings with what they change."""
    if options is None:
        return
    owners = [o for o in source_inv.get("owners", []) if not o["role"].startswith("pg_")]
    if options.no_owner:
        out.add("OWNERS_NOT_PRESERVED", MEDIUM, "--no-owner",
                f"--no-owner: the objects of {len(owners)} owner roles ({_list([o['role'] for o in owners])}) will "
                "belong to the target user instead",
                "nothing to do if the target user should own everything; otherwise migrate without --no-owner")
    if options.no_privileges:
        narrowed = [o["name"] for o in source_inv.get("narrowed_privileges") or []]
        out.add("PRIVILEGES_NOT_PRESERVED", HIGH if narrowed else MEDIUM, "--no-privileges",
                "--no-privileges: no GRANT, REVOKE or default privileges are carried over; objects get the target's "
                "default privileges"
                + (f". These objects are narrower than the default in the source and become wider on the target "
                   f"(e.g. EXECUTE for PUBLIC): {_list(narrowed)}" if narrowed else ""),
                "migrate without --no-privileges to keep them, or set the privileges on the target afterwards")


def _locale(name) -> str:
    """A libc locale name as glibc matches it: case and the codeset's punctuation do not count
    (en_US.UTF-8 is en_US.utf8)."""
    text = str(name or "").lower()
    lang, dot, codeset = text.partition(".")
    return lang + dot + codeset.replace("-", "").replace("_", "")


def _database_settings(out: _Findings, source_inv: dict, target_inv: dict) -> None:
    """The source database's own settings and comment, which the migration sets on the target database:
    named, and a blocker for a parameter the target server does not have (removed or renamed in its
    version) and for a target user who may not set them."""
    tgt = target_inv.get("server") or {}
    if source_inv.get("server", {}).get("has_database_comment") and tgt.get("can_set_database_privileges") is False:
        out.add("DATABASE_COMMENT_NOT_SET", BLOCKER, f"database {tgt.get('database')}",
                f"the source database has a comment (COMMENT ON DATABASE) and {_not_owner(tgt)}, so it cannot be "
                "set there (the final verification would find it missing)",
                "migrate as the target database's owner or a superuser, or set the comment on the target database "
                "first")
    settings = source_inv.get("database_settings") or []
    if not settings or not tgt:
        return

    def shown(s: dict) -> str:  # names, not values (a custom parameter may hold anything)
        return s["name"] + (f" (for role {s['role']})" if s.get("role") else "")

    known = {r["name"].lower() for r in target_inv.get("setting_names", [])}
    unknown = [s for s in settings if "." not in s["name"] and s["name"].lower() not in known]
    if unknown:
        out.add("DATABASE_SETTING_UNKNOWN", BLOCKER, _list([s["name"] for s in unknown]),
                f"the source database sets {len(unknown)} parameters the target server does not have "
                f"({_list([shown(s) for s in unknown])}): they cannot be set on the target database",
                "ALTER DATABASE ... RESET the parameter (ALTER ROLE ... IN DATABASE ... RESET for a role's) on the "
                "source, then run discovery again; after the migration set on the target whatever replaces it")
    carried = [s for s in settings if s not in unknown]
    if carried and tgt.get("can_set_database_privileges") is False:
        out.add("DATABASE_SETTINGS_NOT_SET", BLOCKER, f"database {tgt.get('database')}",
                f"the source database has {len(carried)} settings of its own ({_list([shown(s) for s in carried])}) "
                f"and {_not_owner(tgt)}, so they cannot be set there (the final verification would find them "
                "missing)",
                "migrate as the target database's owner or a superuser, or set them on the target database first "
                "(ALTER DATABASE ... SET), or RESET them on the source")
    elif carried:
        out.add("DATABASE_SETTINGS", INFO, "database settings",
                f"the source database has {len(carried)} settings of its own ({_list([shown(s) for s in carried])}); "
                "pg_dump leaves them out of a migration into an existing database, DBMigrate sets them on the "
                "target database after the data", "nothing to do")


def _requirements(out: _Findings, source_inv: dict, target_inv: dict, names: set) -> None:
    """What the source uses that the target server lacks: collations, languages, features, tablespaces."""
    if not target_inv.get("server"):
        return
    _collation_gaps(out, source_inv, target_inv)
    _server_gaps(out, source_inv, target_inv, names)


def _collation_gaps(out: _Findings, source_inv: dict, target_inv: dict) -> None:
    tgt = target_inv["server"]
    icu = tgt.get("icu_supported")
    target_colls = {(c["schema"], c["name"]) for c in target_inv.get("collations", [])}
    target_locales = {_locale(c.get("lc_collate") or c.get("locale")) for c in target_inv.get("collations", [])
                      if c.get("provider") == "libc"} | {"c", "posix", _locale(tgt.get("collation")), _locale(tgt.get("ctype"))}
    for c in source_inv.get("collations", []):
        if not (c.get("used") or not c.get("builtin")):
            continue
        name = f"{quote_ident(c['schema'])}.{quote_ident(c['name'])}"
        if c.get("provider") == "icu" and icu is False:
            out.add("COLLATION_MISSING", BLOCKER, f"collation {name}",
                    f"collation {name} uses the ICU provider (locale {c.get('locale')!r}) and the target server is "
                    "built without ICU: the columns and indexes that use it cannot be created",
                    "migrate to a server built with ICU (most packages are), or change those columns to a libc "
                    "collation on the source first")
        elif c.get("builtin") and c.get("provider") in ("libc", "icu") and (c["schema"], c["name"]) not in target_colls:
            out.add("COLLATION_MISSING", BLOCKER, f"collation {name}",
                    f"collation {name} (locale {c.get('locale')!r}) is used in the source and the target server does "
                    "not have it",
                    "install the locale on the target host (for libc: locale-gen, then SELECT "
                    "pg_import_system_collations('pg_catalog')), or change the columns that use it on the source")
        elif (not c.get("builtin") and c.get("provider") == "libc"
              and _locale(c.get("lc_collate")) not in target_locales):
            out.add("COLLATION_MISSING", BLOCKER, f"collation {name}",
                    f"collation {name} is defined on the libc locale {c.get('lc_collate')!r}, which the target server "
                    "does not list among its locales (pg_collation): CREATE COLLATION would fail there",
                    "install that locale on the target host (locale-gen) and import it (SELECT "
                    "pg_import_system_collations('pg_catalog')), then run discovery again")
    src = source_inv.get("server", {})
    if src.get("collation_provider") == "icu" and icu is False:
        out.add("COLLATION_MISSING", BLOCKER, "source database",
                f"the source database's default collation is ICU ({src.get('icu_locale')}) and the target server is "
                "built without ICU",
                "migrate to a server built with ICU, or into a target database created with the libc locale you want "
                "(the order of text changes: check the application)")
    elif src.get("collation") and _locale(src["collation"]) not in target_locales:
        out.add("COLLATION_MISSING", BLOCKER, "source database",
                f"the source database sorts with the locale {src['collation']!r}, which the target server does not "
                "have; a target database cannot be created with the same order",
                "install the locale on the target host (locale-gen) and create the target database with LC_COLLATE "
                f"'{src['collation']}', or accept the target's order after checking the application")


def _server_gaps(out: _Findings, source_inv: dict, target_inv: dict, names: set) -> None:
    """Procedural languages, build features (libxml, lz4) and tablespaces the target server lacks;
    the features as the migrated tables (`names`, after --include/--exclude) use them."""
    tgt = target_inv["server"]
    target_langs = {l["name"] for l in target_inv.get("languages", [])}
    available = {e["name"] for e in target_inv.get("extensions", []) if e.get("available") or e.get("installed")}
    for lang in source_inv.get("languages", []):
        if not lang.get("functions") or lang["name"] in target_langs:
            continue
        provider = lang.get("extension") or lang["name"]
        if provider not in available:
            out.add("LANGUAGE_MISSING", BLOCKER, f"language {lang['name']}",
                    f"{lang['functions']} functions are written in {lang['name']}, which the target server does not "
                    f"have (no extension {provider} available)",
                    f"install the package that provides {lang['name']} on the target server (e.g. "
                    f"postgresql-{tgt.get('version_num', 0) // 10000 or ''}-{lang['name'].removesuffix('u')}), "
                    "then run discovery again")
    smaj, tmaj = major(source_inv["server"].get("version_num", 0)), major(tgt.get("version_num", 0))
    bound = [f"{qualified(f['schema'], f['name'])}({f.get('arguments', '')}) from {f['library']}"
             for f in source_inv.get("functions", []) if (f.get("library") or "").startswith("/")]
    if bound and smaj and tmaj and smaj != tmaj:
        out.add("C_FUNCTION_LIBRARY_PATH", HIGH, _list(bound),
                f"{len(bound)} C functions name their library by an absolute path ({_list(bound)}): a library "
                f"built for PostgreSQL {_fmt_major(smaj)} does not load into {_fmt_major(tmaj)} (\"incompatible "
                "library\"), so these functions cannot be created on the target",
                "install the library built for the target's version, and on the source re-create each function with "
                "CREATE OR REPLACE FUNCTION ... AS '$libdir/NAME' instead of the absolute path; or drop the ones "
                "nothing uses")
    features = target_inv.get("features") or {}
    every_table = {(t["schema"], t["name"]) for t in source_inv.get("tables", [])}
    for needs, code, what, remedy in (
            ("xml", "XML_UNSUPPORTED", "the xml type, and the target server is built without libxml: it accepts no "
                                       "xml value (\"unsupported XML feature\")",
             "migrate to a server built with libxml (most packages are), or change those columns to text on the source"),
            ("lz4", "COMPRESSION_UNSUPPORTED", "lz4 compression, and the target server is built without lz4: the "
                                               "columns cannot be created",
             "migrate to a server built with lz4, or ALTER TABLE ... ALTER COLUMN ... SET COMPRESSION pglz on the "
             "source")):
        cols = [f"{qualified(c['schema'], c['table'])}.{quote_ident(c['name'])}"
                for c in source_inv.get("special_columns", [])
                if c["needs"] == needs and ((c["schema"], c["table"]) in names
                                            or (c["schema"], c["table"]) not in every_table)]  # a matview
        if cols and features.get(needs) is False:
            out.add(code, BLOCKER, _list(cols), f"{len(cols)} columns ({_list(cols)}) use {what}", remedy)
    target_spaces = {t["name"] for t in target_inv.get("tablespaces", [])}
    for ts in source_inv.get("tablespaces", []):
        if ts["name"] in ("pg_default", "pg_global") or ts["name"] in target_spaces:
            continue
        if ts.get("relations") or ts.get("database_default"):
            what = (f"{ts['relations']} tables and indexes of the source live in it" if ts.get("relations")
                    else "it is the source database's default tablespace")
            out.add("TABLESPACE_MISSING", BLOCKER, f"tablespace {ts['name']}",
                    f"tablespace {ts['name']!r} does not exist on the target server; {what}",
                    f"CREATE TABLESPACE {quote_ident(ts['name'])} LOCATION '...' on the target (a superuser, with a "
                    "directory on the target host), then run discovery again")


def _config_replaced(out: _Findings, target_inv: dict) -> None:
    """Rows the target's extensions' configuration tables hold of their own (discover's
    target_own_config_rows): the migration replaces the rows the extension's condition selects."""
    for own in target_inv.get("extension_config_own_rows") or []:
        table, n = f"{qualified(own['schema'], own['name'])} ({own['extension']})", own["rows"]
        rows = f"{n:,} row{'s' if n != 1 else ''}"
        out.add("EXTENSION_CONFIG_REPLACED", MEDIUM, table,
                f"the target's configuration table {table} holds {rows} of its own that the source has not (among "
                "those the extension's condition selects): the migration replaces them with the source's, and a "
                "rollback does not bring them back",
                "save them first (pg_dump --data-only --table on the target) and add them again after the "
                "migration, or migrate into a database where the extension is not created yet", capped=True)


def _objects(out: _Findings, source_inv: dict, names: set, options) -> None:
    config = source_inv.get("extension_config", [])
    unreadable = [qualified(c["schema"], c["name"]) for c in config
                  if not c.get("readable", True) or c.get("rows_hidden")]
    if unreadable:
        out.add("EXTENSION_CONFIG_UNREADABLE", BLOCKER, _list(unreadable),
                f"the source's user cannot read all of {len(unreadable)} extensions' configuration tables or "
                f"sequences ({_list(unreadable)}): no SELECT privilege, or row-level security hides rows; users add "
                "rows to them, which the migration copies as pg_dump does",
                "GRANT SELECT on them to the migration's user (and BYPASSRLS where row-level security is on), or "
                "migrate as their owner or a superuser")
    elif config:
        shown = [f"{qualified(c['schema'], c['name'])} ({c['extension']})" for c in config]
        online = options is not None and options.online
        out.add("EXTENSION_CONFIG_DATA", LOW if online else INFO, _list(shown),
                f"{len(config)} configuration tables and sequences of extensions ({_list(shown)}): the rows users "
                "added to them (those the extension's condition selects) and the sequences' values are copied and "
                "compared, as pg_dump carries them"
                + ("; they are copied once, in the snapshot: logical replication does not stream what changes in "
                   "them after it (a new pg_cron job, say), and the final verification names such a change"
                   if online else ""),
                "make such changes on the target after the cutover" if online else "nothing to do")
    lo = source_inv.get("large_objects", {}) or {}
    if lo.get("count", 0) > 0:
        out.add("LARGE_OBJECTS", LOW if lo.get("bytes", 0) > GB else INFO, "large objects",
                f"the source holds {lo['count']:,} large objects ({human_bytes(lo.get('bytes', 0))} in "
                "pg_largeobject); they are copied at the end, after the tables, with their OIDs kept",
                "nothing to do; columns that hold their OIDs stay valid because the OIDs are kept")
    invalid = [f"{qualified(i['schema'], i['name'])}" for i in source_inv.get("indexes", [])
               if not i.get("is_valid") and not i.get("partitioned") and (i["schema"], i["table"]) in names]
    unattached = [f"{qualified(i['schema'], i['name'])}" for i in source_inv.get("indexes", [])
                  if not i.get("is_valid") and i.get("partitioned") and (i["schema"], i["table"]) in names]
    if unattached:
        out.add("PARTITIONED_INDEXES_INCOMPLETE", INFO, _list(unattached),
                f"{len(unattached)} indexes of partitioned tables are invalid in the source ({_list(unattached)}): made "
                "with CREATE INDEX ... ON ONLY, and not every partition's index attached to them; they arrive as they "
                "are (invalid, and not used for the partitioned table)",
                "nothing to do for the migration; ALTER INDEX ... ATTACH PARTITION the partitions' indexes (on the "
                "source or the target) to make them valid")
    if invalid:
        out.add("INVALID_INDEXES", MEDIUM, _list(invalid),
                f"{len(invalid)} indexes are invalid in the source ({_list(invalid)}), left by a failed "
                "CREATE INDEX CONCURRENTLY; they are built on the target, where a unique one may fail",
                "REINDEX INDEX CONCURRENTLY them (or drop them) on the source before migrating")
    not_valid = [f"{c['name']} on {qualified(c['schema'], c['table'])}"
                 for c in source_inv.get("constraints", []) + source_inv.get("foreign_keys", [])
                 if c.get("validated") is False]
    if not_valid:
        out.add("NOT_VALID_CONSTRAINTS", INFO, _list(not_valid),
                f"{len(not_valid)} constraints are NOT VALID in the source ({_list(not_valid)}): existing rows "
                "may break them; they are created NOT VALID on the target too",
                "VALIDATE CONSTRAINT them on the source when you can, to know the data holds")
    include = list(options.include) if options is not None else []
    exclude = list(options.exclude) if options is not None else []
    matviews = [qualified(v["schema"], v["name"]) for v in source_inv.get("views", [])
                if v.get("kind") == "materialized" and matches(v["schema"], v["name"], include, exclude)]
    if matviews:
        out.add("MATERIALIZED_VIEWS", INFO, _list(matviews),
                f"{len(matviews)} materialized views ({_list(matviews)}) are created and refreshed on the target "
                "from the copied tables, not copied",
                "nothing to do; allow time for the refresh of large ones")
    disabled = [f"{t['name']} on {qualified(t['schema'], t['table'])}" for t in source_inv.get("triggers", [])
                if t.get("enabled") in ("disabled", "replica", "always") and (t["schema"], t["table"]) in names]
    if disabled:
        out.add("TRIGGER_STATE", INFO, _list(disabled),
                f"{len(disabled)} triggers are disabled or set to fire only/also on replicas ({_list(disabled)})",
                "check their state on the target after the migration and ALTER TABLE ... ENABLE/DISABLE "
                "TRIGGER as needed")


def _traffic(out: _Findings, source_inv: dict, online: bool = False) -> None:
    """Write traffic on the source. Online, writes are expected: they stream to the target, so
    nothing here tells the operator to stop them."""
    act = source_inv.get("activity", {}) or {}
    delta, writers, active = (act.get("tuples_changed_delta", 0), act.get("writing_sessions", 0),
                              act.get("active_sessions", 0))
    traffic = write_traffic(delta, act.get("window_seconds", 0), writers, online=online)
    if traffic is not None:
        out.add(traffic.code, traffic.severity, traffic.object, traffic.message, traffic.remedy)
    elif active > 0 and not online:
        out.add("ACTIVE_SESSIONS", LOW, "source database",
                f"{active} other sessions were busy in the source database while discovery ran (no writes "
                "seen); writes made after the migration starts are not copied",
                "make sure no application writes to the source during the migration")
    if act.get("prepared_xacts", 0):
        out.add("PREPARED_TRANSACTIONS", HIGH if online else MEDIUM, "source database",
                f"{act['prepared_xacts']} prepared (two-phase) transactions are open in the source: their "
                "changes are not in the snapshot and they hold locks"
                + ("; an online migration's replication slot waits for every open write transaction, so it "
                   "cannot be created while they stay open" if online else ""),
                "COMMIT PREPARED or ROLLBACK PREPARED them (see pg_prepared_xacts) before migrating")
    if act.get("publications", 0) or act.get("replication_slots", 0):
        out.add("REPLICATION_OBJECTS", INFO, "source database",
                f"the source has {act.get('publications', 0)} publications and {act.get('replication_slots', 0)} "
                "replication slots; publications and subscriptions are not copied",
                "recreate the publications you need on the target and repoint subscribers after the cutover")


def _connections(out: _Findings, source_inv: dict, target_inv: dict, options) -> None:
    jobs = _jobs(options)
    # Execution: `jobs` copy and `jobs` finishing workers, each with its connection, and a psql
    # beside each for a large table's copy (source) or check (target); the snapshot, pg_dump, post-data.
    need = jobs * 4 + 3
    for side, inv in (("source", source_inv), ("target", target_inv)):
        srv = inv.get("server", {})
        if not srv.get("max_connections"):
            continue
        used = (inv.get("activity", {}) or {}).get("connections", srv.get("connections", 0))
        reserved = 0 if srv.get("is_superuser") else srv.get("superuser_reserved_connections", 0)
        free = srv["max_connections"] - reserved - used
        if free < need:
            out.add("NOT_ENOUGH_CONNECTIONS", HIGH, f"{side} server",
                    f"the {side} server allows {srv['max_connections']} connections"
                    + (f" ({reserved} reserved for superusers)" if reserved else "")
                    + f", {used} are in use, {free} are free; {jobs} parallel jobs need {need}",
                    f"lower the number of jobs to {max(1, (free - 3) // 4)} or less, close idle connections, "
                    f"or raise max_connections on the {side} (needs a restart)")


def _locks(out: _Findings, source_inv: dict, target_inv: dict) -> None:
    """A database of many relations needs a lock table that holds a lock for each: pg_dump locks every
    relation it dumps (execution runs two at once, pre-data and post-data), and a verification reads
    every table in one snapshot. Without the room, the copy fails after approval with "out of shared
    memory"; pg_dump | pg_restore fails the same way."""
    relations = source_inv.get("server", {}).get("lockable_relations") or 0
    for side, inv, need in (("source", source_inv, 2 * relations + 100), ("target", target_inv, relations + 100)):
        srv = inv.get("server", {})
        slots = srv.get("lock_slots") or 0
        if not slots or need <= slots:
            continue
        per = srv.get("max_locks_per_transaction") or 64
        want = -(-need * per // slots)  # the same connections, enough slots
        want = max(want, 2 ** (want - 1).bit_length())
        out.add("LOCKS_TOO_FEW", BLOCKER, f"{side} server",
                f"the source database has {relations:,} tables, views and sequences; the {side} server's lock "
                f"table holds {slots:,} locks (max_locks_per_transaction {per} x connections) and the migration "
                f"needs about {need:,} at once (pg_dump locks every relation it dumps, and a verification reads "
                "every table in one snapshot): it would fail with \"out of shared memory\"",
                f"on the {side}: ALTER SYSTEM SET max_locks_per_transaction = {want}; then restart the server, and "
                "run discovery again (or migrate fewer tables at once with --include / --exclude)")


def _settings(out: _Findings, src: dict, tgt: dict, tables: Iterable[dict]) -> None:
    if src.get("timezone") and tgt.get("timezone") and src["timezone"] != tgt["timezone"]:
        out.add("TIMEZONE_DIFFERS", INFO, "target server",
                f"the source's TimeZone is {src['timezone']}, the target's {tgt['timezone']}: stored timestamptz "
                "values are the same instants, but they print differently and now()::date may change",
                f"ALTER DATABASE ... SET TimeZone = '{src['timezone']}' on the target if applications rely on it")
    total = sum(t.get("bytes", 0) for t in tables)
    if total > GB and 0 < tgt.get("maintenance_work_mem_bytes", 0) < 256 * 1024 * 1024:
        out.add("TARGET_SETTINGS", INFO, "maintenance_work_mem",
                f"the target's maintenance_work_mem is {human_bytes(tgt['maintenance_work_mem_bytes'])}: index "
                f"builds for {human_bytes(total)} of tables will be slower than they need to be",
                "raise maintenance_work_mem on the target for the migration (e.g. 1GB: ALTER SYSTEM SET "
                "maintenance_work_mem = '1GB'; SELECT pg_reload_conf())")
    if total > 10 * GB and 0 < tgt.get("max_wal_size_bytes", 0) < 8 * GB:
        out.add("TARGET_SETTINGS", INFO, "max_wal_size",
                f"the target's max_wal_size is {human_bytes(tgt['max_wal_size_bytes'])}: loading "
                f"{human_bytes(total)} will trigger frequent checkpoints",
                "raise max_wal_size on the target for the migration (e.g. ALTER SYSTEM SET max_wal_size = "
                "'16GB'; SELECT pg_reload_conf())")
    if tgt and total >= GB:
        out.add("TARGET_DISK", INFO, "target server",
                f"the selected tables take {human_bytes(total)} with their indexes in the source; the target "
                "needs at least that much free disk, plus WAL",
                "check the free space of the target's data directory before approving")
