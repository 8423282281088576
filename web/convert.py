"""Protobuf messages from the coordinator as plain JSON for the API and the page, secrets removed."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor

from dbmigrate.v1 import common_pb2, coordinator_pb2, events_pb2
from services.common.logs import redact

# Fields that carry a secret in some message; they are dropped from every answer, whatever their value.
SECRET_FIELDS = frozenset({"password", "api_key"})

AGENT_REPORTS = ("discovery", "validation", "generation", "execution", "verification")

_WELL_KNOWN_AS_JSON = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    if field.type == FieldDescriptor.TYPE_BYTES:
        return value.hex()
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return round(value, 3) if value == value and value not in (float("inf"), float("-inf")) else None
    return value


def to_json(message) -> dict[str, Any]:
    """Every field (defaults included) by its proto name; enums by name, int64 as numbers, times in ISO 8601.

    Unlike json_format.MessageToDict, 64-bit integers stay numbers: the page does arithmetic on them.
    """
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        if field.name in SECRET_FIELDS:
            continue
        value = getattr(message, field.name)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                out[field.name] = {k: (_message(v) if hasattr(v, "DESCRIPTOR") else v) for k, v in value.items()}
            elif field.is_repeated:
                out[field.name] = [_message(v) for v in value]
            elif field.containing_oneof is not None and not message.HasField(field.name):
                continue
            elif not message.HasField(field.name) and field.message_type.full_name == "google.protobuf.Timestamp":
                out[field.name] = None
            else:
                out[field.name] = _message(value)
        elif field.is_repeated:
            out[field.name] = [_scalar(field, v) for v in value]
        else:
            out[field.name] = _scalar(field, value)
    return out


def _message(value) -> Any:
    name = value.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        return iso_time(value)
    if name in _WELL_KNOWN_AS_JSON:
        return json_format.MessageToDict(value)
    return to_json(value)


def iso_time(ts) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    moment = datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def phase_name(phase: int) -> str:
    return events_pb2.Phase.Name(phase) if phase in events_pb2.Phase.values() else str(phase)


# ---- the migration as the page shows it ----

RUNNING = {"DISCOVERING", "VALIDATING", "PLANNING", "EXECUTING", "ROLLING_BACK"}
ENDED = {"COMPLETED", "DENIED", "FAILED", "CANCELLED", "ROLLED_BACK"}
STEPS = (("discovery", "Discovery", "DISCOVERING"), ("validation", "Validation", "VALIDATING"),
         ("generation", "Plan", "PLANNING"), ("approval", "Approval", "AWAITING_APPROVAL"),
         ("execution", "Execution", "EXECUTING"))
_STEP_INDEX = {phase: i for i, (_, _, phase) in enumerate(STEPS)}


def _execution_started(m: coordinator_pb2.Migration) -> bool:
    return bool(m.steps_done or m.approval_comment or m.rollback_pending
                or any(t.status != "pending" or t.rows for t in m.tables))


def steps(m: coordinator_pb2.Migration, reports: coordinator_pb2.Report | None = None) -> list[dict[str, str]]:
    """The step indicator: discovery, validation, plan, approval, execution, each pending/active/done/...

    For a migration that stopped early (failed, cancelled) the report that is missing tells where it
    stopped; `reports` carries which ones exist (the Migration message alone does not say).
    """
    phase = phase_name(m.phase)
    states = ["pending"] * len(STEPS)
    if phase in _STEP_INDEX:
        at = _STEP_INDEX[phase]
        states = ["done"] * at + ["active"] + ["pending"] * (len(STEPS) - at - 1)
        if phase == "AWAITING_APPROVAL":
            states[at] = "waiting"
    elif phase == "COMPLETED":
        states = ["done"] * len(STEPS)
    elif phase == "DENIED":
        states = ["done", "done", "done", "denied", "skipped"]
    elif phase in ("FAILED", "CANCELLED", "ROLLED_BACK", "ROLLING_BACK"):
        have = [bool(reports and reports.HasField(name)) for name in ("discovery", "validation", "generation")]
        if False in have:
            stop = have.index(False)
        elif phase == "CANCELLED" and not _execution_started(m):
            stop = 3  # cancelled while it waited for approval
        else:
            stop = 4  # only the execution (or its final verify) fails after the plan
        mark = {"FAILED": "failed", "CANCELLED": "cancelled"}.get(phase, "rolled_back")
        states = ["done"] * stop + [mark] + ["skipped"] * (len(STEPS) - stop - 1)
    return [{"id": key, "label": label, "state": state} for (key, label, _), state in zip(STEPS, states)]


def progress(m: coordinator_pb2.Migration) -> dict[str, Any]:
    rows = sum(t.rows for t in m.tables)
    total_rows = sum(max(t.total_rows, t.rows) for t in m.tables)
    size = sum(t.bytes for t in m.tables)
    total_bytes = sum(max(t.total_bytes, t.bytes) for t in m.tables)
    done = sum(1 for t in m.tables if t.status in ("copied", "verified"))
    if m.tables:
        # Tables that are finished count whole, whatever their estimate said.
        parts = [1.0 if t.status in ("copied", "verified")
                 else (min(t.rows / t.total_rows, 0.99) if t.total_rows else 0.0) for t in m.tables]
        percent = 100.0 * sum(parts) / len(parts)
    else:
        percent = 0.0
    if phase_name(m.phase) == "COMPLETED":
        percent = 100.0
    return {"rows": rows, "total_rows": total_rows, "bytes": size, "total_bytes": total_bytes,
            "tables_done": done, "tables": len(m.tables), "percent": round(percent, 1),
            "tables_verified": sum(1 for t in m.tables if t.status == "verified"),
            "tables_failed": sum(1 for t in m.tables if t.status == "failed")}


def blockers(reports: coordinator_pb2.Report | None) -> list[str]:
    """Why an approval would be refused (the coordinator's rule, shown before the click)."""
    if reports is None:
        return []
    out = [f"{f.code}: {f.message}" for f in reports.generation.findings if f.severity == common_pb2.BLOCKER]
    if reports.HasField("validation") and not reports.validation.passed:
        out.append("VALIDATION_FAILED: the sample test migration did not pass")
    return out


def migration_view(m: coordinator_pb2.Migration, reports: coordinator_pb2.Report | None = None) -> dict[str, Any]:
    """The Migration message plus what the page derives from it: steps, totals, allowed actions."""
    out = to_json(m)
    phase = out["phase"]
    out["steps"] = steps(m, reports)
    out["progress"] = progress(m)
    out["running"] = phase in RUNNING
    out["ended"] = phase in ENDED
    out["awaiting_approval"] = phase == "AWAITING_APPROVAL"
    out["blockers"] = blockers(reports) if phase == "AWAITING_APPROVAL" else []
    out["actions"] = {
        "start": phase == "CREATED" and not m.secrets_missing,
        "approve": phase == "AWAITING_APPROVAL" and not out["blockers"],
        "deny": phase == "AWAITING_APPROVAL",
        "cancel": phase in ("CREATED", "DISCOVERING", "VALIDATING", "PLANNING", "AWAITING_APPROVAL", "EXECUTING"),
        # Only when the migration may have created something in the target.
        "rollback": not m.rollback_pending and (phase == "COMPLETED" or (
            phase in ("FAILED", "CANCELLED") and _execution_started(m))),
    }
    return out


def migration_summary(m: coordinator_pb2.Migration) -> dict[str, Any]:
    """One line of the history list."""
    return {"id": m.id, "name": m.name, "phase": phase_name(m.phase), "source_url": m.source_url,
            "target_url": m.target_url, "risk": common_pb2.Risk.Name(m.risk),
            "created_at": iso_time(m.created_at), "updated_at": iso_time(m.updated_at),
            "error": m.error, "progress": progress(m)["percent"]}


# ---- events as log lines ----

def _fmt_rows(n: int) -> str:
    return f"{n:,}"


def _fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def log_line(ev: events_pb2.WorkflowEvent) -> dict[str, Any] | None:
    """A line a person reads in the live log, or None for events that are only progress ticks."""
    kind = ev.WhichOneof("payload")
    level, service, text = "info", "coordinator", ""
    p = getattr(ev, kind) if kind else None
    if kind == "migration_created":
        text = f"migration created: {p.name}"
    elif kind == "migration_started":
        text = "migration started"
    elif kind == "phase_started":
        text = f"phase {phase_name(p.phase)}"
    elif kind == "agent_call_failed":
        level, service = "warning", p.agent
        text = f"{p.agent} agent call failed (attempt {p.attempt}): {p.error}" + ("; retrying" if p.retryable else "")
    elif kind == "discovery_completed":
        service = "discovery"
        text = f"discovery done: {len(p.report.tables)} tables, {len(p.report.findings)} findings" + (
            f" — {p.report.summary}" if p.report.summary else "")
    elif kind == "validation_completed":
        service = "validation"
        level = "info" if p.report.passed else "error"
        text = f"validation {'passed' if p.report.passed else 'FAILED'}" + (
            f" — {p.report.summary}" if p.report.summary else "")
    elif kind == "plan_generated":
        service = "generation"
        text = (f"plan ready: risk {common_pb2.Risk.Name(p.report.risk).removeprefix('RISK_')}, "
                f"recommendation {common_pb2.Recommendation.Name(p.report.recommendation)}")
    elif kind == "approval_requested":
        text = "waiting for approval"
    elif kind == "approved":
        text = "approved" + (f": {p.comment}" if p.comment else "")
    elif kind == "denied":
        level = "warning"
        text = f"denied: {p.reason}"
    elif kind == "target_baseline_recorded":
        service = "execution"
        text = "target baseline recorded (what the target held before the migration)"
    elif kind == "execution_attempted":
        service = "execution"
        text = f"execution attempt {p.attempt}" if p.attempt > 1 else "execution started"
    elif kind == "step_started":
        service = "execution"
        text = f"step {p.step} started" + (f": {p.description}" if p.description else "")
    elif kind == "step_completed":
        service = "execution"
        text = f"step {p.step} done" + (f" in {p.seconds:.1f}s" if p.seconds else "") + (
            f" — {p.detail}" if p.detail else "")
    elif kind == "table_copied":
        service = "execution"
        part = f" part {p.part}/{p.parts}" if p.parts > 1 else ""
        text = f"{p.table}{part} copied: {_fmt_rows(p.rows)} rows, {_fmt_bytes(p.bytes)}" + (
            f" in {p.seconds:.1f}s" if p.seconds else "")
    elif kind == "table_verified":
        service = "execution"
        r = p.result
        text = f"{r.table} verified: {_fmt_rows(r.target_rows)} rows, checksums equal"
    elif kind == "table_failed":
        level, service = "error", "execution"
        text = f"{p.table} failed: {p.error}"
    elif kind == "log":
        level, service, text = (p.level or "info").lower(), p.service or "execution", p.message
    elif kind == "execution_finished":
        service = "execution"
        text = "execution finished" + (f" — {p.report.summary}" if p.report.summary else "")
    elif kind == "verification_completed":
        service = "validation"
        level = "info" if p.report.equal else "error"
        text = f"final verification: {'databases equal' if p.report.equal else 'DIFFERENCES FOUND'}" + (
            f" — {p.report.summary}" if p.report.summary else "")
    elif kind == "migration_completed":
        text = "migration completed"
    elif kind == "migration_failed":
        level = "error"
        text = f"migration failed in {phase_name(p.phase)}: {p.error}"
    elif kind == "cancel_requested":
        level = "warning"
        text = f"cancel requested: {p.reason}"
    elif kind == "migration_cancelled":
        level = "warning"
        text = f"migration cancelled: {p.reason}" + ("; rolling the target back" if p.rollback_pending else "")
    elif kind == "rollback_requested":
        level = "warning"
        text = f"rollback requested: {p.reason}"
    elif kind == "rolled_back":
        service = "execution"
        text = "target rolled back" + (f" — {p.report.summary}" if p.report.summary else "")
    elif kind == "rollback_failed":
        level = "error"
        text = f"rollback failed: {p.error}"
    else:
        return None
    return {"seq": ev.seq, "version": ev.version, "time": iso_time(ev.time), "level": level, "service": service,
            "event": kind, "message": redact(text)}


REPORT_EVENTS = {"discovery_completed": "discovery", "validation_completed": "validation",
                 "plan_generated": "generation", "execution_finished": "execution",
                 "migration_completed": "execution", "verification_completed": "verification"}


def event_json(ev: events_pb2.WorkflowEvent) -> dict[str, Any]:
    """One event for the server-sent stream: its envelope, its log line, and its payload unless it is a report."""
    kind = ev.WhichOneof("payload")
    out: dict[str, Any] = {"workflow_id": ev.workflow_id, "seq": ev.seq, "version": ev.version,
                           "time": iso_time(ev.time), "type": kind, "log": log_line(ev)}
    if kind in REPORT_EVENTS:
        out["report"] = REPORT_EVENTS[kind]  # reports are large: the page reads them from /api/reports
    elif kind:
        out["payload"] = to_json(getattr(ev, kind))
    return out
