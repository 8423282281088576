"""Long calls and quiet streams are not cut by keepalive: clients and servers agree on the pings.

With pings every half second (DBMIGRATE_GRPC_KEEPALIVE_SECONDS=0.5 on every process), a Validate call
that sends nothing for 6 seconds (12 keepalive periods) answers once, and a `dbmigrate watch` stream
that has nothing to say meanwhile goes on to the end.
"""
from __future__ import annotations

from dbmigrate.v1 import common_pb2, coordinator_pb2 as C, events_pb2 as E
from tests.cli.helpers import dbmigrate
from tests.coordinator.helpers import logged_events, wait_phase

KEEPALIVE = {"DBMIGRATE_GRPC_KEEPALIVE_SECONDS": "0.5"}


def test_a_call_longer_than_many_keepalive_periods_answers_once(stack_factory):
    stack = stack_factory(extra_env={**KEEPALIVE, "DOUBLE_VALIDATE_SECONDS": "6"})
    stack.start_doubles()
    stack.start("coordinator")
    ch, stub = stack.coordinator_stub()
    with ch:
        wid = stub.CreateMigration(C.CreateMigrationRequest(
            source_url="postgresql://app@127.0.0.1:5432/shop", target_url="postgresql://app@127.0.0.1:5432/copy",
            options=common_pb2.MigrationOptions(jobs=2), start=True), timeout=10).id
        watch = dbmigrate("watch", wid, coordinator=stack.address("coordinator"), env=KEEPALIVE, timeout=60)
        m = wait_phase(stub, wid, "AWAITING_APPROVAL", "FAILED", timeout=60)
    assert E.Phase.Name(m.phase) == "AWAITING_APPROVAL", m.error
    kinds = [e.WhichOneof("payload") for e in logged_events(stack, wid)]
    assert "agent_call_failed" not in kinds, "the Validate call was cut and retried"
    assert kinds.count("validation_completed") == 1
    assert watch.code == 0, watch.err
    assert "too_many_pings" not in watch.err + watch.out and "cannot reach" not in watch.err
    assert "waiting for approval" in (watch.out + watch.err).lower() or "AWAITING_APPROVAL" in watch.out
