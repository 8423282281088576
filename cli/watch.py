"""Following a migration's events: one line per fact and a live progress bar per table being copied."""
from __future__ import annotations

import fnmatch
import json
import shutil
import sys
import time
from dataclasses import dataclass
from typing import TextIO

import grpc

from cli import render
from cli.client import CliError, Coordinator
from dbmigrate.v1 import coordinator_pb2, events_pb2

# Events after which the phase may have changed: the watcher asks GetMigration whether to stop.
# Above this many tables, table events print as a summary line (EventPrinter).
MANY_TABLES = 50
_TABLE_EVENTS = {"table_progress", "table_copied", "table_verified"}
_PHASE_EVENTS = {"approval_requested", "approved", "denied", "migration_completed", "migration_failed",
                 "migration_cancelled", "rolled_back", "rollback_failed", "verification_completed",
                 "migration_started", "phase_started"}


def is_settled(m: coordinator_pb2.Migration, stop_at_approval: bool = True) -> bool:
    """The migration ended (and any rollback is done), or it waits for a person."""
    if m.phase in render.ENDS and not m.rollback_pending:
        return True
    return stop_at_approval and m.phase == events_pb2.AWAITING_APPROVAL


@dataclass
class _Bar:
    table: str
    rows: int = 0
    total_rows: int = 0
    bytes: int = 0
    rows_per_second: float = 0.0
    eta_seconds: float = 0.0
    status: str = "pending"
    printed_quarter: int = -1

    @property
    def fraction(self) -> float | None:
        if self.status in ("copied", "verified"):
            return 1.0
        if self.total_rows > 0:
            return min(1.0, self.rows / self.total_rows)
        return None


class EventPrinter:
    """Prints events as lines; on a terminal, keeps a block of live progress bars under them."""

    def __init__(self, out: TextIO = sys.stdout, as_json: bool = False, live: bool | None = None,
                 tables: str | None = None):
        self.out = out
        self.as_json = as_json
        self.live = (out.isatty() if live is None else live) and not as_json
        self.bars: dict[str, _Bar] = {}
        self._drawn = 0
        self._last_draw = 0.0
        # With many tables a line per table is no view: a summary line instead, now and then, and the
        # lines of the tables `tables` (a glob) names; a failure is always printed.
        self.tables = tables
        self.many = False
        self._summary_at = (0.0, 0)

    # ---- public ----

    def event(self, ev: events_pb2.WorkflowEvent) -> None:
        if self.as_json:
            self.out.write(json.dumps(render.to_dict(ev), separators=(",", ":")) + "\n")
            self.out.flush()
            return
        kind = ev.WhichOneof("payload")
        handler = getattr(self, f"_on_{kind}", None)
        text = handler(getattr(ev, kind)) if handler else None
        if kind in _TABLE_EVENTS and not self._shown(getattr(ev, kind)):
            text = self._summary()
        stamp = ev.time.ToDatetime().strftime("%H:%M:%S") if ev.time.seconds else "--:--:--"
        for one in ([text] if isinstance(text, str) else text or []):
            self.line(f"{stamp}  {one}")
        self._draw()

    def line(self, text: str) -> None:
        self._erase()
        self.out.write(text + "\n")
        self._draw(force=True)
        self.out.flush()

    def close(self) -> None:
        self._draw(force=True)
        self._drawn = 0
        self.out.flush()

    def _shown(self, e) -> bool:
        """Whether the lines of this table event are printed (see __init__)."""
        table = getattr(e, "table", "") or getattr(getattr(e, "result", None), "table", "")
        if self.tables:
            return fnmatch.fnmatchcase(table, self.tables) or fnmatch.fnmatchcase(table.replace('"', ""), self.tables)
        return not self.many

    def _summary(self) -> str | None:
        """One line for all the tables, at most every 5 s or each tenth of them verified."""
        verified = sum(1 for b in self.bars.values() if b.status == "verified")
        at, count = self._summary_at
        total = len(self.bars)
        if time.monotonic() - at < 5 and verified - count < max(1, total // 10) and verified != total:
            return None
        self._summary_at = (time.monotonic(), verified)
        copying = sum(1 for b in self.bars.values() if b.status == "copying")
        failed = sum(1 for b in self.bars.values() if b.status == "failed")
        return f"tables: {verified:,} of {total:,} verified, {copying} copying, {failed} failed"

    # ---- progress bars ----

    def _bar(self, table: str) -> _Bar:
        bar = self.bars.get(table)
        if bar is None:
            bar = self.bars[table] = _Bar(table)
        return bar

    def bar_text(self, bar: _Bar, width: int = 24) -> str:
        frac = bar.fraction
        if frac is None:
            gauge = "[" + ("~" * width) + "]   ?%"
        else:
            filled = int(round(frac * width))
            gauge = "[" + "#" * filled + "-" * (width - filled) + f"] {frac * 100:3.0f}%"
        rows = f"{bar.rows:,}" + (f"/{bar.total_rows:,}" if bar.total_rows else "") + " rows"
        extra = []
        if bar.bytes:
            extra.append(render.human_bytes(bar.bytes))
        if bar.status == "copying" and bar.rows_per_second:
            extra.append(f"{bar.rows_per_second:,.0f} rows/s")
        if bar.status == "copying" and bar.eta_seconds:
            extra.append(f"ETA {bar.eta_seconds:,.0f}s")
        if bar.status not in ("copying", "pending"):
            extra.append(bar.status)
        return f"  {bar.table[:40]:40s} {gauge}  {rows}  {'  '.join(extra)}".rstrip()

    def _overall(self) -> str:
        total = len(self.bars)
        done = sum(1 for b in self.bars.values() if b.status in ("copied", "verified"))
        rows = sum(b.rows for b in self.bars.values())
        return f"  tables {done}/{total} copied, {rows:,} rows"

    def _active(self) -> list[_Bar]:
        return [b for b in self.bars.values() if b.status == "copying"][:12]

    def _erase(self) -> None:
        if self.live and self._drawn:
            # Cursor up over the bar block, then clear to the end of the screen.
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self, force: bool = False) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        self._erase()
        active = self._active()
        if not self.bars:
            return
        cols = shutil.get_terminal_size((120, 20)).columns
        lines = [self._overall()] + [self.bar_text(b)[: cols - 1] for b in active]
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self._drawn = len(lines)

    def _progress_line(self, bar: _Bar) -> str | None:
        """Without a terminal, a bar line each time a table passes another quarter."""
        if self.live:
            return None
        frac = bar.fraction
        quarter = int(frac * 4) if frac is not None else 0
        if quarter <= bar.printed_quarter:
            return None
        bar.printed_quarter = quarter
        return self.bar_text(bar).strip()

    # ---- one method per event type; each returns the line to print (or None) ----

    def _on_migration_created(self, e):
        return f"created {e.name}"

    def _on_migration_started(self, e):
        return "started"

    def _on_phase_started(self, e):
        return f"phase {render.phase(e.phase)}"

    def _on_agent_call_failed(self, e):
        retry = "; retrying" if e.retryable else ""
        return f"{e.agent} agent call failed (attempt {e.attempt}): {e.error}{retry}"

    def _on_discovery_completed(self, e):
        r = e.report
        worst = max((f.severity for f in r.findings), default=0)
        return (f"discovery done: {len(r.tables)} tables, {len(r.findings)} findings"
                + (f" (worst {render.severity(worst)})" if worst else "") + (f" - {r.summary}" if r.summary else ""))

    def _on_validation_completed(self, e):
        r = e.report
        return f"validation {'passed' if r.passed else 'FAILED'}" + (f": {r.summary}" if r.summary else "")

    def _on_plan_generated(self, e):
        r = e.report
        for t in r.plan.tables:
            bar = self._bar(f"{t.schema}.{t.name}")
            bar.total_rows = bar.total_rows or t.rows
        self.many = len(r.plan.tables) > MANY_TABLES
        return (f"plan: risk {render.risk(r.risk)}, recommendation {render.recommendation(r.recommendation)}, "
                f"{len(r.plan.tables)} tables, {r.plan.jobs} jobs"
                + (f" (a line per table only for --tables PATTERN; a summary for all)" if self.many and not self.tables
                   else ""))

    def _on_approval_requested(self, e):
        return (f"waiting for approval: risk {render.risk(e.risk)}, "
                f"recommendation {render.recommendation(e.recommendation)}")

    def _on_approved(self, e):
        return "approved" + (f": {e.comment}" if e.comment else "")

    def _on_denied(self, e):
        return f"denied: {e.reason}"

    def _on_target_baseline_recorded(self, e):
        return "target baseline recorded (what a rollback restores)"

    def _on_execution_attempted(self, e):
        return f"execution attempt {e.attempt}" if e.attempt > 1 else "execution started"

    def _on_step_started(self, e):
        return f"step {e.step} started" if not e.step.startswith("indexes:") else None

    def _on_step_completed(self, e):
        if e.step.startswith("indexes:"):
            return None
        return f"step {e.step} done" + (f" in {e.seconds:,.1f}s" if e.seconds else "") + (
            f" ({e.detail})" if e.detail else "")

    def _on_table_progress(self, e):
        bar = self._bar(e.table)
        if bar.status == "pending":
            bar.status = "copying"
        if bar.status == "copying":
            bar.rows, bar.bytes = e.rows, e.bytes
            bar.total_rows = e.total_rows or bar.total_rows
            bar.rows_per_second, bar.eta_seconds = e.rows_per_second, e.eta_seconds
        return self._progress_line(bar)

    def _on_table_copied(self, e):
        bar = self._bar(e.table)
        if e.parts > 1:
            return f"copied {e.table} part {e.part}/{e.parts}: {e.rows:,} rows in {e.seconds:,.1f}s"
        bar.status, bar.rows, bar.bytes = "copied", e.rows, e.bytes or bar.bytes
        bar.total_rows = max(bar.total_rows, e.rows)
        copied = (f"copied {e.table}: {e.rows:,} rows, {render.human_bytes(e.bytes)} in {e.seconds:,.1f}s"
                  + (f" ({e.copy_format})" if e.copy_format else ""))
        return [line for line in (self._progress_line(bar), copied) if line]

    def _on_table_verified(self, e):
        r = e.result
        bar = self._bar(r.table)
        bar.status, bar.rows, bar.total_rows = "verified", r.target_rows, r.source_rows
        return f"verified {r.table}: {r.target_rows:,} rows, checksum equal"

    def _on_table_failed(self, e):
        self._bar(e.table).status = "failed"
        return f"FAILED {e.table}: {e.error}" + (" (will be retried)" if e.retryable else "")

    def _on_log(self, e):
        return f"[{e.level or 'info'}] {e.message}" + (f" ({e.service})" if e.service else "")

    def _on_execution_finished(self, e):
        r = e.report
        return (f"execution finished: {r.rows:,} rows, {render.human_bytes(r.bytes)} in {r.seconds:,.1f}s, "
                f"{'all tables verified' if r.verified else 'NOT all tables verified'}")

    def _on_verification_completed(self, e):
        r = e.report
        return f"final verification: {'source and target are equal' if r.equal else 'DIFFERENCES found'}" + (
            f" - {r.summary}" if r.summary else "")

    def _on_migration_completed(self, e):
        return "migration COMPLETED"

    def _on_migration_failed(self, e):
        return f"migration FAILED in {render.phase(e.phase)}: {e.error}" + (
            "; rolling the target back" if e.rollback_pending else "")

    def _on_cancel_requested(self, e):
        return f"cancel requested: {e.reason}"

    def _on_migration_cancelled(self, e):
        return f"migration CANCELLED: {e.reason}" + ("; rolling the target back" if e.rollback_pending else "")

    def _on_rollback_requested(self, e):
        return f"rollback requested: {e.reason}"

    def _on_rolled_back(self, e):
        return "target rolled back" + (f": {e.report.summary}" if e.report.summary else "")

    def _on_rollback_failed(self, e):
        return f"ROLLBACK FAILED: {e.error}"


# How long a broken event stream is retried while the coordinator does not answer at all.
RECONNECT_SECONDS = 120.0
# Stream failures that are the transport's (a restart, a proxy, a cut connection), not an answer.
_TRANSPORT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
              grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED}


def _answering(coord: Coordinator, wid: str, printer: EventPrinter, why: str) -> coordinator_pb2.Migration:
    """The migration, once the coordinator answers again; a CliError only after RECONNECT_SECONDS
    without any answer (it says the coordinator is unreachable only when it is)."""
    printer.line(f"event stream interrupted ({why}); reconnecting")
    deadline = time.monotonic() + RECONNECT_SECONDS
    while True:
        try:
            return coord.stub.GetMigration(coordinator_pb2.MigrationRef(id=wid), timeout=10)
        except grpc.RpcError as err:
            if err.code() not in _TRANSPORT or time.monotonic() > deadline:
                raise coord.translate(err) from None
            time.sleep(1.0)


def follow(coord: Coordinator, wid: str, printer: EventPrinter, *, from_seq: int = 0,
           stop_at_approval: bool = True) -> coordinator_pb2.Migration:
    """Prints the events of `wid` after `from_seq` and follows live ones until the migration settles.
    A stream that breaks is opened again from the last event printed, so nothing is missed or twice."""
    last = from_seq
    m = coord.call("GetMigration", coordinator_pb2.MigrationRef(id=wid))
    try:
        while True:
            settled = is_settled(m, stop_at_approval)
            stream = coord.stream("WatchEvents", coordinator_pb2.WatchEventsRequest(
                workflow_id=wid, from_seq=last, follow=not settled))
            caught_up = m.last_seq
            stop_at = None  # the state settled at this sequence; print the events up to it, then stop
            try:
                for ev in stream:
                    printer.event(ev)
                    last = ev.seq
                    if stop_at is None and not settled and ev.seq >= caught_up and \
                            ev.WhichOneof("payload") in _PHASE_EVENTS:
                        m = coord.call("GetMigration", coordinator_pb2.MigrationRef(id=wid))
                        if is_settled(m, stop_at_approval):
                            stop_at = m.last_seq
                    if stop_at is not None and ev.seq >= stop_at:
                        stream.cancel()
                        return m
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.CANCELLED and stop_at is not None:
                    return m
                if err.code() not in _TRANSPORT and err.code() != grpc.StatusCode.CANCELLED:
                    raise coord.translate(err) from None
                m = _answering(coord, wid, printer, err.details() or err.code().name)
                continue
            if settled:
                return m
            # The stream ended while the migration goes on (the coordinator stopped it): follow again.
            m = _answering(coord, wid, printer, "the coordinator closed it")
            if is_settled(m, stop_at_approval) and m.last_seq <= last:
                return m
    finally:
        printer.close()
