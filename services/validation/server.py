"""gRPC server of the validation agent. Not built yet: every call answers UNIMPLEMENTED (a real status)."""
from __future__ import annotations

from dbmigrate.v1 import agents_pb2, agents_pb2_grpc
from services.common.server import Service, service_errors


@service_errors(agents_pb2_grpc.ValidationServicer)
class ValidationServicer(agents_pb2_grpc.ValidationServicer):
    pass


async def build():
    name = agents_pb2.DESCRIPTOR.services_by_name["Validation"].full_name
    return [Service(agents_pb2_grpc.add_ValidationServicer_to_server, ValidationServicer(), name)], None
