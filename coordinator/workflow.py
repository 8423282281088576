"""Drives each migration through its phases: append the event, then act; re-drive after a crash."""
from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from typing import AsyncIterator, Awaitable, Callable

import grpc

from coordinator import rules
from coordinator.eventlog import EventLog, Stored
from coordinator.secrets import SecretStore
from coordinator.state import END_PHASES, P, Workflow, apply, checkpoint, compact, replay
from dbmigrate.v1 import agents_pb2, agents_pb2_grpc, common_pb2, events_pb2
from services.common import memory, metrics, replication
from services.common.channels import aio_channel
from services.common.config import MAX_JOBS
from services.common.errors import FailedPrecondition, InvalidInput, NotFound, error_details
from services.common.logs import redact, workflow_id_var
from services.common.pg import check_connection, display_url, parse_url, redacted

log = logging.getLogger(__name__)

# Deadlines per agent call (seconds). Execute is a long stream and has none: its progress is the signal.
DEADLINES = {"discover": 300, "validate": 1800, "generate": 300, "prepare": 300, "verify": 3600, "rollback": 900,
             "sync": 60, "catch_up": 900, "release": 300}
# After the first event of a burst, the agent's stream is read this long before the append: the
# execution agent sends its events in bursts (each after a durable commit on the target), and one
# append (one fsync, which blocks this loop) per burst instead of one per event or two keeps the
# coordinator from lagging behind the copy (2,000 small tables: 6,000 events in about 4 s).
APPEND_LINGER = 0.02         # seconds
RECENT_EVENTS = 2000         # events kept in memory for live watchers...
RECENT_BYTES = 4 << 20       # ...and at most this many bytes of them: the reports of a migration of 20,000
                             # tables (execution, verification, completion) are 3.7 MB each
FULL_KEPT = 2                # settled migrations kept whole in memory (the newest ended or read)...
FULL_IDLE_SECONDS = 30.0     # ...until this long after they ended or were last read (then replayed on request)
SYNC_POLL_SECONDS = 1.0      # how often the stream's state is sampled while SYNCING
SYNC_EVENT_SECONDS = 2.0     # a SyncProgress event at most this often while changes flow...
SYNC_IDLE_EVENT_SECONDS = 60.0  # ...and this often while nothing changes

# Status codes a transport failure shows (the agent is down, restarting, or the call was cut).
TRANSPORT_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
                   grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.RESOURCE_EXHAUSTED,
                   grpc.StatusCode.ABORTED}

EXECUTION_EVENT_TO_WORKFLOW_EVENT = {
    "step_started": "step_started", "step_completed": "step_completed", "table_progress": "table_progress",
    "table_copied": "table_copied", "table_verified": "table_verified", "table_failed": "table_failed",
    "log": "log", "finished": "execution_finished",
}


def next_action(wf: Workflow) -> str | None:
    """What the coordinator must do next for `wf`, from its state alone (None: wait or done)."""
    if wf.phase == P.DISCOVERING:
        return "discover"
    if wf.phase == P.VALIDATING:
        return "validate"
    if wf.phase == P.PLANNING:
        return "generate"
    if wf.phase == P.EXECUTING:
        if wf.cancel_requested:
            return "cancel"
        if not wf.baseline_recorded:
            return "prepare"
        if not wf.execution:
            return "execute"
        if wf.options.online:
            return "sync_start"
        if not wf.verification and not wf.options.skip_final_verify:
            return "verify"
        return "complete"
    if wf.phase == P.SYNCING:
        if wf.cancel_requested:
            return "cancel"
        if not wf.cutover_requested:
            return "sync"
        if not wf.caught_up:
            return "catch_up"
        if not wf.cutover_verified:
            return "cutover_verify"
        if not wf.released:
            return "release"
        return "complete"
    if wf.phase == P.ROLLING_BACK or (wf.phase in (P.FAILED, P.CANCELLED) and wf.rollback_pending):
        return "rollback"
    if wf.phase in END_PHASES and rules.release_pending(wf):
        return "release"  # never leave a slot behind to fill the source's disk
    return None


def _event(**payload) -> events_pb2.WorkflowEvent:
    ev = events_pb2.WorkflowEvent(**payload)
    ev.time.GetCurrentTime()
    return ev


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def with_reports(head, **reports: bytes) -> bytes:
    """`head` serialized, with each named message field given in its serialized form (a report as the
    state keeps it). A length-delimited field after a message's bytes is parsed as part of it (the
    protobuf wire format), so the agent receives the same request, and the coordinator does not
    parse a report only to send it on: parsed, a discovery of 2,000 tables takes 4.3 MB (0.7 MB as
    bytes) for as long as the call runs, ten times that with 20,000 tables."""
    out = [head.SerializeToString()]
    for name, blob in reports.items():
        out += [_varint(head.DESCRIPTOR.fields_by_name[name].number << 3 | 2), _varint(len(blob)), blob]
    return b"".join(out)


class AgentStubs:
    def __init__(self, addresses: dict[str, str]):
        self._channels = {name: aio_channel(addr) for name, addr in addresses.items()}
        self.discovery = agents_pb2_grpc.DiscoveryStub(self._channels["discovery"])
        self.validation = agents_pb2_grpc.ValidationStub(self._channels["validation"])
        self.generation = agents_pb2_grpc.GenerationStub(self._channels["generation"])
        self.execution = agents_pb2_grpc.ExecutionStub(self._channels["execution"])
        # The calls whose request or answer is a report: the request goes serialized (with_reports),
        # the answer comes serialized and is parsed once, into the event that records it.
        self.discover = self._raw("discovery", "/dbmigrate.v1.Discovery/Discover")
        self.validate = self._raw("validation", "/dbmigrate.v1.Validation/Validate")
        self.generate = self._raw("generation", "/dbmigrate.v1.Generation/Generate")
        self.verify = self._raw("validation", "/dbmigrate.v1.Validation/Verify")

    def _raw(self, agent: str, method: str):
        return self._channels[agent].unary_unary(method, request_serializer=None, response_deserializer=None)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()


class _RetryLater(Exception):
    """The agent answered nothing conclusive (a stream ended early); try the step again."""


class Engine:
    """Owns the workflows: commands append events, the fold updates state, drivers call agents."""

    def __init__(self, eventlog: EventLog, secrets: SecretStore, agents: AgentStubs, *,
                 transport_retry_seconds: float = 180.0, database_retry_seconds: float = 180.0):
        self.log = eventlog
        self.secrets = secrets
        self.agents = agents
        self.transport_retry_seconds = transport_retry_seconds
        self.database_retry_seconds = database_retry_seconds
        self.states: dict[str, Workflow] = {}  # a settled migration's compacted (state.compact)
        # FULL_KEPT of them whole, with when they were last used: a migration of 20,000 tables takes
        # about 60 MB whole (its state and reports), which would stay for as long as the next one runs.
        self._full: collections.OrderedDict[str, tuple[Workflow, float]] = collections.OrderedDict()
        self._tasks: dict[str, asyncio.Task] = {}
        # The sample test migration started beside discovery (_do_discover), by workflow: its answer is
        # kept by _do_validate when discovery found nothing blocking. Not an event: after a restart
        # the sample simply runs again, after discovery.
        self._beside: dict[str, asyncio.Task] = {}
        self._new = asyncio.Event()
        self.listeners: list[Callable[[], None]] = []
        # The newest events, so that live watchers are fed from memory instead of one query each, kept
        # serialized (Stored): parsed, the reports among them would take six times their size; a
        # watcher further behind than the tail reads the log, 1,000 events a query.
        self._recent: collections.deque[Stored] = collections.deque()
        self._recent_bytes = 0

    # ---- state ----

    def load(self) -> int:
        """Rebuilds every workflow by replaying the log; returns how many events were read."""
        count = 0

        def counted():
            nonlocal count
            for ev in self.log.iter_all():
                count += 1
                yield ev

        self.states = replay(counted())
        self._full.clear()
        for wf in sorted(self.states.values(), key=lambda w: w.updated_at):  # the newest stay whole
            self._settle(wf)
        memory.release()
        return count

    def _settle(self, wf: Workflow) -> None:
        """A migration with nothing left to do is kept compacted, and whole among the FULL_KEPT newest."""
        if wf.phase not in END_PHASES or not rules.settled(wf) or next_action(wf) is not None:
            return
        self._keep_whole(wf)
        self.states[wf.id] = compact(wf, rules.progress(wf).SerializeToString())

    def _keep_whole(self, wf: Workflow) -> None:
        self._full[wf.id] = (wf, time.monotonic())
        self._full.move_to_end(wf.id)
        while len(self._full) > FULL_KEPT:
            self._full.popitem(last=False)
        try:
            asyncio.get_running_loop().call_later(FULL_IDLE_SECONDS, self.drop_idle)
        except RuntimeError:
            pass  # no event loop (a replay before the server runs): the next keep or read sets the timer

    def drop_idle(self) -> list[str]:
        """Lets go of the whole states not used for FULL_IDLE_SECONDS; returns their ids."""
        now = time.monotonic()
        idle = [wid for wid, (_, used) in self._full.items() if now - used >= FULL_IDLE_SECONDS]
        for wid in idle:
            del self._full[wid]
        if idle:
            memory.release()
        return idle

    def resume_all(self) -> list[str]:
        """Drives on every workflow whose events say it was in a running phase."""
        resumed = [wid for wid, wf in self.states.items() if next_action(wf) is not None]
        for wid in resumed:
            log.info("resuming workflow %s in %s", wid, events_pb2.Phase.Name(self.states[wid].phase),
                     extra={"workflow_id": wid})
            self.ensure_driving(wid)
        return resumed

    def require(self, wid: str) -> Workflow:
        """The state of `wid` as kept (compacted when settled), or NotFound."""
        wf = self.states.get(wid)
        if wf is None:
            raise NotFound(f"migration {wid!r} not found; `dbmigrate list` shows the known ones")
        return wf

    def get(self, wid: str) -> Workflow:
        """The whole state of `wid`: a compacted one (settled, not among the FULL_KEPT) replayed from the log."""
        wf = self.require(wid)
        if not wf.compacted:
            return wf
        kept = self._full.get(wid)  # append() keeps _full current
        full = kept[0] if kept else replay(self.log.read(workflow_id=wid))[wid]
        self._keep_whole(full)
        return full

    def append(self, wid: str, *events: events_pb2.WorkflowEvent) -> Workflow:
        wf = self.get(wid) if wid in self.states else None
        appended, stored = self.log.append_stored(wid, wf.version if wf else 0, list(events))
        for ev in appended:
            wf = apply(wf, ev)
            metrics.event_appended(ev.WhichOneof("payload"))
        self.states[wid] = wf
        self._full.pop(wid, None)
        self._settle(wf)
        self._keep_recent(stored)
        waiter, self._new = self._new, asyncio.Event()
        waiter.set()
        for notify in self.listeners:
            notify()
        return wf

    async def watch(self, wid: str, from_seq: int, follow: bool) -> AsyncIterator[Stored]:
        """Events after `from_seq` (of one workflow or all), then live ones while `follow`, serialized."""
        last = from_seq
        while True:
            waiter = self._new  # taken before reading, so an append after the read still wakes us
            batch = self._recent_after(last, wid)
            if batch is None:  # older than the in-memory tail: read the log
                batch = self.log.read_stored(from_seq=last, workflow_id=wid or None, limit=1000)
            for ev in batch:
                yield ev
                last = ev.seq
            if batch:
                continue
            if not follow:
                return
            await waiter.wait()

    def _keep_recent(self, stored: list[Stored]) -> None:
        """The newest events into the tail, the oldest out beyond RECENT_EVENTS or RECENT_BYTES (a large
        report leaves it soon: a watcher that wants it reads the log)."""
        recent = self._recent
        recent.extend(stored)
        self._recent_bytes += sum(len(ev.data) for ev in stored)
        while recent and (len(recent) > RECENT_EVENTS or self._recent_bytes > RECENT_BYTES):
            self._recent_bytes -= len(recent.popleft().data)

    def _recent_after(self, seq: int, wid: str) -> list[Stored] | None:
        recent = self._recent
        if not recent or recent[0].seq > seq + 1:
            return None if self.log.last_seq() > seq else []
        if recent[-1].seq <= seq:
            return []
        # Sequences in the tail are consecutive, so the start index is arithmetic.
        start = seq + 1 - recent[0].seq
        out = []
        for i in range(start, len(recent)):
            ev = recent[i]
            if not wid or ev.workflow_id == wid:
                out.append(ev)
                if len(out) >= 1000:
                    break
        return out

    # ---- commands ----

    def create(self, req) -> Workflow:
        source = self._connection_from(req.source_url, req.source, "source")
        target = self._connection_from(req.target_url, req.target, "target")
        if (source.host, source.port, source.dbname) == (target.host, target.port, target.dbname):
            raise InvalidInput("source and target are the same database; pick another target")
        opts = req.options
        if not 0 <= opts.jobs <= MAX_JOBS:
            raise InvalidInput(f"options.jobs={opts.jobs} is out of range (0 = number of cores, at most {MAX_JOBS})")
        if opts.split_threshold_bytes < 0 or opts.sample_rows < 0:
            raise InvalidInput("options.split_threshold_bytes and options.sample_rows must not be negative")
        for pattern in (*opts.include, *opts.exclude):
            if not pattern.strip() or "\x00" in pattern or len(pattern) > 500:
                raise InvalidInput(f"include/exclude pattern {pattern[:60]!r} is empty or malformed")
        if len(req.name) > 200:
            raise InvalidInput("name is longer than 200 characters")
        advisor = common_pb2.AdvisorConfig()
        advisor.CopyFrom(req.advisor)
        if advisor.kind == common_pb2.H2OGPTE:
            if not advisor.address.startswith(("http://", "https://")):
                raise InvalidInput("advisor h2ogpte needs address=https://host (without /api)")
            if not advisor.api_key:
                raise InvalidInput("advisor h2ogpte needs an API key (DBMIGRATE_H2OGPTE_API_KEY for the CLI)")
        elif advisor.kind not in (common_pb2.ADVISOR_KIND_UNSPECIFIED, common_pb2.RULES):
            raise InvalidInput(f"unknown advisor kind {advisor.kind}; use rules or h2ogpte")
        if advisor.timeout_seconds < 0:
            raise InvalidInput("advisor.timeout_seconds must not be negative")

        wid = uuid.uuid4().hex[:12]
        # Secrets go to the store before the event exists, so no event ever waits for a lost secret.
        src_ref = self._keep_secret(wid, "source", source.password)
        dst_ref = self._keep_secret(wid, "target", target.password)
        key_ref = self._keep_secret(wid, "advisor", advisor.api_key)
        advisor.api_key = ""
        advisor.api_key_ref = key_ref
        created = events_pb2.MigrationCreated(
            name=req.name or f"{source.dbname} -> {target.host}:{target.port}/{target.dbname}",
            source=redacted(source, src_ref), target=redacted(target, dst_ref), options=opts, advisor=advisor)
        wf = self.append(wid, _event(migration_created=created))
        log.info("created migration %s: %s -> %s", wid, display_url(source), display_url(target),
                 extra={"workflow_id": wid})
        if req.start:
            wf = self.start(wid)
        return wf

    def start(self, wid: str) -> Workflow:
        wf = self.get(wid)
        if wf.phase != P.CREATED:
            raise FailedPrecondition(f"migration {wid} is {events_pb2.Phase.Name(wf.phase)}; only a CREATED "
                                     "migration can be started")
        wf = self.append(wid, _event(migration_started=events_pb2.MigrationStarted()))
        self.ensure_driving(wid)
        return wf

    def approve(self, wid: str, comment: str, by: str = "") -> Workflow:
        wf = self.get(wid)
        if wf.phase != P.AWAITING_APPROVAL:
            raise FailedPrecondition(
                f"migration {wid} is {events_pb2.Phase.Name(wf.phase)}; approval is only possible while it is "
                "AWAITING_APPROVAL")
        if not rules.actions(wf, secrets_missing=False).approve:  # blocked
            raise FailedPrecondition(
                f"migration {wid} cannot be approved: blocked by {'; '.join(wf.blockers)}. Fix the cause and "
                "create a new migration, or deny this one")
        wf = self.append(wid, _event(approved=events_pb2.Approved(comment=comment, by=by)))
        self.ensure_driving(wid)
        return wf

    def deny(self, wid: str, reason: str, by: str = "") -> Workflow:
        wf = self.get(wid)
        if not reason.strip():
            raise InvalidInput("a reason is required to deny a migration")
        if wf.phase != P.AWAITING_APPROVAL:
            raise FailedPrecondition(
                f"migration {wid} is {events_pb2.Phase.Name(wf.phase)}; denial is only possible while it is "
                "AWAITING_APPROVAL")
        return self.append(wid, _event(denied=events_pb2.Denied(reason=reason, by=by)))

    def cancel(self, wid: str, reason: str) -> Workflow:
        wf = self.get(wid)
        reason = reason or "cancelled by the operator"
        if wf.phase in rules.CANCEL_AT_ONCE:
            self._stop_driving(wid)
            return self.append(wid, _event(migration_cancelled=events_pb2.MigrationCancelled(reason=reason)))
        if wf.phase in (P.EXECUTING, P.SYNCING):
            if wf.cancel_requested:
                return wf
            wf = self.append(wid, _event(cancel_requested=events_pb2.CancelRequested(reason=reason)))
            self._stop_driving(wid)
            self.ensure_driving(wid)
            return wf
        raise FailedPrecondition(f"migration {wid} is {events_pb2.Phase.Name(wf.phase)}; there is nothing to cancel")

    def cutover(self, wid: str, by: str = "") -> Workflow:
        wf = self.get(wid)
        if not wf.options.online:
            raise FailedPrecondition(f"migration {wid} is not an online migration; cutover is for migrations created "
                                     "with --online (options.online)")
        if wf.phase != P.SYNCING:
            raise FailedPrecondition(f"migration {wid} is {events_pb2.Phase.Name(wf.phase)}; cutover is possible "
                                     "while it is SYNCING")
        if wf.cutover_requested:
            return wf  # already under way: the same request again is no new command
        if wf.cancel_requested:
            raise FailedPrecondition(f"migration {wid} is being cancelled")
        wf = self.append(wid, _event(cutover_requested=events_pb2.CutoverRequested(by=by)))
        self._stop_driving(wid)  # the stream's sampling loop gives way to the cutover
        self.ensure_driving(wid)
        return wf

    def rollback(self, wid: str, reason: str) -> Workflow:
        wf = self.get(wid)
        if wf.phase == P.ROLLING_BACK or wf.rollback_pending:
            raise FailedPrecondition(f"migration {wid}: a rollback is already in progress")
        if wf.phase not in rules.ROLLBACK_FROM:
            raise FailedPrecondition(
                f"migration {wid} is {events_pb2.Phase.Name(wf.phase)}; rollback is possible once it is COMPLETED, "
                "FAILED or CANCELLED (cancel a running migration first)")
        if not rules.rollback_allowed(wf):
            raise FailedPrecondition(
                f"migration {wid} stopped before it wrote anything to the target; there is nothing to roll back")
        wf = self.append(wid, _event(rollback_requested=events_pb2.RollbackRequested(
            reason=reason or "requested by the operator")))
        self.ensure_driving(wid)
        return wf

    def supply_secrets(self, wid: str, source_password: str, target_password: str, api_key: str) -> Workflow:
        wf = self.get(wid)
        c = wf.creation
        for ref, value in ((c.source.secret_ref, source_password), (c.target.secret_ref, target_password),
                           (c.advisor.api_key_ref, api_key)):
            if ref and value:
                self.secrets.put(ref, value)
        if next_action(wf) is not None and not self.secrets_missing(wf):
            self.ensure_driving(wid)
        return wf

    def secrets_missing(self, wf: Workflow) -> bool:
        c = wf.creation
        return any(ref and not self.secrets.has(ref)
                   for ref in (c.source.secret_ref, c.target.secret_ref, c.advisor.api_key_ref))

    # ---- driving ----

    def ensure_driving(self, wid: str) -> None:
        task = self._tasks.get(wid)
        if task is not None and not task.done():
            return
        self._tasks[wid] = asyncio.create_task(self._drive(wid), name=f"drive-{wid}")

    def _stop_driving(self, wid: str) -> None:
        task = self._tasks.pop(wid, None)
        if task is not None and not task.done():
            task.cancel()
        self._drop_beside(wid)

    def _drop_beside(self, wid: str) -> None:
        """Cancels the sample started beside discovery: the agent stops it, and a later Validate of
        the workflow waits in the agent until it has (services.common.exclusive)."""
        task = self._beside.pop(wid, None)
        if task is not None and not task.done():
            task.cancel()

    async def stop(self) -> None:
        for wid in list(self._beside):
            self._drop_beside(wid)
        tasks = [t for t in self._tasks.values() if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drive(self, wid: str) -> None:
        workflow_id_var.set(wid)
        while True:
            wf = self.get(wid)
            action = next_action(wf)
            if action not in ("discover", "validate"):
                self._drop_beside(wid)  # cancelled or failed while discovering: the sample is of no use
            if action is None:
                if wf.phase in END_PHASES:
                    memory.release()  # what the run's events and reports left in the heap goes back
                return
            if self.secrets_missing(wf):
                log.warning("migration %s needs its secrets again (SupplySecrets or DBMIGRATE_SECRET_*); waiting", wid)
                return
            try:
                await getattr(self, f"_do_{action}")(wf)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a bug here must not leave the workflow silently stuck
                error_id = uuid.uuid4().hex[:12]
                log.exception("coordinator error while doing %s (error id %s)", action, error_id)
                self._fail(self.get(wid), f"internal coordinator error during {action} (error id {error_id}); "
                                             f"see the coordinator log: {redact(str(err))[:200]}")
                return

    def _connection(self, conn: common_pb2.Connection) -> common_pb2.Connection:
        out = common_pb2.Connection()
        out.CopyFrom(conn)
        if conn.secret_ref:
            out.password = self.secrets.get(conn.secret_ref) or ""
        out.secret_ref = ""
        return out

    def _advisor(self, wf: Workflow) -> common_pb2.AdvisorConfig:
        out = common_pb2.AdvisorConfig()
        out.CopyFrom(wf.creation.advisor)
        if out.api_key_ref:
            out.api_key = self.secrets.get(out.api_key_ref) or ""
        return out

    def _fail(self, wf: Workflow, error: str) -> None:
        if wf.phase == P.ROLLING_BACK or (wf.phase in (P.FAILED, P.CANCELLED) and wf.rollback_pending):
            self.append(wf.id, _event(rollback_failed=events_pb2.RollbackFailed(error=error)))
            return
        pending = wf.baseline_recorded and not wf.options.keep_target_on_failure
        if pending:
            error += "; the target is being rolled back to how it was before the migration"
        self.append(wf.id, _event(migration_failed=events_pb2.MigrationFailed(
            phase=wf.phase, error=error, rollback_pending=pending)))

    async def _call(self, wid: str, agent: str, fn: Callable[[Workflow], Awaitable],
                    on_error: Callable[[Workflow, str], None] | None = None):
        """Runs one agent step, retrying transient failures within a time budget; returns (ok, result).
        A failure that is not retried ends the migration (or goes to `on_error`)."""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            wf = self.get(wid)
            try:
                with metrics.agent_call(agent, fn.__qualname__.split(".")[1].removeprefix("_do_")):
                    return True, await fn(wf)
            except (grpc.aio.AioRpcError, _RetryLater) as err:
                wf = self.get(wid)
                retry, message = self._classify(err, wf, attempt, time.monotonic() - started)
                if not retry:
                    (on_error or self._fail)(wf, f"{agent} agent: {message}")
                    return False, None
                self.append(wid, _event(agent_call_failed=events_pb2.AgentCallFailed(
                    phase=wf.phase, agent=agent, error=message, attempt=attempt, retryable=True)))
                log.warning("%s agent call failed (attempt %d): %s; retrying", agent, attempt, message)
                await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))

    def _classify(self, err, wf: Workflow, attempt: int, elapsed: float) -> tuple[bool, str]:
        if isinstance(err, _RetryLater):
            return elapsed < self.transport_retry_seconds, str(err)
        message = redact(err.details() or err.code().name)
        kind, retryable = error_details(err)
        if kind is None:  # the transport failed: the agent is down or restarting
            if err.code() not in TRANSPORT_CODES:
                return False, message
            if elapsed >= self.transport_retry_seconds:
                return False, f"{message} (gave up after {elapsed:.0f}s of retries)"
            return True, message
        if kind == "internal":
            return attempt < 3, message
        if retryable or err.code() == grpc.StatusCode.UNAVAILABLE:
            # A database that cannot be reached: wait for it during the copy, fail fast before it.
            budget = self.database_retry_seconds if wf.phase in (P.EXECUTING, P.ROLLING_BACK) or wf.rollback_pending \
                else min(10.0, self.database_retry_seconds)
            if elapsed >= budget:
                return False, message
            return True, message
        return False, message

    # ---- online ----

    def _sync_request(self, wf: Workflow, cls):
        return cls(workflow_id=wf.id, source=self._connection(wf.creation.source),
                   target=self._connection(wf.creation.target))

    async def _do_sync_start(self, wf: Workflow) -> None:
        self.append(wf.id, _event(sync_started=events_pb2.SyncStarted(
            slot=replication.slot_name(wf.id), publication=replication.publication_name(wf.id),
            subscription=replication.subscription_name(wf.id))))

    async def _do_sync(self, wf: Workflow) -> None:
        """Samples the stream until a cutover or cancel takes over (they restart the driver)."""
        report = common_pb2.ExecutionReport()
        report.ParseFromString(wf.execution)
        req = agents_pb2.SyncRequest(workflow_id=wf.id, source=self._connection(wf.creation.source),
                                     target=self._connection(wf.creation.target), options=wf.options,
                                     target_changes_at_sync=report.target_changes_at_sync)
        last_event, last, failures = 0.0, None, 0
        while True:
            try:
                status = await self.agents.execution.Sync(req, timeout=DEADLINES["sync"])
                failures = 0
            except grpc.aio.AioRpcError as err:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:  # the stream itself runs in the servers
                    self.append(wf.id, _event(agent_call_failed=events_pb2.AgentCallFailed(
                        phase=P.SYNCING, agent="execution", error=redact(err.details() or err.code().name),
                        attempt=failures, retryable=True)))
                await asyncio.sleep(min(0.5 * 2 ** failures, 10.0))
                continue
            now = time.monotonic()
            moving = status.lag_bytes > 0 or (last is not None and status.changes_applied != last.changes_applied)
            due = SYNC_EVENT_SECONDS if moving else SYNC_IDLE_EVENT_SECONDS
            if last is None or list(status.problems) != list(last.problems) or now - last_event >= due:
                self.append(wf.id, _event(sync_progress=events_pb2.SyncProgress(status=status)))
                last_event = now
            last = status
            if status.wal_status == "lost":
                self._fail(self.get(wf.id), "; ".join(status.problems) or "the replication slot was lost")
                return
            await asyncio.sleep(SYNC_POLL_SECONDS)

    def _refuse(self, wf: Workflow, reason: str) -> None:
        self.append(wf.id, _event(cutover_refused=events_pb2.CutoverRefused(reason=reason)))
        log.warning("migration %s: cutover refused: %s", wf.id, reason)

    async def _catch_up(self, wf: Workflow) -> agents_pb2.CatchUpReply | None:
        async def call(wf):
            req = agents_pb2.CatchUpRequest(workflow_id=wf.id, source=self._connection(wf.creation.source),
                                            target=self._connection(wf.creation.target), options=wf.options)
            return await self.agents.execution.CatchUp(req, timeout=DEADLINES["catch_up"])
        ok, reply = await self._call(wf.id, "execution", call, on_error=self._refuse)
        return reply if ok else None

    async def _do_catch_up(self, wf: Workflow) -> None:
        reply = await self._catch_up(wf)
        if reply is not None:
            self.append(wf.id, _event(cutover_caught_up=events_pb2.CutoverCaughtUp(
                lsn=reply.lsn, applied_lsn=reply.applied_lsn, sequences=reply.sequences, seconds=reply.seconds)))

    async def _do_cutover_verify(self, wf: Workflow) -> None:
        """Everything compared with the live source (no proof reused), then no write may have arrived."""
        async def call(wf):
            req = agents_pb2.VerifyRequest(workflow_id=wf.id, source=self._connection(wf.creation.source),
                                           target=self._connection(wf.creation.target), options=wf.options)
            return await self.agents.validation.Verify(req, timeout=DEADLINES["verify"])
        ok, report = await self._call(wf.id, "validation", call, on_error=self._refuse)
        if not ok:
            return
        wf = self.append(wf.id, _event(verification_completed=events_pb2.VerificationCompleted(report=report)))
        if not report.equal:
            self._refuse(wf, f"the target differs from the source: {report.summary} If the source's schema changed "
                             "(DDL), make the same change on the target; if writes go on, stop them; then run "
                             "cutover again (`dbmigrate report ID verification` lists the differences)")
            return
        before = events_pb2.CutoverCaughtUp()
        before.ParseFromString(wf.caught_up)
        after = await self._catch_up(wf)
        if after is None:
            return
        if after.applied_lsn != before.applied_lsn or dict(after.sequences) != dict(before.sequences):
            moved = [k for k in after.sequences if after.sequences[k] != before.sequences.get(k)]
            self._refuse(self.get(wf.id), "writes arrived on the source during the cutover (the target applied "
                         f"source commits up to {after.applied_lsn}, after {before.applied_lsn}"
                         + (f"; sequences moved: {', '.join(moved[:5])}" if moved else "") +
                         "); nothing is lost, the stream goes on. Stop the application's writes, then run cutover again")
            return
        self.append(wf.id, _event(cutover_verified=events_pb2.CutoverVerified(
            detail=f"{report.summary} No write arrived during the cutover (last applied source commit "
                   f"{after.applied_lsn}).")))

    async def _do_release(self, wf: Workflow) -> None:
        def keep_going(wf: Workflow, message: str) -> None:
            self.append(wf.id, _event(replication_released=events_pb2.ReplicationReleased(
                detail=f"NOT released: {message}. Drop them yourself: on the target DROP SUBSCRIPTION "
                       f"{replication.subscription_name(wf.id)}; on the source SELECT pg_drop_replication_slot("
                       f"'{replication.slot_name(wf.id)}') and DROP PUBLICATION {replication.publication_name(wf.id)}")))

        async def call(wf):
            return await self.agents.execution.Release(self._sync_request(wf, agents_pb2.ReleaseRequest),
                                                       timeout=DEADLINES["release"])
        ok, reply = await self._call(wf.id, "execution", call, on_error=keep_going)
        if ok:
            self.append(wf.id, _event(replication_released=events_pb2.ReplicationReleased(detail=reply.detail)))

    def _validate_request(self, wf: Workflow, beside_discovery: bool = False) -> bytes:
        req = agents_pb2.ValidateRequest(workflow_id=wf.id, source=self._connection(wf.creation.source),
                                         target=self._connection(wf.creation.target), options=wf.options,
                                         beside_discovery=beside_discovery)
        return req.SerializeToString() if beside_discovery else with_reports(req, discovery=wf.discovery_brief)

    async def _do_discover(self, wf: Workflow) -> None:
        async def call(wf):
            req = agents_pb2.DiscoverRequest(workflow_id=wf.id, source=self._connection(wf.creation.source),
                                             target=self._connection(wf.creation.target), options=wf.options,
                                             advisor=self._advisor(wf))
            return await self.agents.discover(req.SerializeToString(), timeout=DEADLINES["discover"])
        # The sample test migration reads the source and writes only its own scratch database on the
        # target: it runs beside discovery (both mostly wait on catalog queries) instead of after it.
        if wf.id not in self._beside:
            async def sample() -> bytes:
                with metrics.agent_call("validation", "validate"):
                    return await self.agents.validate(self._validate_request(wf, beside_discovery=True),
                                                      timeout=DEADLINES["validate"])
            self._beside[wf.id] = asyncio.ensure_future(sample())
        ok, report = await self._call(wf.id, "discovery", call)
        if ok:
            ev = _event()
            ev.discovery_completed.report.ParseFromString(report)
            self.append(wf.id, ev)

    async def _beside_discovery(self, wf: Workflow) -> bytes | None:
        """The answer of the sample started beside discovery, when it stands: discovery found nothing
        blocking (with a blocker the sample is not run: it would only meet what discovery named). Its
        write-traffic finding goes when discovery named the traffic already. None: ask again."""
        task = self._beside.get(wf.id)
        if task is None:
            return None
        brief = common_pb2.DiscoveryReport()
        brief.ParseFromString(wf.discovery_brief)
        if any(f.severity == common_pb2.BLOCKER for f in brief.findings):
            self._drop_beside(wf.id)
            return None
        try:
            answer = await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # this driver is being stopped
            return None
        except grpc.aio.AioRpcError as err:  # asked again the usual way, with its retries
            log.info("the sample test migration run beside discovery failed (%s); running it again", err.code().name)
            return None
        finally:
            if task.done():
                self._beside.pop(wf.id, None)
        if not any(f.code == "WRITE_TRAFFIC" for f in brief.findings):
            return answer
        report = common_pb2.ValidationReport()
        report.ParseFromString(answer)
        kept = [f for f in report.findings if f.code != "WRITE_TRAFFIC"]
        del report.findings[:]
        report.findings.extend(kept)
        return report.SerializeToString()

    async def _do_validate(self, wf: Workflow) -> None:
        report = await self._beside_discovery(wf)
        if report is None:
            async def call(wf):
                return await self.agents.validate(self._validate_request(wf), timeout=DEADLINES["validate"])
            ok, report = await self._call(wf.id, "validation", call)
            if not ok:
                return
        ev = _event()
        ev.validation_completed.report.ParseFromString(report)
        self.append(wf.id, ev)

    async def _do_generate(self, wf: Workflow) -> None:
        async def call(wf):
            req = agents_pb2.GenerateRequest(workflow_id=wf.id, options=wf.options, advisor=self._advisor(wf))
            return await self.agents.generate(with_reports(req, discovery=wf.discovery_brief, validation=wf.validation),
                                              timeout=DEADLINES["generate"])
        ok, report = await self._call(wf.id, "generation", call)
        if ok:
            ev = _event()
            ev.plan_generated.report.ParseFromString(report)
            plan = ev.plan_generated.report
            self.append(wf.id, ev, _event(approval_requested=events_pb2.ApprovalRequested(
                risk=plan.risk, recommendation=plan.recommendation)))

    async def _do_prepare(self, wf: Workflow) -> None:
        async def call(wf):
            req = agents_pb2.PrepareRequest(workflow_id=wf.id, source=self._connection(wf.creation.source),
                                            target=self._connection(wf.creation.target), options=wf.options)
            return await self.agents.execution.Prepare(req, timeout=DEADLINES["prepare"])
        ok, reply = await self._call(wf.id, "execution", call)
        if ok:
            self.append(wf.id, _event(target_baseline_recorded=events_pb2.TargetBaselineRecorded(
                baseline=reply.baseline, pg_dump_version=reply.pg_dump_version)))

    async def _do_execute(self, wf: Workflow) -> None:
        async def call(wf):
            attempt = wf.execution_attempts + 1
            wf = self.append(wf.id, _event(execution_attempted=events_pb2.ExecutionAttempted(attempt=attempt)))
            generation, baseline = common_pb2.GenerationReport(), common_pb2.TargetBaseline()
            generation.ParseFromString(wf.generation)
            baseline.ParseFromString(wf.baseline)
            req = agents_pb2.ExecuteRequest(workflow_id=wf.id, source=self._connection(wf.creation.source),
                                            target=self._connection(wf.creation.target), options=wf.options,
                                            plan=generation.plan, baseline=baseline, done=checkpoint(wf),
                                            attempt=attempt)
            # Group commit: what the agent sent while the last append was being written, or in the
            # APPEND_LINGER after a burst's first event, goes into the log in one transaction (one
            # fsync), so the events of 2,000 small tables cost tens of appends, not thousands. An
            # event lost with a crash here was not acted on: the agent redoes what it said (every
            # unit is idempotent).
            stream = self.agents.execution.Execute(req)
            arrived: asyncio.Queue = asyncio.Queue()

            async def read() -> None:
                try:
                    async for event in stream:
                        await arrived.put(event)
                finally:
                    await arrived.put(None)

            reader = asyncio.ensure_future(read())
            try:
                while True:
                    batch = [await arrived.get()]
                    if batch[0] is not None:
                        await asyncio.sleep(APPEND_LINGER)
                    while not arrived.empty() and len(batch) < 1000:
                        batch.append(arrived.get_nowait())
                    done = None in batch
                    events = [_event(**{EXECUTION_EVENT_TO_WORKFLOW_EVENT[k]: getattr(e, k)})
                              for e in batch if e is not None and (k := e.WhichOneof("event"))]
                    if events:
                        self.append(wf.id, *events)
                    if any(e.WhichOneof("payload") == "execution_finished" for e in events):
                        return
                    if done:
                        break
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
                if not reader.cancelled() and reader.exception() is not None:
                    raise reader.exception()
            raise _RetryLater("the execution stream ended before the migration finished")
        await self._call(wf.id, "execution", call)
        # The report (20,000 tables: 5 MB, parsed six times that) was parsed and copied here; what
        # that left in the heap goes back before the final verification, the stack's busiest moment.
        memory.release()

    async def _do_verify(self, wf: Workflow) -> None:
        async def call(wf):
            req = agents_pb2.VerifyRequest(workflow_id=wf.id, source=self._connection(wf.creation.source),
                                           target=self._connection(wf.creation.target), options=wf.options)
            # proven: the tables proven in the migration's snapshot; rendered: across major versions, the
            # source's schema as the target server made it before the load
            return await self.agents.verify(with_reports(req, proven=wf.execution, rendered=wf.rendered),
                                            timeout=DEADLINES["verify"])
        ok, answer = await self._call(wf.id, "validation", call)
        if not ok:
            return
        ev = _event()
        ev.verification_completed.report.ParseFromString(answer)
        report = ev.verification_completed.report
        wf = self.append(wf.id, ev)
        if not report.equal:
            self._fail(wf, f"final verification found differences: {report.summary or 'see the verification report'}")

    async def _do_complete(self, wf: Workflow) -> None:
        ev = _event()
        ev.migration_completed.report.ParseFromString(wf.execution)
        self.append(wf.id, ev)
        log.info("migration %s completed", wf.id)

    async def _do_cancel(self, wf: Workflow) -> None:
        self.append(wf.id, _event(migration_cancelled=events_pb2.MigrationCancelled(
            reason="cancelled by the operator", rollback_pending=wf.baseline_recorded)))

    async def _do_rollback(self, wf: Workflow) -> None:
        if rules.release_pending(wf):
            await self._do_release(wf)  # the stream stops before its target tables go
            wf = self.get(wf.id)
            if not wf.released:
                return
        if not wf.baseline_recorded:
            self.append(wf.id, _event(rolled_back=events_pb2.RolledBack(report=common_pb2.RollbackReport(
                summary="nothing to roll back: the migration never touched the target"))))
            return

        async def call(wf):
            baseline = common_pb2.TargetBaseline()
            baseline.ParseFromString(wf.baseline)
            req = agents_pb2.RollbackRequest(workflow_id=wf.id, target=self._connection(wf.creation.target),
                                             baseline=baseline)
            return await self.agents.execution.Rollback(req, timeout=DEADLINES["rollback"])
        ok, report = await self._call(wf.id, "execution", call)
        if ok:
            self.append(wf.id, _event(rolled_back=events_pb2.RolledBack(report=report)))

    # ---- helpers ----

    @staticmethod
    def _connection_from(url: str, conn: common_pb2.Connection, role: str) -> common_pb2.Connection:
        if url and conn.ByteSize():
            raise InvalidInput(f"give either {role}_url or {role}, not both")
        if url:
            return parse_url(url, f"{role} URL")
        if not conn.ByteSize():
            raise InvalidInput(f"{role} is required: give {role}_url (postgresql://user@host:port/dbname, password optional)")
        out = common_pb2.Connection()
        out.CopyFrom(conn)
        out.secret_ref = ""
        if not out.port:
            out.port = 5432
        check_connection(out, role)
        return out

    def _keep_secret(self, wid: str, name: str, value: str) -> str:
        if not value:
            return ""
        ref = f"{wid}/{name}"
        self.secrets.put(ref, value)
        return ref
