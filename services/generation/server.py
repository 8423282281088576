"""gRPC server of the generation agent. Not built yet: every call answers UNIMPLEMENTED (a real status)."""
from __future__ import annotations

from dbmigrate.v1 import agents_pb2, agents_pb2_grpc
from services.common.server import Service, service_errors


@service_errors(agents_pb2_grpc.GenerationServicer)
class GenerationServicer(agents_pb2_grpc.GenerationServicer):
    pass


async def build():
    name = agents_pb2.DESCRIPTOR.services_by_name["Generation"].full_name
    return [Service(agents_pb2_grpc.add_GenerationServicer_to_server, GenerationServicer(), name)], None
