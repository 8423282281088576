"""The coordinator end to end over gRPC, with stand-in agents: phases, approval, crashes, NATS, bad input."""
from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dbmigrate.v1 import coordinator_pb2 as C
from tests.coordinator.helpers import (DST, SRC, assert_no_gaps_no_duplicates, logged_events, stream_messages,
                                       wait_phase)
from tests.foundation.test_bootstrap import _list_services


def create(stub, **kw) -> C.Migration:
    return stub.CreateMigration(C.CreateMigrationRequest(source_url=SRC, target_url=DST, start=True, **kw), timeout=10)


def test_happy_path_waits_for_approval_then_completes_and_publishes_every_event(stack_factory, nats_url):
    stack = stack_factory().start_doubles(DOUBLE_UNITS="5").start("coordinator")
    ch, stub = stack.coordinator_stub()
    m = create(stub)
    m = wait_phase(stub, m.id, "AWAITING_APPROVAL")
    assert m.recommendation == 1  # APPROVE
    assert m.source_url == "postgresql://postgres@127.0.0.1:5432/source_db"
    stub.Approve(C.ApproveRequest(id=m.id, comment="looks good"), timeout=10)
    m = wait_phase(stub, m.id, "COMPLETED")
    assert [t.status for t in m.tables] == ["verified"] * 5
    # The list sums the tables (a history of large migrations stays small); GetMigration has each one.
    listed = next(x for x in stub.ListMigrations(C.ListMigrationsRequest(), timeout=10).migrations if x.id == m.id)
    assert not listed.tables and listed.progress.tables_verified == 5 and listed.progress.percent == 100
    report = stub.GetReport(C.GetReportRequest(id=m.id), timeout=10)
    assert report.execution.rows == 50 and report.verification.equal and report.discovery.summary == "5 tables"
    events = logged_events(stack, m.id)
    assert_no_gaps_no_duplicates(events)
    published = asyncio.run(stream_messages(nats_url, stack.env["DBMIGRATE_NATS_STREAM"], len(events),
                                            workflow_id=m.id))
    assert published == [(e.workflow_id, e.version) for e in events]
    # Secrets never in the event log, the NATS messages or the coordinator's log.
    raw = (stack.data_dir / "events.db").read_bytes() + stack.log("coordinator").encode()
    assert b"s3cret-src-pw" not in raw and b"s3cret-dst-pw" not in raw
    ch.close()


def test_reflection_lists_the_coordinator_and_health_is_serving(stack_factory):
    stack = stack_factory().start("coordinator")
    addr = stack.address("coordinator")
    assert {"dbmigrate.v1.Coordinator", "grpc.health.v1.Health"} <= _list_services(addr)
    with grpc.insecure_channel(addr) as ch:
        r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="dbmigrate.v1.Coordinator"))
        assert r.status == health_pb2.HealthCheckResponse.SERVING


def test_bad_input_gets_a_clear_status(stack_factory):
    stack = stack_factory().start_doubles(DOUBLE_UNITS="2").start("coordinator")
    ch, stub = stack.coordinator_stub()

    def status(call, req):
        with pytest.raises(grpc.RpcError) as info:
            call(req, timeout=10)
        return info.value.code(), info.value.details()

    code, msg = status(stub.GetMigration, C.MigrationRef(id="doesnotexist"))
    assert code == grpc.StatusCode.NOT_FOUND and "doesnotexist" in msg
    code, msg = status(stub.CreateMigration, C.CreateMigrationRequest(source_url="mysql://x@y/z", target_url=DST))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "postgresql://" in msg
    code, msg = status(stub.CreateMigration, C.CreateMigrationRequest(source_url="postgresql://u@h:99999/db",
                                                                      target_url=DST))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "port" in msg
    code, msg = status(stub.CreateMigration, C.CreateMigrationRequest(source_url=SRC, target_url=SRC))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "same database" in msg
    code, msg = status(stub.CreateMigration, C.CreateMigrationRequest(source_url=SRC))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "target" in msg
    assert "s3cret" not in msg

    m = create(stub)
    wait_phase(stub, m.id, "AWAITING_APPROVAL")
    code, msg = status(stub.Deny, C.DenyRequest(id=m.id))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "reason" in msg
    stub.Deny(C.DenyRequest(id=m.id, reason="not tonight"), timeout=10)
    code, msg = status(stub.Approve, C.ApproveRequest(id=m.id))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "DENIED" in msg and "AWAITING_APPROVAL" in msg

    m2 = create(stub)
    wait_phase(stub, m2.id, "AWAITING_APPROVAL")
    stub.Approve(C.ApproveRequest(id=m2.id), timeout=10)
    code, msg = status(stub.Approve, C.ApproveRequest(id=m2.id))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "approval is only possible" in msg
    code, msg = status(stub.GetReport, C.GetReportRequest(id=m2.id, agent="nonsense"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "discovery" in msg
    wait_phase(stub, m2.id, "COMPLETED")
    ch.close()


def test_a_blocked_plan_cannot_be_approved(stack_factory):
    stack = stack_factory().start_doubles(DOUBLE_BLOCKER="EXTENSION_MISSING", DOUBLE_RECOMMENDATION="DENY") \
        .start("coordinator")
    ch, stub = stack.coordinator_stub()
    m = wait_phase(stub, create(stub).id, "AWAITING_APPROVAL")
    assert m.recommendation == 2  # DENY
    with pytest.raises(grpc.RpcError) as info:
        stub.Approve(C.ApproveRequest(id=m.id), timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "EXTENSION_MISSING" in info.value.details()
    ch.close()


def _calls(path) -> list[str]:
    return [line.split(" ", 1)[1] for line in path.read_text().splitlines()]


def test_the_sample_runs_beside_discovery_and_stands_when_nothing_blocks(stack_factory, tmp_path):
    """The sample test migration starts with discovery (both mostly wait on the databases) and its
    answer is kept once discovery found nothing blocking: one Validate call, and the migration
    reaches approval after max(discovery, sample), not their sum."""
    calls = tmp_path / "calls"
    stack = stack_factory().start_doubles(DOUBLE_CALLS=str(calls), DOUBLE_DISCOVER_SECONDS="1.0",
                                          DOUBLE_VALIDATE_SECONDS="1.0").start("coordinator")
    ch, stub = stack.coordinator_stub()
    t0 = time.monotonic()
    m = wait_phase(stub, create(stub).id, "AWAITING_APPROVAL")
    assert time.monotonic() - t0 < 1.8
    seen = _calls(calls)
    assert seen.index("validate started beside discovery") < seen.index("discover ended")
    assert [c for c in seen if c.startswith("validate")] == ["validate started beside discovery",
                                                              "validate ended beside discovery"]
    report = stub.GetReport(C.GetReportRequest(id=m.id, agent="validation"), timeout=10)
    assert report.validation.passed and report.validation.summary == "sample exact"
    ch.close()


def test_a_blocker_found_by_discovery_stops_the_sample_run_beside_it(stack_factory, tmp_path):
    """Discovery found a blocker: the sample started beside it is stopped, and validation is asked
    again with the report (the sample is not run past a blocker); its answer is the one recorded."""
    calls = tmp_path / "calls"
    stack = stack_factory().start_doubles(DOUBLE_CALLS=str(calls), DOUBLE_DISCOVER_SECONDS="0.3",
                                          DOUBLE_VALIDATE_SECONDS="2.0", DOUBLE_DISCOVER_BLOCKER="TARGET_NOT_EMPTY") \
        .start("coordinator")
    ch, stub = stack.coordinator_stub()
    m = wait_phase(stub, create(stub).id, "AWAITING_APPROVAL")
    seen = _calls(calls)
    assert "validate cancelled beside discovery" in seen and "validate ended beside discovery" not in seen
    assert seen[-2:] == ["validate started with 1 findings", "validate ended with 1 findings"]
    report = stub.GetReport(C.GetReportRequest(id=m.id, agent="validation"), timeout=10)
    assert report.validation.skipped and report.validation.summary == "not run: blocked"
    ch.close()


def test_an_agent_error_fails_the_migration_with_its_message(stack_factory):
    stack = stack_factory().start_doubles(
        DOUBLE_DISCOVER_ERROR="source database u@h:5432/db: authentication failed for user 'u'; check the user and password"
    ).start("coordinator")
    ch, stub = stack.coordinator_stub()
    m = wait_phase(stub, create(stub).id, "FAILED")
    assert "authentication failed" in m.error and "discovery" in m.error
    ch.close()


def test_kill9_coordinator_mid_execution_resumes_without_gaps_or_duplicates(stack_factory, tmp_path):
    journal = tmp_path / "journal"
    stack = stack_factory().start_doubles(DOUBLE_UNITS="40", DOUBLE_UNIT_SECONDS="0.1", DOUBLE_JOURNAL=str(journal)) \
        .start("coordinator")
    ch, stub = stack.coordinator_stub()
    m = wait_phase(stub, create(stub).id, "AWAITING_APPROVAL")
    stub.Approve(C.ApproveRequest(id=m.id), timeout=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        copied = [e for e in logged_events(stack, m.id) if e.WhichOneof("payload") == "table_copied"]
        if len(copied) >= 10:
            break
        time.sleep(0.05)
    stack.kill9("coordinator")
    stack.procs["coordinator"].start()
    m = wait_phase(stub, m.id, "COMPLETED", timeout=60)
    events = logged_events(stack, m.id)
    assert_no_gaps_no_duplicates(events)
    units = [e.table_copied.unit for e in events if e.WhichOneof("payload") == "table_copied"]
    assert sorted(units) == sorted(f"public.t{i}" for i in range(40))  # each unit recorded exactly once
    attempts = [e.execution_attempted.attempt for e in events if e.WhichOneof("payload") == "execution_attempted"]
    assert attempts[:2] == [1, 2]
    assert len([t for t in m.tables if t.status == "verified"]) == 40
    ch.close()


def test_waiting_for_approval_survives_a_restart_and_continues_when_approved(stack_factory):
    stack = stack_factory().start_doubles(DOUBLE_UNITS="3").start("coordinator")
    ch, stub = stack.coordinator_stub()
    m = wait_phase(stub, create(stub).id, "AWAITING_APPROVAL")
    stack.kill9("coordinator")
    stack.procs["coordinator"].start()
    m = wait_phase(stub, m.id, "AWAITING_APPROVAL")
    stub.Approve(C.ApproveRequest(id=m.id, comment="after restart"), timeout=10)
    m = wait_phase(stub, m.id, "COMPLETED")
    assert m.approval_comment == "after restart"
    ch.close()


def test_cancel_during_execution_rolls_back_and_ends_cancelled(stack_factory):
    stack = stack_factory().start_doubles(DOUBLE_UNITS="200", DOUBLE_UNIT_SECONDS="0.05").start("coordinator")
    ch, stub = stack.coordinator_stub()
    m = wait_phase(stub, create(stub).id, "AWAITING_APPROVAL")
    stub.Approve(C.ApproveRequest(id=m.id), timeout=10)
    wait_phase(stub, m.id, "EXECUTING")
    # Cancel once the copy has begun: before the baseline is recorded nothing was touched, so there
    # is nothing to roll back (and no rolled_back event).
    deadline = time.monotonic() + 20
    while "table_copied" not in [e.WhichOneof("payload") for e in logged_events(stack, m.id)]:
        assert time.monotonic() < deadline, "the copy never began"
        time.sleep(0.05)
    stub.Cancel(C.CancelRequest(id=m.id, reason="maintenance window over"), timeout=10)
    m = wait_phase(stub, m.id, "CANCELLED")
    deadline = time.monotonic() + 20
    while stub.GetMigration(C.MigrationRef(id=m.id)).rollback_pending and time.monotonic() < deadline:
        time.sleep(0.1)
    kinds = [e.WhichOneof("payload") for e in logged_events(stack, m.id)]
    assert "rolled_back" in kinds and kinds.index("migration_cancelled") < kinds.index("rolled_back")
    with pytest.raises(grpc.RpcError) as info:
        stub.Cancel(C.CancelRequest(id=m.id), timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    ch.close()


def test_nats_outage_loses_nothing_and_publishes_everything_once_in_order(stack_factory, private_nats):
    stack = stack_factory(nats=private_nats.url).start_doubles(DOUBLE_UNITS="30", DOUBLE_UNIT_SECONDS="0.05") \
        .start("coordinator")
    ch, stub = stack.coordinator_stub()
    first = wait_phase(stub, create(stub).id, "AWAITING_APPROVAL")
    private_nats.stop()
    stub.Approve(C.ApproveRequest(id=first.id), timeout=10)
    second = create(stub)
    wait_phase(stub, first.id, "COMPLETED")
    wait_phase(stub, second.id, "AWAITING_APPROVAL")
    private_nats.start()
    events = logged_events(stack)
    published = asyncio.run(stream_messages(private_nats.url, stack.env["DBMIGRATE_NATS_STREAM"], len(events),
                                            timeout=30))
    assert published == [(e.workflow_id, e.version) for e in events]
    ch.close()
