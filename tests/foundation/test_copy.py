"""The libpq COPY paths (read_copy, write_copy) against a real server: the same stream and digest as
psycopg's COPY, the row counts the server reports, errors as psycopg errors, a session left usable
(or closed when it was left mid-COPY) and bounded chunks."""
from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import sql

from services.common.copy import CHUNK, copy_direct, copy_in_sql, pump, read_copy, write_copy
from services.common.errors import Cancelled

OUT = sql.SQL("COPY public.t (id, v) TO STDOUT (FORMAT binary)")
IN = copy_in_sql("public", "t", ["id", "v"], binary=True)


@pytest.fixture
def pair(new_database):
    src, dst = new_database("csrc"), new_database("cdst")
    src.execute("CREATE TABLE public.t (id int, v text)")
    src.execute("INSERT INTO public.t SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 30000) g")
    dst.execute("CREATE TABLE public.t (id int, v text)")
    return src, dst


def psycopg_digest(conn: psycopg.Connection, statement) -> str:
    with conn.cursor() as cur, cur.copy(statement) as cp:
        return pump(cp)[0]


def test_the_stream_digest_and_row_count_are_psycopgs(pair):
    src, _ = pair
    with src.connect(autocommit=True) as c:
        counted: list[int] = []
        chunks = list(read_copy(c, OUT, counted=counted))
        assert counted == [30000]
        assert all(len(ch) >= CHUNK for ch in chunks[:-1]) and max(map(len, chunks)) < CHUNK + 64 * 1024
        assert pump(iter(chunks))[0] == psycopg_digest(c, OUT)
        assert c.execute("SELECT 1").fetchone() == (1,)  # idle again


def test_a_copy_runs_inside_the_open_transaction_it_finds(pair):
    src, dst = pair
    with src.connect() as s, dst.connect() as d:
        s.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        s.execute("SELECT 1")  # the snapshot is taken
        with psycopg.connect(src.url, autocommit=True) as other:
            other.execute("INSERT INTO public.t VALUES (0, 'later')")
        stats = copy_direct(s, d, OUT, IN)  # d: no autocommit, idle: psycopg's COPY opens its transaction
        assert stats.rows == 30000  # the row inserted after the snapshot is not seen
        d.rollback()
        assert d.execute("SELECT count(*) FROM public.t").fetchone() == (0,)
    with dst.connect(autocommit=True) as d, d.transaction():
        with src.connect() as s:
            s.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            s.execute("SELECT 1")
            assert copy_direct(s, d, OUT, IN).rows == 30001
    assert dst.scalar("SELECT count(*) FROM public.t") == 30001


def test_errors_are_psycopgs_and_the_session_stays_usable(pair):
    src, dst = pair
    with src.connect(autocommit=True) as c:
        with pytest.raises(psycopg.errors.UndefinedTable):
            list(read_copy(c, sql.SQL("COPY public.nosuch TO STDOUT")))
        assert c.execute("SELECT 2").fetchone() == (2,)
    with dst.connect(autocommit=True) as d:
        d.execute("ALTER TABLE public.t ADD CHECK (id < 100)")
        with src.connect(autocommit=True) as s:
            with pytest.raises(psycopg.errors.CheckViolation):
                copy_direct(s, d, OUT, IN)
            assert s.execute("SELECT 3").fetchone() == (3,)
        assert d.execute("SELECT count(*) FROM public.t").fetchone() == (0,)  # all rows or none


def test_a_failing_writer_ends_the_copy_with_its_error(pair):
    src, dst = pair

    def chunks():
        yield b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
        raise RuntimeError("the source went away")

    with dst.connect(autocommit=True) as d:
        with pytest.raises(RuntimeError):
            write_copy(d, IN, chunks())
        assert d.execute("SELECT count(*) FROM public.t").fetchone() == (0,)


def test_a_copy_left_mid_stream_or_cancelled_closes_its_session(pair):
    src, _ = pair
    with src.connect(autocommit=True) as c:
        it = read_copy(c, OUT)
        next(it)
        it.close()
        assert c.closed
    cancel = threading.Event()
    cancel.set()
    with src.connect(autocommit=True) as c:
        c.execute("SELECT 1")
        with pytest.raises(Cancelled):
            list(read_copy(c, sql.SQL("COPY (SELECT pg_sleep(5)) TO STDOUT"), cancel=cancel))
        assert c.closed
