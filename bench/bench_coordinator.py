"""Coordinator figures: state rebuilt from a 100,000-event log, append throughput, append + publish throughput."""
from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from coordinator.eventlog import EventLog
from coordinator.publisher import CURSOR, Publisher
from coordinator.state import replay
from dbmigrate.v1 import agents_pb2, common_pb2, events_pb2 as E

EVENTS = int(os.environ.get("DBMIGRATE_BENCH_EVENTS", "100000"))
NATS_URL = os.environ.get("DBMIGRATE_NATS_URL", "nats://127.0.0.1:4222")


def _workflow_events(i: int) -> list[E.WorkflowEvent]:
    """A realistic migration: creation, reports, then per-table progress, copy and verification events."""
    def ev(**payload):
        e = E.WorkflowEvent(**payload)
        e.time.GetCurrentTime()
        return e
    conn = common_pb2.Connection(host="db.example", port=5432, dbname=f"db{i}", user="app")
    out = [ev(migration_created=E.MigrationCreated(name=f"m{i}", source=conn, target=conn)),
           ev(migration_started=E.MigrationStarted()),
           ev(discovery_completed=E.DiscoveryCompleted(report=common_pb2.DiscoveryReport(summary="x" * 500))),
           ev(validation_completed=E.ValidationCompleted(report=common_pb2.ValidationReport(passed=True))),
           ev(plan_generated=E.PlanGenerated(report=common_pb2.GenerationReport(risk=1, recommendation=1))),
           ev(approval_requested=E.ApprovalRequested()), ev(approved=E.Approved()),
           ev(target_baseline_recorded=E.TargetBaselineRecorded())]
    for t in range(30):
        table = f"public.t{t}"
        out.append(ev(table_progress=agents_pb2.TableProgress(table=table, rows=500, bytes=10_000, total_rows=1000)))
        out.append(ev(table_copied=agents_pb2.TableCopied(unit=table, table=table, rows=1000, bytes=20_000)))
        out.append(ev(table_verified=agents_pb2.TableVerified(result=common_pb2.TableResult(
            table=table, source_rows=1000, target_rows=1000, verified=True))))
    out.append(ev(migration_completed=E.MigrationCompleted()))
    return out


def build_log(path: Path, total: int) -> int:
    log = EventLog(path)
    n = i = 0
    log.db.execute("PRAGMA synchronous=OFF")  # building the fixture only; the measured appends below use FULL
    while n < total:
        events = _workflow_events(i)[: total - n]
        log.append(f"wf{i:06d}", 0, events)
        n += len(events)
        i += 1
    log.close()
    return i


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.db"
        workflows = build_log(path, EVENTS)
        times = []
        for _ in range(3):
            log = EventLog(path)
            t0 = time.perf_counter()
            states = replay(log.iter_all())
            times.append(time.perf_counter() - t0)
            log.close()
        assert len(states) == workflows
        print(f"rebuild state from {EVENTS} events ({workflows} workflows): best {min(times):.3f}s, "
              f"median {sorted(times)[1]:.3f}s (goal < 1 s)")

        # Appends as the coordinator does them: one transaction per event, synchronous=FULL.
        log = EventLog(Path(tmp) / "appends.db")
        n = 2000
        sample = _workflow_events(0)
        t0 = time.perf_counter()
        version = 0
        run_id = f"bench{os.getpid()}{int(time.time())}"  # fresh Nats-Msg-Ids on every run
        for k in range(n):
            e = E.WorkflowEvent()
            e.CopyFrom(sample[min(k, len(sample) - 1)] if k == 0 else sample[8 + k % 90])
            log.append(run_id, version, [e])
            version += 1
        append_rate = n / (time.perf_counter() - t0)
        print(f"append (one fsync'd transaction per event): {append_rate:,.0f} events/s")

        async def publish_all() -> float:
            stream = "DBMIGRATE_EVENTS"
            pub = Publisher(log, NATS_URL, stream)
            t0 = time.perf_counter()
            pub.start()
            while log.cursor(CURSOR) < log.last_seq():
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - t0
            await pub.stop()
            return elapsed
        elapsed = asyncio.run(publish_all())
        print(f"publish to JetStream (acknowledged, de-duplicated by Nats-Msg-Id): {n / elapsed:,.0f} events/s")
        print(f"append + publish end to end: {n / (n / append_rate + elapsed):,.0f} events/s")
        log.close()


if __name__ == "__main__":
    main()
