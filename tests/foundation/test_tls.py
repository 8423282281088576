"""gRPC over TLS: with DBMIGRATE_TLS_CERT/KEY the services serve TLS, and clients with DBMIGRATE_TLS_CA reach them."""
from __future__ import annotations

import shutil
import subprocess

import grpc
import pytest

from dbmigrate.v1 import coordinator_pb2 as C, coordinator_pb2_grpc
from tests.coordinator.helpers import DST, SRC


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_tls_end_to_end_through_coordinator_and_agents(stack_factory, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    env = {"DBMIGRATE_TLS_CERT": str(cert), "DBMIGRATE_TLS_KEY": str(key), "DBMIGRATE_TLS_CA": str(cert)}
    stack = stack_factory(extra_env=env)
    # Health checks of the launcher speak plaintext; wait on the TLS port ourselves.
    from services.common.launcher import ServiceProcess
    for name, module in (("discovery", "tests.coordinator.agents_double"), ("coordinator", None)):
        p = ServiceProcess(name, stack.address(name), dict(stack.env), str(tmp_path / f"{name}.log"), module=module)
        p.start(wait=False)
        stack.procs[name] = p
    creds = grpc.ssl_channel_credentials(cert.read_bytes())
    with grpc.secure_channel(stack.address("coordinator"), creds) as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        stub = coordinator_pb2_grpc.CoordinatorStub(ch)
        m = stub.CreateMigration(C.CreateMigrationRequest(source_url=SRC, target_url=DST, start=True), timeout=10)
        import time
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = stub.GetMigration(C.MigrationRef(id=m.id), timeout=5)
            if m.phase == 5:  # AWAITING_APPROVAL: the coordinator reached the agents over TLS
                break
            time.sleep(0.2)
        assert m.phase == 5, m
    with grpc.insecure_channel(stack.address("coordinator")) as plain:
        with pytest.raises(grpc.RpcError):
            coordinator_pb2_grpc.CoordinatorStub(plain).ListMigrations(C.ListMigrationsRequest(), timeout=3)
    for p in stack.procs.values():
        p.stop()
    stack.procs.clear()
