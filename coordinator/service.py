"""The Coordinator gRPC API: commands and queries over the engine, errors as status codes."""
from __future__ import annotations

import grpc

from coordinator import rules
from coordinator.eventlog import Stored
from coordinator.state import Workflow, table_step
from coordinator.workflow import DEADLINES, Engine
from dbmigrate.v1 import agents_pb2, common_pb2, coordinator_pb2, coordinator_pb2_grpc
from services.common.errors import InvalidInput
from services.common.pg import display_url, parse_url
from services.common.server import service_errors

AGENTS = ("discovery", "validation", "generation", "execution", "verification")


def _require_id(wid: str) -> str:
    wid = (wid or "").strip()
    if not wid:
        raise InvalidInput("a migration id is required")
    if len(wid) > 64 or not all(c.isalnum() or c in "-_" for c in wid):
        raise InvalidInput(f"{wid[:40]!r} is not a migration id (letters, digits, - and _)")
    return wid


def to_migration(wf: Workflow, engine: Engine, view: int = coordinator_pb2.TABLES_ALL, table_filter: str = "",
                 table_limit: int = 0) -> coordinator_pb2.Migration:
    """The migration as clients show it, listing the tables `view` and `table_filter` choose (see
    MigrationRef). Only TABLES_ALL lists the per-table steps ("indexes:schema.table") in steps_done;
    a compacted state (a settled migration) has no per-table state left: only TABLES_NONE."""
    if view != coordinator_pb2.TABLES_NONE and wf.compacted:
        raise ValueError(f"migration {wf.id}: its compacted state has no tables; Engine.get() replays it whole")
    c = wf.creation
    every = view == coordinator_pb2.TABLES_ALL
    m = coordinator_pb2.Migration(
        id=wf.id, name=wf.name, phase=wf.phase, source=c.source, target=c.target, options=c.options,
        advisor=c.advisor.kind or common_pb2.RULES, risk=wf.risk, recommendation=wf.recommendation, error=wf.error,
        version=wf.version, last_seq=wf.last_seq, approval_comment=wf.approval_comment, deny_reason=wf.deny_reason,
        secrets_missing=engine.secrets_missing(wf), source_url=display_url(c.source), target_url=display_url(c.target),
        steps_done=sorted(s for s in wf.steps_done if every or not table_step(s)),
        rollback_pending=wf.rollback_pending)
    rules.fill(m, wf, m.secrets_missing)
    m.created_at.FromMicroseconds(wf.created_at)
    m.updated_at.FromMicroseconds(wf.updated_at)
    for phase, seconds in wf.timings():
        m.timings.add(phase=phase, seconds=round(seconds, 3))
    listed, m.tables_matched = rules.listed_tables(wf, view, table_filter, table_limit)
    for t in listed:
        m.tables.add(table=t.table, rows=t.rows, bytes=t.bytes, total_rows=t.total_rows, total_bytes=t.total_bytes,
                     rows_per_second=t.rows_per_second, eta_seconds=t.eta_seconds, status=t.status, error=t.error,
                     parts_done=t.parts_done, parts=t.parts)
    return m


@service_errors(coordinator_pb2_grpc.CoordinatorServicer)
class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServicer):
    def __init__(self, engine: Engine):
        self.engine = engine

    def _m(self, wf: Workflow) -> coordinator_pb2.Migration:
        """A command's answer: the migration with the tables a live view lists (every table of a
        migration of up to 50; GetMigration with TABLES_ALL lists all of a larger one)."""
        return to_migration(wf, self.engine, coordinator_pb2.TABLES_AUTO)

    async def CreateMigration(self, request, context):
        return self._m(self.engine.create(request))

    async def StartMigration(self, request, context):
        return self._m(self.engine.start(_require_id(request.id)))

    async def GetMigration(self, request, context):
        if request.tables not in coordinator_pb2.TableView.values():
            names = ", ".join(coordinator_pb2.TableView.keys())
            raise InvalidInput(f"tables: {request.tables} is not a TableView (one of {names})")
        if request.table_limit < 0:
            raise InvalidInput("table_limit must not be negative")
        if len(request.table_filter) > 1000:
            raise InvalidInput("table_filter is longer than 1,000 characters")
        wid = _require_id(request.id)
        # Without tables a settled migration's compact state answers: no replay of its events.
        wf = self.engine.require(wid) if request.tables == coordinator_pb2.TABLES_NONE else self.engine.get(wid)
        return to_migration(wf, self.engine, request.tables, request.table_filter, request.table_limit)

    async def ListMigrations(self, request, context):
        if request.limit < 0:
            raise InvalidInput("limit must not be negative")
        states = sorted(self.engine.states.values(), key=lambda w: (w.created_at, w.id), reverse=True)
        if request.limit:
            states = states[:request.limit]
        # Without per-table rows: a history of migrations of 2,000 tables each would answer 130 KB a
        # migration, and take 60 ms a migration to build, at every poll of the web page's list.
        return coordinator_pb2.ListMigrationsResponse(
            migrations=[to_migration(w, self.engine, coordinator_pb2.TABLES_NONE) for w in states])

    async def Approve(self, request, context):
        return self._m(self.engine.approve(_require_id(request.id), request.comment))

    async def Deny(self, request, context):
        return self._m(self.engine.deny(_require_id(request.id), request.reason))

    async def Cancel(self, request, context):
        return self._m(self.engine.cancel(_require_id(request.id), request.reason))

    async def Cutover(self, request, context):
        return self._m(self.engine.cutover(_require_id(request.id)))

    async def Rollback(self, request, context):
        return self._m(self.engine.rollback(_require_id(request.id), request.reason))

    async def SupplySecrets(self, request, context):
        return self._m(self.engine.supply_secrets(_require_id(request.id), request.source_password,
                                                  request.target_password, request.advisor_api_key))

    async def WatchEvents(self, request, context):
        if request.workflow_id:
            self.engine.require(_require_id(request.workflow_id))  # known (no replay of a settled one)
        if request.from_seq < 0:
            raise InvalidInput("from_seq must not be negative")
        async for ev in self.engine.watch(request.workflow_id, request.from_seq, request.follow):
            yield ev  # serialized already (Stored): add_to_server sends its bytes as they are

    async def GetReport(self, request, context):
        wf = self.engine.get(_require_id(request.id))
        agent = request.agent.strip().lower()
        if agent and agent not in AGENTS:
            raise InvalidInput(f"unknown agent {request.agent!r}; use one of {', '.join(AGENTS)}")
        report = coordinator_pb2.Report(id=wf.id)
        for phase, seconds in wf.timings():
            report.timings.add(phase=phase, seconds=round(seconds, 3))
        for name, blob in (("discovery", wf.discovery), ("validation", wf.validation),
                           ("generation", wf.generation), ("execution", wf.execution),
                           ("verification", wf.verification)):
            if blob and (not agent or agent == name):
                getattr(report, name).ParseFromString(blob)
        return report

    async def VerifyDatabases(self, request, context):
        source = parse_url(request.source_url, "source URL")
        target = parse_url(request.target_url, "target URL")
        req = agents_pb2.VerifyRequest(source=source, target=target, options=request.options,
                                       max_rows_reported=request.max_rows_reported)
        try:
            return await self.engine.agents.validation.Verify(req, timeout=DEADLINES["verify"])
        except grpc.aio.AioRpcError as err:
            await context.abort(err.code(), f"validation agent: {err.details()}")


def _event_bytes(ev) -> bytes:
    return ev.data if isinstance(ev, Stored) else ev.SerializeToString()


class _Handlers:
    """Stands in for the server in the generated registration, to take its method handlers."""

    def __init__(self):
        self.name, self.handlers = "", {}

    def add_generic_rpc_handlers(self, generic) -> None:
        pass

    def add_registered_method_handlers(self, name: str, handlers: dict) -> None:
        self.name, self.handlers = name, dict(handlers)


def add_to_server(servicer: CoordinatorServicer, server) -> None:
    """The generated registration, except that WatchEvents sends each event as the log holds it,
    serialized (a parsed report would take six times its size, for each watcher)."""
    got = _Handlers()
    coordinator_pb2_grpc.add_CoordinatorServicer_to_server(servicer, got)
    watch = got.handlers["WatchEvents"]
    got.handlers["WatchEvents"] = grpc.unary_stream_rpc_method_handler(
        watch.unary_stream, request_deserializer=watch.request_deserializer, response_serializer=_event_bytes)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(got.name, got.handlers),))
    server.add_registered_method_handlers(got.name, got.handlers)
