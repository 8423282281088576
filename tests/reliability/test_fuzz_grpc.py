"""Hostile and malformed input to the Coordinator API: never a crash, never a stack trace, a clear status."""
from __future__ import annotations

import grpc
from hypothesis import HealthCheck, given, settings, strategies as st

from dbmigrate.v1 import common_pb2, coordinator_pb2 as C

EXPECTED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION}
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)
urls = st.one_of(text, st.builds(lambda u, h, port, db, q: f"postgresql://{u}:pw-Secret-9@{h}:{port}/{db}?{q}",
                                 text, text, st.integers(-10, 70000), text, text))
INPUTS_TRIED = {"count": 0}


def _check(call, req):
    INPUTS_TRIED["count"] += 1
    try:
        call(req, timeout=10)
    except grpc.RpcError as err:
        assert err.code() in EXPECTED, (err.code(), err.details(), req)
        details = err.details() or ""
        assert details and "Traceback" not in details and "File \"" not in details
        assert "pw-Secret-9" not in details
        return err
    return None


def test_fuzz_the_coordinator_api(stack_factory):
    stack = stack_factory().start("coordinator")
    ch, stub = stack.coordinator_stub()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(src=urls, dst=urls, jobs=st.integers(-5, 200), include=st.lists(text, max_size=3),
           name=st.text(max_size=300), kind=st.integers(0, 5), port=st.integers(-1, 70000), host=text)
    def create(src, dst, jobs, include, name, kind, port, host):
        req = C.CreateMigrationRequest(source_url=src, target_url=dst, name=name,
                                       options=common_pb2.MigrationOptions(jobs=jobs, include=include),
                                       advisor=common_pb2.AdvisorConfig(kind=kind))
        _check(stub.CreateMigration, req)
        req2 = C.CreateMigrationRequest(source=common_pb2.Connection(host=host, port=port, dbname=name[:10], user="u"),
                                        target_url="postgresql://u@127.0.0.1/x")
        _check(stub.CreateMigration, req2)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(wid=text, comment=text, agent=text, from_seq=st.integers(-5, 10**12))
    def commands(wid, comment, agent, from_seq):
        _check(stub.GetMigration, C.MigrationRef(id=wid))
        _check(stub.StartMigration, C.MigrationRef(id=wid))
        _check(stub.Approve, C.ApproveRequest(id=wid, comment=comment))
        _check(stub.Deny, C.DenyRequest(id=wid, reason=comment))
        _check(stub.Cancel, C.CancelRequest(id=wid, reason=comment))
        _check(stub.Rollback, C.RollbackMigrationRequest(id=wid))
        _check(stub.GetReport, C.GetReportRequest(id=wid, agent=agent))
        INPUTS_TRIED["count"] += 1
        try:
            list(stub.WatchEvents(C.WatchEventsRequest(workflow_id=wid, from_seq=from_seq, follow=False), timeout=10))
        except grpc.RpcError as err:
            assert err.code() in EXPECTED and "Traceback" not in (err.details() or "")

    create()
    commands()
    # The coordinator is still healthy and answers normally after all of it.
    assert stub.ListMigrations(C.ListMigrationsRequest(), timeout=10) is not None
    assert "Traceback" not in stack.log("coordinator")
    print(f"\ninputs tried against the Coordinator API: {INPUTS_TRIED['count']}")
    ch.close()
