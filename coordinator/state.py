"""Workflow state as a pure fold over events: apply(state, event) -> state, no clock, no I/O."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from immutables import Map

from dbmigrate.v1 import common_pb2, events_pb2
from services.common.catalog import quote_ident
from services.common.errors import DBMigrateError

_EMPTY = Map()

P = events_pb2  # Phase values live in the events module

RUNNING_PHASES = {P.DISCOVERING, P.VALIDATING, P.PLANNING, P.EXECUTING, P.SYNCING, P.ROLLING_BACK}
END_PHASES = {P.COMPLETED, P.DENIED, P.FAILED, P.CANCELLED, P.ROLLED_BACK}


class UnknownEvent(DBMigrateError):
    """An event type the fold does not know: replay stops rather than skipping a fact."""


class OutOfOrderEvent(DBMigrateError):
    """An event whose version does not follow the state's version."""


@dataclass(frozen=True)
class TableState:
    table: str
    rows: int = 0
    bytes: int = 0
    total_rows: int = 0
    total_bytes: int = 0
    rows_per_second: float = 0.0
    eta_seconds: float = 0.0
    status: str = "pending"
    error: str = ""
    parts_done: int = 0
    parts: int = 1


FINISHED = frozenset({"copied", "verified"})
PART_UNITS = 1_000_000  # a table's share of the progress, in millionths (integers: a sum kept exact)


@dataclass(frozen=True)
class Totals:
    """The tables' progress summed, kept by the fold as each table changes (each change adds its
    difference): answering GetMigration reads these instead of summing 20,000 tables each time."""
    tables: int = 0
    rows: int = 0
    total_rows: int = 0
    bytes: int = 0
    total_bytes: int = 0
    done: int = 0        # copied or verified
    verified: int = 0
    failed: int = 0
    copying: int = 0
    parts: int = 0       # finished tables whole, the others by rows against their estimate (PART_UNITS each)

    def plus(self, t: "TableState", sign: int = 1) -> "Totals":
        finished = t.status in FINISHED
        share = PART_UNITS if finished else \
            int(PART_UNITS * min(t.rows / t.total_rows, 0.99)) if t.total_rows > 0 else 0
        return Totals(self.tables + sign, self.rows + sign * t.rows, self.total_rows + sign * max(t.total_rows, t.rows),
                      self.bytes + sign * t.bytes, self.total_bytes + sign * max(t.total_bytes, t.bytes),
                      self.done + sign * finished, self.verified + sign * (t.status == "verified"),
                      self.failed + sign * (t.status == "failed"), self.copying + sign * (t.status == "copying"),
                      self.parts + sign * share)


@dataclass(frozen=True)
class Workflow:
    """Everything the coordinator knows about one migration. Reports are kept serialized (immutable)."""

    id: str
    version: int
    last_seq: int
    created_at: int            # microseconds since the epoch, from the event
    updated_at: int
    name: str
    created: bytes             # MigrationCreated: redacted connections, options, advisor
    phase: int = P.CREATED
    started: bool = False
    discovery: bytes = b""
    discovery_brief: bytes = b""  # the discovery report as the agents get it (agents_discovery)
    validation: bytes = b""
    rendered: bytes = b""      # the validation's RenderedSchema, for the final verification's request
    generation: bytes = b""
    execution: bytes = b""
    verification: bytes = b""
    verified_equal: bool | None = None  # the last final verification's answer (None: none ran)
    execution_verified: bool = False    # the execution proved every table it copied
    risk: int = 0
    recommendation: int = 0
    blockers: tuple[str, ...] = ()
    error: str = ""
    stopped_in: int = P.PHASE_UNSPECIFIED  # the phase a FAILED or CANCELLED migration stopped in
    approval_comment: str = ""
    deny_reason: str = ""
    baseline: bytes = b""
    baseline_recorded: bool = False
    execution_attempts: int = 0
    agent_failures: int = 0
    # Persistent maps (immutables: a HAMT, the structure behind contextvars): adding one of 20,000
    # tables or units copies a few nodes, not the whole collection, so the fold stays linear.
    steps_done: Map = _EMPTY            # step -> True
    units_done: Map = _EMPTY            # unit -> True
    tables_verified: Map = _EMPTY       # table -> True
    tables: Map = _EMPTY                # table -> TableState
    table_order: tuple[str, ...] = ()   # the plan's order (largest first), then any table seen later
    totals: Totals = Totals()           # `tables` summed
    cancel_requested: bool = False
    rollback_pending: bool = False
    rolled_back: bool = False
    marks: tuple[tuple[str, int], ...] = ()          # (moment, microseconds) of the phases' ends, in order
    step_seconds: tuple[tuple[str, float], ...] = ()  # execution steps as the agent timed them
    # Online migrations: the stream as last sampled, the cutover's progress, the replication objects.
    sync: bytes = b""                   # SyncStatus
    cutover_requested: bool = False
    caught_up: bytes = b""              # CutoverCaughtUp of the current cutover
    cutover_verified: bool = False
    cutover: str = ""                   # what Migration.cutover shows
    released: bool = False
    release_detail: str = ""
    source_moved: tuple[str, ...] = ()  # offline: what the source changed after the snapshot (final verification)
    # A settled migration kept small in memory (compact()): no per-table state and no reports, its
    # tables' progress summed (Progress, serialized). Its whole state is replayed from the log on request.
    compacted: bool = False
    summary: bytes = b""

    @property
    def creation(self) -> events_pb2.MigrationCreated:
        msg = events_pb2.MigrationCreated()
        msg.ParseFromString(self.created)
        return msg

    @property
    def options(self) -> common_pb2.MigrationOptions:
        return self.creation.options

    def timings(self) -> list[tuple[str, float]]:
        """Where the time went, from the events' own times: each phase from the end of the one before."""
        at = dict(self.marks)
        out = []
        for phase, start, end in (("discovery", "started", "discovered"), ("validation", "discovered", "validated"),
                                  ("plan", "validated", "planned"), ("approval wait", "planned", "approved"),
                                  ("execution", "approved", "executed"), ("final verification", "executed", "verified"),
                                  ("syncing", "executed", "cutover requested"),
                                  ("cutover", "cutover requested", "cutover verified")):
            if start in at and end in at:
                out.append((phase, (at[end] - at[start]) / 1e6))
                if phase == "execution":
                    out += [(f"execution: {step}", seconds) for step, seconds in self.step_seconds]
        if "started" in at and self.marks[-1][0] != "started":
            wait = (at["approved"] - at["planned"]) if "approved" in at and "planned" in at else 0
            out.append(("total, without the approval wait", (self.marks[-1][1] - at["started"] - wait) / 1e6))
        return out

    def table(self, name: str) -> TableState | None:
        return self.tables.get(name)

    def table_list(self) -> list[TableState]:
        return [self.tables[name] for name in self.table_order]


def table_step(step: str) -> bool:
    """A step of one table ("schema.table: indexes"), part of the data step, not a step of its own."""
    return ":" in step


def compact(wf: Workflow, summary: bytes) -> Workflow:
    """`wf` without what grows with its tables (per-table state, per-table steps, the reports): what
    a list of migrations shows, and what the rules need to say that nothing is left to do. A
    migration of 2,000 tables takes 3 MB in full, 20,000 tables 30 MB; kept whole, every finished
    one would stay in the coordinator's memory for as long as it runs."""
    return replace(wf, compacted=True, summary=summary, tables=_EMPTY, table_order=(), units_done=_EMPTY,
                   tables_verified=_EMPTY, steps_done=Map({s: True for s in wf.steps_done if not table_step(s)}),
                   discovery=b"", discovery_brief=b"", validation=b"", rendered=b"", generation=b"", execution=b"",
                   verification=b"")


def agents_discovery(report: common_pb2.DiscoveryReport) -> bytes:
    """The discovery report as the validation and generation agents get it: all of it but the catalog
    inventory of both sides (details, for people: 85% of the report, and a parsed report takes six
    times its size in every process it passes through), of which the source's first write reading
    stays (validation's second reading measures the window from it)."""
    brief = common_pb2.DiscoveryReport()
    for field, value in report.ListFields():
        if field.name == "details":
            continue
        if field.is_repeated:
            getattr(brief, field.name).extend(value)
        elif field.type == field.TYPE_MESSAGE:
            getattr(brief, field.name).CopyFrom(value)
        else:
            setattr(brief, field.name, value)
    try:
        first = report.details["source"]["activity"]["first"]
    except (KeyError, ValueError, TypeError):
        first = None
    if first is not None:
        brief.details.get_or_create_struct("source").get_or_create_struct("activity") \
            .get_or_create_struct("first").CopyFrom(first)
    return brief.SerializeToString()


def replace(obj, **changes):
    """A copy of a frozen dataclass with some fields changed.

    dataclasses.replace runs __init__ over every field; copying the instance dict is several times
    faster, and replay speed is what a restart waits on. The result is as frozen as the original.
    """
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new


def _micros(ev: events_pb2.WorkflowEvent) -> int:
    return ev.time.seconds * 1_000_000 + ev.time.nanos // 1000


def _with_table(wf: Workflow, name: str, **changes) -> Workflow:
    t = wf.tables.get(name)
    if t is not None:
        new = replace(t, **changes)
        return replace(wf, tables=wf.tables.set(name, new), totals=wf.totals.plus(t, -1).plus(new))
    new = replace(TableState(table=name), **changes)
    return replace(wf, tables=wf.tables.set(name, new), table_order=wf.table_order + (name,),
                   totals=wf.totals.plus(new))


# ---- one mutator per event type ----

def _mark(wf, name: str, ev) -> tuple[tuple[str, int], ...]:
    return tuple(m for m in wf.marks if m[0] != name) + ((name, _micros(ev)),)


def _started(wf, ev):
    return replace(wf, started=True, phase=P.DISCOVERING, marks=_mark(wf, "started", ev))


def _agent_call_failed(wf, ev):
    return replace(wf, agent_failures=wf.agent_failures + 1)


def _discovery_completed(wf, ev):
    report = ev.discovery_completed.report
    return replace(wf, discovery=report.SerializeToString(), discovery_brief=agents_discovery(report),
                   phase=P.VALIDATING, marks=_mark(wf, "discovered", ev))


def _validation_completed(wf, ev):
    report = ev.validation_completed.report
    return replace(wf, validation=report.SerializeToString(), rendered=report.rendered.SerializeToString(),
                   phase=P.PLANNING, marks=_mark(wf, "validated", ev))


def _plan_generated(wf, ev):
    report = ev.plan_generated.report
    blockers = [f"{f.code}{f' ({f.object})' if f.object else ''}: {f.message}" for f in report.findings
                if f.severity == common_pb2.BLOCKER]
    validation = common_pb2.ValidationReport()
    validation.ParseFromString(wf.validation)
    if not validation.passed and not validation.skipped:
        blockers.append("VALIDATION_FAILED: the sample test migration did not pass")
    # Named as the execution agent names them (quoted where PostgreSQL needs it).
    planned = [TableState(table=f"{quote_ident(t.schema)}.{quote_ident(t.name)}", total_rows=t.rows,
                          total_bytes=t.bytes, parts=max(1, t.parts)) for t in report.plan.tables]
    tables = Map({t.table: t for t in planned})
    totals = Totals()
    for t in tables.values():  # a name the plan gave twice counts once, as in `tables`
        totals = totals.plus(t)
    return replace(wf, generation=report.SerializeToString(), risk=report.risk,
                   recommendation=report.recommendation, blockers=tuple(blockers),
                   tables=tables, table_order=tuple(t.table for t in planned), totals=totals,
                   marks=_mark(wf, "planned", ev))


def _approval_requested(wf, ev):
    return replace(wf, phase=P.AWAITING_APPROVAL)


def _approved(wf, ev):
    return replace(wf, phase=P.EXECUTING, approval_comment=ev.approved.comment, marks=_mark(wf, "approved", ev))


def _denied(wf, ev):
    return replace(wf, phase=P.DENIED, deny_reason=ev.denied.reason, marks=_mark(wf, "ended", ev))


def _baseline(wf, ev):
    return replace(wf, baseline=ev.target_baseline_recorded.baseline.SerializeToString(), baseline_recorded=True)


def _execution_attempted(wf, ev):
    return replace(wf, execution_attempts=ev.execution_attempted.attempt)


def _step_started(wf, ev):
    return wf


def _step_completed(wf, ev):
    return _step_done(wf, ev.step_completed)


def _step_done(wf, step):
    if table_step(step.step):
        return replace(wf, steps_done=wf.steps_done.set(step.step, True))
    seconds = tuple(s for s in wf.step_seconds if s[0] != step.step) + ((step.step, step.seconds),)
    return replace(wf, steps_done=wf.steps_done.set(step.step, True), step_seconds=seconds)


def _table_progress(wf, ev):
    p = ev.table_progress
    t = wf.table(p.table)
    status = "copying" if t is None or t.status in ("pending", "copying") else t.status
    return _with_table(wf, p.table, rows=p.rows, bytes=p.bytes, total_rows=p.total_rows or (t.total_rows if t else 0),
                       total_bytes=p.total_bytes or (t.total_bytes if t else 0),
                       rows_per_second=p.rows_per_second, eta_seconds=p.eta_seconds, status=status)


def _table_copied(wf, ev):
    return _unit_copied(wf, ev.table_copied)


def _unit_copied(wf, c):
    if c.unit in wf.units_done:
        return wf
    wf = replace(wf, units_done=wf.units_done.set(c.unit, True))
    t = wf.table(c.table)
    parts = max(1, c.parts or (t.parts if t else 1))
    done = (t.parts_done if t else 0) + 1
    changes = dict(parts_done=min(done, parts), parts=parts)
    if done >= parts:
        changes.update(status="copied", eta_seconds=0.0)
        if t is None or c.parts <= 1:
            changes.update(rows=c.rows, bytes=c.bytes)
    return _with_table(wf, c.table, **changes)


def _table_verified(wf, ev):
    v = ev.table_verified
    if v.HasField("copied"):  # a small table: its copy and its seal come with its proof
        wf = _unit_copied(wf, v.copied)
    if v.HasField("sealed"):
        wf = _step_done(wf, v.sealed)
    r = v.result
    return _with_table(replace(wf, tables_verified=wf.tables_verified.set(r.table, True)), r.table,
                       status="verified", rows=r.target_rows, eta_seconds=0.0,
                       total_rows=max(r.source_rows, 0), error="")


def _table_failed(wf, ev):
    f = ev.table_failed
    return _with_table(wf, f.table, status="failed", error=f.error)


def _log(wf, ev):
    return wf


def _execution_finished(wf, ev):
    report = ev.execution_finished.report
    return replace(wf, execution=report.SerializeToString(), execution_verified=report.verified,
                   marks=_mark(wf, "executed", ev))


def _verification_completed(wf, ev):
    report = ev.verification_completed.report
    moved = () if wf.options.online else tuple(f"{n.kind} {n.name}: {n.detail}" for n in report.notes
                                               if n.difference == "source_changed")
    return replace(wf, verification=report.SerializeToString(), verified_equal=report.equal,
                   marks=_mark(wf, "verified", ev), source_moved=moved)


def _completed(wf, ev):
    report = ev.migration_completed.report
    return replace(wf, phase=P.COMPLETED, execution=report.SerializeToString() if report.ByteSize() else wf.execution,
                   marks=_mark(wf, "ended", ev))


def _failed(wf, ev):
    f = ev.migration_failed
    return replace(wf, phase=P.FAILED, error=f.error, rollback_pending=f.rollback_pending, marks=_mark(wf, "ended", ev),
                   stopped_in=f.phase or wf.phase)


def _cancel_requested(wf, ev):
    return replace(wf, cancel_requested=True)


def _cancelled(wf, ev):
    c = ev.migration_cancelled
    return replace(wf, phase=P.CANCELLED, error=c.reason, rollback_pending=c.rollback_pending,
                   marks=_mark(wf, "ended", ev), stopped_in=wf.phase)


def _rollback_requested(wf, ev):
    return replace(wf, phase=P.ROLLING_BACK, rollback_pending=True)


def _rolled_back(wf, ev):
    # An explicit rollback ends ROLLED_BACK; the automatic one after a failure or cancel keeps that end.
    return replace(wf, rollback_pending=False, rolled_back=True,
                   phase=P.ROLLED_BACK if wf.phase == P.ROLLING_BACK else wf.phase)


def _rollback_failed(wf, ev):
    err = f"rollback failed: {ev.rollback_failed.error}"
    if wf.phase == P.ROLLING_BACK:
        return replace(wf, rollback_pending=False, error=err, phase=P.FAILED, stopped_in=P.ROLLING_BACK)
    return replace(wf, rollback_pending=False, error=err)


def _sync_started(wf, ev):
    return replace(wf, phase=P.SYNCING, marks=_mark(wf, "sync started", ev))


def _sync_progress(wf, ev):
    return replace(wf, sync=ev.sync_progress.status.SerializeToString())


def _cutover_requested(wf, ev):
    return replace(wf, cutover_requested=True, caught_up=b"", cutover_verified=False, cutover="requested",
                   marks=_mark(wf, "cutover requested", ev))


def _cutover_caught_up(wf, ev):
    c = ev.cutover_caught_up
    return replace(wf, caught_up=c.SerializeToString(),
                   cutover=f"caught up to {c.lsn} in {c.seconds:.1f}s; {len(c.sequences)} sequences set; verifying")


def _cutover_verified(wf, ev):
    return replace(wf, cutover_verified=True, cutover=f"verified: {ev.cutover_verified.detail}",
                   marks=_mark(wf, "cutover verified", ev))


def _cutover_refused(wf, ev):
    return replace(wf, cutover_requested=False, caught_up=b"", cutover_verified=False,
                   cutover=f"refused: {ev.cutover_refused.reason}")


def _replication_released(wf, ev):
    return replace(wf, released=True, release_detail=ev.replication_released.detail)


MUTATORS: dict[str, Callable[[Workflow, events_pb2.WorkflowEvent], Workflow]] = {
    "migration_started": _started,
    "agent_call_failed": _agent_call_failed,
    "discovery_completed": _discovery_completed,
    "validation_completed": _validation_completed,
    "plan_generated": _plan_generated,
    "approval_requested": _approval_requested,
    "approved": _approved,
    "denied": _denied,
    "target_baseline_recorded": _baseline,
    "execution_attempted": _execution_attempted,
    "step_started": _step_started,
    "step_completed": _step_completed,
    "table_progress": _table_progress,
    "table_copied": _table_copied,
    "table_verified": _table_verified,
    "table_failed": _table_failed,
    "log": _log,
    "execution_finished": _execution_finished,
    "verification_completed": _verification_completed,
    "migration_completed": _completed,
    "migration_failed": _failed,
    "cancel_requested": _cancel_requested,
    "migration_cancelled": _cancelled,
    "rollback_requested": _rollback_requested,
    "rolled_back": _rolled_back,
    "rollback_failed": _rollback_failed,
    "sync_started": _sync_started,
    "sync_progress": _sync_progress,
    "cutover_requested": _cutover_requested,
    "cutover_caught_up": _cutover_caught_up,
    "cutover_verified": _cutover_verified,
    "cutover_refused": _cutover_refused,
    "replication_released": _replication_released,
}


def apply(state: Workflow | None, ev: events_pb2.WorkflowEvent) -> Workflow:
    """The next state after `ev`. Raises UnknownEvent for a type it does not know."""
    kind = ev.WhichOneof("payload")
    if kind is None:
        raise UnknownEvent(f"event {ev.workflow_id}:{ev.version} (seq {ev.seq}) has a type this coordinator "
                           "does not know; upgrade the coordinator before replaying this log")
    if kind == "migration_created":
        if state is not None or ev.version != 1:
            raise OutOfOrderEvent(f"workflow {ev.workflow_id}: migration_created at version {ev.version}")
        c = ev.migration_created
        t = _micros(ev)
        return Workflow(id=ev.workflow_id, version=1, last_seq=ev.seq, created_at=t, updated_at=t,
                        name=c.name, created=c.SerializeToString())
    if state is None:
        raise OutOfOrderEvent(f"workflow {ev.workflow_id}: {kind} before migration_created")
    if state.compacted:
        raise ValueError(f"workflow {ev.workflow_id}: an event applied to its compacted state (replay it whole first)")
    if ev.version != state.version + 1:
        raise OutOfOrderEvent(f"workflow {ev.workflow_id}: version {ev.version} after {state.version}")
    mutator = MUTATORS.get(kind)
    if mutator is None:
        raise UnknownEvent(f"event type {kind!r} (seq {ev.seq}) has no handler in this coordinator")
    new = mutator(state, ev)
    stamp = {"version": ev.version, "last_seq": ev.seq, "updated_at": _micros(ev)}
    if new is state:
        return replace(state, **stamp)
    new.__dict__.update(stamp)  # `new` is a fresh copy made by the mutator: nobody else holds it yet
    return new


def replay(events: Iterable[events_pb2.WorkflowEvent]) -> dict[str, Workflow]:
    """Every workflow's state from its events, in log order."""
    states: dict[str, Workflow] = {}
    for ev in events:
        states[ev.workflow_id] = apply(states.get(ev.workflow_id), ev)
    return states


def checkpoint(wf: Workflow):
    """What the execution agent has already done, from the events (for a resumed Execute call)."""
    from dbmigrate.v1 import agents_pb2
    return agents_pb2.ExecutionCheckpoint(steps_done=sorted(wf.steps_done), units_done=sorted(wf.units_done),
                                          tables_verified=sorted(wf.tables_verified))
