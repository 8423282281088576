"""The discovery report's written summary (rules) and the advisor's review of it."""
from __future__ import annotations

from dbmigrate.v1 import common_pb2
from services.common.advisor import Review, advisor_for, count_by_severity, findings_digest, risk_from_findings
from services.common.text import human_bytes


def rules_summary(report: common_pb2.DiscoveryReport) -> str:
    s, t = report.source, report.target
    rows = sum(max(0, x.row_estimate) for x in report.tables)
    nbytes = sum(x.bytes for x in report.tables)
    blockers = [f for f in report.findings if f.severity == common_pb2.BLOCKER]
    head = (f"Source: PostgreSQL {s.version or '?'} ({human_bytes(s.size_bytes)}, {s.encoding}), "
            f"{len(report.tables)} tables, about {rows:,} rows and {human_bytes(nbytes)} of table data. "
            f"Target: PostgreSQL {t.version or '?'} ({human_bytes(t.size_bytes)}, {t.encoding}). "
            f"Findings: {count_by_severity(report.findings)}.")
    if blockers:
        verdict = (f"The migration cannot run until {len(blockers)} blocking finding"
                   f"{'s are' if len(blockers) > 1 else ' is'} fixed.")
    elif any(f.severity == common_pb2.HIGH for f in report.findings):
        verdict = "Nothing blocks the migration, but the HIGH findings need a decision before approval."
    else:
        verdict = "Nothing blocks the migration."
    lines = findings_digest(report.findings)
    return "\n".join([head, verdict] + ([""] + lines if lines else []))


def summarize(report: common_pb2.DiscoveryReport, advisor_config: common_pb2.AdvisorConfig) -> None:
    """Fills summary, advisor and advisor_note in place."""
    draft = Review(risk=risk_from_findings(report.findings), summary=rules_summary(report))
    facts = {
        "source": {"version": report.source.version, "encoding": report.source.encoding,
                   "collation": report.source.collation, "size_bytes": report.source.size_bytes},
        "target": {"version": report.target.version, "encoding": report.target.encoding,
                   "collation": report.target.collation, "size_bytes": report.target.size_bytes},
        "tables": len(report.tables),
        "findings": [{"code": f.code, "severity": common_pb2.Severity.Name(f.severity), "object": f.object,
                      "message": f.message} for f in report.findings[:200]],
    }
    review = advisor_for(advisor_config).review("discovery", facts, draft)
    text = review.summary
    if review.explanations:
        text += "\n\nAdvisor:\n" + "\n".join(f"- {e}" for e in review.explanations)
    report.summary = text
    report.advisor = review.advisor
    report.advisor_note = review.note
