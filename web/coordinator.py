"""The web server's only link to DBMigrate: the coordinator's gRPC API, errors turned into ApiError."""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dbmigrate.v1 import coordinator_pb2, coordinator_pb2_grpc, events_pb2
from services.common.channels import aio_channel
from web.errors import from_rpc_error

# Unary calls answer from the coordinator's memory; a slow answer means it is stuck or unreachable.
CALL_TIMEOUT = 15.0
# How long a broken event stream is opened again while the coordinator does not answer.
RECONNECT_SECONDS = 30.0
_TRANSPORT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
              grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED}


class Coordinator:
    """One channel for the life of the web server; every call returns a message or raises ApiError."""

    def __init__(self, address: str):
        self.address = address
        self._channel: grpc.aio.Channel | None = None
        self._stub: coordinator_pb2_grpc.CoordinatorStub | None = None

    def open(self) -> None:
        self._channel = aio_channel(self.address)
        self._stub = coordinator_pb2_grpc.CoordinatorStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def _call(self, method: str, request):
        try:
            return await getattr(self._stub, method)(request, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, self.address) from None

    async def health(self) -> str:
        """SERVING, NOT_SERVING, ...; raises ApiError(503) when the coordinator cannot be reached."""
        try:
            reply = await health_pb2_grpc.HealthStub(self._channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, self.address) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    async def create(self, request: coordinator_pb2.CreateMigrationRequest) -> coordinator_pb2.Migration:
        return await self._call("CreateMigration", request)

    async def get(self, wid: str, tables: int = coordinator_pb2.TABLES_ALL, table_filter: str = "",
                  table_limit: int = 0) -> coordinator_pb2.Migration:
        """The migration with the tables `tables` (a TableView) and the filter choose."""
        return await self._call("GetMigration", coordinator_pb2.MigrationRef(
            id=wid, tables=tables, table_filter=table_filter, table_limit=table_limit))

    async def state(self, wid: str) -> coordinator_pb2.Migration:
        """The migration without its tables (its phase, summary and actions): NotFound for an unknown id."""
        return await self.get(wid, coordinator_pb2.TABLES_NONE)

    async def list(self, limit: int = 0) -> list[coordinator_pb2.Migration]:
        reply = await self._call("ListMigrations", coordinator_pb2.ListMigrationsRequest(limit=limit))
        return list(reply.migrations)

    async def start(self, wid: str) -> coordinator_pb2.Migration:
        return await self._call("StartMigration", coordinator_pb2.MigrationRef(id=wid))

    async def approve(self, wid: str, comment: str) -> coordinator_pb2.Migration:
        return await self._call("Approve", coordinator_pb2.ApproveRequest(id=wid, comment=comment))

    async def deny(self, wid: str, reason: str) -> coordinator_pb2.Migration:
        return await self._call("Deny", coordinator_pb2.DenyRequest(id=wid, reason=reason))

    async def cancel(self, wid: str, reason: str) -> coordinator_pb2.Migration:
        return await self._call("Cancel", coordinator_pb2.CancelRequest(id=wid, reason=reason))

    async def rollback(self, wid: str, reason: str) -> coordinator_pb2.Migration:
        return await self._call("Rollback", coordinator_pb2.RollbackMigrationRequest(id=wid, reason=reason))

    async def cutover(self, wid: str) -> coordinator_pb2.Migration:
        return await self._call("Cutover", coordinator_pb2.CutoverRequest(id=wid))

    async def report(self, wid: str, agent: str = "") -> coordinator_pb2.Report:
        return await self._call("GetReport", coordinator_pb2.GetReportRequest(id=wid, agent=agent))

    async def events(self, wid: str, from_seq: int, follow: bool,
                     on_break=None) -> AsyncIterator[events_pb2.WorkflowEvent]:
        """WatchEvents as an async iterator. A stream the transport breaks (a coordinator restart, a cut
        connection) is opened again after the last event it gave, as long as the coordinator answers
        within RECONNECT_SECONDS; only then does it raise ApiError."""
        last = from_seq
        deadline = None
        broken = False
        while True:
            call = self._stub.WatchEvents(coordinator_pb2.WatchEventsRequest(workflow_id=wid, from_seq=last,
                                                                             follow=follow))
            try:
                async for ev in call:
                    if broken and on_break is not None:
                        await on_break(False)
                    deadline, broken = None, False
                    last = ev.seq
                    yield ev
                return
            except grpc.aio.AioRpcError as err:
                if err.code() not in _TRANSPORT:
                    raise from_rpc_error(err, self.address) from None
                deadline = deadline or time.monotonic() + RECONNECT_SECONDS
                if time.monotonic() > deadline:
                    raise from_rpc_error(err, self.address) from None
                if not broken and on_break is not None:
                    await on_break(True)  # the page says it is reconnecting
                broken = True
                await asyncio.sleep(0.5)
            finally:
                call.cancel()
