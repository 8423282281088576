"""Reports pass through the coordinator as bytes: what the agents, watchers and NATS receive is what
they would have received from the parsed messages (a parsed report takes six times its size)."""
from __future__ import annotations

from google.protobuf import json_format

from coordinator.eventlog import EventLog
from coordinator.state import agents_discovery
from coordinator.workflow import with_reports
from dbmigrate.v1 import agents_pb2, common_pb2, events_pb2 as E


def discovery(tables: int) -> common_pb2.DiscoveryReport:
    report = common_pb2.DiscoveryReport(summary=f"{tables} tables")
    for i in range(tables):
        report.tables.add(schema="public", name=f"t_{i}", row_estimate=50, bytes=16384 + i, owner="app")
    return report


def test_a_request_built_with_serialized_reports_is_the_request_with_them_parsed():
    d = discovery(3000)  # about 86 KB: its length takes three bytes
    v = common_pb2.ValidationReport(summary="sample exact", passed=True)
    head = agents_pb2.GenerateRequest(workflow_id="wf-1", options=common_pb2.MigrationOptions(jobs=3),
                                      advisor=common_pb2.AdvisorConfig(kind=common_pb2.RULES))
    sent = with_reports(head, discovery=d.SerializeToString(), validation=v.SerializeToString())
    expected = agents_pb2.GenerateRequest()
    expected.CopyFrom(head)
    expected.discovery.CopyFrom(d)
    expected.validation.CopyFrom(v)
    assert agents_pb2.GenerateRequest.FromString(sent) == expected
    # an empty report is still a report the agent sees as given
    verify = agents_pb2.VerifyRequest.FromString(with_reports(agents_pb2.VerifyRequest(workflow_id="wf-1"), proven=b""))
    assert verify.HasField("proven") and verify.workflow_id == "wf-1"


def test_stored_events_are_the_events_read_back_with_their_seq(tmp_path):
    log = EventLog(tmp_path / "e.db")
    log.append("other", 0, [E.WorkflowEvent(migration_started=E.MigrationStarted())])
    big = E.WorkflowEvent(discovery_completed=E.DiscoveryCompleted(report=discovery(500)))
    big.time.FromMicroseconds(1_700_000_000_000_000)
    appended, written = log.append_stored("wf-1", 0, [E.WorkflowEvent(migration_started=E.MigrationStarted()), big])
    stored = log.read_stored(workflow_id="wf-1")
    assert [(s.seq, s.workflow_id, s.version, s.type) for s in stored] == [
        (2, "wf-1", 1, "migration_started"), (3, "wf-1", 2, "discovery_completed")]
    assert [s.parsed() for s in stored] == log.read(workflow_id="wf-1") == appended
    assert [E.WorkflowEvent.FromString(s.data) for s in stored] == appended  # what WatchEvents and NATS send
    assert written == stored  # what the engine keeps for watchers as it appends: the bytes read back


def test_the_agents_get_the_discovery_without_its_inventory_but_with_the_first_write_reading():
    report = discovery(2000)
    report.findings.add(code="WRITE_TRAFFIC", severity=common_pb2.MEDIUM, object="public.t_1", message="writes")
    report.source.version = "15.4"
    report.pg_dump_version = "18.1"
    report.details.update({"source": {"tables": [{"name": f"t_{i}", "columns": ["id", "v"]} for i in range(2000)],
                                      "activity": {"first": {"tuples_changed": 12, "sampled_epoch": 1.5e9}}},
                           "target": {"collations": ["C"] * 500}})
    brief = common_pb2.DiscoveryReport.FromString(agents_discovery(report))
    assert brief.ByteSize() * 2 < report.ByteSize()
    assert (list(brief.tables), list(brief.findings), brief.source, brief.pg_dump_version, brief.summary) == (
        list(report.tables), list(report.findings), report.source, "18.1", "2000 tables")
    assert json_format.MessageToDict(brief.details) == {
        "source": {"activity": {"first": {"tuples_changed": 12, "sampled_epoch": 1.5e9}}}}
    assert not common_pb2.DiscoveryReport.FromString(agents_discovery(discovery(3))).HasField("details")
