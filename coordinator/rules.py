"""What a migration allows and shows now, from its folded state: the one owner of these rules.

The commands (workflow.Engine) refuse what `actions` does not allow, and the Migration message
carries the same answers to the CLI and the web page, which show them and derive none.
"""
from __future__ import annotations

import fnmatch

from coordinator.state import END_PHASES, FINISHED, PART_UNITS, RUNNING_PHASES, TableState, Workflow
from dbmigrate.v1 import coordinator_pb2, events_pb2 as P

# Before the copy a cancel ends the migration at once; while it copies, the agent stops it.
CANCEL_AT_ONCE = {P.CREATED, P.DISCOVERING, P.VALIDATING, P.PLANNING, P.AWAITING_APPROVAL}
CANCELLABLE = CANCEL_AT_ONCE | {P.EXECUTING, P.SYNCING}
ROLLBACK_FROM = {P.COMPLETED, P.FAILED, P.CANCELLED}
# A live view (TABLES_AUTO) lists every table of a migration up to this many; beyond, one line a
# table is no view: the tables being copied and the failed ones, beside the summary (progress).
AUTO_ALL_TABLES = 50


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
    """The tables' progress summed (the fold keeps the sums); a finished table counts whole,
    whatever its estimate said."""
    out = coordinator_pb2.Progress()
    if wf.compacted:  # summed when it settled
        out.ParseFromString(wf.summary)
        return out
    s = wf.totals
    out.rows, out.total_rows, out.bytes, out.total_bytes = s.rows, s.total_rows, s.bytes, s.total_bytes
    out.tables, out.tables_done, out.tables_verified = s.tables, s.done, s.verified
    out.tables_failed, out.tables_copying = s.failed, s.copying
    out.percent = 100.0 if wf.phase == P.COMPLETED else \
        round(100.0 * s.parts / PART_UNITS / s.tables, 1) if s.tables else 0.0
    return out


def verified(wf: Workflow) -> bool:
    """COMPLETED and proven: the final verification found the target equal to the source's snapshot,
    or (skipped by option) the execution proved every table as it copied it."""
    if wf.phase != P.COMPLETED:
        return False
    if wf.verified_equal is not None:
        return wf.verified_equal
    return wf.options.skip_final_verify and wf.execution_verified


_ACTIVE = frozenset({"copying", "copied"})
_VIEWS = {
    coordinator_pb2.TABLES_ALL: lambda t: True,
    coordinator_pb2.TABLES_ACTIVE: lambda t: t.status in _ACTIVE,
    coordinator_pb2.TABLES_FAILED: lambda t: t.status == "failed",
    coordinator_pb2.TABLES_PENDING: lambda t: t.status == "pending",
    coordinator_pb2.TABLES_DONE: lambda t: t.status in FINISHED,
    coordinator_pb2.TABLES_AUTO: lambda t: t.status in _ACTIVE or t.status == "failed",
}


def name_filter(text: str):
    """The test a table name passes for `text`: a glob (*, ?, [...]) on "schema.table", with or
    without its quotes; otherwise a case-insensitive part of the name. Empty: every name."""
    if not text:
        return lambda name: True
    if any(c in text for c in "*?["):
        return lambda name: fnmatch.fnmatchcase(name, text) or fnmatch.fnmatchcase(name.replace('"', ""), text)
    needle = text.lower()
    return lambda name: needle in name.lower()


def listed_tables(wf: Workflow, view: int, text: str = "", limit: int = 0) -> tuple[list[TableState], int]:
    """The tables a GetMigration answer lists for `view` and the filter `text`, in the plan's order,
    at most `limit` (0: all), and how many matched."""
    if view == coordinator_pb2.TABLES_NONE:
        return [], 0
    if view == coordinator_pb2.TABLES_AUTO and wf.totals.tables <= AUTO_ALL_TABLES:
        view = coordinator_pb2.TABLES_ALL
    keep, named = _VIEWS.get(view, _VIEWS[coordinator_pb2.TABLES_ALL]), name_filter(text)
    out, matched = [], 0
    for name in wf.table_order:
        t = wf.tables[name]
        if keep(t) and named(name):
            matched += 1
            if not limit or len(out) < limit:
                out.append(t)
    return out, matched


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
    m.verified = verified(wf)
