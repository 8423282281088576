"""Discovery of an online migration's needs (services/discovery/online.py) against real servers.

The session's PostgreSQL 15 cluster with wal_level=logical (tests/fixtures/pg.py, trust authentication) is
the source of most tests; the machine's PostgreSQL 15 (wal_level=replica) is the one that cannot be.
"""
from __future__ import annotations

import uuid

import psycopg
import pytest

from dbmigrate.v1 import agents_pb2, common_pb2
from services.discovery import inventory as inventory_mod
from services.discovery.discover import discover
from services.discovery.online import CODES


@pytest.fixture(autouse=True)
def short_sample(monkeypatch):
    monkeypatch.setattr(inventory_mod, "SAMPLE_SECONDS", 0.05)


def request(src, dst, **options) -> agents_pb2.DiscoverRequest:
    source = src if isinstance(src, common_pb2.Connection) else src.conn
    target = dst if isinstance(dst, common_pb2.Connection) else dst.conn
    return agents_pb2.DiscoverRequest(workflow_id="wf-online", source=source, target=target,
                                      options=common_pb2.MigrationOptions(**options))


def by_code(report, code):
    return [f for f in report.findings if f.code == code]


def online_blockers(report):
    return [f for f in report.findings if f.code in CODES and f.severity == common_pb2.BLOCKER]


SCHEMA = """
    CREATE TABLE public.accounts (id bigserial PRIMARY KEY, balance int NOT NULL);
    CREATE TABLE public.orders (id int PRIMARY KEY, account bigint REFERENCES public.accounts, note text);
    INSERT INTO public.accounts (balance) SELECT g FROM generate_series(1, 10) g;
"""


@pytest.fixture
def role(pg15_logical):
    """A LOGIN role that is neither superuser nor REPLICATION; dropped afterwards."""
    name = f"dbm_norep_{uuid.uuid4().hex[:8]}"
    pg15_logical.execute(f"CREATE ROLE {name} LOGIN")
    try:
        yield name
    finally:
        pg15_logical.execute(f"DROP ROLE IF EXISTS {name}")


def test_a_source_with_wal_level_replica_cannot_be_online(new_database):
    src, dst = new_database("onsrc"), new_database("ondst")
    src.execute(SCHEMA)
    report = discover(request(src, dst, online=True))
    wal = by_code(report, "WAL_LEVEL_NOT_LOGICAL")
    assert len(wal) == 1 and wal[0].severity == common_pb2.BLOCKER
    assert "'replica'" in wal[0].message and "wal_level = logical" in wal[0].remedy
    assert "restart" in wal[0].remedy
    assert report.findings[0].severity == common_pb2.BLOCKER


def test_a_table_without_a_key_needs_a_replica_identity(new_database15_logical):
    src, dst = new_database15_logical("onsrc"), new_database15_logical("ondst")
    src.execute(SCHEMA + """
        CREATE TABLE public.nokey (a int, b text);
        CREATE TABLE public.natural (code text NOT NULL, v int);
        CREATE UNIQUE INDEX natural_code ON public.natural (code);
    """)
    report = discover(request(src, dst, online=True))
    f = by_code(report, "NO_REPLICA_IDENTITY")
    assert len(f) == 1 and f[0].severity == common_pb2.BLOCKER
    assert "public.nokey" in f[0].object and "public.natural" in f[0].object
    assert "accounts" not in f[0].object and "orders" not in f[0].object
    assert "UPDATE and DELETE" in f[0].message
    assert "REPLICA IDENTITY FULL" in f[0].remedy and "60%" in f[0].remedy and "--exclude" in f[0].remedy
    # the unique index on a NOT NULL column is offered as the identity
    assert "ALTER TABLE public.natural REPLICA IDENTITY USING INDEX natural_code" in f[0].remedy
    assert not by_code(report, "WAL_LEVEL_NOT_LOGICAL")

    src.execute("ALTER TABLE public.nokey REPLICA IDENTITY FULL; "
                "ALTER TABLE public.natural REPLICA IDENTITY USING INDEX natural_code")
    fixed = discover(request(src, dst, online=True))
    assert not by_code(fixed, "NO_REPLICA_IDENTITY")
    # excluded, it does not count either
    src.execute("ALTER TABLE public.nokey REPLICA IDENTITY DEFAULT")
    assert by_code(discover(request(src, dst, online=True)), "NO_REPLICA_IDENTITY")
    assert not by_code(discover(request(src, dst, online=True, exclude=["public.nokey"])), "NO_REPLICA_IDENTITY")


def test_a_user_without_replication_may_neither_replicate_nor_publish_nor_subscribe(pg15_logical, new_database15_logical,
                                                                                      role):
    src, dst = new_database15_logical("onsrc"), new_database15_logical("ondst")
    src.execute(SCHEMA)
    source, target = src.conn, dst.conn
    source.user = target.user = role
    report = discover(request(source, target, online=True))

    rep = by_code(report, "REPLICATION_PRIVILEGE_MISSING")
    assert len(rep) == 1 and rep[0].severity == common_pb2.BLOCKER and role in rep[0].message
    assert f"ALTER ROLE {role} REPLICATION" in rep[0].remedy and "rds_replication" in rep[0].remedy
    pub = by_code(report, "PUBLICATION_NOT_PERMITTED")
    assert len(pub) == 1 and pub[0].severity == common_pb2.BLOCKER
    assert "public.accounts" in pub[0].message and "public.orders" in pub[0].message
    assert "CREATE" in pub[0].message and "GRANT CREATE ON DATABASE" in pub[0].remedy
    sub = by_code(report, "SUBSCRIPTION_NOT_PERMITTED")  # PostgreSQL 15: superusers only
    assert len(sub) == 1 and sub[0].severity == common_pb2.BLOCKER and "superuser" in sub[0].message

    # REPLICATION given, tables owned, CREATE granted: the source side is satisfied
    pg15_logical.execute(f"ALTER ROLE {role} REPLICATION")
    src.execute(f"ALTER TABLE public.accounts OWNER TO {role}; ALTER TABLE public.orders OWNER TO {role}; "
                f"GRANT CREATE ON DATABASE {src.name} TO {role}")
    try:
        again = discover(request(source, target, online=True))
        assert not by_code(again, "REPLICATION_PRIVILEGE_MISSING")
        assert not by_code(again, "PUBLICATION_NOT_PERMITTED")
    finally:
        src.execute(f"REASSIGN OWNED BY {role} TO postgres; DROP OWNED BY {role}")


def test_a_leftover_slot_is_named_with_its_wal_and_how_to_drop_it(pg15_logical, new_database15_logical):
    src, dst = new_database15_logical("onsrc"), new_database15_logical("ondst")
    src.execute(SCHEMA)
    src.execute("SELECT pg_create_logical_replication_slot('dbmigrate_leftover', 'pgoutput')")
    try:
        src.execute("INSERT INTO public.accounts (balance) SELECT g FROM generate_series(1, 1000) g")
        report = discover(request(src, dst, online=True))
        offline = discover(request(src, dst))
    finally:
        src.execute("SELECT pg_drop_replication_slot('dbmigrate_leftover')")
    f = by_code(report, "LEFTOVER_SLOTS")
    assert len(f) == 1 and f[0].severity == common_pb2.MEDIUM
    assert "dbmigrate_leftover" in f[0].object and src.name in f[0].message
    assert " of WAL" in f[0].message
    assert "SELECT pg_drop_replication_slot('dbmigrate_leftover')" in f[0].remedy
    slots = report.details["source"]["replication_slots"]
    assert [s["name"] for s in slots] == ["dbmigrate_leftover"] and slots[0]["retained_wal_bytes"] > 0
    assert not by_code(offline, "LEFTOVER_SLOTS")


def test_a_clean_logical_source_has_no_online_blocker(new_database15_logical):
    src, dst = new_database15_logical("onsrc"), new_database15_logical("ondst")
    src.execute(SCHEMA)
    source = src.conn
    source.password = "n0t-Shown-anywhere"  # trust authentication: given, never asked for
    with src.connect() as writer:
        writer.execute("UPDATE public.accounts SET balance = balance + 1 WHERE id = 1")  # an open write
        report = discover(request(source, dst, online=True))
        writer.rollback()

    assert not online_blockers(report), online_blockers(report)
    assert not [f for f in report.findings if f.severity == common_pb2.BLOCKER], report.findings
    assert by_code(report, "DDL_NOT_STREAMED")[0].severity == common_pb2.INFO
    seq = by_code(report, "SEQUENCES_NOT_STREAMED")
    assert seq and seq[0].severity == common_pb2.INFO and "1 sequences" in seq[0].message
    assert by_code(report, "SLOT_WAL_UNLIMITED")[0].severity == common_pb2.MEDIUM
    assert "pg_reload_conf" in by_code(report, "SLOT_WAL_UNLIMITED")[0].remedy
    stored = by_code(report, "SUBSCRIPTION_STORES_PASSWORD")
    assert stored and stored[0].severity == common_pb2.INFO
    assert not by_code(report, "LARGE_OBJECTS_NOT_STREAMED") and not by_code(report, "LEFTOVER_SLOTS")
    traffic = by_code(report, "WRITE_TRAFFIC")  # online: writes stream, nothing says to stop them
    assert traffic and traffic[0].severity == common_pb2.INFO and "being written" in traffic[0].message
    assert "stop" not in (traffic[0].message + traffic[0].remedy).lower()
    for f in report.findings:
        assert "n0t-Shown-anywhere" not in f.message + f.remedy + f.object
    assert "n0t-Shown-anywhere" not in str(report.details)
    facts = report.details["source"]["replication"]
    assert facts["wal_level"] == "logical" and facts["connection_has_password"] is True
    assert facts["connection_used_password"] is False

    src.execute("SELECT lo_from_bytea(0, 'a large object')")
    lo = by_code(discover(request(src, dst, online=True)), "LARGE_OBJECTS_NOT_STREAMED")
    assert lo and lo[0].severity == common_pb2.HIGH and "1 large objects" in lo[0].message


def test_an_offline_migration_gets_none_of_the_online_findings(new_database15_logical):
    src, dst = new_database15_logical("onsrc"), new_database15_logical("ondst")
    src.execute(SCHEMA + "CREATE TABLE public.nokey (a int); CREATE UNLOGGED TABLE public.scratch (id int PRIMARY KEY); "
                         "SELECT lo_from_bytea(0, 'x');")
    report = discover(request(src, dst))
    assert not [f for f in report.findings if f.code in CODES], [f.code for f in report.findings]
    assert "replication" not in report.details["source"]
    online = discover(request(src, dst, online=True))
    assert {"NO_REPLICA_IDENTITY", "LARGE_OBJECTS_NOT_STREAMED", "DDL_NOT_STREAMED"} <= {f.code for f in online.findings}
    # an unlogged table cannot be in a publication ("cannot add relation ... to publication")
    unlogged = by_code(online, "PUBLICATION_NOT_PERMITTED")
    assert len(unlogged) == 1 and unlogged[0].object == "public.scratch" and "SET LOGGED" in unlogged[0].remedy
    assert "public.scratch" not in by_code(online, "NO_REPLICA_IDENTITY")[0].object


def test_a_pg18_target_user_needs_pg_create_subscription(new_database15_logical, pg18, new_database18):
    src, dst = new_database15_logical("onsrc"), new_database18("ondst")
    src.execute(SCHEMA)
    name = f"dbm_nosub_{uuid.uuid4().hex[:8]}"
    pg18.execute(f"CREATE ROLE {name} LOGIN")
    try:
        target = dst.conn
        target.user = name
        report = discover(request(src, target, online=True))
        sub = by_code(report, "SUBSCRIPTION_NOT_PERMITTED")
        assert len(sub) == 1 and sub[0].severity == common_pb2.BLOCKER
        assert "pg_create_subscription" in sub[0].message and f"GRANT pg_create_subscription TO {name}" in sub[0].remedy
        assert report.details["target"]["replication"]["create_subscription_member"] is False

        pg18.execute(f"GRANT pg_create_subscription TO {name}")
        dst.execute(f"GRANT CREATE ON DATABASE {dst.name} TO {name}")
        member = discover(request(src, target, online=True))
        sub = by_code(member, "SUBSCRIPTION_NOT_PERMITTED")  # still: the source connection has no password
        assert len(sub) == 1 and "password" in sub[0].message
        assert member.details["target"]["replication"]["create_subscription_member"] is True
        assert not by_code(member, "REPLICATION_WORKERS_TOO_FEW")
    finally:
        with psycopg.connect(dst.url, autocommit=True) as c:
            c.execute(f"REVOKE ALL ON DATABASE {dst.name} FROM {name}")
        pg18.execute(f"DROP ROLE IF EXISTS {name}")
