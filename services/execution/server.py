"""gRPC server of the execution agent: Prepare (baseline, preconditions), Execute (streamed), Rollback."""
from __future__ import annotations

import asyncio
import threading

from dbmigrate.v1 import agents_pb2, agents_pb2_grpc, common_pb2
from services.common.catalog import quote_ident, table_names
from services.common.errors import FailedPrecondition, InvalidInput
from services.common.exclusive import PerWorkflow, wait_out
from services.common.pg import check_connection, connect
from services.common import pgtools
from services.common.pgdump import server_version_num
from services.common.roles import drop_created, needed_roles, role_names, to_create
from services.common.server import Service, service_errors
from services.execution.baseline import inventory, rollback, to_baseline
from services.execution.runner import ExecutionRun
from services.execution import sync

_DONE = object()


def _check(request) -> None:
    if not request.source.host or not request.target.host:
        raise InvalidInput("source and target connections are required")
    check_connection(request.source, "source")
    check_connection(request.target, "target")


def prepare(request: agents_pb2.PrepareRequest) -> agents_pb2.PrepareReply:
    """Read-only on both sides: the target's baseline, pg_dump version, and no conflicting tables."""
    with connect(request.source, "source", autocommit=True) as src:
        version = server_version_num(src)
        source_version = src.execute("SHOW server_version").fetchone()[0]
        # Names only: what list_tables reads of each table (sizes, keys, columns) took 1.3 s of 20,000 tables.
        tables = table_names(src, list(request.options.include), list(request.options.exclude))
        needed = needed_roles(src) if request.options.create_roles else []
    with connect(request.target, "target", autocommit=True) as dst:
        tools = pgtools.for_source(version, dst.info.server_version)
        inv = inventory(dst)
        roles = role_names(dst)
        existing = set(dst.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')").fetchall())
    conflicts = [f"{quote_ident(schema)}.{quote_ident(name)}" for schema, name in tables if (schema, name) in existing]
    if conflicts and request.options.on_target_not_empty != common_pb2.REPLACE:
        shown = ", ".join(conflicts[:5]) + (f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else "")
        raise FailedPrecondition(
            f"the target database {request.target.dbname!r} already has {len(conflicts)} of the source's tables "
            f"({shown}); migrate into an empty database, or create the migration with --replace-target "
            "(on_target_not_empty=REPLACE) to replace them")
    baseline = to_baseline(inv)
    baseline.roles.extend(sorted(roles))
    baseline.roles_to_create.extend(r.name for r in to_create(needed, roles, request.options))
    return agents_pb2.PrepareReply(baseline=baseline, pg_dump_version=tools.text, source_version=source_version)


@service_errors(agents_pb2_grpc.ExecutionServicer)
class ExecutionServicer(agents_pb2_grpc.ExecutionServicer):
    def __init__(self):
        self.running = PerWorkflow()
        self.monitor = sync.Monitor()

    async def Prepare(self, request, context):
        _check(request)
        return await asyncio.to_thread(prepare, request)

    async def Execute(self, request, context):
        _check(request)
        # A retried Execute (the coordinator restarted) waits until the interrupted run has stopped:
        # two runs must never fill the same target at once.
        async with self.running.lock(request.workflow_id):
            loop = asyncio.get_running_loop()
            events: asyncio.Queue = asyncio.Queue()
            cancel = threading.Event()
            run = ExecutionRun(request, lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev), cancel)
            future = loop.run_in_executor(None, run.run)
            future.add_done_callback(lambda _: events.put_nowait(_DONE))
            try:
                while True:
                    item = await events.get()
                    if item is _DONE:
                        break
                    yield item
                report = future.result()
                yield agents_pb2.ExecutionEvent(finished=agents_pb2.ExecutionFinished(report=report))
            finally:
                # The caller went away (cancel, crash) or the run ended: stop the workers either way,
                # and hold the workflow until they have.
                cancel.set()
                await wait_out(future)

    async def Rollback(self, request, context):
        if not request.target.host:
            raise InvalidInput("target connection is required")
        check_connection(request.target, "target")

        def work(cancel):
            with connect(request.target, "target", autocommit=True) as dst:
                dropped = rollback(dst, request.baseline)
                # Roles --create-roles made: after the objects, so that nothing in this database needs them.
                return dropped + drop_created(dst, list(request.baseline.roles_to_create), set(request.baseline.roles))
        dropped = await self.running.run(request.workflow_id, work)
        summary = (f"dropped {len(dropped)} objects this migration created; the target is as before"
                   if dropped else "nothing to drop: the target already matches its state before the migration")
        return common_pb2.RollbackReport(dropped=dropped, summary=summary)


    async def Sync(self, request, context):
        _check(request)
        return await asyncio.to_thread(self.monitor.status, request.workflow_id, request.source, request.target,
                                       request.target_changes_at_sync)

    async def CatchUp(self, request, context):
        _check(request)
        lsn, applied, sequences, seconds = await self.running.run(
            request.workflow_id, lambda cancel: sync.catch_up(request.source, request.target, request.workflow_id,
                                                              request.timeout_seconds))
        return agents_pb2.CatchUpReply(lsn=lsn, applied_lsn=applied, sequences=sequences, seconds=seconds)

    async def Release(self, request, context):
        _check(request)
        detail = await self.running.run(
            request.workflow_id, lambda cancel: sync.release(request.source, request.target, request.workflow_id))
        self.monitor.forget(request.workflow_id)
        return agents_pb2.ReleaseReply(detail=detail)


async def build():
    name = agents_pb2.DESCRIPTOR.services_by_name["Execution"].full_name
    return [Service(agents_pb2_grpc.add_ExecutionServicer_to_server, ExecutionServicer(), name)], None
