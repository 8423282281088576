"""Workflow events as the lines a person reads: one wording, for `dbmigrate watch` and the web page's log.

describe(ev) -> Line(level, service, text), or None for an event that is only a progress tick. The
CLI puts a time before the text and draws its progress bars beside; the web page shows the level
and the service. Secrets never reach the text (redact).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from dbmigrate.v1 import common_pb2, events_pb2
from services.common.logs import redact
from services.common.text import human_bytes


class Line(NamedTuple):
    level: str     # info, warning, error
    service: str   # who said it: coordinator, discovery, validation, generation, execution
    text: str


def phase_name(phase: int) -> str:
    return events_pb2.Phase.Name(phase) if phase in events_pb2.Phase.values() else str(phase)


def _risk(value: int) -> str:
    return common_pb2.Risk.Name(value).removeprefix("RISK_") if value in common_pb2.Risk.values() else str(value)


def _rec(value: int) -> str:
    return common_pb2.Recommendation.Name(value) if value in common_pb2.Recommendation.values() else str(value)


def _with(summary: str) -> str:
    return f" - {summary}" if summary else ""


def _discovery(p):
    r = p.report
    worst = max((f.severity for f in r.findings), default=0)
    return Line("info", "discovery", f"discovery done: {len(r.tables)} tables, {len(r.findings)} findings"
                + (f" (worst {common_pb2.Severity.Name(worst)})" if worst else "") + _with(r.summary))


def _validation(p):
    r = p.report
    word = "skipped" if r.skipped else "passed" if r.passed else "FAILED"
    return Line("info" if r.passed or r.skipped else "error", "validation", f"validation {word}{_with(r.summary)}")


def _plan(p):
    r = p.report
    return Line("info", "generation", f"plan: risk {_risk(r.risk)}, recommendation {_rec(r.recommendation)}, "
                                      f"{len(r.plan.tables)} tables, {r.plan.jobs} jobs")


def _step(p):
    if ":" in p.step:  # one table's indexes: the table's own lines say it
        return None
    return Line("info", "execution", f"step {p.step} done" + (f" in {p.seconds:,.1f}s" if p.seconds else "")
                + (f" ({p.detail})" if p.detail else ""))


def _copied(p):
    part = f" part {p.part}/{p.parts}" if p.parts > 1 else ""
    return Line("info", "execution", f"copied {p.table}{part}: {p.rows:,} rows, {human_bytes(p.bytes)}"
                + (f" in {p.seconds:,.1f}s" if p.seconds else "") + (f" ({p.copy_format})" if p.copy_format else ""))


def _verified(p):
    r = p.result
    if p.HasField("copied"):  # a small table's copy, proof and seal in one event
        return Line("info", "execution", _copied(p.copied).text + ", verified: checksum equal")
    return Line("info", "execution", f"verified {r.table}: {r.target_rows:,} rows, checksum equal")


def _final(p):
    r = p.report
    return Line("info" if r.equal else "error", "validation",
                f"final verification: {'source and target are equal' if r.equal else 'DIFFERENCES found'}"
                + _with(r.summary))


def _sync(p):
    s = p.status
    text = (f"stream: lag {human_bytes(s.lag_bytes)} ({s.lag_seconds:,.1f}s), {s.changes_applied:,} changes applied "
            f"({s.apply_rate:,.0f}/s)" + ("" if s.streaming else ", NOT streaming")
            + (f", {s.apply_errors} apply errors" if s.apply_errors else ""))
    if s.problems:
        return Line("warning", "execution", text + "; " + "; ".join(s.problems))
    return Line("info", "execution", text)


_LINES: dict[str, Callable] = {
    "migration_created": lambda p: Line("info", "coordinator", f"migration created: {p.name}"),
    "migration_started": lambda p: Line("info", "coordinator", "migration started"),
    "agent_call_failed": lambda p: Line("warning", p.agent, f"{p.agent} agent call failed (attempt {p.attempt}): "
                                                            f"{p.error}" + ("; retrying" if p.retryable else "")),
    "discovery_completed": _discovery,
    "validation_completed": _validation,
    "plan_generated": _plan,
    "approval_requested": lambda p: Line("info", "coordinator", f"waiting for approval: risk {_risk(p.risk)}, "
                                                                f"recommendation {_rec(p.recommendation)}"),
    "approved": lambda p: Line("info", "coordinator", "approved" + (f": {p.comment}" if p.comment else "")),
    "denied": lambda p: Line("warning", "coordinator", f"denied: {p.reason}"),
    "target_baseline_recorded": lambda p: Line("info", "execution",
                                               "target baseline recorded (what a rollback restores)"),
    "execution_attempted": lambda p: Line("info", "execution", f"execution attempt {p.attempt}" if p.attempt > 1
                                          else "execution started"),
    "step_started": lambda p: None if ":" in p.step else Line("info", "execution", f"step {p.step} started"),
    "step_completed": _step,
    "table_copied": _copied,
    "table_verified": _verified,
    "table_failed": lambda p: Line("error", "execution", f"FAILED {p.table}: {p.error}"),
    "log": lambda p: Line((p.level or "info").lower(), p.service or "execution", p.message),
    "execution_finished": lambda p: Line("info", "execution", f"execution finished: {p.report.rows:,} rows, "
                                         f"{human_bytes(p.report.bytes)} in {p.report.seconds:,.1f}s, "
                                         + ("all tables verified" if p.report.verified else "NOT all tables verified")),
    "verification_completed": _final,
    "migration_completed": lambda p: Line("info", "coordinator", "migration COMPLETED"),
    "migration_failed": lambda p: Line("error", "coordinator", f"migration FAILED in {phase_name(p.phase)}: {p.error}"
                                       + ("; rolling the target back" if p.rollback_pending else "")),
    "cancel_requested": lambda p: Line("warning", "coordinator", f"cancel requested: {p.reason}"),
    "migration_cancelled": lambda p: Line("warning", "coordinator", f"migration CANCELLED: {p.reason}"
                                          + ("; rolling the target back" if p.rollback_pending else "")),
    "rollback_requested": lambda p: Line("warning", "coordinator", f"rollback requested: {p.reason}"),
    "rolled_back": lambda p: Line("info", "execution", "target rolled back" + (f": {p.report.summary}"
                                                                                if p.report.summary else "")),
    "rollback_failed": lambda p: Line("error", "coordinator", f"ROLLBACK FAILED: {p.error}"),
    "sync_started": lambda p: Line("info", "coordinator", f"SYNCING: the source's writes stream to the target "
                                   f"(slot {p.slot}, publication {p.publication}, subscription {p.subscription}); "
                                   "stop the application's writes, then cut over"),
    "sync_progress": _sync,
    "cutover_requested": lambda p: Line("info", "coordinator", "cutover requested: waiting for the target to apply "
                                        "the source's last writes"),
    "cutover_caught_up": lambda p: Line("info", "execution", f"cutover: caught up to {p.lsn} in {p.seconds:,.1f}s, "
                                        f"{len(p.sequences)} sequences set from the source; verifying everything"),
    "cutover_verified": lambda p: Line("info", "coordinator", f"cutover verified: {p.detail}"),
    "cutover_refused": lambda p: Line("error", "coordinator", f"CUTOVER REFUSED (still SYNCING): {p.reason}"),
    "replication_released": lambda p: Line("warning" if p.detail.startswith("NOT") else "info", "execution",
                                           f"replication released: {p.detail}"),
}


def describe(ev: events_pb2.WorkflowEvent) -> Line | None:
    kind = ev.WhichOneof("payload")
    render = _LINES.get(kind) if kind else None
    line = render(getattr(ev, kind)) if render else None
    return None if line is None else line._replace(text=redact(line.text))
