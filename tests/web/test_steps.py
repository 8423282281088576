"""The page's step indicator is drawn from the coordinator's phase and stopped_in, nothing else."""
from __future__ import annotations

from dbmigrate.v1 import coordinator_pb2, events_pb2 as E
from web.convert import steps


def states(phase, stopped_in=E.PHASE_UNSPECIFIED):
    return [s["state"] for s in steps(coordinator_pb2.Migration(phase=phase, stopped_in=stopped_in))]


def test_a_stopped_migration_marks_the_step_it_stopped_in():
    assert states(E.CANCELLED, E.CREATED) == ["cancelled", "skipped", "skipped", "skipped", "skipped"]
    assert states(E.FAILED, E.VALIDATING) == ["done", "failed", "skipped", "skipped", "skipped"]
    assert states(E.CANCELLED, E.AWAITING_APPROVAL) == ["done", "done", "done", "cancelled", "skipped"]
    assert states(E.FAILED, E.EXECUTING) == ["done", "done", "done", "done", "failed"]
    assert states(E.ROLLED_BACK) == ["done", "done", "done", "done", "rolled_back"]


def test_running_and_waiting_steps():
    assert states(E.VALIDATING) == ["done", "active", "pending", "pending", "pending"]
    assert states(E.AWAITING_APPROVAL) == ["done", "done", "done", "waiting", "pending"]
    assert states(E.COMPLETED) == ["done"] * 5
    assert states(E.DENIED) == ["done", "done", "done", "denied", "skipped"]
