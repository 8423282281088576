"""Human-readable text for migrations, lists and the agents' reports (the CLI's non-JSON output)."""
from __future__ import annotations

import json

from google.protobuf import json_format

from dbmigrate.v1 import common_pb2, coordinator_pb2, events_pb2
from services.common.text import human_bytes


def to_json(message) -> str:
    """The protobuf JSON form (proto field names, defaults included) for scripts."""
    return to_json_text(to_dict(message))


def write_json(message, out, field: str = "tables") -> None:
    """What print(to_json(message)) prints, with the repeated `field` converted one item at a time: a
    migration of 20,000 tables as one dict and one string took the CLI from 32 to 115 MB."""
    items = getattr(message, field)
    head = type(message)()
    head.CopyFrom(message)
    head.ClearField(field)
    rest = to_dict(head)
    marker = "\u0000items\u0000"
    rest[field] = marker
    # In to_dict's order: the fields set, by number (`field` among them when it has items), then the rest.
    first = [f.name for f, _ in message.ListFields() if f.name in rest]
    whole = {name: rest[name] for name in first} | {k: v for k, v in rest.items() if k not in first}
    before, after = to_json_text(whole).split(json.dumps(marker), 1)
    out.write(before)
    if not items:
        out.write("[]")
    else:
        out.write("[\n")
        for i, item in enumerate(items):
            text = json.dumps(to_dict(item), indent=2)
            out.write(("" if i == 0 else ",\n") + "\n".join("    " + line for line in text.splitlines()))
        out.write("\n  ]")
    out.write(after + "\n")


def to_json_text(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


def to_dict(message) -> dict:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True,
                                     preserving_proto_field_name=True)


def phase(value: int) -> str:
    return events_pb2.Phase.Name(value)


def risk(value: int) -> str:
    return "-" if not value else common_pb2.Risk.Name(value).removeprefix("RISK_")


def recommendation(value: int) -> str:
    return "-" if not value else common_pb2.Recommendation.Name(value)


def severity(value: int) -> str:
    return common_pb2.Severity.Name(value) if value else "-"


def table(headers: list[str], rows: list[list], max_width: int = 60) -> str:
    """A plain aligned text table; long cells are cut with an ellipsis."""
    cells = [[_cut(str(c), max_width) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def migration(m: coordinator_pb2.Migration) -> str:
    lines = [
        f"migration      {m.id}" + (f"  ({m.name})" if m.name else ""),
        f"phase          {phase(m.phase)}" + ("  (rollback pending)" if m.rollback_pending else ""),
        f"source         {m.source_url}",
        f"target         {m.target_url}",
        f"advisor        {common_pb2.AdvisorKind.Name(m.advisor or common_pb2.RULES).lower()}",
        f"risk           {risk(m.risk)}",
        f"recommendation {recommendation(m.recommendation)}",
    ]
    if m.created_at.seconds:
        lines.append(f"created        {m.created_at.ToDatetime():%Y-%m-%d %H:%M:%S} UTC")
    if m.updated_at.seconds:
        lines.append(f"updated        {m.updated_at.ToDatetime():%Y-%m-%d %H:%M:%S} UTC")
    if m.approval_comment:
        lines.append(f"approved with  {m.approval_comment}")
    if m.deny_reason:
        lines.append(f"denied because {m.deny_reason}")
    if m.error:
        lines.append(f"error          {m.error}")
    if m.stopped_in:
        lines.append(f"stopped in     {phase(m.stopped_in)}")
    for b in m.blockers:
        lines.append(f"blocked by     {b}")
    p = m.progress
    if p.tables:
        lines.append(f"progress       {p.percent:.1f}%: {p.tables_verified:,} of {p.tables:,} tables verified, "
                     f"{p.tables_copying} copying, {p.tables_failed} failed; {p.rows:,} rows, {human_bytes(p.bytes)}")
    if m.options.online:
        lines.append("mode           online (the source stays writable; its changes stream to the target)")
    if m.HasField("sync"):
        lines.append("stream         " + sync_line(m.sync))
        for problem in m.sync.problems:
            lines.append(f"stream problem {problem}")
    if m.cutover:
        lines.append(f"cutover        {m.cutover}")
    for moved in m.source_moved:
        lines.append(f"source moved   {moved}")
    allowed = [name for name in ("start", "approve", "deny", "cancel", "cutover", "rollback")
               if getattr(m.actions, name)]
    lines.append(f"allowed now    {', '.join(allowed) if allowed else 'nothing (wait, or read the report)'}")
    if m.secrets_missing:
        lines.append("secrets        MISSING: the coordinator lost this migration's passwords; supply them "
                     "(SupplySecrets or DBMIGRATE_SECRET_* and a restart) before it can go on")
    if m.tables:
        rows = []
        for t in m.tables:
            done = f"{t.rows:,}" + (f" / {t.total_rows:,}" if t.total_rows else "")
            parts = f"{t.parts_done}/{t.parts}" if t.parts > 1 else ""
            rows.append([t.table, t.status, done, human_bytes(t.bytes), parts, t.error])
        lines += ["", table(["table", "status", "rows", "bytes", "parts", "error"], rows)]
    hint = next_step(m)
    if hint:
        lines += ["", hint]
    return "\n".join(lines)


def sync_line(s: common_pb2.SyncStatus) -> str:
    return (f"lag {human_bytes(s.lag_bytes)} ({s.lag_seconds:.1f}s), {s.changes_applied:,} changes applied "
            f"({s.apply_rate:,.0f}/s), {'streaming' if s.streaming else 'NOT streaming'}"
            + (f", {s.apply_errors} apply errors" if s.apply_errors else "")
            + (f", {s.conflicts} conflicts" if s.conflicts else "")
            + f"; slot holds {human_bytes(s.retained_wal_bytes)} of WAL ({s.wal_status or '?'})")


def next_step(m: coordinator_pb2.Migration) -> str:
    if m.actions.cutover:
        return (f"syncing: the source's writes stream to the target. Once the application's writes are stopped, "
                f"`dbmigrate cutover {m.id}` waits for the last change, sets the sequences, verifies and completes")
    if m.phase == events_pb2.COMPLETED and m.source_moved:
        return (f"the target equals the source's snapshot, but the source moved on after it ({len(m.source_moved)} "
                f"tables or sequences changed); those writes are not on the target. Run the migration again with "
                f"--online to carry them, or `dbmigrate rollback {m.id}`")
    if m.actions.start:
        return f"next: dbmigrate start {m.id}"
    if m.phase == events_pb2.AWAITING_APPROVAL and not m.actions.approve:
        return (f"approval is blocked (see `blocked by` and `dbmigrate report {m.id}`); fix the cause and create a "
                f"new migration, or `dbmigrate deny {m.id} --reason TEXT`")
    if m.phase == events_pb2.AWAITING_APPROVAL:
        return (f"waiting for approval (recommendation {recommendation(m.recommendation)}, risk {risk(m.risk)}); "
                f"read `dbmigrate report {m.id}`, then `dbmigrate approve {m.id}` or "
                f"`dbmigrate deny {m.id} --reason TEXT`")
    return ""


def migration_list(ms) -> str:
    if not ms:
        return "no migrations yet; create one with `dbmigrate create --source URL --target URL`"
    rows = [[m.id, phase(m.phase), risk(m.risk), recommendation(m.recommendation),
             f"{m.created_at.ToDatetime():%Y-%m-%d %H:%M}" if m.created_at.seconds else "", m.name]
            for m in ms]
    return table(["id", "phase", "risk", "recommendation", "created (UTC)", "name"], rows)


def _findings(findings) -> str:
    if not findings:
        return "findings: none"
    rows = [[severity(f.severity), f.code, f.object, f.message, f.remedy] for f in findings]
    return "findings:\n" + table(["severity", "code", "object", "message", "remedy"], rows, 50)


def discovery(r: common_pb2.DiscoveryReport) -> str:
    lines = ["== discovery"]
    if r.summary:
        lines.append(r.summary)
    for side, s in (("source", r.source), ("target", r.target)):
        if s.version:
            lines.append(f"{side}: PostgreSQL {s.version}, {s.encoding}, {human_bytes(s.size_bytes)}"
                         + (f", extensions {', '.join(s.extensions_installed)}" if s.extensions_installed else ""))
    lines.append(f"tables: {len(r.tables)}" + (f" ({sum(t.row_estimate for t in r.tables):,} rows estimated, "
                                               f"{human_bytes(sum(t.bytes for t in r.tables))})" if r.tables else ""))
    lines.append(_findings(r.findings))
    if r.advisor:
        lines.append(f"advisor: {r.advisor}" + (f" ({r.advisor_note})" if r.advisor_note else ""))
    return "\n".join(lines)


def validation(r: common_pb2.ValidationReport) -> str:
    lines = ["== validation", f"passed: {'yes' if r.passed else 'NO'}"]
    if r.summary:
        lines.append(r.summary)
    if r.rows_per_second:
        lines.append(f"sample throughput: {r.rows_per_second:,.0f} rows/s, {human_bytes(r.bytes_per_second)}/s")
    if r.tables:
        rows = [[t.table, f"{t.rows_sampled:,}", "yes" if t.passed else "NO", t.copy_format,
                 f"{t.rows_per_second:,.0f}", t.reason] for t in r.tables]
        lines.append(table(["table", "rows sampled", "passed", "format", "rows/s", "reason"], rows))
    lines.append(_findings(r.findings))
    return "\n".join(lines)


def generation(r: common_pb2.GenerationReport) -> str:
    lines = ["== generation", f"risk: {risk(r.risk)}", f"recommendation: {recommendation(r.recommendation)}"]
    if r.summary:
        lines.append(r.summary)
    if r.reasons:
        lines.append("reasons:")
        lines += [f"  - {reason}" for reason in r.reasons]
    lines.append(_findings(r.findings))
    p = r.plan
    if p.steps or p.tables:
        lines.append(f"plan: {len(p.tables)} tables, {p.jobs} jobs"
                     + (f", about {p.estimated_seconds:,.0f} s" if p.estimated_seconds else "")
                     + (f", target needs {human_bytes(p.target_disk_bytes)}" if p.target_disk_bytes else ""))
        for s in sorted(p.steps, key=lambda s: s.order):
            lines.append(f"  {s.order}. {s.name}" + (f": {s.description}" if s.description else ""))
        if p.tables:
            rows = [[t.order, f"{t.schema}.{t.name}", f"{t.rows:,}", human_bytes(t.bytes), t.parts or 1]
                    for t in sorted(p.tables, key=lambda t: t.order)]
            lines.append(table(["order", "table", "rows", "bytes", "parts"], rows))
    if r.advisor:
        lines.append(f"advisor: {r.advisor}" + (f" ({r.advisor_note})" if r.advisor_note else ""))
    return "\n".join(lines)


def execution(r: common_pb2.ExecutionReport) -> str:
    lines = ["== execution", f"verified: {'yes' if r.verified else 'NO'}"]
    if r.summary:
        lines.append(r.summary)
    lines.append(f"copied {r.rows:,} rows, {human_bytes(r.bytes)} in {r.seconds:,.1f} s")
    if r.tables:
        rows = [[t.table, f"{t.source_rows:,}", f"{t.target_rows:,}", "yes" if t.verified else "NO",
                 f"{t.seconds:,.1f}", human_bytes(t.bytes), t.copy_format, t.error] for t in r.tables]
        lines.append(table(["table", "source rows", "target rows", "verified", "seconds", "bytes", "format", "error"],
                           rows))
    return "\n".join(lines)


def verification(r: common_pb2.VerifyReport) -> str:
    lines = ["== verification", f"equal: {'yes' if r.equal else 'NO'}"]
    if r.summary:
        lines.append(r.summary)
    if r.seconds:
        lines.append(f"compared in {r.seconds:,.1f} s")
    differing = [t for t in r.tables if not t.equal]
    if r.tables:
        lines.append(f"tables compared: {len(r.tables)}, differing: {len(differing)}")
    if differing:
        rows = [[t.table, f"{t.source_rows:,}", f"{t.target_rows:,}", t.missing_total, t.extra_total,
                 t.changed_total, t.note] for t in differing]
        lines.append(table(["table", "source rows", "target rows", "missing", "extra", "changed", "note"], rows))
        for t in differing:
            for d in t.rows[:10]:
                lines.append(f"  {t.table}: {d.kind} {d.key} {d.detail}".rstrip())
    if r.objects:
        rows = [[o.kind, o.name, o.difference, o.detail] for o in r.objects]
        lines.append(table(["kind", "object", "difference", "detail"], rows))
    return "\n".join(lines)


def timings(rows) -> str:
    """Where the time went (Migration.timings / Report.timings), one phase a line."""
    lines = ["== timings"]
    for t in rows:
        lines.append(f"  {t.phase:40s} {t.seconds:9.2f} s")
    return "\n".join(lines)


RENDERERS = {"discovery": discovery, "validation": validation, "generation": generation,
             "execution": execution, "verification": verification}


def report(r: coordinator_pb2.Report, agent: str = "") -> str:
    parts = []
    for name, render in RENDERERS.items():
        if agent and agent != name:
            continue
        if r.HasField(name):
            parts.append(render(getattr(r, name)))
        elif agent:
            parts.append(f"== {name}\nno {name} report yet")
    if not parts:
        return f"no reports yet for migration {r.id}; they appear as its phases complete"
    if not agent and r.timings:
        parts.append(timings(r.timings))
    return "\n\n".join(parts)
