"""With DBMIGRATE_GRPC_TOKEN set, calls need the token; health and reflection stay open; agents get it too."""
from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dbmigrate.v1 import coordinator_pb2 as C, coordinator_pb2_grpc
from tests.coordinator.helpers import DST, SRC, wait_phase


def test_token_is_required_and_passed_on_to_the_agents(stack_factory):
    stack = stack_factory(extra_env={"DBMIGRATE_GRPC_TOKEN": "tok-123456"}).start_doubles(DOUBLE_UNITS="2") \
        .start("coordinator")
    addr = stack.address("coordinator")
    with grpc.insecure_channel(addr) as ch:
        stub = coordinator_pb2_grpc.CoordinatorStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.ListMigrations(C.ListMigrationsRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and "token" in info.value.details()
        bad = [("authorization", "Bearer wrong")]
        with pytest.raises(grpc.RpcError):
            stub.ListMigrations(C.ListMigrationsRequest(), timeout=5, metadata=bad)
        status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        good = [("authorization", "Bearer tok-123456")]
        m = stub.CreateMigration(C.CreateMigrationRequest(source_url=SRC, target_url=DST, start=True),
                                 timeout=10, metadata=good)

        class WithToken:
            def __getattr__(self, name):
                call = getattr(stub, name)
                return lambda req, **kw: call(req, metadata=good, **kw)

        # The coordinator reached the (token-protected) agents: the plan arrived.
        wait_phase(WithToken(), m.id, "AWAITING_APPROVAL")
    stack.procs.pop("coordinator").stop()  # the replay check needs the token; it is covered elsewhere
