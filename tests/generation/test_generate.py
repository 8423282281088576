"""Risk, plan and recommendation from discovery and validation reports (the rules advisor)."""
from __future__ import annotations

from dbmigrate.v1 import agents_pb2, common_pb2
from services.generation.recommend import generate

MB = 1024 * 1024


def table(name, nbytes, rows=1000, kind="table"):
    return common_pb2.TableInfo(schema="public", name=name, bytes=nbytes, row_estimate=rows, kind=kind,
                                has_primary_key=True, target_rows=-1)


def request(findings=(), passed=True, jobs=2, tables=None, bps=20 * MB, **options):
    discovery = common_pb2.DiscoveryReport(
        tables=tables if tables is not None else [table("small", 1 * MB), table("big", 600 * MB), table("mid", 50 * MB)],
        findings=list(findings), source=common_pb2.ServerInfo(size_bytes=700 * MB))
    validation = common_pb2.ValidationReport(passed=passed, bytes_per_second=bps)
    return agents_pb2.GenerateRequest(options=common_pb2.MigrationOptions(jobs=jobs, **options),
                                      discovery=discovery, validation=validation)


def finding(code, severity):
    return common_pb2.Finding(code=code, severity=severity, object="public.x", message=f"{code} happened",
                              remedy="fix it")


def test_a_clean_pair_gets_low_risk_and_approve():
    r = generate(request(findings=[finding("NO_PRIMARY_KEY", common_pb2.LOW)]))
    assert (r.risk, r.recommendation, r.advisor) == (common_pb2.RISK_LOW, common_pb2.APPROVE, "rules")
    assert r.summary.startswith("Recommendation: APPROVE") and "Risk LOW" in r.summary


def test_the_plan_orders_largest_first_splits_big_tables_and_estimates_time_and_disk():
    plan = generate(request(split_threshold_bytes=256 * MB)).plan
    assert [t.name for t in plan.tables] == ["big", "mid", "small"]
    assert [t.order for t in plan.tables] == [1, 2, 3]
    assert plan.tables[0].parts == 3 and plan.tables[1].parts == 1  # 600 MB over the 256 MB threshold
    assert {t.group for t in plan.tables} <= {1, 2} and plan.jobs == 2
    # 651 MB at 20 MB/s per job on 2 jobs, bounded below by the largest part (200 MB at 20 MB/s)
    assert 16 < plan.estimated_seconds < 60
    assert plan.target_disk_bytes >= 700 * MB
    names = [s.name for s in plan.steps]
    assert names[:4] == ["pre-data", "extension-data", "data", "indexes"] and names[-1] == "verify"
    assert generate(request(skip_final_verify=True)).plan.steps[-1].name != "verify"


def test_a_slower_measured_throughput_gives_a_longer_estimate():
    fast = generate(request(bps=100 * MB)).plan.estimated_seconds
    slow = generate(request(bps=10 * MB)).plan.estimated_seconds
    assert slow > 5 * fast


def test_a_blocker_means_deny_with_the_finding_named():
    r = generate(request(findings=[finding("EXTENSION_MISSING", common_pb2.BLOCKER),
                                   finding("NO_PRIMARY_KEY", common_pb2.LOW)]))
    assert (r.risk, r.recommendation) == (common_pb2.RISK_HIGH, common_pb2.DENY)
    assert any("EXTENSION_MISSING" in reason for reason in r.reasons)
    assert [f.code for f in r.findings] == ["EXTENSION_MISSING"]  # the findings that set the risk


def test_a_failed_validation_means_deny():
    r = generate(request(passed=False))
    assert r.recommendation == common_pb2.DENY
    assert any("VALIDATION_FAILED" in reason for reason in r.reasons)


def test_medium_findings_give_medium_risk_and_still_approve():
    r = generate(request(findings=[finding("WRITE_TRAFFIC", common_pb2.MEDIUM)]))
    assert (r.risk, r.recommendation) == (common_pb2.RISK_MEDIUM, common_pb2.APPROVE)
    assert any("MEDIUM" in reason for reason in r.reasons)


def test_high_findings_give_high_risk_and_deny_with_reasons():
    r = generate(request(findings=[finding("COLLATION_PROVIDER_CHANGED", common_pb2.HIGH)]))
    assert (r.risk, r.recommendation) == (common_pb2.RISK_HIGH, common_pb2.DENY)
    assert any("COLLATION_PROVIDER_CHANGED" in reason for reason in r.reasons)


def test_no_measured_throughput_is_said_not_hidden():
    r = generate(request(bps=0))
    assert "no throughput was measured" in r.summary.lower()


def test_by_default_only_tables_over_a_gigabyte_are_split_and_only_with_four_jobs():
    tables = [table("huge", 3000 * MB), table("big", 600 * MB)]
    plan = generate(request(tables=tables, jobs=4)).plan
    assert [(t.name, t.parts) for t in plan.tables] == [("huge", 3), ("big", 1)]
    # On 2 jobs one stream keeps both cores busy: whole (COPY FREEZE) up to 32 GB, then parts
    plan = generate(request(tables=tables + [table("vast", 40 * 1024 * MB)], jobs=2)).plan
    assert [(t.name, t.parts) for t in plan.tables] == [("vast", 2), ("huge", 1), ("big", 1)]
