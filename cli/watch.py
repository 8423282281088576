"""Following a migration's events: one line per fact and a live progress bar per table being copied."""
from __future__ import annotations

import fnmatch
import json
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Callable, TextIO

import grpc

from cli import render
from services.common.eventlines import describe
from cli.client import Coordinator
from dbmigrate.v1 import coordinator_pb2, events_pb2

# Events after which the phase may have changed: the watcher asks GetMigration whether to stop.
# Above this many tables, table events print as a summary line (EventPrinter).
MANY_TABLES = 50
SNAPSHOT_SECONDS = 0.5  # how often the bars ask the coordinator for its table states
_TABLE_EVENTS = {"table_progress", "table_copied", "table_verified"}
_PHASE_EVENTS = {"approval_requested", "approved", "denied", "migration_completed", "migration_failed",
                 "migration_cancelled", "rolled_back", "rollback_failed", "verification_completed",
                 "migration_started", "sync_started", "cutover_refused", "replication_released"}


def is_settled(m: coordinator_pb2.Migration, stop_at_approval: bool = True) -> bool:
    """The coordinator says whether the migration settled; waiting for approval counts only when asked."""
    if m.phase == events_pb2.AWAITING_APPROVAL:
        return stop_at_approval
    return m.settled


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
    """Prints events as lines; on a terminal, keeps a block of live progress bars under them.

    The bars and the totals are the coordinator's (Migration.tables and .progress, from `snapshot`,
    asked at most every SNAPSHOT_SECONDS while table events come); the printer folds no event itself.
    """

    def __init__(self, out: TextIO = sys.stdout, as_json: bool = False, live: bool | None = None,
                 tables: str | None = None, snapshot: Callable[[], coordinator_pb2.Migration] | None = None):
        self.out = out
        self.as_json = as_json
        self.live = (out.isatty() if live is None else live) and not as_json
        self.snapshot = snapshot
        self.bars: dict[str, _Bar] = {}
        self.progress = coordinator_pb2.Progress()
        self._snapshot_at = 0.0
        self._snapshot_cost = 0.0
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
        described = describe(ev)
        texts = [described.text if described else None]
        if kind == "plan_generated":
            self.many = len(ev.plan_generated.report.plan.tables) > MANY_TABLES
            if self.many and not self.tables:
                texts.append("a line per table only for --tables PATTERN; a summary for all")
        if kind in _TABLE_EVENTS or kind == "table_failed":
            refreshed = self.refresh()
            if kind != "table_failed" and not self._shown(self._table_of(getattr(ev, kind))):
                texts = refreshed + [self._summary()]
            else:
                texts = refreshed + texts
        elif (self.bars or self.progress.tables) and kind in _PHASE_EVENTS | {"execution_finished"}:
            # the tables' state at a milestone (a large migration's answer may list none: all verified)
            texts = self.refresh(force=True) + ([self._summary()] if self.many else []) + texts
        elif self.bars:  # one table's indexes, a log line: the bars as they come
            texts = self.refresh() + texts
        stamp = ev.time.ToDatetime().strftime("%H:%M:%S") if ev.time.seconds else "--:--:--"
        for one in texts:
            if one:
                self.line(f"{stamp}  {one}")
        self._draw()

    def view(self, wid: str) -> coordinator_pb2.MigrationRef:
        """What the bars ask the coordinator for: with --tables, every table it names; otherwise what a
        live view shows (every table of a small migration; of a large one, those being copied and
        the failed ones: the summary counts the others)."""
        if self.tables:
            return coordinator_pb2.MigrationRef(id=wid, tables=coordinator_pb2.TABLES_ALL, table_filter=self.tables)
        return coordinator_pb2.MigrationRef(id=wid, tables=coordinator_pb2.TABLES_AUTO)

    def refresh(self, force: bool = False) -> list[str]:
        """The coordinator's table states into the bars; without a terminal, the bar line of each
        shown table that passed another quarter."""
        now = time.monotonic()
        # At most every SNAPSHOT_SECONDS, and never more than a fifth of the time: a migration of
        # 20,000 tables makes each answer large, and the events must not wait behind them.
        wait = max(SNAPSHOT_SECONDS, 4 * self._snapshot_cost)
        if self.snapshot is None or (not force and now - self._snapshot_at < wait):
            return []
        try:
            m = self.snapshot()
        except Exception:  # noqa: BLE001 - the coordinator restarts: the stream's reconnect says so
            return []
        finally:
            self._snapshot_at = time.monotonic()
            self._snapshot_cost = self._snapshot_at - now
        self.progress = m.progress
        lines = []
        bars = {}
        for t in m.tables:
            bar = bars[t.table] = self._bar(t.table)
            bar.rows, bar.total_rows, bar.bytes, bar.status = t.rows, t.total_rows, t.bytes, t.status
            bar.rows_per_second, bar.eta_seconds = t.rows_per_second, t.eta_seconds
            if t.status != "pending" and self._shown(t.table):
                lines.append(self._progress_line(bar))
        self.bars = bars  # a table the answer no longer lists (verified, in a large migration) has no bar
        return lines

    def line(self, text: str) -> None:
        self._erase()
        self.out.write(text + "\n")
        self._draw(force=True)
        self.out.flush()

    def close(self) -> None:
        self._draw(force=True)
        self._drawn = 0
        self.out.flush()

    @staticmethod
    def _table_of(e) -> str:
        return getattr(e, "table", "") or getattr(getattr(e, "result", None), "table", "")

    def _shown(self, table: str) -> bool:
        """Whether the lines of this table are printed (see __init__)."""
        if self.tables:
            return fnmatch.fnmatchcase(table, self.tables) or fnmatch.fnmatchcase(table.replace('"', ""), self.tables)
        return not self.many

    def _summary(self) -> str | None:
        """One line for all the tables, at most every 5 s or each tenth of them verified."""
        p = self.progress
        at, count = self._summary_at
        if not p.tables or not (time.monotonic() - at >= 5 or p.tables_verified - count >= max(1, p.tables // 10)
                                or (p.tables_verified == p.tables and count != p.tables)):
            return None
        self._summary_at = (time.monotonic(), p.tables_verified)
        return (f"tables: {p.tables_verified:,} of {p.tables:,} verified, {p.tables_copying} copying, "
                f"{p.tables_failed} failed")

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
        p = self.progress
        return f"  tables {p.tables_done}/{p.tables} copied, {p.rows:,} rows"

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
            return coord.stub.GetMigration(_state_only(wid), timeout=10)
        except grpc.RpcError as err:
            if err.code() not in _TRANSPORT or time.monotonic() > deadline:
                raise coord.translate(err) from None
            time.sleep(1.0)


def _state_only(wid: str) -> coordinator_pb2.MigrationRef:
    """The migration without its tables: whether it settled, and where its events are."""
    return coordinator_pb2.MigrationRef(id=wid, tables=coordinator_pb2.TABLES_NONE)


def follow(coord: Coordinator, wid: str, printer: EventPrinter, *, from_seq: int = 0,
           stop_at_approval: bool = True) -> coordinator_pb2.Migration:
    """Prints the events of `wid` after `from_seq` and follows live ones until the migration settles.
    A stream that breaks is opened again from the last event printed, so nothing is missed or twice."""
    last = from_seq
    m = coord.call("GetMigration", _state_only(wid))
    if printer.snapshot is None:
        printer.snapshot = lambda: coord.call("GetMigration", printer.view(wid))
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
                        m = coord.call("GetMigration", _state_only(wid))
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
        if printer.bars and not printer.as_json:
            for line in printer.refresh(force=True):  # the tables' last state
                if line:
                    printer.line(f"{time.strftime('%H:%M:%S')}  {line}")
        printer.close()
