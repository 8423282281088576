"""The NATS publisher with a real JetStream: an event larger than the server's max_payload (the report of a
20,000-table migration) is published without its report instead of holding back every later event."""
from __future__ import annotations

import asyncio
import uuid

import nats

from coordinator.eventlog import EventLog
from coordinator.publisher import Publisher
from dbmigrate.v1 import agents_pb2, common_pb2, events_pb2 as E


def test_an_event_over_max_payload_goes_out_slim_and_the_next_events_follow(tmp_path, nats_url):
    stream = "DBMIGRATE_EVENTS"  # the stream owns dbmigrate.events.>, shared with every test's stack
    log = EventLog(tmp_path / "e.db")
    wid = uuid.uuid4().hex[:12]
    big = common_pb2.ExecutionReport(summary="30000 tables copied", rows=30000)
    for i in range(30000):
        big.tables.add(table=f"public.table_with_a_long_name_{i}", verified=True, source_rows=50, target_rows=50,
                       source_checksum="f" * 32, target_checksum="f" * 32)
    log.append(wid, 0, [E.WorkflowEvent(migration_started=E.MigrationStarted()),
                        E.WorkflowEvent(execution_finished=agents_pb2.ExecutionFinished(report=big)),
                        E.WorkflowEvent(migration_completed=E.MigrationCompleted())])
    assert len(log.read(workflow_id=wid)[1].SerializeToString()) > 1024 * 1024

    async def run():
        pub = Publisher(log, nats_url, stream)
        pub.start()
        try:
            for _ in range(100):
                if pub.published >= 3:
                    break
                await asyncio.sleep(0.1)
        finally:
            await pub.stop()
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe(f"dbmigrate.events.{wid}.>", stream=stream)
            msgs = await sub.fetch(3, timeout=5)
        finally:
            await nc.close()
        return pub.published, msgs

    published, msgs = asyncio.run(run())
    assert published == 3
    types = [m.headers["Dbmigrate-Type"] for m in msgs]
    assert types == ["migration_started", "execution_finished", "migration_completed"]
    slim = E.WorkflowEvent.FromString(msgs[1].data)
    assert "max_payload" in msgs[1].headers["Dbmigrate-Truncated"]
    assert slim.execution_finished.report.summary == "30000 tables copied" and not slim.execution_finished.report.tables
    assert slim.version == 2 and slim.workflow_id == wid


def test_the_coordinator_imports_no_extras_it_does_not_use_unless_a_websocket_server_is_named():
    """pandas and numpy (sqlite-utils' column types) and aiohttp (nats-py's websocket transport) are
    installed here (h2ogpte brings them) but would cost the coordinator about 55 MB at every start."""
    import os
    import subprocess
    import sys
    probe = "import sys, coordinator.__main__; print(sorted(m for m in ('pandas', 'numpy', 'aiohttp') if m in sys.modules))"
    for url, expected in (("nats://news.example:4222", "[]"), ("wss://news.example:443", "['aiohttp']")):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                             env={**os.environ, "DBMIGRATE_NATS_URL": url}).stdout.strip()
        assert out == expected, (url, out)
