"""gRPC server of the validation agent: sample test migration (Validate) and whole-database Verify."""
from __future__ import annotations

import asyncio

from dbmigrate.v1 import agents_pb2, agents_pb2_grpc
from services.common.exclusive import PerWorkflow
from services.common.server import Service, service_errors
from services.validation.sample import validate
from services.validation.verify import verify


@service_errors(agents_pb2_grpc.ValidationServicer)
class ValidationServicer(agents_pb2_grpc.ValidationServicer):
    def __init__(self):
        self.running = PerWorkflow()

    async def Validate(self, request, context):
        # A retried call waits for the interrupted one: both use the workflow's scratch database.
        return await self.running.run(request.workflow_id, lambda cancel: validate(request, cancel))

    async def Verify(self, request, context):
        return await asyncio.to_thread(verify, request)


async def build():
    name = agents_pb2.DESCRIPTOR.services_by_name["Validation"].full_name
    return [Service(agents_pb2_grpc.add_ValidationServicer_to_server, ValidationServicer(), name)], None
