"""A resumed attempt that knows nothing of what the first one did (every event lost) copies every
table again, including tables the first attempt's foreign keys already point at, and ends identical."""
from __future__ import annotations

import threading

from dbmigrate.v1 import agents_pb2, common_pb2
from services.execution.runner import ExecutionRun
from services.execution.server import prepare
from tests.execution.compare import assert_identical

SOURCE = """
CREATE TABLE public.accounts (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE public.events (id bigint PRIMARY KEY, account bigint NOT NULL REFERENCES public.accounts (id),
                            parent bigint REFERENCES public.events (id), note text);
CREATE INDEX events_account ON public.events (account);
INSERT INTO public.accounts SELECT g, 'a' || g FROM generate_series(1, 2000) g;
INSERT INTO public.events SELECT g, 1 + g % 2000, NULLIF(g - 1, 0), repeat('n', g % 50) FROM generate_series(1, 60000) g;
"""


def attempts(src, dst, workflow_id: str):
    """run(attempt, done) runs the execution agent's attempt in process on SOURCE; events collects
    what every attempt emitted."""
    src.execute(SOURCE)
    source, target = src.conn, dst.conn
    opts = common_pb2.MigrationOptions(jobs=2)
    baseline = prepare(agents_pb2.PrepareRequest(source=source, target=target, options=opts)).baseline
    events: list[agents_pb2.ExecutionEvent] = []

    def run(attempt: int, done: agents_pb2.ExecutionCheckpoint | None = None) -> common_pb2.ExecutionReport:
        req = agents_pb2.ExecuteRequest(workflow_id=workflow_id, source=source, target=target, options=opts,
                                        baseline=baseline, attempt=attempt, done=done)
        return ExecutionRun(req, events.append, threading.Event()).run()

    return run, events


def test_a_resume_with_every_event_lost_copies_again_and_ends_identical(new_database):
    src, dst = new_database("rlsrc"), new_database("rldst")
    run, events = attempts(src, dst, "lost")
    first = run(1)
    assert first.verified
    early = [e.step_completed.detail for e in events if e.step_completed.step == "post-data"]
    assert "foreign keys earlier" in early[0]  # the keys were made during the data phase
    # Attempt 2 is told only that the schema exists: it empties and fills every table again, though
    # foreign keys made by attempt 1 point at them, and makes those keys again.
    second = run(2, agents_pb2.ExecutionCheckpoint(steps_done=["pre-data"]))
    assert second.verified and second.rows == first.rows == 62000
    assert_identical(src.url, dst.url)


def test_a_key_an_earlier_attempt_left_not_valid_is_validated_by_a_resumed_post_data(new_database):
    """The data phase adds a key NOT VALID, then validates it. When an attempt stops between the two
    after the referenced table was sealed, the next attempt's data phase no longer holds that table;
    its post-data finds the key made and validates it, so the target ends with the source's key."""
    src, dst = new_database("nvsrc"), new_database("nvdst")
    run, events = attempts(src, dst, "notvalid")
    assert run(1).verified
    dst.execute("ALTER TABLE public.events DROP CONSTRAINT events_account_fkey")
    dst.execute("ALTER TABLE public.events ADD CONSTRAINT events_account_fkey FOREIGN KEY (account) "
                "REFERENCES public.accounts (id) NOT VALID")  # as an attempt stopped before VALIDATE leaves it
    tables = ["public.accounts", "public.events"]
    done = agents_pb2.ExecutionCheckpoint(
        steps_done=["pre-data"] + [f"indexes:{t}" for t in tables], tables_verified=tables,
        units_done=[e.table_copied.unit for e in events if e.HasField("table_copied")]
        + [e.table_verified.copied.unit for e in events if e.table_verified.HasField("copied")])
    assert run(2, done).verified
    assert dst.scalar("SELECT convalidated FROM pg_constraint WHERE conname = 'events_account_fkey'") is True
    assert_identical(src.url, dst.url)


def test_prepare_refuses_a_target_that_has_the_sources_tables_and_names_them(new_database):
    """Before anything is written: a target holding tables the source has is refused (names quoted as
    PostgreSQL needs them), unless the migration replaces them; excluded tables do not count."""
    import pytest
    from services.common.errors import FailedPrecondition

    src, dst = new_database("ptsrc"), new_database("ptdst")
    src.execute('CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Order Lines" (id int); CREATE TABLE public.keep (id int);'
                "CREATE TABLE public.other (id int)")
    dst.execute('CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Order Lines" (id int); CREATE TABLE public.other (x int)')
    opts = common_pb2.MigrationOptions(jobs=2)
    with pytest.raises(FailedPrecondition) as refused:
        prepare(agents_pb2.PrepareRequest(source=src.conn, target=dst.conn, options=opts))
    assert "already has 2 of the source's tables" in str(refused.value)
    assert '"Sales"."Order Lines"' in str(refused.value) and "public.other" in str(refused.value)
    opts.exclude.append("public.other")
    with pytest.raises(FailedPrecondition) as refused:
        prepare(agents_pb2.PrepareRequest(source=src.conn, target=dst.conn, options=opts))
    assert "already has 1 of the source's tables" in str(refused.value)
    opts.on_target_not_empty = common_pb2.REPLACE
    assert not prepare(agents_pb2.PrepareRequest(source=src.conn, target=dst.conn, options=opts)).baseline.empty
