"""Rows users add to an extension's configuration tables arrive, as pg_dump carries them (PostGIS's
spatial_ref_sys and pg_cron's jobs are such tables): the copy of the user's tables leaves extension
members out, and these rows were lost while the migration said "equal"."""
from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from dbmigrate.v1 import events_pb2 as E
from services.validation.verify import verify
from tests.coordinator.helpers import logged_events
from tests.migrations import create, drive
from tests.validation.test_verify import request

SCRIPT = """
CREATE TABLE @extschema@.dbm_cfg_settings (id int PRIMARY KEY, name text NOT NULL, builtin boolean NOT NULL DEFAULT false);
INSERT INTO @extschema@.dbm_cfg_settings VALUES (1, 'shipped', true), (2, 'shipped too', true);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.dbm_cfg_settings', 'WHERE NOT builtin');
CREATE TABLE @extschema@.dbm_cfg_jobs (id serial PRIMARY KEY, command text);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.dbm_cfg_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.dbm_cfg_jobs_id_seq', '');
-- copied first by name, but it needs rows of dbm_cfg_settings
CREATE TABLE @extschema@.dbm_cfg_a_links (id int PRIMARY KEY, setting int REFERENCES @extschema@.dbm_cfg_settings (id));
SELECT pg_catalog.pg_extension_config_dump('@extschema@.dbm_cfg_a_links', '');
"""


@pytest.fixture
def config_extension():
    """An extension of our own with two configuration tables (one with a filter condition, one dumped
    whole) and a configuration sequence, installed into the local PostgreSQL's extension directory."""
    from services.common.pgtools import wheel_bin_dir
    name = f"dbm_cfg_{uuid.uuid4().hex[:8]}"
    files = []
    for pg_config in (Path("/usr/lib/postgresql/15/bin/pg_config"), wheel_bin_dir() / "pg_config"):
        share = Path(subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True,
                                    check=True).stdout.strip()) / "extension"
        control, script = share / f"{name}.control", share / f"{name}--1.0.sql"
        control.write_text("comment = 'dbmigrate test: configuration tables'\ndefault_version = '1.0'\n"
                           "relocatable = false\nschema = public\n")
        script.write_text(SCRIPT)
        files += [control, script]
    try:
        yield name
    finally:
        for f in files:
            f.unlink(missing_ok=True)


@pytest.mark.parametrize("target_major", [15, 18])
def test_rows_added_to_extension_configuration_tables_arrive(stack_factory, new_database, new_database18,
                                                             config_extension, target_major):
    src = new_database("extsrc")
    dst = new_database("extdst") if target_major == 15 else new_database18("extdst")
    src.execute(f"""
        CREATE EXTENSION {config_extension};
        INSERT INTO dbm_cfg_settings VALUES (10, 'mine', false), (11, 'mine too', false);
        UPDATE dbm_cfg_settings SET name = 'shipped, renamed' WHERE id = 2;  -- not the user's: stays as shipped
        INSERT INTO dbm_cfg_jobs (command) SELECT 'job ' || g FROM generate_series(1, 5) g;
        DELETE FROM dbm_cfg_jobs WHERE id = 3;
        INSERT INTO dbm_cfg_a_links VALUES (1, 10), (2, 1);
        CREATE TABLE orders (id int PRIMARY KEY, setting int REFERENCES dbm_cfg_settings (id));
        INSERT INTO orders VALUES (1, 10), (2, 1);
    """)
    stack = stack_factory().start()
    ch, stub = stack.coordinator_stub()
    with ch:
        m = drive(stub, create(stub, src.url, dst.url))
    assert E.Phase.Name(m.phase) == "COMPLETED", m.error
    with psycopg.connect(dst.url) as d:
        assert d.execute("SELECT id, name, builtin FROM dbm_cfg_settings ORDER BY id").fetchall() == [
            (1, "shipped", True), (2, "shipped too", True), (10, "mine", False), (11, "mine too", False)]
        assert d.execute("SELECT id, command FROM dbm_cfg_jobs ORDER BY id").fetchall() == [
            (1, "job 1"), (2, "job 2"), (4, "job 4"), (5, "job 5")]
        assert d.execute("SELECT last_value, is_called FROM dbm_cfg_jobs_id_seq").fetchone() == (5, True)
        assert d.execute("SELECT count(*) FROM orders").fetchone()[0] == 2
        assert d.execute("SELECT * FROM dbm_cfg_a_links ORDER BY id").fetchall() == [(1, 10), (2, 1)]
    discovery = [e.discovery_completed for e in logged_events(stack, m.id)
                 if e.WhichOneof("payload") == "discovery_completed"]
    assert [f for f in discovery[0].report.findings if f.code == "EXTENSION_CONFIG_DATA"]
    # the verification compares them: a user's row changed on the target is a difference
    assert verify(request(src, dst)).equal
    dst.execute("UPDATE dbm_cfg_settings SET name = 'changed' WHERE id = 11")
    report = verify(request(src, dst))
    assert not report.equal
    assert [(o.kind, o.name, o.difference) for o in report.objects] == [
        ("extension_data", "public.dbm_cfg_settings", "changed")]
    dst.execute("UPDATE dbm_cfg_settings SET name = 'mine too' WHERE id = 11")
    if target_major != 15:
        return
    # what pg_dump | pg_restore gives, as the reference
    ref = new_database("extref")
    dump = subprocess.run(["pg_dump", "-Fc", "-d", src.url], capture_output=True, check=True).stdout
    subprocess.run(["pg_restore", "-d", ref.url], input=dump, capture_output=True, check=True)
    with psycopg.connect(ref.url) as r, psycopg.connect(dst.url) as d:
        for q in ("SELECT * FROM dbm_cfg_settings WHERE NOT builtin ORDER BY id", "SELECT * FROM dbm_cfg_jobs ORDER BY id",
                  "SELECT * FROM dbm_cfg_a_links ORDER BY id"):
            assert d.execute(q).fetchall() == r.execute(q).fetchall()
    for db in (src, dst, ref):
        db.execute(f"DROP TABLE IF EXISTS orders; DROP EXTENSION IF EXISTS {config_extension} CASCADE")
