"""The database's own settings: `ALTER DATABASE d SET name = value` and `ALTER ROLE r IN DATABASE d
SET name = value` (pg_db_role_setting), which every new session of the database starts with.

pg_dump writes them only with --create, which a migration into an existing database cannot use, so
execution reads them from the source and sets them on the target database (services/execution,
step database-settings), the final verification compares them, and discovery names those the target
server would refuse.
"""
from __future__ import annotations

import psycopg
from psycopg import sql

from services.common.pg import is_transient

SETTINGS_SQL = """SELECT coalesce(pg_get_userbyid(NULLIF(s.setrole, 0)), ''), x.item
                 FROM pg_db_role_setting s
                 JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) AS x(item)
                WHERE d.datname = current_database()"""

# pg_dump's variable_is_guc_list_quote: settings whose value is a list of items, each quoted on its own
# (search_path = '"$user", public' would be one schema named that whole string).
LIST_QUOTE = {"local_preload_libraries", "search_path", "session_preload_libraries", "shared_preload_libraries",
              "temp_tablespaces", "unix_socket_directories"}


def database_settings(c: psycopg.Connection) -> dict[tuple[str, str], str]:
    """(role, or '' for every role; setting name) -> value, of the connection's database."""
    out = {}
    for role, item in c.execute(SETTINGS_SQL):
        name, _, value = item.partition("=")
        out[(role, name)] = value
    return out


def split_list(value: str) -> list[str]:
    """The items of a list setting as the server stores it (PostgreSQL's SplitGUCList): separated by
    commas, each optionally in double quotes (a quote inside doubled)."""
    items, i, n = [], 0, len(value)
    while True:
        while i < n and value[i].isspace():
            i += 1
        if i < n and value[i] == '"':
            i += 1
            item = []
            while i < n:
                if value[i] == '"':
                    if i + 1 < n and value[i + 1] == '"':
                        item.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                item.append(value[i])
                i += 1
            items.append("".join(item))
        else:
            start = i
            while i < n and value[i] != ",":
                i += 1
            items.append(value[start:i].rstrip())
        while i < n and value[i].isspace():
            i += 1
        if i >= n or value[i] != ",":
            return items
        i += 1


def set_statement(database: str, role: str, name: str, value: str) -> sql.Composed:
    """ALTER DATABASE (or ROLE ... IN DATABASE) ... SET name = value, as pg_dump --create writes it."""
    where = (sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), sql.Identifier(database)) if role
             else sql.SQL("ALTER DATABASE {}").format(sql.Identifier(database)))
    if name.lower() in LIST_QUOTE:
        to = sql.SQL(", ").join(sql.Literal(v) for v in split_list(value))
    else:
        to = sql.Literal(value)
    return sql.SQL("{} SET {} TO {}").format(where, sql.Identifier(name), to)


def reset_statement(database: str, role: str, name: str) -> sql.Composed:
    where = (sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), sql.Identifier(database)) if role
             else sql.SQL("ALTER DATABASE {}").format(sql.Identifier(database)))
    return sql.SQL("{} RESET {}").format(where, sql.Identifier(name))


def shown(role: str, name: str) -> str:
    return f"{name} (for role {role})" if role else name


COMMENT_SQL = "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()"


def database_comment(c: psycopg.Connection) -> str | None:
    return c.execute(COMMENT_SQL).fetchone()[0]


def comment_statement(database: str, comment: str | None) -> sql.Composed:
    return sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(database), sql.Literal(comment))


def copy_database_comment(source: psycopg.Connection, target: psycopg.Connection) -> str:
    """The source database's comment on the target database (pg_dump writes it only with --create,
    as the settings); "" when there is nothing to do."""
    want = database_comment(source)
    if want is None or database_comment(target) == want:
        return ""
    try:
        target.execute(comment_statement(target.info.dbname, want))
    except psycopg.Error as err:
        if is_transient(err):
            raise
        return f"the database's comment NOT SET: {err.diag.message_primary or err}"
    return "the database's comment set"


def copy_database_settings(source: psycopg.Connection, target: psycopg.Connection) -> str:
    """Sets the source database's settings on the target database (autocommit: each on its own);
    settings the target already had and the source does not stay (they are its operator's).
    Returns what it did, naming every setting it could not set and why."""
    want, have = database_settings(source), database_settings(target)
    todo = sorted((k, v) for k, v in want.items() if have.get(k) != v)
    if not todo:
        return f"the target database already has the source's {len(want)} settings" if want else \
            "the source database has no settings of its own"
    roles = {r for (r,) in target.execute("SELECT rolname FROM pg_roles")}
    done, refused = [], []
    for (role, name), value in todo:
        if role and role not in roles:
            refused.append(f"{shown(role, name)}: role {role} does not exist on the target")
            continue
        try:
            target.execute(set_statement(target.info.dbname, role, name, value))
            done.append(shown(role, name))
        except psycopg.Error as err:
            if is_transient(err):  # the target went away: the step is retried, not a setting left unset
                raise
            refused.append(f"{shown(role, name)}: {err.diag.message_primary or err}")
    parts = [f"{len(done)} database settings set ({', '.join(done[:10])}{' and more' if len(done) > 10 else ''})"] \
        if done else []
    if refused:
        parts.append(f"NOT SET ({len(refused)}): " + "; ".join(refused))
    return "; ".join(parts)
