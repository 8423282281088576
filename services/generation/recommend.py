"""Risk, recommendation and the written summary of the generation agent (rules first, then the advisor)."""
from __future__ import annotations

from dbmigrate.v1 import common_pb2
from services.common.advisor import RISK_NAMES, Review, advisor_for, findings_digest, risk_from_findings
from services.generation.plan import build_plan


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def validation_findings(validation: common_pb2.ValidationReport) -> list[common_pb2.Finding]:
    out = list(validation.findings)
    if not validation.passed and not validation.skipped and not any(f.severity == common_pb2.BLOCKER for f in out):
        failed = [t for t in validation.tables if not t.passed]
        out.append(common_pb2.Finding(
            code="VALIDATION_FAILED", severity=common_pb2.BLOCKER,
            object=", ".join(t.table for t in failed[:5]) or "sample test migration",
            message="the sample test migration did not prove the data exact"
                    + (f": {failed[0].table}: {failed[0].reason}" if failed else ""),
            remedy="read the validation report, fix the cause on the source or target, and start a new migration"))
    return out


def generate(req) -> common_pb2.GenerationReport:
    discovery, validation, options = req.discovery, req.validation, req.options
    findings = list(discovery.findings) + validation_findings(validation)
    blockers = [f for f in findings if f.severity == common_pb2.BLOCKER]
    plan, notes = build_plan(discovery, validation, options)
    risk = risk_from_findings(findings)
    set_by = [f for f in findings if f.severity >= {common_pb2.RISK_HIGH: common_pb2.HIGH,
                                                    common_pb2.RISK_MEDIUM: common_pb2.MEDIUM}.get(risk, common_pb2.LOW)]
    total_bytes = sum(t.bytes for t in plan.tables)
    text = [f"Risk {RISK_NAMES[risk]}. Plan: {len(plan.tables)} tables ({total_bytes / 2**20:.1f} MB) with "
            f"{plan.jobs} parallel jobs, estimated {_duration(plan.estimated_seconds)}; the target needs about "
            f"{plan.target_disk_bytes / 2**20:.0f} MB of free disk."] + [n[0].upper() + n[1:] + "." for n in notes]
    text += findings_digest(set_by) if set_by else []
    facts = {"risk_by_rules": RISK_NAMES[risk],
             "findings": [{"code": f.code, "severity": common_pb2.Severity.Name(f.severity), "object": f.object,
                           "message": f.message} for f in findings[:200]],
             "validation": {"passed": validation.passed, "summary": validation.summary,
                            "bytes_per_second": validation.bytes_per_second},
             "plan": {"tables": len(plan.tables), "bytes": total_bytes, "jobs": plan.jobs,
                      "estimated_seconds": plan.estimated_seconds}}
    review = advisor_for(req.advisor).review("generation", facts, Review(risk=risk, summary="\n".join(text)))
    risk = max(risk, review.risk)
    reasons: list[str] = []
    if blockers:
        reasons += [f"BLOCKER {f.code}: {f.object + ': ' if f.object else ''}{f.message}" for f in blockers]
    high = [f for f in findings if f.severity == common_pb2.HIGH]
    if blockers:
        recommendation = common_pb2.DENY
        reasons.append("any blocking finding means DENY: fix it and start a new migration")
    elif risk == common_pb2.RISK_HIGH:
        recommendation = common_pb2.DENY
        reasons += [f"HIGH {f.code}: {f.object + ': ' if f.object else ''}{f.message}" for f in high]
        if review.risk == common_pb2.RISK_HIGH and not high:
            reasons.append("the advisor rated the risk HIGH: " + (review.explanations[0] if review.explanations
                                                                  else review.summary.splitlines()[0]))
        reasons.append("the risk is HIGH: approve only after accepting each HIGH finding")
    else:
        recommendation = common_pb2.APPROVE
        reasons.append("no blocking finding; the sample test migration was exact" if validation.passed
                       else "no blocking finding")
        if risk == common_pb2.RISK_MEDIUM:
            reasons.append("risk MEDIUM: read the MEDIUM findings before approving")
    summary = review.summary
    if review.explanations:
        summary += "\n\nAdvisor:\n" + "\n".join(f"- {e}" for e in review.explanations)
    summary = f"Recommendation: {common_pb2.Recommendation.Name(recommendation)}.\n" + summary
    return common_pb2.GenerationReport(risk=risk, recommendation=recommendation, reasons=reasons,
                                       findings=set_by or findings, plan=plan, summary=summary,
                                       advisor=review.advisor, advisor_note=review.note)
