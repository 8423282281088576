"""Steps shared by the end-to-end tests that run real migrations through the coordinator."""
from __future__ import annotations

import time

import grpc

from dbmigrate.v1 import common_pb2, coordinator_pb2 as C, events_pb2 as E
from tests.coordinator.helpers import logged_events


def create(stub, source_url: str, target_url: str, **options) -> str:
    """CreateMigration with start, 2 jobs unless given; waits out a coordinator that is restarting."""
    for _ in range(200):
        try:
            return stub.CreateMigration(C.CreateMigrationRequest(
                source_url=source_url, target_url=target_url, start=True,
                options=common_pb2.MigrationOptions(**{"jobs": 2, **options})), timeout=10).id
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            time.sleep(0.2)
    raise AssertionError("the coordinator never answered")


def drive(stub, wid: str, timeout: float = 400, during=None) -> C.Migration:
    """Approves when asked and returns the migration once it COMPLETED or FAILED with its rollback done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if during is not None:
            during()
        try:
            m = stub.GetMigration(C.MigrationRef(id=wid), timeout=5)
            phase = E.Phase.Name(m.phase)
            if phase == "AWAITING_APPROVAL":
                try:
                    stub.Approve(C.ApproveRequest(id=wid, comment="approved by the test"), timeout=5)
                except grpc.RpcError as err:
                    if err.code() == grpc.StatusCode.FAILED_PRECONDITION and "cannot be approved" in (err.details() or ""):
                        raise AssertionError(f"migration {wid}: {err.details()}") from None
                    raise
            elif phase == "COMPLETED" or (phase in ("FAILED", "CANCELLED", "DENIED") and not m.rollback_pending):
                return m
        except grpc.RpcError as err:
            if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                  grpc.StatusCode.FAILED_PRECONDITION):
                raise
        time.sleep(0.1)
    raise AssertionError(f"migration {wid} did not end within {timeout}s")


def events_of(stack, wid: str, kind: str) -> list:
    """The payloads of one kind of event of a migration, from the coordinator's event log."""
    return [getattr(e, kind) for e in logged_events(stack, wid) if e.WhichOneof("payload") == kind]


def units_copied(events) -> int:
    """Units the events say are copied: TableCopied events, and small tables' TableVerified that
    carry their copy."""
    n = 0
    for e in events:
        kind = e.WhichOneof("payload")
        n += kind == "table_copied" or (kind == "table_verified" and e.table_verified.HasField("copied"))
    return n


def wait_for_copies(stack, wid: str, n: int = 1, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while units_copied(logged_events(stack, wid)) < n:
        assert time.monotonic() < deadline, f"fewer than {n} units copied after {timeout}s"
        time.sleep(0.05)
