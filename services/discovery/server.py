"""gRPC server of the discovery agent: inspects both databases, reports findings and a summary."""
from __future__ import annotations

import asyncio

from dbmigrate.v1 import agents_pb2, agents_pb2_grpc
from services.common.server import Service, service_errors
from services.discovery.discover import discover
from services.discovery.summary import summarize


def discover_and_summarize(request: agents_pb2.DiscoverRequest):
    report = discover(request)
    summarize(report, request.advisor)
    return report


@service_errors(agents_pb2_grpc.DiscoveryServicer)
class DiscoveryServicer(agents_pb2_grpc.DiscoveryServicer):
    async def Discover(self, request, context):
        return await asyncio.to_thread(discover_and_summarize, request)


async def build():
    name = agents_pb2.DESCRIPTOR.services_by_name["Discovery"].full_name
    return [Service(agents_pb2_grpc.add_DiscoveryServicer_to_server, DiscoveryServicer(), name)], None
