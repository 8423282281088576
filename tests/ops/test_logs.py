"""Logs: one JSON object per line, with the service and the migration's id, never a password."""
from __future__ import annotations

import json
import logging

import grpc

from dbmigrate.v1 import agents_pb2, agents_pb2_grpc, common_pb2
from services.common.logs import setup_logging
from services.common.server import Service, create_server, service_errors
from tests.cli.helpers import dbmigrate

PW = "log-Pa55word-x"
SRC = f"postgresql://postgres:{PW}@127.0.0.1:5432/source_db"
DST = f"postgresql://postgres:{PW}@127.0.0.1:5432/target_db"


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]  # fails on any line that is not one JSON object


def test_coordinator_log_is_json_lines_with_workflow_ids_and_no_password(stack_factory):
    stack = stack_factory({"DOUBLE_UNITS": "2", "DOUBLE_UNIT_SECONDS": "0.01"})
    stack.start_doubles()
    stack.start("coordinator")
    r = dbmigrate("migrate", "--source", SRC, "--target", DST, "--approve", "--json",
                  coordinator=stack.address("coordinator"))
    assert r.code == 0, r.err
    wid = r.json["id"]
    text = stack.log("coordinator")
    assert PW not in text
    entries = json_lines(text)
    assert {e["service"] for e in entries} == {"coordinator"}
    about = [e for e in entries if e.get("workflow_id") == wid]
    assert any("created migration" in e["msg"] for e in about)
    assert any("completed" in e["msg"] for e in about)


@service_errors(agents_pb2_grpc.DiscoveryServicer)
class _LoggingDiscovery(agents_pb2_grpc.DiscoveryServicer):
    async def Discover(self, request, context):
        logging.getLogger("services.discovery").info("inspecting %s with password=%s", request.source.host,
                                                     request.source.password)
        return common_pb2.DiscoveryReport(summary="ok")


async def test_agent_log_lines_carry_the_workflow_id_of_the_call(capsys):
    setup_logging("discovery", "INFO")
    name = agents_pb2.DESCRIPTOR.services_by_name["Discovery"].full_name
    running = await create_server("127.0.0.1:0", [Service(agents_pb2_grpc.add_DiscoveryServicer_to_server,
                                                          _LoggingDiscovery(), name)])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            await agents_pb2_grpc.DiscoveryStub(ch).Discover(agents_pb2.DiscoverRequest(
                workflow_id="wf123", source=common_pb2.Connection(host="db1", password=PW)), timeout=10)
    finally:
        await running.stop(0)
    out = capsys.readouterr().out
    assert PW not in out
    line = next(e for e in json_lines(out) if "inspecting" in e["msg"])
    assert line["workflow_id"] == "wf123" and line["service"] == "discovery" and "password=***" in line["msg"]
