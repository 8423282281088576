"""What a migration allows and shows now, from its folded state: the one owner of these rules.

The commands (workflow.Engine) refuse what `actions` does not allow, and the Migration message
carries the same answers to the CLI and the web page, which show them and derive none.
"""
from __future__ import annotations

from coordinator.state import END_PHASES, RUNNING_PHASES, Workflow
from dbmigrate.v1 import coordinator_pb2, events_pb2 as P

# Before the copy a cancel ends the migration at once; while it copies, the agent stops it.
CANCEL_AT_ONCE = {P.CREATED, P.DISCOVERING, P.VALIDATING, P.PLANNING, P.AWAITING_APPROVAL}
CANCELLABLE = CANCEL_AT_ONCE | {P.EXECUTING, P.SYNCING}
ROLLBACK_FROM = {P.COMPLETED, P.FAILED, P.CANCELLED}
FINISHED = {"copied", "verified"}


def rollback_allowed(wf: Workflow) -> bool:
    """Only a migration that may have written to the target (its baseline was recorded first)."""
    return wf.phase in ROLLBACK_FROM and not wf.rollback_pending and wf.phase != P.ROLLING_BACK \
        and wf.baseline_recorded


def actions(wf: Workflow, secrets_missing: bool) -> coordinator_pb2.Actions:
    waiting = wf.phase == P.AWAITING_APPROVAL
    return coordinator_pb2.Actions(
        start=wf.phase == P.CREATED and not secrets_missing,
        approve=waiting and not wf.blockers,
        deny=waiting,
        cancel=wf.phase in CANCELLABLE,
        rollback=rollback_allowed(wf),
        cutover=cutover_allowed(wf))


def cutover_allowed(wf: Workflow) -> bool:
    """Online, streaming, and no cutover or cancel under way."""
    return wf.phase == P.SYNCING and not wf.cutover_requested and not wf.cancel_requested


def settled(wf: Workflow) -> bool:
    """Ended with no rollback pending, or waiting for a person: a watcher may stop following."""
    return (wf.phase in END_PHASES and not wf.rollback_pending and not release_pending(wf)) \
        or wf.phase == P.AWAITING_APPROVAL or cutover_allowed(wf)


def release_pending(wf: Workflow) -> bool:
    """Online: the slot, publication and subscription may exist and have not been dropped yet."""
    return wf.options.online and wf.baseline_recorded and not wf.released


def progress(wf: Workflow) -> coordinator_pb2.Progress:
    """The tables' progress summed; a finished table counts whole, whatever its estimate said."""
    out = coordinator_pb2.Progress()
    if wf.compacted:  # summed when it settled
        out.ParseFromString(wf.summary)
        return out
    parts = 0.0
    for t in wf.tables.values():
        out.rows += t.rows
        out.total_rows += max(t.total_rows, t.rows)
        out.bytes += t.bytes
        out.total_bytes += max(t.total_bytes, t.bytes)
        out.tables += 1
        out.tables_done += t.status in FINISHED
        out.tables_verified += t.status == "verified"
        out.tables_failed += t.status == "failed"
        out.tables_copying += t.status == "copying"
        parts += 1.0 if t.status in FINISHED else min(t.rows / t.total_rows, 0.99) if t.total_rows else 0.0
    out.percent = 100.0 if wf.phase == P.COMPLETED else round(100.0 * parts / out.tables, 1) if out.tables else 0.0
    return out


def fill(m: coordinator_pb2.Migration, wf: Workflow, secrets_missing: bool) -> None:
    """The rules' answers into the Migration message."""
    m.blockers.extend(wf.blockers if wf.phase == P.AWAITING_APPROVAL else ())
    m.stopped_in = wf.stopped_in if wf.phase in (P.FAILED, P.CANCELLED, P.ROLLED_BACK) else P.PHASE_UNSPECIFIED
    m.actions.CopyFrom(actions(wf, secrets_missing))
    m.progress.CopyFrom(progress(wf))
    m.running = wf.phase in RUNNING_PHASES
    m.ended = wf.phase in END_PHASES
    m.settled = settled(wf)
    if wf.sync:
        m.sync.ParseFromString(wf.sync)
    m.cutover = wf.cutover
    m.source_moved.extend(wf.source_moved)
