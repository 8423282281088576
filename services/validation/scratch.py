"""Scratch databases on the target server: the sample test migration's, and the one Verify renders the
source's schema into when the servers' major versions differ. One name per workflow and purpose, so a
retried call finds and drops what an interrupted one left."""
from __future__ import annotations

import re
import uuid
from contextlib import contextmanager

import psycopg
from psycopg import sql

from dbmigrate.v1 import common_pb2
from services.common.errors import FailedPrecondition
from services.common.pg import connect

SAMPLE_PREFIX = "dbmigrate_scratch_"
RENDER_PREFIX = "dbmigrate_render_"


def scratch_name(workflow_id: str, prefix: str = SAMPLE_PREFIX) -> str:
    tag = re.sub(r"[^a-z0-9_]", "_", (workflow_id or f"adhoc_{uuid.uuid4().hex[:12]}").lower())[:40]
    return prefix + tag


def drop_scratch(admin: psycopg.Connection, name: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create_scratch(admin: psycopg.Connection, name: str, purpose: str) -> None:
    """A new empty database with the encoding and locale of `admin`'s database."""
    enc, collate, ctype = admin.execute(
        "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database "
        "WHERE datname = current_database()").fetchone()
    try:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
            sql.Identifier(name), sql.Literal(enc), sql.Literal(collate), sql.Literal(ctype)))
    except psycopg.errors.InsufficientPrivilege:
        raise FailedPrecondition(
            f"the target user cannot create the scratch database {name} for {purpose}: grant it CREATEDB "
            "(ALTER ROLE ... CREATEDB) or run the migration as a user that has it") from None


@contextmanager
def scratch_database(target: common_pb2.Connection, name: str, purpose: str):
    """A Connection to a fresh scratch database `name` on the target server, dropped afterwards
    (and before, when an interrupted run of the same workflow left it)."""
    scratch = common_pb2.Connection()
    scratch.CopyFrom(target)
    scratch.dbname = name
    with connect(target, "target", autocommit=True, application_name="dbmigrate-validation") as admin:
        drop_scratch(admin, name)
        create_scratch(admin, name, purpose)
        try:
            yield scratch
        finally:
            drop_scratch(admin, name)
