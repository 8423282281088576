"""Protobuf messages from the coordinator as plain JSON for the API and the page, secrets removed."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor

from dbmigrate.v1 import common_pb2, coordinator_pb2, events_pb2
from services.common.eventlines import describe, phase_name

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


# ---- the migration as the page shows it ----

STEPS = (("discovery", "Discovery", events_pb2.DISCOVERING), ("validation", "Validation", events_pb2.VALIDATING),
         ("generation", "Plan", events_pb2.PLANNING), ("approval", "Approval", events_pb2.AWAITING_APPROVAL),
         ("execution", "Execution", events_pb2.EXECUTING))
_STEP_INDEX = {phase: i for i, (_, _, phase) in enumerate(STEPS)}
_STOPPED = {events_pb2.FAILED: "failed", events_pb2.CANCELLED: "cancelled"}


def steps(m: coordinator_pb2.Migration) -> list[dict[str, str]]:
    """The step indicator: discovery, validation, plan, approval, execution, each pending/active/done/...
    For a migration that stopped early, the coordinator's `stopped_in` says where."""
    states = ["pending"] * len(STEPS)
    phase = events_pb2.EXECUTING if m.phase == events_pb2.SYNCING else m.phase  # streaming: the execution goes on
    if phase in _STEP_INDEX:
        at = _STEP_INDEX[phase]
        states = ["done"] * at + ["waiting" if m.phase == events_pb2.AWAITING_APPROVAL else "active"] \
            + ["pending"] * (len(STEPS) - at - 1)
    elif m.phase == events_pb2.COMPLETED:
        states = ["done"] * len(STEPS)
    elif m.phase == events_pb2.DENIED:
        states = ["done", "done", "done", "denied", "skipped"]
    elif m.phase in (events_pb2.FAILED, events_pb2.CANCELLED, events_pb2.ROLLED_BACK, events_pb2.ROLLING_BACK):
        stop = 0 if m.stopped_in == events_pb2.CREATED else \
            _STEP_INDEX.get(m.stopped_in, len(STEPS) - 1)  # a rollback follows an execution
        states = ["done"] * stop + [_STOPPED.get(m.phase, "rolled_back")] + ["skipped"] * (len(STEPS) - stop - 1)
    return [{"id": key, "label": label, "state": state} for (key, label, _), state in zip(STEPS, states)]


def migration_view(m: coordinator_pb2.Migration) -> dict[str, Any]:
    """The Migration message as JSON (blockers, actions, progress and state are the coordinator's)
    plus the step indicator drawn from them."""
    out = to_json(m)
    out["steps"] = steps(m)
    out["awaiting_approval"] = m.phase == events_pb2.AWAITING_APPROVAL
    return out


def migration_summary(m: coordinator_pb2.Migration) -> dict[str, Any]:
    """One line of the history list."""
    return {"id": m.id, "name": m.name, "phase": phase_name(m.phase), "source_url": m.source_url,
            "target_url": m.target_url, "risk": common_pb2.Risk.Name(m.risk),
            "created_at": iso_time(m.created_at), "updated_at": iso_time(m.updated_at),
            "error": m.error, "progress": round(m.progress.percent, 1)}


# ---- events as log lines (the wording is services.common.eventlines', shared with the CLI) ----

def log_line(ev: events_pb2.WorkflowEvent) -> dict[str, Any] | None:
    """A line a person reads in the live log, or None for events that are only progress ticks."""
    line = describe(ev)
    if line is None:
        return None
    return {"seq": ev.seq, "version": ev.version, "time": iso_time(ev.time), "level": line.level,
            "service": line.service, "event": ev.WhichOneof("payload"), "message": line.text}


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
