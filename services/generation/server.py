"""gRPC server of the generation agent: risk, plan and recommendation."""
from __future__ import annotations

import asyncio

from dbmigrate.v1 import agents_pb2, agents_pb2_grpc
from services.common.server import Service, service_errors
from services.generation.recommend import generate


@service_errors(agents_pb2_grpc.GenerationServicer)
class GenerationServicer(agents_pb2_grpc.GenerationServicer):
    async def Generate(self, request, context):
        return await asyncio.to_thread(generate, request)


async def build():
    name = agents_pb2.DESCRIPTOR.services_by_name["Generation"].full_name
    return [Service(agents_pb2_grpc.add_GenerationServicer_to_server, GenerationServicer(), name)], None
