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
