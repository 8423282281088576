"""The coordinator's rules (coordinator/rules.py) from folded events: allowed actions, blockers, where a
failure stopped, progress; the Migration message carries them so that clients derive none."""
from __future__ import annotations

from coordinator import rules
from coordinator.state import replay
from dbmigrate.v1 import agents_pb2, common_pb2, coordinator_pb2, events_pb2 as E
from tests.coordinator.test_state import ev, happy_path


def state_after(events):
    return replay(events)["w1"]


def migration(wf, secrets_missing=False) -> coordinator_pb2.Migration:
    m = coordinator_pb2.Migration()
    rules.fill(m, wf, secrets_missing)
    return m


def test_each_phase_allows_what_the_engine_accepts():
    events = happy_path()
    created = migration(state_after(events[:1]))
    assert created.actions.start and created.actions.cancel and not created.actions.rollback
    assert not migration(state_after(events[:1]), secrets_missing=True).actions.start
    waiting = migration(state_after(events[:6]))
    assert waiting.actions.approve and waiting.actions.deny and waiting.actions.cancel and waiting.settled
    copying = migration(state_after(events[:9]))
    assert copying.running and copying.actions.cancel and not copying.actions.approve and not copying.settled
    done = migration(state_after(events))
    assert done.ended and done.settled and done.actions.rollback and not done.actions.cancel
    assert done.progress.percent == 100.0 and done.progress.tables_verified == 1 and done.progress.rows == 10


def test_a_blocker_refuses_approval_and_is_named():
    events = happy_path()[:4] + [
        ev("w1", 5, plan_generated=E.PlanGenerated(report=common_pb2.GenerationReport(
            recommendation=common_pb2.DENY, findings=[common_pb2.Finding(
                code="ROLES_MISSING", severity=common_pb2.BLOCKER, object="role app", message="app is missing")]))),
        ev("w1", 6, approval_requested=E.ApprovalRequested())]
    m = migration(state_after(events))
    assert not m.actions.approve and m.actions.deny
    assert list(m.blockers) == ["ROLES_MISSING (role app): app is missing"]


def test_a_failure_says_where_it_stopped_and_rollback_only_after_a_write():
    events = happy_path()[:3] + [ev("w1", 4, migration_failed=E.MigrationFailed(phase=E.VALIDATING, error="x"))]
    m = migration(state_after(events))
    assert m.stopped_in == E.VALIDATING and m.ended and not m.actions.rollback  # nothing was written
    events = happy_path()[:9] + [ev("w1", 10, migration_failed=E.MigrationFailed(phase=E.EXECUTING, error="x"))]
    m = migration(state_after(events))
    assert m.stopped_in == E.EXECUTING and m.actions.rollback


def test_a_cancel_while_waiting_stops_in_approval():
    events = happy_path()[:6] + [ev("w1", 7, migration_cancelled=E.MigrationCancelled(reason="no"))]
    m = migration(state_after(events))
    assert m.stopped_in == E.AWAITING_APPROVAL and not m.actions.rollback and not m.actions.cancel


def test_progress_counts_a_finished_table_whole_and_the_others_by_rows():
    events = happy_path()[:8] + [ev("w1", 9, table_progress=agents_pb2.TableProgress(
        table="public.t", rows=5, total_rows=10, bytes=100, total_bytes=200))]
    p = migration(state_after(events)).progress
    assert (p.tables, p.tables_copying, p.rows, p.total_rows, p.percent) == (1, 1, 5, 10, 50.0)


def _many_tables(n: int, wid: str = "w1"):
    """A plan of n tables, then a mix of what the execution says of them: some copying, some copied,
    verified or failed, a table the plan did not name, progress going back and forth."""
    import random
    rnd = random.Random(n)
    plan = common_pb2.MigrationPlan(tables=[common_pb2.PlannedTable(schema="public", name=f"t_{i}", rows=100 + i,
                                                                    bytes=1000 + i) for i in range(n)])
    events = happy_path(wid)[:4] + [
        ev(wid, 5, plan_generated=E.PlanGenerated(report=common_pb2.GenerationReport(
            recommendation=common_pb2.APPROVE, plan=plan))),
        ev(wid, 6, approval_requested=E.ApprovalRequested()), ev(wid, 7, approved=E.Approved())]
    names = [f"public.t_{i}" for i in range(n)] + ["public.extra"]
    for _ in range(6 * n):
        name, v = rnd.choice(names), len(events) + 1
        kind = rnd.choice(["progress", "progress", "copied", "verified", "failed"])
        if kind == "progress":
            events.append(ev(wid, v, table_progress=agents_pb2.TableProgress(
                table=name, rows=rnd.randint(0, 300), total_rows=rnd.choice([0, 150, 300]), bytes=rnd.randint(0, 9))))
        elif kind == "copied":
            events.append(ev(wid, v, table_copied=agents_pb2.TableCopied(unit=f"{name}#{v}", table=name, rows=7,
                                                                          bytes=3)))
        elif kind == "verified":
            events.append(ev(wid, v, table_verified=agents_pb2.TableVerified(result=common_pb2.TableResult(
                table=name, source_rows=9, target_rows=9, verified=True))))
        else:
            events.append(ev(wid, v, table_failed=agents_pb2.TableFailed(table=name, error="x")))
    return events


def test_the_summed_progress_the_fold_keeps_equals_a_count_of_every_table():
    """GetMigration reads the sums the fold keeps as each table changes (a migration of 20,000 tables
    would otherwise be summed again at every poll): after any mix of events they equal a count."""
    wf = state_after(_many_tables(300))
    p = rules.progress(wf)
    tables = wf.table_list()
    assert len(tables) == 301 and p.tables == 301
    assert p.rows == sum(t.rows for t in tables) and p.bytes == sum(t.bytes for t in tables)
    assert p.total_rows == sum(max(t.total_rows, t.rows) for t in tables)
    assert p.tables_done == sum(t.status in ("copied", "verified") for t in tables)
    assert p.tables_verified == sum(t.status == "verified" for t in tables)
    assert p.tables_failed == sum(t.status == "failed" for t in tables) > 0
    assert p.tables_copying == sum(t.status == "copying" for t in tables) > 0
    parts = sum(1.0 if t.status in ("copied", "verified") else min(t.rows / t.total_rows, 0.99) if t.total_rows
                else 0.0 for t in tables)
    assert abs(p.percent - 100.0 * parts / len(tables)) < 0.06


def test_a_migration_lists_the_tables_a_view_asks_for():
    """GetMigration lists what the client's view shows: a live view (TABLES_AUTO) every table of a small
    migration, of a large one those being copied and the failed ones; a filter by name or glob; a limit.
    The summary counts every table whatever is listed."""
    from coordinator.service import to_migration

    class Engine:
        def secrets_missing(self, wf):
            return False

    big = state_after(_many_tables(300))
    names = lambda m: [t.table for t in m.tables]  # noqa: E731
    every = to_migration(big, Engine())
    assert len(every.tables) == every.tables_matched == 301 and every.progress.tables == 301
    auto = to_migration(big, Engine(), coordinator_pb2.TABLES_AUTO)
    assert auto.tables_matched == len(auto.tables) > 0 and auto.progress == every.progress
    assert {t.status for t in auto.tables} <= {"copying", "copied", "failed"}
    assert names(auto) == [t.table for t in every.tables if t.status in ("copying", "copied", "failed")]
    failed = to_migration(big, Engine(), coordinator_pb2.TABLES_FAILED)
    assert failed.tables_matched == every.progress.tables_failed and {t.status for t in failed.tables} == {"failed"}
    none = to_migration(big, Engine(), coordinator_pb2.TABLES_NONE)
    assert not none.tables and none.progress == every.progress and none.phase == every.phase
    assert names(to_migration(big, Engine(), coordinator_pb2.TABLES_ALL, "T_29")) == \
        ["public.t_29", *[f"public.t_{i}" for i in range(290, 300)]]  # a part of the name, any case
    assert names(to_migration(big, Engine(), coordinator_pb2.TABLES_ALL, "public.t_1?")) == \
        [f"public.t_{i}" for i in range(10, 20)]  # a glob
    limited = to_migration(big, Engine(), coordinator_pb2.TABLES_ALL, "t_1", table_limit=5)
    assert len(limited.tables) == 5 and limited.tables_matched == 111
    small = state_after(_many_tables(rules.AUTO_ALL_TABLES - 1))  # and public.extra: AUTO_ALL_TABLES
    assert len(to_migration(small, Engine(), coordinator_pb2.TABLES_AUTO).tables) == rules.AUTO_ALL_TABLES
    one_more = state_after(_many_tables(rules.AUTO_ALL_TABLES))
    assert len(to_migration(one_more, Engine(), coordinator_pb2.TABLES_AUTO).tables) < rules.AUTO_ALL_TABLES + 1


def test_verified_only_when_completed_and_proven():
    events = happy_path()
    assert migration(state_after(events)).verified
    assert not migration(state_after(events[:-1])).verified  # not completed yet
    differ = events[:12] + [ev("w1", 13, verification_completed=E.VerificationCompleted(
        report=common_pb2.VerifyReport(equal=False))), ev("w1", 14, migration_completed=E.MigrationCompleted())]
    assert not migration(state_after(differ)).verified
