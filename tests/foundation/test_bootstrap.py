"""Every agent server starts with health, reflection and real UNIMPLEMENTED answers for what is not built."""
from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common.launcher import ServiceProcess
from tests.fixtures.nats import free_port


def _list_services(address: str) -> set[str]:
    with grpc.insecure_channel(address) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        for r in responses:
            return {s.name for s in r.list_services_response.service}
    return set()


@pytest.mark.parametrize("service,full_name", [
    ("discovery", "dbmigrate.v1.Discovery"),
    ("validation", "dbmigrate.v1.Validation"),
    ("generation", "dbmigrate.v1.Generation"),
    ("execution", "dbmigrate.v1.Execution"),
])
def test_agent_serves_health_and_reflection_and_stops_on_sigterm(service, full_name, tmp_path):
    addr = f"127.0.0.1:{free_port()}"
    proc = ServiceProcess(service, addr, {f"DBMIGRATE_{service.upper()}_ADDR": addr}, str(tmp_path / "log")).start()
    try:
        assert full_name in _list_services(addr)
        assert "grpc.health.v1.Health" in _list_services(addr)
        with grpc.insecure_channel(addr) as ch:
            h = health_pb2_grpc.HealthStub(ch)
            assert h.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
            assert h.Check(health_pb2.HealthCheckRequest(service=full_name), timeout=5).status == \
                health_pb2.HealthCheckResponse.SERVING
    finally:
        assert proc.stop() == 0, (tmp_path / "log").read_text()


def test_bad_address_fails_at_start_naming_the_variable(tmp_path):
    import subprocess, sys, os
    env = {**os.environ, "DBMIGRATE_DISCOVERY_ADDR": "nonsense"}
    r = subprocess.run([sys.executable, "-m", "services.discovery"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "DBMIGRATE_DISCOVERY_ADDR" in r.stderr and "Traceback" not in r.stderr
